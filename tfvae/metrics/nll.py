r"""Likelihood and reconstruction metrics of autoencoders and VAEs.

Every function returns plain numpy values; the reductions are explicit (sums over pixels and latent
dimensions, then one value per image, then means over images where a function says so).

Likelihood
----------
For an image x with D pixels, an encoder q(z|x) = N(mu(x), diag(sigma^2(x))) and the prior p(z) = N(0, I),
the evidence lower bound is

    ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || p(z)) <= log p(x).

``tfvae.inference.Inference.likelihood_terms`` reports -ELBO split into the reconstruction term
-E_q[log p(x|z)] (a Monte-Carlo mean over K draws z_k ~ q) and the closed-form KL. The importance-weighted
(IWAE, Burda et al. 2015) estimate uses the same K draws as importance samples:

    log p(x) ~= log (1/K) sum_k w_k,   log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x),

computed with a log-sum-exp (``importance_log_weights``, ``importance_sampled_nll``). log p(z) is N(0, I)'s unless
the model has a prior of its own (``importance_log_weights``'s ``prior``: the VampPrior's mixture density of
``tfvae.models.vamp``); then the -ELBO's KL has no closed form and is the Monte-Carlo mean of
log q(z_k|x) - log p(z_k) over the same K draws. Its expectation is
a lower bound on log p(x) that never decreases with K and tends to log p(x) as K grows; for K = 1 it is the
ELBO. The NLL it gives, -log p(x), is reported in nats per image (lower is better) and, on binary images, in
bits per dimension: NLL / (D ln 2).

The decoder's likelihood p(x|z) follows the run's training loss (``tfvae.likelihoods.LIKELIHOOD_OF_LOSS``),
and ``decoder_log_prob`` is the one log p(x|z) every report uses (the ELBO's terms, the IWAE NLL, the
reconstruction term at z_mean):

* ``bernoulli`` (``loss=bce``): log p(x|z) = -BCE(x, logits) summed over pixels, from logits exactly as
  ``tfvae.losses.bernoulli_nll``. It is a normalised likelihood only for binary x; on grey-level or colour
  images it is the cross-entropy the model was trained on, no probability of 8-bit pixels (its minimum is the
  pixels' binary entropy, not 0): not comparable with any other decoder's, nor with published (binarized)
  numbers, and no bits/dim are reported for it.
* every other decoder: log P(x|z) of the 8-bit image itself (``tfvae.likelihoods.log_prob_8bit``), a
  probability over the 256 values of each pixel, so that nats and bits/dim = NLL / (D ln 2) compare across
  decoders and with published 8-bit numbers. ``gaussian`` (``loss=mse``: the fixed variance 1/2 that squared
  error implies; ``loss=gaussian``: the calibrated shared variance stored in the decoder's ``DecoderVariance``
  layer, ``decoder_variance``) and ``gaussian_pixel`` (a variance per pixel) are Gaussians integrated over each
  pixel's bin of width 1/255, the end bins taking the tails; ``logistic_mixture`` is a distribution of the 8-bit
  values already. The Gaussians train on their density over [0, 1]; the reported number is the bin mass, which,
  unlike "density x bin width", never exceeds 1 per pixel.

A plain autoencoder has no q(z|x) or prior, so it defines no likelihood; ``Inference.reconstruct`` gives its
reconstruction term -log p(x | z_mean) instead.

These functions are maths over arrays and tensors: the forward passes that produce logits are
``tfvae.inference``'s, one per Run.

Reconstruction
--------------
Per image: MSE = mean over pixels of (x - x_hat)^2, and PSNR = 10 log10(1 / MSE) for pixels in [0, 1]
(MSE is floored at 1e-10, so a perfect reconstruction reads 10 log10(1e10) dB rather than infinity).
"""

import math

import numpy as np
import tensorflow as tf
from scipy import special

from tfvae import likelihoods, losses
from tfvae.models import networks

LOG_2PI = math.log(2.0 * math.pi)
LIKELIHOODS = likelihoods.LIKELIHOODS
GAUSSIAN_VARIANCE = 0.5  # the variance for which squared error is the negative log-density (up to a constant)
PIXEL_LEVELS = likelihoods.PIXEL_LEVELS  # 8-bit pixels, scaled to k / (PIXEL_LEVELS - 1)
PSNR_MSE_FLOOR = 1e-10


def likelihood_for_loss(loss):
    """The decoder likelihood (one of LIKELIHOODS) that a run's training ``loss`` implies."""
    return likelihoods.for_loss(loss)


def decoder_variance(decoder, loss):
    """The variance of a run's Gaussian decoder: the trained one for ``loss=gaussian``, 1/2 for ``mse``.

    Returns:
      float, or None for ``bce``, ``gaussian_pixel`` and ``logistic_mixture`` (no shared variance).

    Raises:
      ValueError: a ``gaussian`` run whose decoder has no ``DecoderVariance`` layer, or whose variance was never
        set (no training step ran).
    """
    if loss in ("bce", "gaussian_pixel", "logistic_mixture"):
        return None
    if loss == "mse":
        return GAUSSIAN_VARIANCE
    layer = networks.variance_layer(decoder)
    if layer is None:
        raise ValueError(f"a loss={loss} run's decoder needs a DecoderVariance layer; this one has none")
    variance = float(np.asarray(layer.variance))
    if not variance > 0:
        raise ValueError("the decoder's variance was never set: the run has not trained a step")
    return variance


