"""The resolved run configuration: a plain dataclass built once from flags and passed down.

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
from tfvae.losses import RECONSTRUCTION_LOSSES
from tfvae.models import ARCHS, MODELS, PSEUDO_INPUTS

STRATEGIES = ("auto", "default", "one_device", "mirrored", "multi_worker")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
LR_SCHEDULES = ("constant", "cosine")
DEFAULT_HIDDEN = {"conv": 16, "mlp": 400}

# Fields that fix the network's shape: a run directory holding other values can't be resumed. The loss does too: it
# sets what the decoder emits (tfvae.likelihoods.output_channels) and whether it holds a DecoderVariance.
# pseudo_inputs counts for a vamp only and codebook_size for a vqvae only (Config.architecture).
ARCHITECTURE_FIELDS = ("model", "arch", "latent", "filters", "hidden", "image_shape", "num_classes", "pseudo_inputs",
                       "codebook_size", "loss")
_FIELD_OF_MODEL = {"pseudo_inputs": "vamp", "codebook_size": "vqvae"}  # an architecture field only one model has


@dataclasses.dataclass
class Config:
    """Everything a run needs.

    The model, data, epochs and batch size are the Keras VAE example's (conv, latent 2, 30 epochs, batch 128);
    on fewer than 8,500 training images the default batch is 32 (tfvae.training.default_batch_size).
    The optimizer schedule, precision and steps per call were chosen by measurement (benchmarks/throughput.py,
    benchmarks/time_to_quality.py): docs/performance.md#how-the-defaults-were-chosen has the figures.
    """

    model: str = "vae"
    arch: str = "conv"
    latent: int = 2
    filters: tuple = (32, 64)
    hidden: int = 0  # 0: the architecture's default (16 for conv, 400 for mlp)
    pseudo_inputs: int = PSEUDO_INPUTS  # vamp only: K, the VampPrior's pseudo-inputs (tfvae.models.vamp says why 100)
    dataset: str = "mnist"
    data_dir: str = ""
    image_size: int = 0  # 0: the dataset's own (28 for MNIST, 64 for folders)
    channels: int = 0  # 0: the dataset's own (1 for MNIST, 3 for folders)
    download: bool = True
    max_examples: int = 0
    cache_dir: str = ""  # folders' decode cache: "" for $TFVAE_CACHE, else ~/.cache/tfvae; "none": no cache
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS  # folders: larger images are skipped (0: no limit)
    binarize: str = "none"
    noise: str = "none"  # corrupted encoder inputs, clean targets (tfvae.data.noise): gaussian:S, saltpepper:P, mask:P
    flip: bool = False  # training images mirrored left-right at random, a fresh draw each epoch (augmentation)
    classes: tuple = ()  # train and test on these class ids only (labelled data); () = every class
    epochs: int = 30
    batch_size: int = 0  # 0: 128, or 32 on small data (training.default_batch_size); train() records the size used
    # Adam 5e-3 with a half-epoch warm-up and a cosine decay: it reaches the Keras example's 10-epoch test loss
    # sooner and ends 30 epochs better than the example's constant 1e-3 (chosen by measurement:
    # docs/results_keras_example.md, docs/performance.md#how-the-defaults-were-chosen). --learning_rate=1e-3
    # --lr_schedule=constant is the example's recipe.
    learning_rate: float = 5e-3
    lr_schedule: str = "cosine"  # linear warm-up for warmup_epochs, then decay to 0; or "constant"
    warmup_epochs: float = 0.5
    beta: float = 1.0
    recon_weight: float = 1.0  # weight of the reconstruction term; 0 trains the KL term alone
    # rae and wae (tfvae.models.regularized): the weight of the regulariser of the codes (rae: beta_z on 1/2 |z|^2,
    # wae: lambda on MMD^2) and the rae's weight decay of its decoder's kernels; 0: the module's default.
    penalty_weight: float = 0.0
    decoder_l2: float = 0.0
    # Sharpness terms (tfvae.models.adversarial), extra objectives beside the ELBO, each weighted relative to the
    # ELBO's gradient at the decoder's output; 0 = off. See docs/sharpness.md for their cost and effect.
    adversarial: float = 0.0  # a PatchGAN discriminator's hinge loss on the reconstructions
    feature_match: float = 0.0  # squared distance in the discriminator's features (Larsen et al. 2016)
    loss: str = "bce"
    # vqvae only (tfvae.models.vqvae): K codebook vectors of size --latent, the commitment term's weight, and the
    # epochs of its PixelCNN prior, trained after the VQ-VAE's last epoch (tfvae.training.prior).
    codebook_size: int = 128
    commitment: float = 0.25
    prior_epochs: int = 10
    seed: int = 0
    checkpoint_every_steps: int = 0  # 0: checkpoint at the end of each epoch only
    keep_checkpoints: int = 2  # end-of-epoch checkpoints kept (the newest one, mid-epoch or not, is kept too)
    strategy: str = "auto"
    precision: str = "auto"  # the keras.mixed_precision policy; auto: see training.resolve_precision
    jit_compile: object = "auto"  # True, False or "auto" (Keras: XLA on GPUs, not on CPU-only machines)
    steps_per_execution: int = 16  # faster than 1 on CPU: docs/performance.md#how-the-defaults-were-chosen
    intra_op_threads: int = 0  # 0: TensorFlow's default (one per core)
    inter_op_threads: int = 0
    workdir: str = ""  # "": runs/<model>-<dataset>-z<latent>
    # What the data turned out to be (DataFacts): set in the run's Config by with_data, never by a flag.
    image_shape: tuple = ()
    num_classes: int = 0
    num_examples: int = 0  # training images (a learning-rate schedule counts steps per epoch from it)
    class_names: tuple = ()
    data_source: str = ""

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
        """Raises TfvaeError naming the first value outside its choices, or a size below 1."""
        choices = {"model": MODELS, "arch": ARCHS, "dataset": DATASETS, "loss": RECONSTRUCTION_LOSSES,
                   "binarize": BINARIZE, "strategy": STRATEGIES, "precision": PRECISIONS,
                   "lr_schedule": LR_SCHEDULES}
        for name, allowed in choices.items():
            value = getattr(self, name)
            if value not in allowed:
                raise TfvaeError(f"unknown --{name}={value!r}; choose one of {', '.join(allowed)}")
        self.noise = str(parse_noise(self.noise) or "none")  # NoiseError (a TfvaeError) names the grammar
        try:
            classes = sorted({int(c) for c in self.classes})
        except (TypeError, ValueError):
            raise TfvaeError(f"--classes={','.join(map(str, self.classes))}: class ids are integers, e.g. "
                             "--classes=0 or --classes=0,2,4") from None
        if classes and classes[0] < 0:
            raise TfvaeError(f"--classes: class ids start at 0 (got {classes[0]})")
        self.classes = tuple(classes)
        if self.batch_size < 0:
            raise TfvaeError(f"--batch_size must be at least 1, or 0 for the default (got {self.batch_size})")
        positive = {"latent": self.latent, "epochs": self.epochs, "hidden": self.hidden,
                    "steps_per_execution": self.steps_per_execution, "pseudo_inputs": self.pseudo_inputs}
        for name, value in positive.items():
            if value < 1:
                raise TfvaeError(f"--{name} must be at least 1 (got {value})")
        if not isinstance(self.flip, bool):
            raise TfvaeError(f"--flip must be true or false (got {self.flip!r})")
        return self

    def validate(self):
        """Raises TfvaeError naming the first bad value and the fix."""
        self.check_values()
        if self.keep_checkpoints < 1:
            raise TfvaeError(f"--keep_checkpoints must be at least 1 (got {self.keep_checkpoints})")
        if self.learning_rate <= 0:
            raise TfvaeError(f"--learning_rate must be positive (got {self.learning_rate})")
        if self.beta < 0:
            raise TfvaeError(f"--beta must be non-negative (got {self.beta})")
        if self.recon_weight < 0:
            raise TfvaeError(f"--recon_weight must be non-negative (got {self.recon_weight})")
        if min(self.penalty_weight, self.decoder_l2) < 0:
            raise TfvaeError("--penalty_weight and --decoder_l2 must be 0 (the model's default) or positive (got "
                             f"{self.penalty_weight} and {self.decoder_l2})")
        if self.penalty_weight and self.model not in ("rae", "wae"):
            raise TfvaeError(f"--penalty_weight weights the penalty of --model=rae or wae; a {self.model} has none")
        if self.decoder_l2 and self.model != "rae":
            raise TfvaeError(f"--decoder_l2 weights the decoder penalty of --model=rae; a {self.model} has none")
        for name in ("adversarial", "feature_match"):
            if getattr(self, name) < 0:
                raise TfvaeError(f"--{name} must be non-negative, 0 for off (got {getattr(self, name)})")
            if getattr(self, name) and self.model == "vqvae":
                raise TfvaeError(f"--{name} is a sharpness term of the VAE family's decoders; a vqvae takes none")
        if self.recon_weight == 0 and (self.beta == 0 or self.model in ("ae", "rae", "wae")):
            raise TfvaeError("--recon_weight=0 leaves nothing to train without a KL term; use --model=vae with "
                             "--beta > 0")
        if self.model == "vqvae":
            if self.arch != "conv":
                raise TfvaeError(f"--model=vqvae needs --arch=conv (its codes are a grid), got --arch={self.arch}")
            if self.codebook_size < 2:
                raise TfvaeError(f"--codebook_size must be at least 2 (got {self.codebook_size})")
            if self.commitment < 0 or self.prior_epochs < 0:
                raise TfvaeError("--commitment and --prior_epochs must be non-negative")
        if self.checkpoint_every_steps < 0:
            raise TfvaeError(f"--checkpoint_every_steps must be 0 (epoch ends only) or positive (got "
                             f"{self.checkpoint_every_steps})")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise TfvaeError(f"--warmup_epochs must be in [0, --epochs) (got {self.warmup_epochs})")
        if self.jit_compile not in (True, False, "auto"):
            raise TfvaeError(f"--jit_compile must be true, false or auto (got {self.jit_compile!r})")
        if min(self.intra_op_threads, self.inter_op_threads) < 0:
            raise TfvaeError("--intra_op_threads and --inter_op_threads must be 0 (TensorFlow's default) or more")
        if self.max_examples < 0:
            raise TfvaeError(f"--max_examples must be 0 (all) or positive (got {self.max_examples})")
        if self.max_image_pixels < 0:
            raise TfvaeError(f"--max_image_pixels must be 0 (no limit) or positive (got {self.max_image_pixels})")
        if self.image_size < 0 or self.channels not in (0, 1, 3):
            raise TfvaeError("--image_size must be positive and --channels 1 or 3")
        if not self.filters or min(self.filters) < 1:
            raise TfvaeError(f"--filters must be positive integers (got {self.filters})")
        if self.data_dir and not os.path.exists(self.data_dir):
            raise TfvaeError(f"--data_dir {self.data_dir} does not exist; point it at your data")
        if self.dataset == "folder" and not self.data_dir:
            raise TfvaeError("--dataset=folder needs --data_dir=PATH (a folder of PNG/JPEG images)")
        return self

    def with_data(self, facts):
        """A copy of this Config that records ``facts`` (a ``tfvae.data.DataFacts``): the run's Config."""
        return dataclasses.replace(self, **{k: getattr(facts, k) for k in DataFacts.FIELDS})

    def data_facts(self):
        """The DataFacts this (run's) Config records."""
        return DataFacts(**{k: getattr(self, k) for k in DataFacts.FIELDS})

    def architecture(self):
        """The fields that fix the network's shape (``pseudo_inputs`` for a vamp only, ``codebook_size`` for a
        vqvae only)."""
        return {k: _jsonable(getattr(self, k)) for k in ARCHITECTURE_FIELDS
                if _FIELD_OF_MODEL.get(k, self.model) == self.model}

    def to_json(self):
        return json.dumps({k: _jsonable(v) for k, v in dataclasses.asdict(self).items()}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text):
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in json.loads(text).items() if k in fields})

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
