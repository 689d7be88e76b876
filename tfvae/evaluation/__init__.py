"""Evaluating trained runs: likelihood, reconstruction, sample quality, samplers, anomaly scores, reports.

``evaluate_run(workdir, options)`` measures one run directory and writes, next to it (or to
``options.output``)::

    eval.json                        every number below, the settings, notes and timings
    report.md                        the same as tables, with the pictures it refers to:
    eval_samples_<sampler>.png       generated images, one grid per sampler
    eval_worst_reconstructions.png   the worst-reconstructed test images above their reconstructions
    eval_ood_scores.png              score histograms, in-distribution vs out-of-distribution (with an OOD set)
    logs/eval/<sampler>/             TensorBoard hparams and metrics (always under the run directory)

``compare_runs(workdirs, options)`` evaluates several runs and lays them side by side, one row per run and
sampler, with one image grid per row; ``score_folder(workdir, data_dir, options)`` writes per-image scores of a
folder of the user's images to CSV. The maths of every metric is in ``tfvae.metrics``.

What is measured, and on which images:

* Likelihood (``vae``/``cvae`` only): -ELBO on every test image (closed-form KL, reconstruction averaged over
  ``elbo_samples`` draws), and the IWAE NLL with ``num_samples`` importance samples on ``num_images`` test
  images (a fixed random subset; all by default), with the -ELBO of the same images and their gap. Binarized
  runs are scored on a fixed binary copy of the test set (the one training used for ``binarize=static``,
  one Bernoulli draw seeded by the run's seed + 1 for ``dynamic``); then bits/dim are reported too.
* Reconstruction: per-image MSE and PSNR of the decoded posterior means, on the same images.
* Sample quality: ``sample_count`` images from each sampler (``prior``: z ~ N(0, I), for a plain autoencoder
  the documents' "random vector into the decoder"; ``gmm``: a 10-component Gaussian mixture fitted to the
  training set's posterior means, Ghosh et al. 2020), decoded to Bernoulli means (grey levels), against as
  many real grey-level test images, in the features of a small classifier trained here once per dataset
  (Inception weights can't be downloaded offline). FCD (Fréchet distance in those features), a classifier
  Inception Score and k-NN precision/recall (k = 3). The floor is the same metrics for real test images
  against real training images. FCD is not comparable with Inception FID, nor across datasets.
* Anomaly detection (``ood_dataset``): AUROC of telling OOD images from the test set by -ELBO (the
  reconstruction term for a plain autoencoder), and by Serrà et al.'s complexity-corrected score
  -ELBO - L(x), with L(x) the image's PNG length in nats.

The classifier is cached as ``<cache>/classifiers/<dataset>-<H>x<W>x<C>-<data hash>.keras`` (with a ``.json``
holding its test accuracy), ``<cache>`` being ``options.cache_dir``, else ``$TFVAE_CACHE``, else
``~/.cache/tfvae``. The hash of the training images keeps classifiers of different data apart (e.g. the
5,000-digit MNIST fallback and full MNIST, or a ``max_examples`` subset).
"""

import contextlib
import csv
import dataclasses
import hashlib
import json
import math
import os
import shutil
import time

import numpy as np
from scipy import special

from tfvae import data as data_lib
from tfvae import files, metrics, runs, sampling, training
from tfvae.config import Config
from tfvae.errors import TfvaeError

SAMPLERS = ("prior", "gmm")
MODES = ("evaluate", "score")
KNN_K = 3  # Kynkäänniemi et al. 2019
GRID_SIDE = 10  # sample grids are GRID_SIDE x GRID_SIDE images
WORST_COUNT = 16  # worst reconstructions shown
CLASSIFIER_BATCH = 128

# Metrics that don't depend on the sampler, then those that do; (key, table header, format).
RUN_COLUMNS = (
    ("neg_elbo", "-ELBO", ".2f"), ("reconstruction", "recon.", ".2f"), ("kl", "KL", ".2f"),
    ("iwae_nll", "IWAE NLL", ".2f"), ("elbo_gap", "gap", ".2f"),
    ("bits_per_dim", "bits/dim", ".4f"), ("mse", "MSE", ".4f"), ("psnr", "PSNR dB", ".2f"),
)
SAMPLER_COLUMNS = (
    ("fcd", "FCD", ".2f"), ("inception_score", "IS", ".2f"), ("precision", "precision", ".3f"),
    ("recall", "recall", ".3f"),
)
OOD_COLUMNS = (("ood_auroc", "OOD AUROC", ".3f"), ("ood_auroc_complexity", "OOD AUROC corrected", ".3f"))


IWAE_PRECISIONS = ("float32", "mixed_bfloat16")


