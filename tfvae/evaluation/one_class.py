"""The one-class anomaly-detection protocol: train on the normal class, score every test image, AUROC.

One-class protocol (as in Ruff et al. 2018, "Deep One-Class Classification", and Golan & El-Yaniv 2018): a model
is trained on the training images of one class only (``train.py --classes=c``); then every test image of the data
set is scored, the test images of class c are the normal ones and those of every other class the anomalies, and
the AUROC of telling anomalies from normal images by a higher score is reported; the literature repeats this for
each class and averages (``benchmarks/one_class.py``). A run trained on several classes treats all of them as
normal. The scores, each higher for more anomalous images, are the run's:

* ``reconstruction``: -log p(x | z_mean), the reconstruction term of the run's loss at the posterior mean (the
  documents' "every anomaly gives a large reconstruction error");
* ``reconstruction_excess``: that term minus its value for a perfect reconstruction, -log p(x | x). With the
  Bernoulli cross-entropy on grey-level images the perfect value is the pixels' entropy sum_i H(x_i), large for
  images with many grey pixels, so the plain term mostly measures how grey an image is; the excess is
  sum_i KL(Bernoulli(x_i) || Bernoulli(x^_i)), zero exactly for a perfect reconstruction. (For the Gaussian
  decoder the perfect value is a constant, and the excess ranks like the squared error.)
* ``squared_error``: the summed squared pixel error of that reconstruction (the score of the autoencoder
  baselines in the literature);
* ``neg_elbo``: -ELBO, with ``elbo_samples`` draws of its reconstruction term (VAE runs only), and
  ``neg_elbo_excess``, the -ELBO minus -log p(x | x) as above;
* ``complexity``: Serrà et al.'s correction, the -ELBO (an AE: the reconstruction term) minus the image's PNG length
  in nats.
"""

import dataclasses
import os
import time

import numpy as np

from tfvae import api, metrics
from tfvae import data as data_lib
from tfvae.errors import TfvaeError
from tfvae.evaluation.likelihood_steps import per_image_scores
from tfvae.evaluation.report import write_json
from tfvae.evaluation.run import prepare

ONE_CLASS_SCORES = ("reconstruction", "reconstruction_excess", "squared_error", "neg_elbo", "neg_elbo_excess",
                    "complexity")


def one_class_aurocs(scores, is_normal):
    """AUROC of telling the anomalies (``~is_normal``) from the normal images by a higher score, for each score.

    Args:
      scores: {name: per-image scores (n,)}; None values are skipped.
      is_normal: bool (n,), True for the images of the normal class(es).

    Returns:
      {name: AUROC} (1.0: every anomaly scores above every normal image; 0.5: chance).
    """
    is_normal = np.asarray(is_normal, bool)
    if is_normal.all() or not is_normal.any():
        raise TfvaeError("the one-class protocol needs both normal and anomalous test images")
    return {name: metrics.auroc(np.asarray(s)[is_normal], np.asarray(s)[~is_normal])
            for name, s in scores.items() if s is not None}


def one_class_scores(run, images, options):
    """Per-image anomaly scores (``ONE_CLASS_SCORES``) of float images as the model sees them.

    Returns:
      {name: float64 (n,)}; the -ELBO scores are None for a plain autoencoder, the excess scores for a likelihood
      without a known perfect value.
    """
    scores, recon = per_image_scores(run, images, None, options)
    squared = np.sum(np.square(images.astype("float64") - recon).reshape(len(images), -1), axis=1)
    uint8 = np.rint(images * 255.0).astype(np.uint8)
    png = metrics.png_length_nats(uint8, binary=run.config.binarize != "none")
    perfect = perfect_reconstruction_nll(images, run.likelihood)
    neg_elbo = scores.get("neg_elbo")
    return {"reconstruction": scores["reconstruction_at_mean"],
            "reconstruction_excess": None if perfect is None else scores["reconstruction_at_mean"] - perfect,
            "squared_error": squared, "neg_elbo": neg_elbo,
            "neg_elbo_excess": None if perfect is None or neg_elbo is None else neg_elbo - perfect,
            "complexity": metrics.complexity_corrected_score(scores["score"], png)}


