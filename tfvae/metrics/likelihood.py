r"""Likelihood and reconstruction metrics of autoencoders and VAEs.

Every function returns plain numpy values; the reductions are explicit (sums over pixels and latent
dimensions, then one value per image, then means over images where a function says so).

Likelihood
----------
For an image x with D pixels, an encoder q(z|x) = N(mu(x), diag(sigma^2(x))) and the prior p(z) = N(0, I),
the evidence lower bound is

    ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || p(z)) <= log p(x).

``likelihood_terms`` reports -ELBO split into the reconstruction term -E_q[log p(x|z)] (a Monte-Carlo mean
over K draws z_k ~ q) and the closed-form KL. The importance-weighted (IWAE, Burda et al. 2015) estimate
uses the same K draws as importance samples:

    log p(x) ~= log (1/K) sum_k w_k,   log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x),

computed with a log-sum-exp. Its expectation is a lower bound on log p(x) that never decreases with K and
tends to log p(x) as K grows; for K = 1 it is the ELBO. The NLL it gives, -log p(x), is reported in nats
per image (lower is better) and, on binary images, in bits per dimension: NLL / (D ln 2).

The decoder's likelihood p(x|z) follows the run's training loss:

* ``bernoulli`` (``loss=bce``): log p(x|z) = -BCE(x, logits) summed over pixels, from logits exactly as
  ``tfvae.losses.bernoulli_nll``. It is a normalised likelihood only for binary x; on grey-level images it is
  the cross-entropy the model was trained on, not comparable with published (binarized) numbers.
* ``gaussian``: N(x; sigmoid(logits), sigma^2 I), log p(x|z) = -SE / (2 sigma^2) - (D/2) log(2 pi sigma^2)
  (``tfvae.losses.gaussian_nll``). For ``loss=mse`` sigma^2 is the fixed 1/2 that squared error implies
  (log p(x|z) = -SE - (D/2) log(pi)); for ``loss=gaussian`` it is the calibrated variance the model was trained
  with, stored in the decoder's ``DecoderVariance`` layer (``decoder_variance``). It is a density over
  continuous pixel values in [0, 1], in nats per image. An 8-bit image's probability is about the density at
  its pixel values times the volume of its quantisation bin: pixels k/255 lie 1/255 apart, so
  -log P(image) ~= NLL + D ln 255 (the usual "1/256 dequantisation" offset, for data scaled by 1/255), and
  ``bits_per_dim_8bit`` reports (NLL + D ln 255) / (D ln 2). The approximation holds while sigma is several
  bins wide (sigma^2 >> 1.5e-5).

A plain autoencoder has no q(z|x) or prior, so it defines no likelihood; ``reconstruct`` gives its
reconstruction term -log p(x | z_mean) instead.

Reconstruction
--------------
Per image: MSE = mean over pixels of (x - x_hat)^2, and PSNR = 10 log10(1 / MSE) for pixels in [0, 1]
(MSE is floored at 1e-10, so a perfect reconstruction reads 100 dB rather than infinity).
"""

import math
import weakref

import numpy as np
import tensorflow as tf
from scipy import special

from tfvae import losses

LOG_2PI = math.log(2.0 * math.pi)
LIKELIHOODS = ("bernoulli", "gaussian")
GAUSSIAN_VARIANCE = 0.5  # the variance for which squared error is the negative log-density (up to a constant)
PIXEL_LEVELS = 256  # 8-bit pixels, scaled to k / (PIXEL_LEVELS - 1)
PSNR_MSE_FLOOR = 1e-10

# Compiled forward passes, one set per model, so that repeated calls do not trace again.
_COMPILED = weakref.WeakKeyDictionary()


def _compiled(model, key, build):
    """The function ``build()`` made for ``model`` under ``key``, built once per model."""
    functions = _COMPILED.setdefault(model, {})
    if key not in functions:
        functions[key] = build()
    return functions[key]


def _forward(model):
    return _compiled(model, "forward",
                     lambda: tf.function(lambda inputs: model(inputs, training=False), reduce_retracing=True,
                                         autograph=False))




def likelihood_for_loss(loss):
    """The decoder likelihood (``bernoulli`` or ``gaussian``) that a run's training ``loss`` implies."""
    if loss == "bce":
        return "bernoulli"
    if loss in ("mse", "gaussian"):
        return "gaussian"
    raise ValueError(f"unknown reconstruction loss {loss!r}; choose one of {', '.join(losses.RECONSTRUCTION_LOSSES)}")


def decoder_variance(decoder, loss):
    """The variance of a run's Gaussian decoder: the trained one for ``loss=gaussian``, 1/2 for ``mse``.

    Returns:
      float, or None for ``bce`` (a Bernoulli decoder has none).

    Raises:
      ValueError: a ``gaussian`` run whose decoder has no ``DecoderVariance`` layer, or whose variance was never
        set (no training step ran).
    """
    if loss == "bce":
        return None
    if loss == "mse":
        return GAUSSIAN_VARIANCE
    from tfvae.models import networks

    layer = networks.variance_layer(decoder)
    if layer is None:
        raise ValueError(f"a loss={loss} run's decoder needs a DecoderVariance layer; this one has none")
    variance = float(np.asarray(layer.variance))
    if not variance > 0:
        raise ValueError("the decoder's variance was never set: the run has not trained a step")
    return variance