@dataclasses.dataclass
class EvalOptions:
    """What to measure and how much of it; built once from evaluate.py's flags.

    Attributes:
      num_samples: importance samples K of the IWAE estimate.
      num_images: test images for the IWAE estimate (0: all).
      iwae_batch: most latent codes per decoder call of the IWAE estimate (iwae_batch // num_samples images
        with all their draws per call).
      iwae_precision: "float32", or "mixed_bfloat16" to run the IWAE's decoder passes in bfloat16 (logits
        still float32): 1.4x faster on an AVX512_BF16 CPU, mean NLL within 0.01 nats here.
      sample_count: generated (and real) images for the sample-quality metrics.
      samplers: names from SAMPLERS.
      elbo_samples: draws per image of the -ELBO's reconstruction term.
      ood_dataset: "" (none) or a name from tfvae.data.DATASETS.
      ood_data_dir: where the OOD data lives ("": the dataset's usual places).
      batch_size: most images (or latent codes) per forward pass.
      seed: seed of every draw (samples, subsets, noise).
      classifier_epochs: epochs of the feature classifier when it has to be trained.
      cache_dir: "" for $TFVAE_CACHE, else ~/.cache/tfvae.
      gmm_components: components of the ex-post Gaussian mixture.
      output: report directory (evaluate, compare) or CSV path (score); "" for the defaults.
    """

    num_samples: int = 1000
    num_images: int = 0
    iwae_batch: int = 4000
    iwae_precision: str = "float32"
    sample_count: int = 10000
    samplers: tuple = ("prior",)
    elbo_samples: int = 8
    ood_dataset: str = ""
    ood_data_dir: str = ""
    batch_size: int = 512
    seed: int = 0
    classifier_epochs: int = 8
    cache_dir: str = ""
    gmm_components: int = 10
    output: str = ""

    def __post_init__(self):
        self.samplers = tuple(self.samplers)

    def validate(self):
        """Raises TfvaeError naming the first bad value."""
        for name in ("num_samples", "iwae_batch", "sample_count", "elbo_samples", "batch_size",
                     "classifier_epochs", "gmm_components"):
            if getattr(self, name) < 1:
                raise TfvaeError(f"--{name} must be at least 1 (got {getattr(self, name)})")
        if self.iwae_precision not in IWAE_PRECISIONS:
            raise TfvaeError(f"unknown --iwae_precision={self.iwae_precision!r}; choose one of "
                             f"{', '.join(IWAE_PRECISIONS)}")
        if self.num_images < 0:
            raise TfvaeError(f"--num_images must be 0 (all) or positive (got {self.num_images})")
        if self.sample_count <= KNN_K:
            raise TfvaeError(f"--sample_count must be more than {KNN_K} for k-NN precision/recall")
        if not self.samplers or any(s not in SAMPLERS for s in self.samplers):
            raise TfvaeError(f"--sampler={','.join(self.samplers)}: choose from {', '.join(SAMPLERS)} "
                             "(comma-separated for several)")
        if self.ood_dataset and self.ood_dataset not in data_lib.DATASETS:
            raise TfvaeError(f"unknown --ood_dataset={self.ood_dataset!r}; choose one of "
                             f"{', '.join(data_lib.DATASETS)}")
        if self.ood_dataset == "folder" and not self.ood_data_dir:
            raise TfvaeError("--ood_dataset=folder needs --ood_data_dir=PATH (a folder of images)")
        if self.ood_data_dir and not os.path.isdir(self.ood_data_dir):
            raise TfvaeError(f"--ood_data_dir {self.ood_data_dir} is not a directory")
        return self


# ---------------------------------------------------------------------------------------------------------
# The run and its data


@dataclasses.dataclass
class Run:
    """A loaded run: its config, models, and test/training images as the model sees them."""

    workdir: str
    config: Config
    encoder: object
    decoder: object
    dataset: data_lib.Dataset  # grey-level uint8 images, whatever the run's binarization
    epochs_trained: int

    @property
    def name(self):
        return os.path.basename(os.path.normpath(os.path.realpath(self.workdir)))

    @property
    def variational(self):
        outputs = self.encoder.output
        return isinstance(outputs, dict) and "z_log_var" in outputs

    @property
    def conditional(self):
        return self.config.model == "cvae"

    @property
    def likelihood(self):
        return metrics.likelihood_for_loss(self.config.loss)

    def model_view(self, x_uint8, split):
        """Images in [0, 1] as the model sees them: a fixed binary copy for binarized runs."""
        if self.config.binarize == "none":
            return x_uint8.astype("float32") / 255.0
        # The static copy training drew (seed for train, seed + 1 for test); one such draw for dynamic runs.
        seed = self.config.seed + (1 if split == "test" else 0)
        return data_lib.binarize_static(x_uint8, seed=seed).astype("float32") / 255.0

    def model_view_uint8(self, x_uint8, split):
        return np.rint(self.model_view(x_uint8, split) * 255.0).astype(np.uint8)

    def one_hot(self, labels):
        return sampling.one_hot(labels, self.config.num_classes) if self.conditional else None


def load_run(workdir):
    """Loads a run directory for evaluation; TfvaeError if there is no complete run there."""
    config = runs.load_config(workdir)
    encoder = runs.load_model_file(workdir, "encoder")
    decoder = runs.load_model_file(workdir, "decoder")
    grey = Config.from_json(config.to_json())
    grey.binarize = "none"  # the binary copies are drawn in Run.model_view
    _, _, dataset = runs.load_test_data(grey)
    state_path = os.path.join(workdir, "checkpoints", "state.json")
    epochs = 0
    if os.path.isfile(state_path):
        with open(state_path) as f:
            epochs = int(json.load(f).get("epoch", 0))
    run = Run(workdir, config, encoder, decoder, dataset, epochs)
    if run.variational != (config.model != "ae"):
        raise TfvaeError(f"{workdir}: config.json says model={config.model} but encoder.keras "
                         f"{'has' if run.variational else 'lacks'} z_log_var; the run directory is inconsistent")
    return run


# ---------------------------------------------------------------------------------------------------------
# The feature classifier


def cache_root(cache_dir=""):
    """Where classifiers are cached: ``cache_dir``, else $TFVAE_CACHE, else ~/.cache/tfvae."""
    return os.path.expanduser(cache_dir or os.environ.get("TFVAE_CACHE") or os.path.join("~", ".cache", "tfvae"))


def data_fingerprint(dataset):
    """A short hash of a dataset's training images and labels."""
    digest = hashlib.sha1()
    digest.update(str(dataset.x_train.shape).encode())
    digest.update(np.ascontiguousarray(dataset.x_train).tobytes())
    if dataset.y_train is not None:
        digest.update(np.ascontiguousarray(dataset.y_train, dtype=np.int64).tobytes())
    return digest.hexdigest()[:12]


