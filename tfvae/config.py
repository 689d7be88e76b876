"""The resolved run configuration: a plain dataclass built once from flags and passed down.

Each setting is defined once, as a field with its help, bounds and choices (``tfvae.fields.setting``): the
run-wide ones here (``RunSettings``), each model's own in its module (its ``Hparams``, joined into ``Config`` from
``tfvae.models.registry``). ``tfvae.config_flags`` makes train.py's flags and docs/flags.md from these fields.

Nothing below the scripts changes a Config it is given. A run's Config is the flags' Config plus what its data
turned out to be (``with_data``, a new Config); that one is written to ``<workdir>/config.json``, its fields
flat, and read back by sample.py, evaluate.py and for resuming.
"""

import dataclasses
import json
import os

from tfvae import integrity
from tfvae.data import BINARIZE_MODES as BINARIZE
from tfvae.data import DATASETS, DEFAULT_MAX_IMAGE_PIXELS, DataFacts
from tfvae.data.noise import parse_noise
from tfvae.errors import TfvaeError
from tfvae.fields import check, setting
from tfvae.losses import RECONSTRUCTION_LOSSES
from tfvae.models import ARCHS, MODELS, hyperparameter_classes, hyperparameter_fields, model_class, owners

STRATEGIES = ("auto", "default", "one_device", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
LR_SCHEDULES = ("constant", "cosine")
DEFAULT_HIDDEN = {"conv": 16, "mlp": 400}

# The run-wide fields that fix the network's shape: a run directory holding other values can't be resumed. The loss
# does too: it sets what the decoder emits (tfvae.likelihoods.output_channels) and whether it holds a
# DecoderVariance. A model's own such fields say so (``setting(architecture=True)``); see Config.architecture.
ARCHITECTURE_FIELDS = ("model", "arch", "latent", "filters", "hidden", "image_shape", "num_classes", "loss")


def _model_help():
    return "; ".join(f"{name}: {model_class(name).description}" for name in MODELS) + "."


@dataclasses.dataclass
class RunSettings:
    """The settings every run has, whatever its model.

    The model, data, epochs and batch size are the Keras VAE example's (conv, latent 2, 30 epochs, batch 128);
    on small data the default batch is 32 (tfvae.training.default_batch_size). The optimizer schedule,
    precision and steps per call were chosen by measurement (docs/performance.md#how-the-defaults-were-chosen).
    """

    model: str = setting("vae", _model_help(), choices=MODELS)
    arch: str = setting("conv", "conv: the Keras example's Conv2D/Conv2DTranspose networks; mlp: the PyTorch "
                        "example's dense 784-400-20 networks; resnet: residual conv stages, as many as halve the "
                        "image down to about 4x4 (docs/training.md).", choices=ARCHS)
    latent: int = setting(2, "Size of the latent code z.", lower=1)
    filters: tuple = setting((32, 64), "Conv2D filters of each stride-2 encoder layer (the decoder mirrors them); "
                             "image sides must be divisible by 2**len(filters). resnet: each stage's width, the last "
                             "one repeated.")
    hidden: int = setting(0, "Units of the dense layer before z (0: 16 for conv, 400 for mlp).", lower=0)
    dataset: str = setting("mnist", "mnist, fashion_mnist, folder (images under --data_dir), or arrays (an .npz "
                           "at --data_dir with x_train, x_test and, labelled, y_train, y_test; from Python, "
                           "tfvae.train(config, data=...) keeps the arrays in the run directory).", choices=DATASETS)
    data_dir: str = setting("", "Folder with the data: IDX or .npz files for mnist/fashion_mnist, any tree of "
                            "PNG/JPEG images for folder; the .npz file for arrays. Empty: the dataset's usual places "
                            "(for arrays, the run directory's data.npz).")
    download: bool = setting(True, "Let keras.datasets download MNIST/Fashion-MNIST when no local copy is found.")
    image_size: int = setting(0, "Resize images to this square size (0: the dataset's own; 64 for folders).",
                              lower=0)
    channels: int = setting(0, "1 (grey) or 3 (RGB); 0: the dataset's own.", choices=(0, 1, 3))
    max_examples: int = setting(0, "Use at most this many training examples (0: all), for quick runs.", lower=0)
    cache_dir: str = setting("", "Folders only: where each folder is decoded once, the first time it is used at a "
                             "given --image_size/--channels, into a uint8 array that later epochs and runs read "
                             "(default $TFVAE_CACHE, else ~/.cache/tfvae). 'none': no cache, every image is decoded "
                             "each epoch.")
    max_image_pixels: int = setting(DEFAULT_MAX_IMAGE_PIXELS, "Folders only: images of more pixels are skipped as "
                                    "possible decompression bombs (Pillow's guard); raise it to admit your own very "
                                    "large images, 0 for no limit.", lower=0)
    binarize: str = setting("none", "none: grey levels; static: one fixed binary sample; dynamic: pixels resampled "
                            "as Bernoulli(x) every time an image is used.", choices=BINARIZE)
    noise: str = setting("none", "Denoising: the encoder sees corrupted images and the loss scores the clean ones; "
                         "none, gaussian:STDDEV, saltpepper:PROB or mask:PROB (fresh noise each time an image is "
                         "used, drawn from --seed).")
    flip: bool = setting(False, "Data augmentation: mirror each training image left-right with probability 1/2, a "
                         "fresh draw each time it is served (from --seed; test images never). For pictures whose "
                         "mirror image is as likely as they are (faces, objects); not for digits or text.")
    classes: tuple = setting((), "Train (and test) on these class ids only, e.g. --classes=0 or --classes=0,2,4 "
                             "(labelled data sets and folders with one subfolder per class).")
    epochs: int = setting(30, "Number of epochs (the Keras example's 30).", lower=1)
    batch_size: int = setting(0, "Global batch size (split across replicas). 0: the Keras example's 128, or 32 on "
                              "fewer than 8,500 training images (e.g. the offline MNIST fallback), where 128 gives "
                              "too few optimizer steps.", lower=0)
    learning_rate: float = setting(5e-3, "Adam learning rate (with --lr_schedule=cosine, the peak). The Keras "
                                   "example's recipe is 1e-3 with --lr_schedule=constant.")
    lr_schedule: str = setting("cosine", "cosine: linear warm-up over --warmup_epochs, then cosine decay to 0 at the "
                               "last epoch; constant: --learning_rate throughout.", choices=LR_SCHEDULES)
    warmup_epochs: float = setting(0.5, "Epochs of linear learning-rate warm-up (cosine schedule); at least 200 "
                                   "steps, or a quarter of a shorter run (small data sets need it).", lower=0)
    beta: float = setting(1.0, "Weight of the KL term (beta-VAE; 1 is the ELBO).", lower=0)
    recon_weight: float = setting(1.0, "Weight of the reconstruction term (1 is the ELBO; 0 trains the KL term "
                                  "alone, the documents' 'KL only' latent space).", lower=0)
    adversarial: float = setting(0.0, "Weight of an adversarial sharpness term: a small PatchGAN discriminator "
                                 "trained in the same fit, its hinge loss on the reconstructions added to the "
                                 "objective at this fraction of the ELBO's pull on the decoder's output (0: off; "
                                 "docs/sharpness.md).", lower=0)
    feature_match: float = setting(0.0, "Weight of a feature-matching sharpness term: the squared distance between "
                                   "an image and its reconstruction in that discriminator's features (Larsen et al. "
                                   "2016), at this fraction of the ELBO's pull (0: off; docs/sharpness.md).", lower=0)
    loss: str = setting("bce", "bce: Bernoulli decoder, cross-entropy summed over pixels; mse: Gaussian decoder with "
                        "the fixed variance 1/2, squared error summed over pixels; gaussian: Gaussian decoder with one "
                        "shared variance set to each batch's optimum (its per-pixel MSE; Rybkin et al. 2021), for "
                        "colour images; gaussian_pixel: the decoder also emits a learned variance per pixel and "
                        "channel; logistic_mixture: PixelCNN++'s discretized logistic mixture of the 8-bit values "
                        "(docs/likelihoods.md).", choices=RECONSTRUCTION_LOSSES)
    seed: int = setting(0, "Seed for weights, shuffling and sampling noise.")
    validation_images: int = setting(2000, "Test images each epoch's validation pass scores: the first N, the same "
                                     "every epoch (0: all). The final test loss, printed and returned, scores them "
                                     "all.", lower=0)
    checkpoint_every_steps: int = setting(0, "Also checkpoint every this many steps inside an epoch, so that a killed "
                                          "run loses at most that many steps (0: at the end of each epoch only).",
                                          lower=0)
    export_every: int = setting(0, "Write encoder.keras and decoder.keras every this many epochs (0: automatic, as "
                                "often as keeps the exports under 5% of the training time), and always after the "
                                "first epoch a training runs, the last epoch, and a Ctrl-C (from the checkpoint).",
                                lower=0)
    keep_checkpoints: int = setting(2, "End-of-epoch checkpoints to keep (the newest checkpoint is always kept too); "
                                    "a damaged newest one is skipped on resume for the newest good one.", lower=1)
    strategy: str = setting("auto", "auto: a Cloud TPU VM's TPU, else all GPUs mirrored when there are several, else "
                            "the one GPU, else the CPU; multi_worker: MultiWorkerMirroredStrategy over the cluster in "
                            "TF_CONFIG (run the same command on every host; --batch_size is global); tpu: "
                            "TPUStrategy over the TPU the cluster resolver finds.", choices=STRATEGIES)
    precision: str = setting("auto", "Keras mixed-precision policy; the latent heads, loss and KL stay float32 and "
                             "exported models are float32. auto: mixed_bfloat16 on CPUs with bfloat16 dot-product "
                             "instructions (AVX512_BF16, AMX) and no GPU, else float32.", choices=PRECISIONS)
    jit_compile: object = setting("auto", "Compile the train step with XLA: true, false or auto (Keras's auto, which "
                                  "uses XLA on GPUs and not on CPU-only machines).", choices=(True, False, "auto"))
    steps_per_execution: int = setting(0, "Train steps run per call into TensorFlow (at most an epoch's; 1 under "
                                       "mirrored strategies). 0: auto, 16 on a CPU and 128 on a GPU or TPU. "
                                       "Per-batch callbacks, e.g. the NaN check, run once per call.", lower=0)
    deterministic: bool = setting(False, "Deterministic ops (TensorFlow's op determinism; TensorFloat-32 off), so that "
                                  "a resumed run is bit-identical on a GPU too (on a CPU it is without this). "
                                  "Slower on GPUs; turns Keras's XLA off.")
    intra_op_threads: int = setting(0, "Threads inside one op (0: TensorFlow's default).", lower=0)
    inter_op_threads: int = setting(0, "Ops run at once (0: TensorFlow's default).", lower=0)
    workdir: str = setting("", "Run directory (default runs/<model>-<dataset>-z<latent>); runs/latest points to the "
                           "newest.")
    # What the data turned out to be (DataFacts): set in the run's Config by with_data, never by a flag.
    image_shape: tuple = setting((), "The images' (height, width, channels).", flag=False)
    num_classes: int = setting(0, "Classes of the data (0: unlabelled).", flag=False)
    num_examples: int = setting(0, "Training images (a learning-rate schedule counts steps per epoch from it).",
                                flag=False)
    class_names: tuple = setting((), "The classes' names.", flag=False)
    data_source: str = setting("", "Where the data came from.", flag=False)


@dataclasses.dataclass
class Config(*hyperparameter_classes(), RunSettings):
    """Everything a run needs: the run-wide settings (``RunSettings``) and every model's own hyperparameters (the
    ``Hparams`` of each model in ``tfvae.models``; a model reads its own, ``validate`` refuses another's).
    """

    def __post_init__(self):
        self.filters = tuple(int(f) for f in self.filters)
        self.image_shape = tuple(self.image_shape)
        self.class_names = tuple(self.class_names)
        self.classes = tuple(self.classes)
        if not self.hidden:
            self.hidden = DEFAULT_HIDDEN.get(self.arch, 16)
        if not self.workdir:
            self.workdir = os.path.join("runs", f"{self.model}-{self.dataset}-z{self.latent}")

    def check_values(self):
        """Raises TfvaeError naming the first value outside its field's choices or below its bound (the checks a
        config.json read back must pass too)."""
        for field in dataclasses.fields(self):
            problem = check(field, getattr(self, field.name))
            if problem:
                raise TfvaeError(problem)
        self.noise = str(parse_noise(self.noise) or "none")  # NoiseError (a TfvaeError) names the grammar
        try:
            classes = sorted({int(c) for c in self.classes})
        except (TypeError, ValueError):
            raise TfvaeError(f"--classes={','.join(map(str, self.classes))}: class ids are integers, e.g. "
                             "--classes=0 or --classes=0,2,4") from None
        if classes and classes[0] < 0:
            raise TfvaeError(f"--classes: class ids start at 0 (got {classes[0]})")
        self.classes = tuple(classes)
        if not isinstance(self.flip, bool):
            raise TfvaeError(f"--flip must be true or false (got {self.flip!r})")
        return self

    def validate(self):
        """Raises TfvaeError naming the first bad value and the fix."""
        self.check_values()
        if self.learning_rate <= 0:
            raise TfvaeError(f"--learning_rate must be positive (got {self.learning_rate})")
        cls = model_class(self.model)
        own = {f.name for f in dataclasses.fields(cls.Hparams)}
        for name, field in hyperparameter_fields().items():
            if name not in own and getattr(self, name) != field.default:
                raise TfvaeError(f"--{name} is a hyperparameter of --model={' or '.join(owners(name))}; a "
                                 f"{self.model} has none")
        problem = cls.check_config(self)
        if problem:
            raise TfvaeError(problem)
        if not 0 <= self.warmup_epochs < self.epochs:
            raise TfvaeError(f"--warmup_epochs must be in [0, --epochs) (got {self.warmup_epochs})")
        if not self.filters or min(self.filters) < 1:
            raise TfvaeError(f"--filters must be positive integers (got {self.filters})")
        if self.data_dir and not os.path.exists(self.data_dir):
            raise TfvaeError(f"--data_dir {self.data_dir} does not exist; point it at your data")
        if self.dataset == "folder" and not self.data_dir:
            raise TfvaeError("--dataset=folder needs --data_dir=PATH (a folder of PNG/JPEG images)")
        return self

    def for_arrays(self):
        """A copy of this Config for images given as arrays (``tfvae.train(config, data=...)``): dataset arrays,
        read from the run directory's data.npz; a workdir left at its default follows the dataset's name.

        Raises:
          TfvaeError: ``data_dir`` is set too (the arrays are the data: pass one or the other).
        """
        if self.data_dir:
            raise TfvaeError(f"data= and data_dir={self.data_dir} both given; pass the arrays or the directory")
        default = self.workdir == os.path.join("runs", f"{self.model}-{self.dataset}-z{self.latent}")
        return dataclasses.replace(self, dataset="arrays", workdir="" if default else self.workdir)

    def model_hparams(self):
        """The run's model's own hyperparameters: its ``Hparams`` dataclass, filled from this Config."""
        hparams = model_class(self.model).Hparams
        return hparams(**{f.name: getattr(self, f.name) for f in dataclasses.fields(hparams)})

    def with_data(self, facts):
        """A copy of this Config that records ``facts`` (a ``tfvae.data.DataFacts``): the run's Config."""
        return dataclasses.replace(self, **{k: getattr(facts, k) for k in DataFacts.FIELDS})

    def data_facts(self):
        """The DataFacts this (run's) Config records."""
        return DataFacts(**{k: getattr(self, k) for k in DataFacts.FIELDS})

    def architecture(self):
        """The fields that fix the network's shape: the run-wide ones and the model's own that say so."""
        own = [f.name for f in dataclasses.fields(model_class(self.model).Hparams) if f.metadata["architecture"]]
        return {k: _jsonable(getattr(self, k)) for k in (*ARCHITECTURE_FIELDS, *own)}

    def to_json(self):
        return json.dumps({k: _jsonable(v) for k, v in dataclasses.asdict(self).items()}, indent=2) + "\n"

    @classmethod
    def read_file(cls, path):
        """The Config in the JSON file ``path``, checked field by field.

        Raises:
          integrity.Unreadable: the file is damaged (missing, a directory, empty, cut short, not text or not
            JSON) or is no tfvae run's config (not an object, fields missing, of the wrong type or out of range);
            its message is a phrase for after the path.
        """
        data = integrity.read_json(path)
        if not isinstance(data, dict):
            raise integrity.Unreadable(f"is not a tfvae run's config (a JSON {type(data).__name__}, not an object)")
        if "model" not in data:
            raise integrity.Unreadable("is not a tfvae run's config (no model)")
        fields = {f.name for f in dataclasses.fields(cls)}
        try:
            config = cls(**{k: v for k, v in data.items() if k in fields})
            config.check_values()
            if not all(isinstance(d, int) and d > 0 for d in config.image_shape):
                raise TfvaeError(f"image_shape={list(config.image_shape)}")
        except (TypeError, ValueError, TfvaeError) as e:
            raise integrity.Unreadable(f"is not a valid tfvae run's config ({e})") from None
        return config

    @classmethod
    def load(cls, workdir):
        """Reads ``<workdir>/config.json``.

        Raises:
          TfvaeError: there is no run in ``workdir``, or its config.json is damaged (one line naming it and the
            ways to repair it).
        """
        path = os.path.join(workdir, "config.json")
        if not os.path.lexists(path) and not any(
                os.path.lexists(os.path.join(workdir, name)) for name in ("decoder.keras", "checkpoints")):
            raise TfvaeError(f"no trained run in {workdir} (no config.json); train one first: "
                             "python train.py --model=vae --latent=2")
        try:
            return cls.read_file(path)
        except integrity.Unreadable as e:
            raise TfvaeError(f"{path} {e}; restore it from a copy, or rewrite it by running train.py on {workdir} "
                             "with the flags the run was trained with") from None


def _jsonable(value):
    return list(value) if isinstance(value, tuple) else value
