"""Latent codes from a sampler (the prior or the ex-post Gaussian mixture) and the images they decode to."""

import numpy as np

from tfvae import metrics, sampling
from tfvae.errors import TfvaeError
from tfvae.evaluation.options import SAMPLERS


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