def classifier_path(dataset, cache_dir=""):
    """``<cache>/classifiers/<dataset>-<H>x<W>x<C>-<hash>.keras`` for ``dataset``."""
    shape = "x".join(str(d) for d in dataset.image_shape)
    name = f"{dataset.name}-{shape}-{data_fingerprint(dataset)}.keras"
    return os.path.join(cache_root(cache_dir), "classifiers", name)


def build_classifier(image_shape, num_classes):
    """A small conv net: 2 x (Conv-ReLU-MaxPool) -> Dense(128) "features" -> class logits.

    No batch normalisation: its moving statistics would make a briefly trained classifier (tests) useless at
    inference, and the net reaches the accuracy goals without it.
    """
    import keras
    from keras import layers

    image = keras.Input(image_shape, name="image")
    h = image
    for filters in (32, 64):
        h = layers.Conv2D(filters, 3, padding="same", activation="relu")(h)
        h = layers.MaxPooling2D(2, padding="same")(h)
    h = layers.Flatten()(h)
    h = layers.Dropout(0.25)(h)
    features = layers.Dense(128, activation="relu", name="features")(h)
    h = layers.Dropout(0.25)(features)
    logits = layers.Dense(num_classes, name="logits")(h)
    return keras.Model(image, logits, name="feature_classifier")


class FeatureClassifier:
    """A trained classifier and the features it gives: the ``features`` layer and the class probabilities."""

    def __init__(self, model, info, trained_now):
        import keras
        import tensorflow as tf

        self.model, self.info, self.trained_now = model, info, trained_now
        both = keras.Model(model.inputs, [model.get_layer("features").output, model.outputs[0]])
        self._call = tf.function(lambda x: both(x, training=False), reduce_retracing=True, autograph=False)

    def features_and_probs(self, images, batch_size=512):
        """(features (n, 128), class probabilities (n, classes)) of float images in [0, 1]."""
        feats, probs = [], []
        for start in range(0, len(images), batch_size):
            f, logits = self._call(np.asarray(images[start:start + batch_size], "float32"))
            feats.append(f.numpy())
            probs.append(special.softmax(logits.numpy().astype("float64"), axis=1))
        return np.concatenate(feats), np.concatenate(probs)


def train_classifier(dataset, epochs, seed=0, log=print):
    """Trains ``build_classifier`` on the dataset's training split.

    Returns:
      (model, info dict with test_accuracy, epochs, sizes and seconds).
    """
    import keras

    keras.utils.set_random_seed(seed)
    model = build_classifier(dataset.image_shape, dataset.num_classes)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    x_train = dataset.x_train.astype("float32") / 255.0
    x_test = dataset.x_test.astype("float32") / 255.0
    start = time.perf_counter()
    log(f"training the feature classifier on {len(x_train)} {dataset.name} images for {epochs} epoch(s) "
        "(once; it is cached)")
    model.fit(x_train, dataset.y_train, batch_size=CLASSIFIER_BATCH, epochs=epochs, verbose=0, shuffle=True)
    _, accuracy = model.evaluate(x_test, dataset.y_test, batch_size=512, verbose=0)
    info = {"dataset": dataset.name, "data_source": dataset.source, "image_shape": list(dataset.image_shape),
            "num_classes": dataset.num_classes, "num_train": len(x_train), "num_test": len(x_test),
            "epochs": epochs, "test_accuracy": float(accuracy), "seconds": time.perf_counter() - start}
    return model, info


def load_or_train_classifier(dataset, cache_dir="", epochs=8, seed=0, log=print):
    """The cached classifier for ``dataset``, trained and cached first if there is none.

    Returns:
      A FeatureClassifier; ``trained_now`` tells whether it was trained by this call.

    Raises:
      TfvaeError: the dataset has no labels.
    """
    import keras

    if not dataset.num_classes or dataset.y_train is None:
        raise TfvaeError(f"{dataset.name} data from {dataset.source} has no class labels, so no feature "
                         "classifier can be trained")
    path = classifier_path(dataset, cache_dir)
    info_path = path[: -len(".keras")] + ".json"
    if os.path.isfile(path) and os.path.isfile(info_path):
        try:
            model = keras.saving.load_model(path, safe_mode=True)
            with open(info_path) as f:
                info = json.load(f)
            return FeatureClassifier(model, {**info, "path": path}, trained_now=False)
        except Exception as e:  # noqa: BLE001  (a damaged cache entry is retrained, not fatal)
            log(f"cannot read the cached classifier {path} ({type(e).__name__}); training it again")
    model, info = train_classifier(dataset, epochs, seed=seed, log=log)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    files.atomic_save(path, model.save)
    files.atomic_write_text(info_path, json.dumps(info, indent=2) + "\n")
    log(f"feature classifier: test accuracy {info['test_accuracy']:.4f}, cached in {path}")
    return FeatureClassifier(model, {**info, "path": path}, trained_now=True)


# ---------------------------------------------------------------------------------------------------------
# Samplers


def sample_latents(run, sampler, count, seed, batch_size=512, gmm_components=10):
    """``count`` latent codes from ``sampler`` ("prior" or "gmm"), plus the mixture (or None).

    The mixture is fitted to the posterior means of the run's training images (as the model sees them).
    """
    latent = run.config.latent
    if sampler == "prior":
        return sampling.prior_samples(count, latent, seed), None
    if sampler == "gmm":
        x_train = run.model_view(run.dataset.x_train, "train")
        codes, _ = metrics.encode(run.encoder, x_train, run.one_hot(run.dataset.y_train), batch_size)
        gmm = metrics.fit_gaussian_mixture(codes, gmm_components, seed=seed)
        return gmm.sample(count, seed=seed), gmm
    raise TfvaeError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")


def generate(run, z, batch_size=512):
    """Decoded Bernoulli means (grey levels in [0, 1]) of codes ``z``; a CVAE cycles through the classes."""
    labels = None
    if run.conditional:
        labels = sampling.one_hot(np.arange(len(z)) % run.config.num_classes, run.config.num_classes)
    return metrics.sigmoid(metrics.decode_logits(run.decoder, z, labels, batch_size)).astype("float32")


