"""The one forward path of a trained encoder and decoder: compiled, batched, numpy in and numpy out.

``tfvae.api.Run`` owns one ``Inference`` and every caller goes through it: the Run's methods, sample.py's
pictures, the Projector, and every evaluation step (likelihood, IWAE, samplers, denoising, one-class, OOD,
scores). Each model's forward pass is a ``tf.function`` traced once per input signature and kept in the
``Inference`` object, so it lives exactly as long as the Run that holds it: nothing module-level keeps a model
alive. The maths (log-densities, the importance weights, the log-sum-exp) is ``tfvae.metrics``'s.

Inputs are prepared arrays: images float32 (n, H, W, C) in [0, 1], codes float32 (n, latent) (a vqvae's:
(n, h, w, D) grids of codebook vectors, its indices int (n, h, w); a gridvae's: (n, h, w, c) grids), and for a
conditional model one-hot labels (n, K); ``tfvae.api.Run`` checks and converts what a user passes.
"""

import functools

import numpy as np
import tensorflow as tf

from tfvae import losses, metrics
from tfvae.models import pixelcnn

BATCH_SIZE = 256


class Inference:
    """Compiled, batched forward passes of the models it is given, cached for as long as this object lives.

    Args:
      batch_size: most images or codes per forward pass, unless a call says otherwise.
    """

    def __init__(self, batch_size=BATCH_SIZE):
        self.batch_size = batch_size
        self._functions = {}  # (id(model), key) -> (model, function); the model is kept so its id stays its own

    def _compiled(self, model, key, build):
        entry = self._functions.get((id(model), key))
        if entry is None or entry[0] is not model:
            entry = self._functions[(id(model), key)] = (model, build())
        return entry[1]

    def _forward(self, model):
        # A partial, not a lambda: TensorFlow counts the traces of the functions that share one Python code object
        # together, and warned of "excessive retracing" after five models' functions traced once each. A partial
        # has no code object of its own, so each model's function is counted alone (and one model's retraces
        # stay bounded by reduce_retracing).
        return self._compiled(model, "forward", lambda: tf.function(
            functools.partial(_call_for_inference, model), reduce_retracing=True, autograph=False))

    def encode(self, encoder, images, labels=None, batch_size=None):
        """Posterior means and log-variances of ``images`` (and one-hot ``labels`` for a conditional encoder).

        Returns:
          (z_mean, z_log_var), float32 (n, latent) each; z_log_var is None for a deterministic encoder.
        """
        batch_size = batch_size or self.batch_size
        call = self._forward(encoder)
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

    def indices(self, encoder, images, batch_size=None):
        """A vqvae encoder's codebook indices of ``images``: int32 (n, h, w)."""
        batch_size = batch_size or self.batch_size
        call = self._forward(encoder)
        out = [call(tf.convert_to_tensor(images[start:start + batch_size], tf.float32))["indices"].numpy()
               for start in range(0, len(images), batch_size)]
        grid = tuple(encoder.outputs[0].shape[1:3]) if not out else out[0].shape[1:]
        return np.concatenate(out).astype("int32") if out else np.zeros((0, *grid), "int32")

    def sample_indices(self, prior, n, seed=0, batch_size=None, temperature=1.0):
        """``n`` index grids, int32 (n, h, w), drawn from a PixelCNN ``prior`` (``pixelcnn.autoregressive_sampler``:
        h * w compiled passes per batch) at ``temperature`` (the softmax of logits / temperature); batch b uses
        the stateless seed (seed, b)."""
        batch_size = batch_size or self.batch_size
        draw = self._compiled(prior, "draw", lambda: pixelcnn.autoregressive_sampler(prior))
        tau = tf.constant(temperature, tf.float32)
        out = [draw(tf.constant(min(batch_size, n - start)), tf.constant([seed, start // batch_size], tf.int64), tau)
               .numpy() for start in range(0, n, batch_size)]
        grid = tuple(int(d) for d in prior.inputs[0].shape[1:])
        return np.concatenate(out) if out else np.zeros((0, *grid), "int32")

    def indices_nll(self, prior, indices, batch_size=None):
        """-log p(k) under a PixelCNN ``prior`` of each index grid (n, h, w), in nats: float64 (n,)."""
        batch_size = batch_size or self.batch_size
        call = self._forward(prior)
        out = [pixelcnn.grid_nll(k, call(tf.convert_to_tensor(k, tf.int32))).numpy()
               for k in (indices[start:start + batch_size] for start in range(0, len(indices), batch_size))]
        return np.concatenate(out).astype("float64") if out else np.zeros(0)

    def decode_logits(self, decoder, z, labels=None, batch_size=None):
        """The decoder's logits for codes ``z`` (and one-hot ``labels`` for a conditional decoder)."""
        batch_size = batch_size or self.batch_size
        call = self._forward(decoder)
        out = []
        for start in range(0, len(z), batch_size):
            zb = tf.convert_to_tensor(z[start:start + batch_size], tf.float32)
            inputs = zb if labels is None else [zb, tf.convert_to_tensor(labels[start:start + batch_size],
                                                                         tf.float32)]
            out.append(call(inputs).numpy())
        if not out:
            return np.zeros((0, *decoder.outputs[0].shape[1:]), "float32")
        return np.concatenate(out)

    def decode(self, decoder, z, labels=None, batch_size=None, likelihood="bernoulli"):
        """Images the decoder makes from ``z``: its distribution's mean (``metrics.mean_image``; the sigmoid of
        its logits for a Bernoulli or shared-variance Gaussian decoder), float32 in [0, 1]."""
        return metrics.mean_image(self.decode_logits(decoder, z, labels, batch_size), likelihood)

    def reconstruct(self, encoder, decoder, images, labels=None, likelihood="bernoulli",
                    variance=metrics.GAUSSIAN_VARIANCE, batch_size=None):
        """Decodes every image's posterior mean (the deterministic code used at evaluation).

        Returns:
          (reconstructions float32 in [0, 1], -log p(x | z_mean) per image in nats, float64).
        """
        z_mean, _ = self.encode(encoder, images, labels, batch_size)
        logits = self.decode_logits(decoder, z_mean, labels, batch_size)
        nll = -metrics.decoder_log_prob(tf.constant(images, tf.float32), tf.constant(logits), likelihood,
                                        variance).numpy()
        return metrics.mean_image(logits, likelihood), nll.astype("float64")

    def _log_weight_fn(self, decoder, likelihood, conditional, variance, prior, code_shape):
        """(x, mean, log_var, labels, seed, k) -> (log p(x|z_k), log p(z_k) - log q(z_k|x)), compiled; the codes are
        flat (batch, latent), each reshaped to ``code_shape`` for the decoder."""

        @tf.function(reduce_retracing=True)
        def log_weights(x, mean, log_var, labels, seed, k):
            batch, latent = tf.shape(mean)[0], tf.shape(mean)[1]
            eps = tf.random.stateless_normal((batch, k, latent), seed=seed)
            z = mean[:, None, :] + tf.exp(0.5 * log_var)[:, None, :] * eps  # (batch, k, latent)
            flat_z = tf.reshape(z, (batch * k, *code_shape))
            inputs = [flat_z, tf.repeat(labels, k, axis=0)] if conditional else flat_z
            logits = decoder(inputs, training=False)
            return metrics.importance_log_weights(x, z, eps, log_var, logits, likelihood, variance, prior)

        return log_weights

    def likelihood_terms(self, encoder, decoder, images, num_samples, *, labels=None, likelihood="bernoulli",
                         variance=metrics.GAUSSIAN_VARIANCE, max_batch=1024, seed=0, progress=None, prior=None):
        """Per-image -ELBO (reconstruction + KL) and the importance-sampled NLL of a VAE (``tfvae.metrics``).

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
          likelihood: one of ``tfvae.metrics.LIKELIHOODS``; see ``tfvae.metrics.nll``.
          variance: a ``gaussian`` likelihood's shared variance (``metrics.decoder_variance``).
          max_batch: most codes decoded per call (bounds memory); also the encoder's batch.
          seed: seed of the draws.
          progress: optional callable(done_images, total_images), called after each batch of images.
          prior: the model's own prior (an object with ``log_prob(z)``, e.g. ``tfvae.models.VampPrior``); None:
            N(0, I).

        Returns:
          dict of float64 arrays of shape (n,), all in nats: ``nll`` (IWAE estimate of -log p(x) with K
          samples), ``neg_elbo`` (= reconstruction + kl), ``reconstruction`` (-mean_k log p(x|z_k)) and ``kl``
          (closed form against N(0, I); with a ``prior``, the mean over the K draws of log q(z_k|x) - log p(z_k)).
        """
        if num_samples < 1:
            raise ValueError(f"num_samples must be at least 1, got {num_samples}")
        z_mean, z_log_var = self.encode(encoder, images, labels, max_batch)
        if z_log_var is None:
            raise ValueError("likelihood_terms needs a variational encoder (with z_log_var); a plain autoencoder "
                             "defines no likelihood")
        # A grid of codes (a gridvae's (h, w, c)) is one vector of h w c numbers here: q(z|x) and N(0, I)
        # factorise over its cells, so their log-densities are sums over the flat vector.
        code_shape = tuple(int(d) for d in z_mean.shape[1:])
        z_mean, z_log_var = z_mean.reshape(len(z_mean), -1), z_log_var.reshape(len(z_log_var), -1)
        conditional = labels is not None
        variance = float(variance)
        fn = self._compiled(decoder, ("log_weights", likelihood, conditional, variance, prior, code_shape),
                            lambda: self._log_weight_fn(decoder, likelihood, conditional, variance, prior,
                                                        code_shape))
        k_chunk = min(num_samples, max_batch)
        images_per_call = max(1, max_batch // k_chunk)
        n = len(images)
        nll, recon, mc_kl = np.zeros(n), np.zeros(n), np.zeros(n)
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
            log_ratio = np.concatenate(log_ratio, axis=1)
            nll[start:stop], recon[start:stop] = metrics.importance_sampled_nll(np.concatenate(log_px, axis=1),
                                                                                log_ratio)
            mc_kl[start:stop] = -log_ratio.mean(axis=1)
            if progress is not None:
                progress(stop, n)
        kl = mc_kl if prior is not None else np.asarray(losses.gaussian_kl(z_mean, z_log_var), dtype="float64")
        return {"nll": nll, "neg_elbo": recon + kl, "reconstruction": recon, "kl": kl}


def _call_for_inference(model, inputs):
    return model(inputs, training=False)