def decoder_log_prob(x, logits, likelihood="bernoulli", variance=GAUSSIAN_VARIANCE):
    """log p(x|z) summed over pixels: the one the reports use (see the module docstring).

    Args:
      x: images in [0, 1], shape (n, H, W, C); 8-bit values k / 255 for every likelihood but Bernoulli.
      logits: the decoder's outputs, (n, H, W, output channels).
      likelihood: one of LIKELIHOODS; see the module docstring.
      variance: a ``gaussian`` decoder's shared variance sigma^2 (default ``GAUSSIAN_VARIANCE``, ``loss=mse``'s).

    Returns:
      float32 tensor of shape (n,), in nats: Bernoulli's log-likelihood, else log P of the 8-bit image.
    """
    if likelihood == "bernoulli":
        return -losses.bernoulli_nll(x, logits)
    if likelihood in LIKELIHOODS:
        return likelihoods.log_prob_8bit(x, logits, likelihood, variance)
    raise ValueError(f"unknown likelihood {likelihood!r}; choose one of {', '.join(LIKELIHOODS)}")


def sigmoid(logits):
    """Numerically safe logistic function (no overflow warnings for large negative logits)."""
    return special.expit(logits)


def importance_log_weights(x, z, eps, log_var, logits, likelihood="bernoulli", variance=GAUSSIAN_VARIANCE,
                           prior=None):
    """The two parts of the importance weights log w_k of K draws z_k = mean + sigma * eps_k per image.

    Args:
      x: images in [0, 1], (n, H, W, C).
      z: the draws, (n, K, latent).
      eps: their standard-normal noise, (n, K, latent).
      log_var: the posterior log-variances, (n, latent).
      logits: the decoder's logits of the draws, (n * K, H, W, C), image-major.
      likelihood, variance: the decoder's likelihood (``decoder_log_prob``).
      prior: the model's own prior, an object whose ``log_prob(z)`` maps codes (..., latent) to log p(z) (...) as
        a tensor; None: N(0, I).

    Returns:
      (log p(x|z_k), log p(z_k) - log q(z_k|x)), float32 tensors (n, K).
    """
    batch, k = tf.shape(z)[0], tf.shape(z)[1]
    log_px = tf.reshape(decoder_log_prob(tf.repeat(x, k, axis=0), logits, likelihood, variance), (batch, k))
    if prior is None:
        log_pz = -0.5 * tf.reduce_sum(LOG_2PI + tf.square(z), axis=-1)
    else:
        log_pz = tf.cast(prior.log_prob(z), tf.float32)
    # q(z|x) at its own draw: (z - mean)^2 / var = eps^2.
    log_qz = -0.5 * tf.reduce_sum(LOG_2PI + log_var[:, None, :] + tf.square(eps), axis=-1)
    return log_px, log_pz - log_qz


def importance_sampled_nll(log_px, log_ratio):
    """The IWAE NLL and the Monte-Carlo reconstruction term from K draws' log-weights (see the module docstring).

    Args:
      log_px: log p(x|z_k), (n, K).
      log_ratio: log p(z_k) - log q(z_k|x), (n, K).

    Returns:
      (log K - logsumexp_k(log_px + log_ratio), -mean_k log_px), float64 (n,) each, in nats.
    """
    log_px, log_ratio = np.asarray(log_px, "float64"), np.asarray(log_ratio, "float64")
    nll = math.log(log_px.shape[1]) - special.logsumexp(log_px + log_ratio, axis=1)
    return nll, -np.mean(log_px, axis=1)


def bits_per_dim(nats, num_dims):
    """Converts nats per image into bits per dimension: nats / (num_dims * ln 2)."""
    return np.asarray(nats, dtype="float64") / (num_dims * math.log(2.0))


def reports_bits_per_dim(likelihood, binarized):
    """Whether a likelihood's NLL is a probability of the images scored, so that bits/dim mean something: every
    8-bit likelihood, and Bernoulli's on binarized images (not on grey levels: see the module docstring)."""
    return likelihood != "bernoulli" or binarized


def mean_image(logits, likelihood):
    """The pictures (float32 numpy (n, H, W, C) in [0, 1]) a decoder's outputs stand for: its distribution's
    mean (``tfvae.likelihoods.mean``)."""
    return np.asarray(likelihoods.mean(logits, likelihood), "float32")


def mse_psnr(images, reconstructions):
    """Per-image mean squared error and PSNR (dB) for pixels in [0, 1].

    Returns:
      (mse, psnr), float64 arrays of shape (n,). MSE is floored at ``PSNR_MSE_FLOOR`` for the PSNR only.
    """
    diff = np.asarray(images, "float64") - np.asarray(reconstructions, "float64")
    mse = np.mean(np.square(diff).reshape(len(diff), -1), axis=1)
    psnr = 10.0 * np.log10(1.0 / np.maximum(mse, PSNR_MSE_FLOOR))
    return mse, psnr