# ---------------------------------------------------------------------------------------------------------
# Evaluation of one run


@contextlib.contextmanager
def _timer(seconds, name):
    """Records the wall time of the ``with`` block as ``seconds[name]``."""
    start = time.perf_counter()
    yield
    seconds[name] = round(time.perf_counter() - start, 2)


def _progress_logger(log, what, every=30.0):
    start = time.perf_counter()
    last = [start]

    def progress(done, total):
        now = time.perf_counter()
        if now - last[0] >= every and done < total:
            last[0] = now
            left = (now - start) / done * (total - done)
            log(f"{what}: {done}/{total} images, {now - start:.0f} s, about {left:.0f} s left")

    return progress


def likelihood_note(run):
    """One line on what the run's likelihood numbers mean and what they are comparable with."""
    config = run.config
    if not run.variational:
        return ("A plain autoencoder defines no density p(x): no ELBO or NLL; only its reconstruction term "
                "-log p(x|z_mean) (in nats) and MSE/PSNR.")
    if run.likelihood == "gaussian":
        note = ("loss=mse: the decoder is read as a Gaussian with the fixed variance 1/2 that squared error "
                "implies; a density over continuous pixel values, comparable only with other mse runs.")
    elif config.binarize == "none":
        note = ("loss=bce on grey-level images: the Bernoulli cross-entropy is not a normalised likelihood of "
                "grey-level images; compare runs on the same data with each other, not with published "
                "(binarized) NLLs.")
    else:
        how = "the static copy used in training" if config.binarize == "static" else \
            "one fixed Bernoulli draw of the test set"
        note = (f"Bernoulli likelihood of binary images ({config.binarize} binarization; scored on {how}): "
                "comparable with published binarized NLLs only for the same dataset, binarization and k.")
    if run.conditional:
        note += " CVAE: conditional on the true label, log p(x|y)."
    return note


def _per_image_scores(run, images, labels, options):
    """Per-image -ELBO terms (VAE) or the reconstruction term at z_mean (AE), plus reconstructions."""
    recon, recon_nll = metrics.reconstruct(run.encoder, run.decoder, images, labels, run.likelihood,
                                           options.batch_size)
    scores = {"reconstruction_at_mean": recon_nll}
    if run.variational:
        scores.update(metrics.likelihood_terms(run.encoder, run.decoder, images, options.elbo_samples,
                                               labels=labels, likelihood=run.likelihood,
                                               max_batch=options.batch_size, seed=options.seed))
        scores["score"] = scores["neg_elbo"]
    else:
        scores["score"] = recon_nll
    return scores, recon


def evaluate_run(workdir, options, log=print, shared=None, output=None):
    """Measures one run and writes eval.json, report.md, its PNGs and TensorBoard logs.

    Args:
      workdir: the run directory.
      options: EvalOptions.
      log: where progress lines go.
      shared: a dict kept across calls (classifiers and real-image features per dataset, for --compare).
      output: the report directory; default ``options.output`` or ``workdir``.

    Returns:
      The results dict written to eval.json.
    """
    options.validate()
    shared = {} if shared is None else shared
    started = time.perf_counter()
    seconds = {}
    with _timer(seconds, "load"):
        run = load_run(workdir)
    out_dir = output or options.output or workdir
    os.makedirs(out_dir, exist_ok=True)
    config = run.config
    if run.conditional and options.ood_dataset:
        raise TfvaeError("--ood_dataset needs an ae or vae run: a cvae's likelihood needs the label, which "
                         "out-of-distribution images don't have")
    x_test_uint8, y_test = run.dataset.x_test, run.dataset.y_test
    x_test = run.model_view(x_test_uint8, "test")
    labels = run.one_hot(y_test)
    num_pixels = math.prod(config.image_shape)
    results = {
        "workdir": os.path.abspath(workdir), "name": run.name,
        "run": {"model": config.model, "arch": config.arch, "latent": config.latent, "loss": config.loss,
                "beta": config.beta, "dataset": config.dataset, "data_source": config.data_source,
                "binarize": config.binarize, "image_shape": list(config.image_shape),
                "epochs": config.epochs, "epochs_trained": run.epochs_trained, "num_test_images": len(x_test)},
        "settings": dataclasses.asdict(options), "metrics": {}, "samplers": {}, "floor": {}, "notes": [],
        "figures": {}, "seconds": seconds,
    }
    m, notes = results["metrics"], results["notes"]
    if run.epochs_trained < config.epochs:
        notes.append(f"The run has finished {run.epochs_trained} of its {config.epochs} epochs.")
    log(f"evaluating {workdir}: {config.model} z{config.latent} on {config.dataset} ({len(x_test)} test images)")

    # Reconstruction, and the per-image -ELBO of every test image.
    with _timer(seconds, "elbo_and_reconstruction"):
        scores, recon = _per_image_scores(run, x_test, labels, options)
    mse, psnr = metrics.mse_psnr(x_test, recon)
    m["mse"], m["psnr"] = float(np.mean(mse)), float(np.mean(psnr))
    worst = np.argsort(-mse, kind="stable")[:WORST_COUNT]
    cols = min(8, len(worst))
    picture = sampling.tile(sampling.interleave_rows(x_test[worst], recon[worst], cols),
                            2 * math.ceil(len(worst) / cols), cols)
    results["figures"]["worst_reconstructions"] = _save(out_dir, "eval_worst_reconstructions.png", picture)
    notes.append(likelihood_note(run))
    if run.variational:
        m["neg_elbo"] = float(np.mean(scores["neg_elbo"]))
        m["reconstruction"] = float(np.mean(scores["reconstruction"]))
        m["kl"] = float(np.mean(scores["kl"]))
        with _timer(seconds, "iwae"):
            _iwae(run, x_test, labels, scores, options, m, log)
        if config.binarize != "none" and run.likelihood == "bernoulli":
            m["bits_per_dim"] = float(metrics.bits_per_dim(m["iwae_nll"], num_pixels))
    else:
        m["reconstruction"] = float(np.mean(scores["reconstruction_at_mean"]))

    # Sample quality, per sampler.
    with _timer(seconds, "sample_quality"):
        _sample_quality(run, options, results, shared, out_dir, log)

    if options.ood_dataset:
        with _timer(seconds, "ood"):
            _ood(run, x_test_uint8, scores["score"], options, results, shared, out_dir, log)

    seconds["total"] = round(time.perf_counter() - started, 2)
    _write_json(os.path.join(out_dir, "eval.json"), results)
    results["figures"]["report"] = write_report(results, os.path.join(out_dir, "report.md"))
    write_tensorboard(results, os.path.join(workdir, "logs", "eval"))
    log(f"evaluated {workdir} in {seconds['total']:.0f} s")
    return results