def perfect_reconstruction_nll(images, likelihood):
    """-log p(x | decoder mean = x) per image, the least the reconstruction term can be; None if not known.

    Bernoulli: the entropy sum_i H(x_i) of the pixels as Bernoulli probabilities (0 for binary images). Gaussian
    with the fixed variance of `tfvae.metrics.GAUSSIAN_VARIANCE`: -log of the mass of each pixel's 8-bit bin
    under a Gaussian centred on it (``tfvae.likelihoods.log_prob_8bit``, the end bins taking the tails).
    """
    if likelihood == "bernoulli":
        x = np.asarray(images, "float64").reshape(len(images), -1)
        with np.errstate(divide="ignore", invalid="ignore"):
            h = -(x * np.log(x) + (1.0 - x) * np.log1p(-x))
        return np.sum(np.nan_to_num(h, nan=0.0), axis=1)  # 0 log 0 = 0
    if likelihood == "gaussian":
        x = np.asarray(images, "float32")
        with np.errstate(divide="ignore"):
            logits = np.log(x) - np.log1p(-x)  # sigmoid(logits) = x; +-inf at 0 and 1, whose bins take the tails
        return -metrics.decoder_log_prob(x, np.clip(logits, -1e4, 1e4), "gaussian",
                                         metrics.GAUSSIAN_VARIANCE).numpy().astype("float64")
    return None


def evaluate_one_class(workdir, options, log=print):
    """Runs the one-class protocol on a run trained with ``--classes``; writes ``<output>/one_class.json``.

    Args:
      workdir: the run directory, or a ``latest`` file naming one.
      options: `tfvae.evaluation.EvalOptions` (batch_size, elbo_samples, seed, output are used).
      log: where progress lines go.

    Returns:
      The results dict: normal classes, image counts, {score: AUROC}, mean scores of each group, seconds.

    Raises:
      TfvaeError: the run was not trained on chosen classes, or it is a CVAE (its scores need the true label).
    """
    started = time.perf_counter()
    options.validate()
    run = api.load(workdir, log=log)
    workdir, config = run.workdir, run.config
    if not config.classes:
        raise TfvaeError(f"the one-class protocol needs a run trained on chosen classes (train.py --classes=0); "
                         f"{workdir} was trained on every class")
    if run.conditional:
        raise TfvaeError(f"the one-class protocol needs an unconditional run: a {config.model}'s scores need each "
                         "image's true label")
    prepare(run)
    every = dataclasses.replace(config, classes=())  # the whole test set, every class
    dataset = data_lib.load_configured(every, log=log, binarize=False)
    is_normal = np.isin(dataset.y_test, config.classes)
    names = list(config.class_names)
    log(f"one-class protocol on {workdir}: {len(is_normal)} {config.dataset} test images, {int(is_normal.sum())} "
        f"of the normal {data_lib.describe_classes(config.classes, names)}")
    scores = one_class_scores(run, run.data.model_view(dataset.x_test, "test"), options)
    aurocs = one_class_aurocs(scores, is_normal)
    results = {
        "workdir": os.path.abspath(workdir), "model": config.model, "dataset": config.dataset,
        "normal_classes": list(config.classes), "normal_names": [names[c] for c in config.classes] if names else [],
        "num_normal": int(is_normal.sum()), "num_anomalous": int((~is_normal).sum()),
        "auroc": aurocs,
        "mean_score_normal": {k: float(np.mean(np.asarray(s)[is_normal])) for k, s in scores.items() if s is not None},
        "mean_score_anomalous": {k: float(np.mean(np.asarray(s)[~is_normal])) for k, s in scores.items()
                                 if s is not None},
        "per_class_auroc": _per_class(scores, dataset.y_test, is_normal),
        "epochs_trained": run.epochs_trained, "seconds": round(time.perf_counter() - started, 2),
    }
    out_dir = options.output or workdir
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "one_class.json")
    write_json(path, results)
    results["path"] = path
    return results


SCORE_TITLES = {"reconstruction": "reconstruction term", "reconstruction_excess": "reconstruction excess over a "
                "perfect one", "squared_error": "squared error", "neg_elbo": "-ELBO", "neg_elbo_excess": "-ELBO excess",
                "complexity": "complexity-corrected (-ELBO, an AE's reconstruction term, minus PNG nats)"}


def one_class_markdown(results):
    """A Markdown table of one run's one-class AUROCs (one row per score)."""
    names = ", ".join(results["normal_names"]) or ", ".join(map(str, results["normal_classes"]))
    lines = [f"normal: {names} ({results['num_normal']} test images) vs {results['num_anomalous']} anomalous test "
             f"images; {results['model']} trained {results['epochs_trained']} epochs\n",
             "| score | AUROC | mean normal | mean anomalous |", "|---|---|---|---|"]
    for name, auc in results["auroc"].items():
        lines.append(f"| {SCORE_TITLES.get(name, name)} | {auc:.4f} | {results['mean_score_normal'][name]:.1f} | "
                     f"{results['mean_score_anomalous'][name]:.1f} |")
    return "\n".join(lines) + "\n"


def _per_class(scores, labels, is_normal):
    """{score: {class id: AUROC of that anomalous class alone against the normal images}}."""
    out = {}
    for name, s in scores.items():
        if s is None:
            continue
        s = np.asarray(s)
        out[name] = {int(c): metrics.auroc(s[is_normal], s[labels == c])
                     for c in np.unique(labels[~is_normal])}
    return out
