"""Latent codes from a sampler (the prior or the ex-post Gaussian mixture) and the images they decode to."""

import numpy as np

from tfvae import metrics, sampling
from tfvae.errors import TfvaeError
from tfvae.evaluation.options import SAMPLERS


def sample_latents(run, sampler, count, seed, batch_size=512, gmm_components=10):
    """``count`` latent codes from ``sampler`` ("prior" or "gmm"), plus the mixture (or None).

    The mixture is fitted to the posterior means of the run's training images (``Run.train_data``).
    """
    latent = run.latent_dim
    if sampler == "prior":
        return sampling.prior_samples(count, latent, seed), None
    if sampler == "gmm":
        x_train, y_train = run.train_data()
        codes, _ = run.encode(x_train, y_train if run.conditional else None, batch_size=batch_size)
        gmm = metrics.fit_gaussian_mixture(codes, gmm_components, seed=seed)
        return gmm.sample(count, seed=seed), gmm
    raise TfvaeError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")


def generate(run, z, batch_size=512):
    """Decoded Bernoulli means (grey levels in [0, 1]) of codes ``z``; a CVAE cycles through the classes."""
    labels = np.arange(len(z)) % run.num_classes if run.conditional else None
    return run.decode(z, labels, batch_size=batch_size)