def _iwae(run, x_test, labels, scores, options, m, log):
    n = len(x_test)
    count = min(options.num_images or n, n)
    subset = np.sort(np.random.default_rng(options.seed).permutation(n)[:count])
    log(f"IWAE: {count} test images x {options.num_samples} importance samples")
    terms = metrics.likelihood_terms(
        run.encoder, _iwae_decoder(run, options), x_test[subset], options.num_samples,
        labels=None if labels is None else labels[subset], likelihood=run.likelihood,
        max_batch=options.iwae_batch, seed=options.seed + 1,
        progress=_progress_logger(log, f"IWAE k={options.num_samples}"))
    m["iwae_nll"] = float(np.mean(terms["nll"]))
    m["iwae_nll_sem"] = float(np.std(terms["nll"]) / math.sqrt(count)) if count > 1 else 0.0
    m["iwae_neg_elbo"] = float(np.mean(scores["neg_elbo"][subset]))
    m["elbo_gap"] = m["iwae_neg_elbo"] - m["iwae_nll"]
    m["iwae_num_images"], m["iwae_num_samples"] = count, options.num_samples
    m["iwae_precision"] = options.iwae_precision


def _iwae_decoder(run, options):
    """The run's decoder, or a copy computing under ``options.iwae_precision`` (float32 logits either way)."""
    if options.iwae_precision == "float32":
        return run.decoder
    return training.policy_copy(run.decoder, options.iwae_precision)


def _real_features(run, classifier, options, shared):
    """Features of real test and training images (grey levels), computed once per dataset and count."""
    key = ("real", classifier.info["path"], options.sample_count, options.seed)
    if key not in shared:
        rng = np.random.default_rng(options.seed)
        x_test, x_train = run.dataset.x_test, run.dataset.x_train
        test = x_test[np.sort(rng.permutation(len(x_test))[:options.sample_count])]
        train = x_train[np.sort(rng.permutation(len(x_train))[:options.sample_count])]
        shared[key] = (classifier.features_and_probs(test.astype("float32") / 255.0, options.batch_size),
                       classifier.features_and_probs(train.astype("float32") / 255.0, options.batch_size))
    return shared[key]


def _quality(real_feats, fake_feats, fake_probs):
    splits = 10 if len(fake_probs) >= 1000 else 1
    is_mean, is_std = metrics.inception_score(fake_probs, splits)
    precision, recall = metrics.precision_recall(real_feats, fake_feats, KNN_K)
    return {"fcd": metrics.frechet_distance_of_features(fake_feats, real_feats), "inception_score": is_mean,
            "inception_score_std": is_std, "precision": precision, "recall": recall}


def _sample_quality(run, options, results, shared, out_dir, log):
    classifier = None
    if run.dataset.num_classes and run.dataset.y_train is not None:
        key = ("classifier", data_fingerprint(run.dataset), options.cache_dir)
        if key not in shared:
            shared[key] = load_or_train_classifier(run.dataset, options.cache_dir, options.classifier_epochs,
                                                   options.seed, log)
        classifier = shared[key]
        info = classifier.info
        results["classifier"] = {k: info.get(k) for k in ("path", "test_accuracy", "epochs", "num_train",
                                                          "num_test", "data_source")}
        results["metrics"]["classifier_test_accuracy"] = info["test_accuracy"]
        (test_feats, test_probs), (train_feats, _) = _real_features(run, classifier, options, shared)
        if len(test_feats) < options.sample_count:
            results["notes"].append(f"The test set has {len(test_feats)} images: sample-quality metrics use "
                                    f"{len(test_feats)} real images against {options.sample_count} generated.")
        floor = _quality(train_feats, test_feats, test_probs)
        results["floor"] = floor
        for k, v in floor.items():
            results["metrics"][f"floor_{k}"] = v
    else:
        results["notes"].append("The data has no class labels: no feature classifier, so no FCD, IS or "
                                "precision/recall; sample grids only.")
    for sampler in options.samplers:
        z, _ = sample_latents(run, sampler, options.sample_count, options.seed, options.batch_size,
                              options.gmm_components)
        images = generate(run, z, options.batch_size)
        entry = {}
        if classifier is not None:
            fake_feats, fake_probs = classifier.features_and_probs(images, options.batch_size)
            entry = _quality(test_feats, fake_feats, fake_probs)
        grid = sampling.tile(images[: GRID_SIDE * GRID_SIDE], GRID_SIDE, GRID_SIDE)
        entry["grid"] = _save(out_dir, f"eval_samples_{sampler}.png", grid)
        results["samplers"][sampler] = entry
        if classifier is not None:
            log(f"{sampler} sampler: FCD {entry['fcd']:.2f}, IS {entry['inception_score']:.2f}, "
                f"precision {entry['precision']:.3f}, recall {entry['recall']:.3f}")


