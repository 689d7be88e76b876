"""The likelihood steps of an evaluation: per-image -ELBO terms, the IWAE NLL, and what they mean."""

import math
import time

import numpy as np

from tfvae import training


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
    if run.code_grids.quantized:
        return ("A VQ-VAE defines no likelihood of images here: its posterior is a point (one codebook index per "
                "grid cell) and p(x) = sum_k p(k) p(x|k) is not estimated; reported are its reconstruction term "
                "-log p(x|z_q) (nats), MSE/PSNR, and its PixelCNN prior's bits per code on the test images' "
                "code grids (prior_bits_per_code; log2 K for a uniform prior).")
    if not run.variational:
        return (f"A {run.model_class.title} ({config.model}) defines no density p(x): its encoder is deterministic "
                "(no posterior q(z|x), so no ELBO or NLL); only its reconstruction term -log p(x|z_mean) (in nats) "
                "and MSE/PSNR.")
    eight_bit = ("-ELBO and NLL are -log P of the 8-bit test images in nats per image, bits/dim = NLL / (D ln 2), "
                 "comparable across decoders")
    if config.loss == "gaussian":
        note = (f"loss=gaussian: a Gaussian decoder with the shared variance {run.variance:.4g} it was trained "
                "with (the running average of its training batches' optimal variance, stored in decoder.keras), "
                f"integrated over each pixel's 8-bit bin; {eight_bit}.")
    elif config.loss == "mse":
        note = ("loss=mse: the decoder is read as a Gaussian with the fixed variance 1/2 that squared error "
                f"implies, integrated over each pixel's 8-bit bin (a poor model of the pixels); {eight_bit}.")
    elif config.loss == "gaussian_pixel":
        note = ("loss=gaussian_pixel: a Gaussian decoder with a learned variance per pixel and channel, "
                f"integrated over each pixel's 8-bit bin; {eight_bit}.")
    elif config.loss == "logistic_mixture":
        note = f"loss=logistic_mixture: a discretized logistic mixture of the 8-bit values; {eight_bit}."
    elif config.binarize == "none":
        note = ("loss=bce on grey-level images: the Bernoulli cross-entropy is not a normalised likelihood of "
                "grey-level or 8-bit images (no bits/dim); compare runs on the same data with each other, not "
                "with other decoders or published (binarized) NLLs.")
    else:
        how = "the static copy used in training" if config.binarize == "static" else \
            "one fixed Bernoulli draw of the test set"
        note = (f"Bernoulli likelihood of binary images ({config.binarize} binarization; scored on {how}): "
                "comparable with published binarized NLLs only for the same dataset, binarization and k.")
    if run.conditional:
        note += " CVAE: conditional on the true label, log p(x|y)."
    if run.model_class.has_learned_prior:
        note += (f" {config.model}: p(z) is the model's learned prior (a vamp's VampPrior), in the IWAE weights and "
                 "the KL, which has no closed form: the mean of log q(z|x) - log p(z) over the -ELBO's draws.")
    return note


def per_image_scores(run, images, labels, options):
    """Per-image -ELBO terms (VAE) or the reconstruction term at z_mean (AE), plus reconstructions.

    The same computation as ``tfvae.api.Run.score`` (``tfvae.scores.Scores.score_terms``), with the options' draws
    and batches.
    """
    return run.scores.score_terms(images, labels, samples=options.elbo_samples, seed=options.seed,
                                  batch_size=options.batch_size)


def iwae_estimate(run, x_test, labels, scores, options, m, log):
    """The IWAE NLL on ``options.num_images`` test images (a fixed random subset), written into ``m``.

    Args:
      run: the loaded Run.
      x_test: test images as the model sees them.
      labels: one-hot labels (CVAE) or None.
      scores: ``per_image_scores`` of ``x_test`` (for the -ELBO of the subset).
      options: EvalOptions.
      m: the results' metrics dict, updated in place (iwae_nll, its SEM, elbo_gap...).
      log: where progress lines go.
    """
    n = len(x_test)
    count = min(options.num_images or n, n)
    subset = np.sort(np.random.default_rng(options.seed).permutation(n)[:count])
    log(f"IWAE: {count} test images x {options.num_samples} importance samples")
    terms = run.scores.likelihood_terms(
        x_test[subset], None if labels is None else labels[subset], options.num_samples,
        max_batch=options.iwae_batch, seed=options.seed + 1, decoder=iwae_decoder(run, options),
        progress=_progress_logger(log, f"IWAE k={options.num_samples}"))
    m["iwae_nll"] = float(np.mean(terms["nll"]))
    m["iwae_nll_sem"] = float(np.std(terms["nll"]) / math.sqrt(count)) if count > 1 else 0.0
    m["iwae_neg_elbo"] = float(np.mean(scores["neg_elbo"][subset]))
    m["elbo_gap"] = m["iwae_neg_elbo"] - m["iwae_nll"]
    m["iwae_num_images"], m["iwae_num_samples"] = count, options.num_samples
    m["iwae_precision"] = options.iwae_precision


def iwae_decoder(run, options):
    """The run's decoder, or a copy computing under ``options.iwae_precision`` (float32 logits either way)."""
    if options.iwae_precision == "float32":
        return run.decoder
    return training.policy_copy(run.decoder, options.iwae_precision)
