"""Score mode: per-image scores of a folder of the user's images, written to CSV."""

import csv
import os

import numpy as np

from tfvae import data as data_lib
from tfvae import metrics
from tfvae.errors import ArgumentError, TfvaeError
from tfvae.evaluation.likelihood_steps import iwae_decoder, per_image_scores
from tfvae.evaluation.run import load_run

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
        raise ArgumentError("data_dir", "no data_dir given: scoring needs a folder of images, e.g. "
                                        "data_dir='my_images'")
    run = load_run(workdir, log=log)
    workdir = run.workdir
    if run.conditional:
        raise TfvaeError("scoring a folder needs an ae or vae run: a cvae's likelihood needs each image's label")
    height, _, channels = run.config.image_shape
    paths, x_uint8, skipped = data_lib.load_image_files(data_dir, height, channels,
                                                        max_image_pixels=run.config.max_image_pixels, log=log)
    if skipped:
        log(f"skipped {len(skipped)} undecodable file(s): {', '.join(skipped[:5])}")
    x = run.data.model_view(x_uint8, "test")
    scores, recon = per_image_scores(run, x, None, options)
    if run.variational:
        terms = run.scores.likelihood_terms(x, None, options.num_samples, max_batch=options.iwae_batch,
                                            seed=options.seed + 1, decoder=iwae_decoder(run, options))
        scores["iwae_nll"] = terms["nll"]
    mse, psnr = metrics.mse_psnr(x, recon)
    png = metrics.png_length_nats(run.data.model_view_uint8(x_uint8, "test"), binary=run.config.binarize != "none")
    test = run.dataset.x_test
    count = min(options.num_images or len(test), len(test))
    subset = np.sort(np.random.default_rng(options.seed).permutation(len(test))[:count])
    test_scores, _ = per_image_scores(run, run.data.model_view(test[subset], "test"), None, options)
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