def load_ood_images(run, options, count):
    """Up to ``count`` OOD images (uint8, the run's image shape): the OOD test split, then its training split."""
    height, _, channels = run.config.image_shape
    dataset = data_lib.load_dataset(options.ood_dataset, options.ood_data_dir or None, image_size=height,
                                    channels=channels, download=run.config.download)
    x = np.concatenate([dataset.x_test, dataset.x_train])[:count]
    if x.shape[1:] != tuple(run.config.image_shape):
        raise TfvaeError(f"OOD images have shape {x.shape[1:]}, the run's are {tuple(run.config.image_shape)}; "
                         "use square images")
    return x, dataset.source


def _ood(run, x_test_uint8, in_scores, options, results, shared, out_dir, log):
    key = ("ood", options.ood_dataset, options.ood_data_dir, tuple(run.config.image_shape), len(x_test_uint8))
    if key not in shared:  # loaded once for all runs of a --compare
        shared[key] = load_ood_images(run, options, len(x_test_uint8))
    x_ood_uint8, source = shared[key]
    log(f"OOD: {len(x_test_uint8)} {run.config.dataset} test images vs {len(x_ood_uint8)} {options.ood_dataset} "
        "images")
    scores, _ = _per_image_scores(run, run.model_view(x_ood_uint8, "test"), None, options)
    out_scores = scores["score"]
    binary = run.config.binarize != "none"
    in_png = metrics.png_length_nats(run.model_view_uint8(x_test_uint8, "test"), binary=binary)
    out_png = metrics.png_length_nats(run.model_view_uint8(x_ood_uint8, "test"), binary=binary)
    in_corrected = metrics.complexity_corrected_score(in_scores, in_png)
    out_corrected = metrics.complexity_corrected_score(out_scores, out_png)
    score_name = "-ELBO" if run.variational else "reconstruction -log p(x|z_mean)"
    m = results["metrics"]
    m["ood_auroc"] = metrics.auroc(in_scores, out_scores)
    m["ood_auroc_complexity"] = metrics.auroc(in_corrected, out_corrected)
    m["ood_auroc_png_length"] = metrics.auroc(in_png, out_png)
    results["ood"] = {
        "dataset": options.ood_dataset, "source": source, "num_in": len(x_test_uint8), "num_out": len(x_ood_uint8),
        "score": score_name, "corrected_score": f"{score_name} - PNG length (nats)",
        "mean_score_in": float(np.mean(in_scores)), "mean_score_out": float(np.mean(out_scores)),
        "mean_png_nats_in": float(np.mean(in_png)), "mean_png_nats_out": float(np.mean(out_png)),
    }
    results["figures"]["ood_scores"] = _save_histograms(
        os.path.join(out_dir, "eval_ood_scores.png"),
        [(score_name, in_scores, out_scores, m["ood_auroc"]),
         ("complexity-corrected", in_corrected, out_corrected, m["ood_auroc_complexity"])],
        run.config.dataset, options.ood_dataset)
    log(f"OOD AUROC: {score_name} {m['ood_auroc']:.3f}, complexity-corrected {m['ood_auroc_complexity']:.3f}")


# ---------------------------------------------------------------------------------------------------------
# Scoring a folder of images


SCORE_FIELDS = ("file", "neg_elbo", "reconstruction", "kl", "iwae_nll", "reconstruction_at_mean", "mse", "psnr",
                "png_nats", "complexity_score", "test_percentile")


def score_folder(workdir, data_dir, options, log=print):
    """Writes per-image scores of every image under ``data_dir`` to a CSV file.

    Columns: ``SCORE_FIELDS``. Higher ``neg_elbo``/``complexity_score`` means more anomalous;
    ``test_percentile`` is the share (%) of the run's test images (``num_images`` of them) whose score is
    at most this image's (the -ELBO for a VAE, the reconstruction term for an AE): near 100 is unusual.
    ``iwae_nll`` is filled for a VAE with ``num_samples`` importance samples.

    Returns:
      (csv path, number of images scored).
    """
    options.validate()
    if not data_dir:
        raise TfvaeError("--mode=score needs --data_dir=PATH, a folder of images to score")
    run = load_run(workdir)
    if run.conditional:
        raise TfvaeError("--mode=score needs an ae or vae run: a cvae's likelihood needs each image's label")
    height, _, channels = run.config.image_shape
    paths, x_uint8, skipped = data_lib.load_image_files(data_dir, height, channels)
    if skipped:
        log(f"skipped {len(skipped)} undecodable file(s): {', '.join(skipped[:5])}")
    x = run.model_view(x_uint8, "test")
    scores, recon = _per_image_scores(run, x, None, options)
    if run.variational:
        scores["iwae_nll"] = metrics.likelihood_terms(run.encoder, _iwae_decoder(run, options), x,
                                                      options.num_samples, likelihood=run.likelihood,
                                                      max_batch=options.iwae_batch, seed=options.seed + 1)["nll"]
    mse, psnr = metrics.mse_psnr(x, recon)
    png = metrics.png_length_nats(run.model_view_uint8(x_uint8, "test"), binary=run.config.binarize != "none")
    test = run.dataset.x_test
    count = min(options.num_images or len(test), len(test))
    subset = np.sort(np.random.default_rng(options.seed).permutation(len(test))[:count])
    test_scores, _ = _per_image_scores(run, run.model_view(test[subset], "test"), None, options)
    reference = np.sort(test_scores["score"])
    percentile = 100.0 * np.searchsorted(reference, scores["score"], side="right") / len(reference)
    columns = {"neg_elbo": scores.get("neg_elbo"), "reconstruction": scores.get("reconstruction"),
               "kl": scores.get("kl"), "iwae_nll": scores.get("iwae_nll"),
               "reconstruction_at_mean": scores["reconstruction_at_mean"], "mse": mse, "psnr": psnr,
               "png_nats": png, "complexity_score": metrics.complexity_corrected_score(scores["score"], png),
               "test_percentile": percentile}
    output = options.output or os.path.join(workdir, "scores.csv")
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(SCORE_FIELDS)
        for i, path in enumerate(paths):
            row = [path] + ["" if columns[k] is None else f"{columns[k][i]:.6g}" for k in SCORE_FIELDS[1:]]
            writer.writerow(row)
    return output, len(paths)