def decoder_log_prob(x, logits, likelihood="bernoulli", variance=GAUSSIAN_VARIANCE):
    """log p(x|z) summed over pixels.

    Args:
      x: images in [0, 1], shape (n, ...).
      logits: decoder logits of the same shape.
      likelihood: "bernoulli" or "gaussian"; see the module docstring.
      variance: the Gaussian's shared variance sigma^2 (default ``GAUSSIAN_VARIANCE``, that of ``loss=mse``).

    Returns:
      float32 tensor of shape (n,), in nats.
    """
    if likelihood == "bernoulli":
        return -losses.bernoulli_nll(x, logits)
    if likelihood == "gaussian":
        num_pixels = math.prod(int(d) for d in x.shape[1:])
        return -losses.gaussian_nll(losses.squared_error(x, logits), num_pixels, variance)
    raise ValueError(f"unknown likelihood {likelihood!r}; choose one of {', '.join(LIKELIHOODS)}")


def encode(encoder, images, labels=None, batch_size=512):
    """Runs ``encoder`` over ``images`` in batches.

    Returns:
      (z_mean, z_log_var) as float32 numpy arrays; z_log_var is None for a deterministic encoder.
    """
    call = _forward(encoder)
    means, log_vars = [], []
    for start in range(0, len(images), batch_size):
        x = tf.convert_to_tensor(images[start:start + batch_size], tf.float32)
        inputs = x if labels is None else [x, tf.convert_to_tensor(labels[start:start + batch_size], tf.float32)]
        out = call(inputs)
        means.append(out["z_mean"].numpy())
        if "z_log_var" in out:
            log_vars.append(out["z_log_var"].numpy())
    latent = int(encoder.outputs[0].shape[-1]) if not means else means[0].shape[-1]
    z_mean = np.concatenate(means) if means else np.zeros((0, latent), "float32")
    return z_mean, (np.concatenate(log_vars) if log_vars else None)


def decode_logits(decoder, z, labels=None, batch_size=512):
    """Decoder logits for latent codes ``z`` (and one-hot ``labels`` for a conditional decoder), batched."""
    call = _forward(decoder)
    out = []
    for start in range(0, len(z), batch_size):
        zb = tf.convert_to_tensor(z[start:start + batch_size], tf.float32)
        inputs = zb if labels is None else [zb, tf.convert_to_tensor(labels[start:start + batch_size], tf.float32)]
        out.append(call(inputs).numpy())
    return np.concatenate(out)


def sigmoid(logits):
    """Numerically safe logistic function (no overflow warnings for large negative logits)."""
    return special.expit(logits)


def reconstruct(encoder, decoder, images, labels=None, likelihood="bernoulli", batch_size=512,
                variance=GAUSSIAN_VARIANCE):
    """Decodes every image's posterior mean (the deterministic code used at evaluation).

    ``variance`` is the Gaussian likelihood's (see ``decoder_log_prob``).

    Returns:
      (reconstructions in [0, 1], -log p(x | z_mean) per image in nats).
    """
    z_mean, _ = encode(encoder, images, labels, batch_size)
    logits = decode_logits(decoder, z_mean, labels, batch_size)
    nll = -decoder_log_prob(tf.constant(images, tf.float32), tf.constant(logits), likelihood, variance).numpy()
    return sigmoid(logits).astype("float32"), nll.astype("float64")


def _log_weight_fn(decoder, likelihood, conditional, variance):
    """A compiled function: (x, mean, log_var, labels, seed, k) -> (log p(x|z_k), log p(z_k) - log q(z_k|x))."""

    @tf.function(reduce_retracing=True)
    def log_weights(x, mean, log_var, labels, seed, k):
        batch, latent = tf.shape(mean)[0], tf.shape(mean)[1]
        eps = tf.random.stateless_normal((batch, k, latent), seed=seed)
        z = mean[:, None, :] + tf.exp(0.5 * log_var)[:, None, :] * eps  # (batch, k, latent)
        flat_z = tf.reshape(z, (batch * k, latent))
        inputs = [flat_z, tf.repeat(labels, k, axis=0)] if conditional else flat_z
        logits = decoder(inputs, training=False)
        log_px = tf.reshape(decoder_log_prob(tf.repeat(x, k, axis=0), logits, likelihood, variance), (batch, k))
        log_pz = -0.5 * tf.reduce_sum(LOG_2PI + tf.square(z), axis=-1)
        # q(z|x) at its own draw: (z - mean)^2 / var = eps^2.
        log_qz = -0.5 * tf.reduce_sum(LOG_2PI + log_var[:, None, :] + tf.square(eps), axis=-1)
        return log_px, log_pz - log_qz

    return log_weights