# ---------------------------------------------------------------------------------------------------------
# Several runs side by side


def compare_runs(workdirs, options, log=print):
    """Evaluates each run (writing its own eval.json/report.md) and writes one comparison report.

    The comparison (``compare.md``, ``compare.json`` and one sample grid per row) goes to ``options.output``,
    default ``<parent of the first run>/compare``.

    Returns:
      (report path, list of table rows).
    """
    if not workdirs:
        raise TfvaeError("--compare needs at least one run directory")
    for workdir in workdirs:  # fail before any long computation
        runs.load_config(workdir)
    out_dir = options.output or os.path.join(os.path.dirname(os.path.abspath(workdirs[0])), "compare")
    os.makedirs(out_dir, exist_ok=True)
    shared, rows, all_results = {}, [], []
    for i, workdir in enumerate(workdirs):
        one = dataclasses.replace(options, output="")
        results = evaluate_run(workdir, one, log=log, shared=shared)
        all_results.append(results)
        for sampler in options.samplers:
            entry = results["samplers"][sampler]
            grid = f"{i:02d}-{results['name']}-{sampler}.png"
            shutil.copyfile(entry["grid"], os.path.join(out_dir, grid))
            rows.append(table_row(results, sampler, grid))
    floors = {json.dumps(r["floor"], sort_keys=True): r for r in all_results if r["floor"]}
    for r in floors.values():
        rows.append({"run": f"real test vs real train ({r['run']['dataset']})", "model": "-", "sampler": "-",
                     **{k: r["floor"].get(k) for k, _, _ in SAMPLER_COLUMNS}, "grid": ""})
    path = os.path.join(out_dir, "compare.md")
    with open(path, "w") as f:
        f.write(compare_markdown(rows, all_results, options))
    _write_json(os.path.join(out_dir, "compare.json"), {"rows": rows, "runs": all_results})
    return path, rows


def table_row(results, sampler, grid=""):
    """One table row (a dict) of a run's results with ``sampler``'s sample-quality metrics."""
    m = results["metrics"]
    row = {"run": results["name"], "model": results["run"]["model"], "sampler": sampler, "grid": grid}
    row.update({k: m.get(k) for k, _, _ in RUN_COLUMNS + OOD_COLUMNS})
    row.update({k: results["samplers"][sampler].get(k) for k, _, _ in SAMPLER_COLUMNS})
    return row


# ---------------------------------------------------------------------------------------------------------
# Writing results


def _fmt(value, spec):
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return format(value, spec)