def likelihood_terms(encoder, decoder, images, num_samples, *, labels=None, likelihood="bernoulli",
                     variance=GAUSSIAN_VARIANCE, max_batch=1024, seed=0, progress=None):
    """Per-image -ELBO (reconstruction + KL) and the importance-sampled NLL of a VAE.

    Vectorised over the K = ``num_samples`` draws: each call decodes up to ``max_batch`` codes, i.e.
    ``max_batch // K`` images with all their draws, or one image's draws in chunks when K > max_batch.
    The noise is stateless and depends only on ``seed``, so results are reproducible and independent of
    ``max_batch`` only up to float rounding.

    Args:
      encoder: maps images (and one-hot labels) to a dict with ``z_mean`` and ``z_log_var``.
      decoder: maps z (and labels) to logits.
      images: float images in [0, 1], shape (n, H, W, C).
      num_samples: K, the number of draws z_k ~ q(z|x) per image.
      labels: one-hot labels (n, num_classes) for a conditional model (the likelihood is then p(x|y)).
      likelihood: "bernoulli" or "gaussian"; see the module docstring.
      variance: the Gaussian likelihood's shared variance (``decoder_variance``).
      max_batch: most codes decoded per call (bounds memory).
      seed: seed of the draws.
      progress: optional callable(done_images, total_images), called after each batch of images.

    Returns:
      dict of float64 arrays of shape (n,), all in nats: ``nll`` (IWAE estimate of -log p(x) with K
      samples), ``neg_elbo`` (= reconstruction + kl), ``reconstruction`` (-mean_k log p(x|z_k)) and ``kl``
      (closed form).
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be at least 1, got {num_samples}")
    z_mean, z_log_var = encode(encoder, images, labels, max_batch)
    if z_log_var is None:
        raise ValueError("likelihood_terms needs a variational encoder (with z_log_var); a plain autoencoder "
                         "defines no likelihood")
    conditional = labels is not None
    variance = float(variance)
    fn = _compiled(decoder, ("log_weights", likelihood, conditional, variance),
                   lambda: _log_weight_fn(decoder, likelihood, conditional, variance))
    k_chunk = min(num_samples, max_batch)
    images_per_call = max(1, max_batch // k_chunk)
    n = len(images)
    nll, recon = np.zeros(n), np.zeros(n)
    call = 0
    for start in range(0, n, images_per_call):
        stop = min(start + images_per_call, n)
        x = tf.constant(images[start:stop], tf.float32)
        mean, log_var = tf.constant(z_mean[start:stop]), tf.constant(z_log_var[start:stop])
        lab = tf.constant(labels[start:stop], tf.float32) if labels is not None else tf.zeros((stop - start, 0))
        log_px, log_ratio = [], []
        for k_start in range(0, num_samples, k_chunk):
            k = min(k_chunk, num_samples - k_start)
            px, ratio = fn(x, mean, log_var, lab, tf.constant([seed, call], tf.int64), tf.constant(k))
            call += 1
            log_px.append(px.numpy().astype("float64"))
            log_ratio.append(ratio.numpy().astype("float64"))
        log_px, log_ratio = np.concatenate(log_px, axis=1), np.concatenate(log_ratio, axis=1)
        nll[start:stop] = math.log(num_samples) - special.logsumexp(log_px + log_ratio, axis=1)
        recon[start:stop] = -np.mean(log_px, axis=1)
        if progress is not None:
            progress(stop, n)
    kl = np.asarray(losses.gaussian_kl(z_mean, z_log_var), dtype="float64")
    return {"nll": nll, "neg_elbo": recon + kl, "reconstruction": recon, "kl": kl}


def bits_per_dim(nats, num_dims):
    """Converts nats per image into bits per dimension: nats / (num_dims * ln 2)."""
    return np.asarray(nats, dtype="float64") / (num_dims * math.log(2.0))


def bits_per_dim_8bit(density_nats, num_dims, levels=PIXEL_LEVELS):
    """Bits per dimension of 8-bit images from a density's NLL over [0, 1] pixels (see the module docstring).

    The probability of a quantised image is about its density times the bin volume (1 / (levels - 1))^D for
    pixels k / (levels - 1), so -log P = NLL + D ln(levels - 1), reported as bits per dimension.
    """
    nats = np.asarray(density_nats, dtype="float64") + num_dims * math.log(levels - 1)
    return bits_per_dim(nats, num_dims)




def mse_psnr(images, reconstructions):
    """Per-image mean squared error and PSNR (dB) for pixels in [0, 1].

    Returns:
      (mse, psnr), float64 arrays of shape (n,). MSE is floored at ``PSNR_MSE_FLOOR`` for the PSNR only.
    """
    diff = np.asarray(images, "float64") - np.asarray(reconstructions, "float64")
    mse = np.mean(np.square(diff).reshape(len(diff), -1), axis=1)
    psnr = 10.0 * np.log10(1.0 / np.maximum(mse, PSNR_MSE_FLOOR))
    return mse, psnr