def markdown_table(rows, columns, grid_dir=None):
    """A Markdown table of ``rows`` (dicts) with ``columns`` ((key, header, format) triples)."""
    used = [c for c in columns if any(r.get(c[0]) is not None for r in rows)]
    header = ["run", "model", "sampler"] + [h for _, h, _ in used] + (["samples"] if grid_dir is not None else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [str(r["run"]), str(r["model"]), str(r["sampler"])] + [_fmt(r.get(k), f) for k, _, f in used]
        if grid_dir is not None:
            cells.append(f"![{r['run']} {r['sampler']}]({r['grid']})" if r.get("grid") else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def compare_markdown(rows, all_results, options):
    columns = RUN_COLUMNS + SAMPLER_COLUMNS + OOD_COLUMNS
    text = ["# Comparison\n\n",
            f"{len(all_results)} run(s); {options.sample_count} generated images per sampler, IWAE with "
            f"k={options.num_samples} on {options.num_images or 'all'} test images; nats per image (lower is "
            "better) for -ELBO and NLL. FCD, IS and precision/recall use a classifier trained here, not "
            "Inception: not comparable with published FID.\n\n",
            markdown_table(rows, columns, grid_dir=""), "\n## Runs\n\n"]
    for r in all_results:
        run = r["run"]
        acc = r.get("classifier", {}).get("test_accuracy")
        text.append(f"- **{r['name']}** ({r['workdir']}): {run['model']} {run['arch']} z{run['latent']}, loss "
                    f"{run['loss']}, {run['epochs_trained']} epochs on {run['dataset']} ({run['data_source']}); "
                    f"classifier test accuracy {_fmt(acc, '.4f')}; evaluated in {r['seconds']['total']:.0f} s. "
                    + " ".join(r["notes"]) + "\n")
    return "".join(text)


def result_rows(results):
    """Table rows of one run's results: one per sampler, then the real-data floor."""
    rows = [table_row(results, s, os.path.basename(results["samplers"][s]["grid"])) for s in results["samplers"]]
    if results["floor"]:
        rows.append({"run": "real test vs real train", "model": "-", "sampler": "-",
                     **{k: results["floor"].get(k) for k, _, _ in SAMPLER_COLUMNS}, "grid": ""})
    return rows


def write_report(results, path):
    """Writes report.md for one run's results; returns its path."""
    run, m = results["run"], results["metrics"]
    lines = [f"# Evaluation of `{results['workdir']}`\n\n",
             f"{run['model']} ({run['arch']}, latent {run['latent']}, loss {run['loss']}, beta {run['beta']}) "
             f"on {run['dataset']} from {run['data_source']}; binarize={run['binarize']}; "
             f"{run['epochs_trained']} of {run['epochs']} epochs trained; {run['num_test_images']} test images. "
             f"Evaluated in {results['seconds']['total']:.0f} s.\n", "\n## Likelihood and reconstruction\n\n",
             "Nats per image, lower is better.\n\n| metric | value |\n|---|---|\n"]
    s = results["settings"]
    entries = [
        (f"-ELBO (all test images, {s['elbo_samples']} draws each)", m.get("neg_elbo"), ".2f"),
        ("  reconstruction term", m.get("reconstruction"), ".2f"), ("  KL term", m.get("kl"), ".2f"),
        (f"IWAE NLL (k={m.get('iwae_num_samples')}, {m.get('iwae_num_images')} images)", m.get("iwae_nll"), ".2f"),
        ("  its standard error over images", m.get("iwae_nll_sem"), ".2f"),
        ("  -ELBO of the same images", m.get("iwae_neg_elbo"), ".2f"),
        ("  gap -ELBO - NLL (>= 0 up to noise)", m.get("elbo_gap"), ".2f"),
        ("bits/dim (IWAE NLL)", m.get("bits_per_dim"), ".4f"),
        ("MSE per pixel (posterior-mean reconstructions)", m.get("mse"), ".5f"),
        ("PSNR dB", m.get("psnr"), ".2f"),
    ]
    lines += [f"| {name} | {_fmt(v, f)} |\n" for name, v, f in entries if v is not None]
    lines.append("\n" + "\n".join(f"- {n}" for n in results["notes"]) + "\n")
    worst = os.path.basename(results["figures"]["worst_reconstructions"])
    lines.append(f"\nWorst-reconstructed test images (odd rows) above their reconstructions:\n\n![]({worst})\n")
    lines.append("\n## Sample quality\n\n")
    if "classifier" in results:
        c = results["classifier"]
        lines.append(f"Features of a small classifier trained on the training split ({c['num_train']} images, "
                     f"{c['epochs']} epochs; test accuracy {c['test_accuracy']:.4f}; `{c['path']}`). "
                     f"{s['sample_count']} generated images against as many real test images; the last row is "
                     "real test against real train images, the floor. FCD is a Fréchet distance in these "
                     "features: not comparable with Inception FID.\n\n")
    lines.append(markdown_table(result_rows(results), SAMPLER_COLUMNS, grid_dir=""))
    if "ood" in results:
        o = results["ood"]
        lines += ["\n## Anomaly detection\n\n",
                  f"{o['num_in']} {run['dataset']} test images (inliers) against {o['num_out']} {o['dataset']} "
                  f"images from {o['source']}. AUROC of telling them apart by a higher score (0.5 is chance):\n\n"
                  "| score | AUROC | mean in | mean out |\n|---|---|---|---|\n",
                  f"| {o['score']} | {m['ood_auroc']:.3f} | {o['mean_score_in']:.1f} | {o['mean_score_out']:.1f} |\n",
                  f"| {o['corrected_score']} (Serrà et al. 2020) | {m['ood_auroc_complexity']:.3f} | | |\n",
                  f"| PNG length alone | {m['ood_auroc_png_length']:.3f} | {o['mean_png_nats_in']:.1f} | "
                  f"{o['mean_png_nats_out']:.1f} |\n",
                  "\n![](" + os.path.basename(results["figures"]["ood_scores"]) + ")\n"]
    lines.append("\n## Settings and timings\n\n```\n" + json.dumps(s, indent=1) + "\nseconds: "
                 + json.dumps(results["seconds"]) + "\n```\n")
    with open(path, "w") as f:
        f.write("".join(lines))
    return path


def scalar_metrics(results, sampler):
    """Flat {name: float} of one run's metrics with ``sampler``'s sample-quality metrics."""
    flat = {k: v for k, v in results["metrics"].items() if isinstance(v, (int, float))}
    flat.update({k: v for k, v in results["samplers"].get(sampler, {}).items() if isinstance(v, (int, float))})
    return flat


def write_tensorboard(results, logdir):
    """HParams (the run's config and the sampler) and the metrics, one TensorBoard run per sampler."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    if os.path.isdir(logdir):
        shutil.rmtree(logdir)  # the latest evaluation replaces the previous one
    run = results["run"]
    hparams = {"model": run["model"], "arch": run["arch"], "latent": int(run["latent"]), "loss": run["loss"],
               "beta": float(run["beta"]), "dataset": run["dataset"], "binarize": run["binarize"],
               "epochs": int(run["epochs_trained"])}
    names = sorted({k for s in results["samplers"] for k in scalar_metrics(results, s)})
    with tf.summary.create_file_writer(logdir).as_default():
        hp.hparams_config(hparams=[hp.HParam(k) for k in [*hparams, "sampler"]],
                          metrics=[hp.Metric(f"eval/{k}") for k in names])
    for sampler in results["samplers"]:
        writer = tf.summary.create_file_writer(os.path.join(logdir, sampler))
        with writer.as_default():
            hp.hparams({**hparams, "sampler": sampler}, trial_id=f"{results['name']}-{sampler}")
            for name, value in scalar_metrics(results, sampler).items():
                tf.summary.scalar(f"eval/{name}", value, step=max(run["epochs_trained"], 0))
        writer.close()


def _save(out_dir, name, picture):
    return sampling.save_png(os.path.join(out_dir, name), picture)


def _save_histograms(path, panels, in_name, out_name):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.5))
    for ax, (title, inliers, outliers, auc) in zip(np.atleast_1d(axes), panels):
        bins = np.histogram_bin_edges(np.concatenate([inliers, outliers]), bins=60)
        ax.hist(inliers, bins=bins, alpha=0.6, density=True, label=f"{in_name} (test)")
        ax.hist(outliers, bins=bins, alpha=0.6, density=True, label=out_name)
        ax.set_title(f"{title}: AUROC {auc:.3f}")
        ax.set_xlabel("score (nats; higher = more anomalous)")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def _write_json(path, obj):
    files.atomic_write_text(path, json.dumps(_jsonable(obj), indent=2) + "\n")
