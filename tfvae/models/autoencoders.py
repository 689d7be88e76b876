"""The model family: plain autoencoder, VAE and conditional VAE.

Each model joins a functional encoder and decoder (``tfvae.models.networks``) and trains with ``fit`` through
a custom ``train_step``/``test_step``, so callbacks, progress bars and ``tf.distribute`` work unchanged.
Batches are dicts: ``{"image": (B, H, W, C) in [0, 1]}`` plus ``"label": (B, K) one-hot`` for the CVAE, and
``"input"`` for a denoising run: the corrupted images the encoder sees, while the loss scores the clean ``"image"``.

Losses (``tfvae.losses``) are summed over pixels and latent dimensions and averaged over the batch:

    loss = mean_batch(reconstruction + beta * KL)        (the plain autoencoder has no KL term)

Under a multi-replica strategy Keras sums the replicas' gradients, so the step differentiates
``loss / num_replicas_in_sync`` and logs the undivided value.
"""

import keras
import tensorflow as tf
from keras import ops

from tfvae import losses
from tfvae.models import networks

MODELS = ("ae", "vae", "cvae")


class Autoencoder(keras.Model):
    """Deterministic autoencoder: loss = reconstruction only (the documents' plain autoencoder)."""

    variational = False
    conditional = False

    def __init__(self, encoder, decoder, *, reconstruction="bce", beta=1.0, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.reconstruction = reconstruction
        self.beta = beta
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.kl_tracker = keras.metrics.Mean(name="kl")
        self.built = True  # every weight lives in the (already built) functional encoder and decoder

    @property
    def metrics(self):
        return [self.loss_tracker, self.reconstruction_tracker, self.kl_tracker]

    def _encoder_inputs(self, batch):
        # A denoising batch carries the corrupted images as "input"; the loss scores the clean "image".
        image = batch["input"] if "input" in batch else batch["image"]
        return [image, batch["label"]] if self.conditional else image

    def _decoder_inputs(self, z, batch):
        return [z, batch["label"]] if self.conditional else z

    def call(self, batch, training=False):
        """Encodes and decodes a batch; returns the encoder's outputs plus ``logits``."""
        codes = self.encoder(self._encoder_inputs(batch), training=training)
        logits = self.decoder(self._decoder_inputs(codes["z"], batch), training=training)
        return {**codes, "logits": logits}

    def compute_terms(self, batch, training=False):
        """Per-batch loss terms of a fresh forward pass; see ``loss_terms``."""
        return self.loss_terms(batch, self(batch, training=training))

    def loss_terms(self, batch, out):
        """Loss terms of the forward pass ``out``, each summed per image and averaged over the batch.

        Returns:
          dict with ``loss``, ``reconstruction`` and ``kl`` (scalars, float32).
        """
        terms = losses.vae_loss(batch["image"], out["logits"], out["z_mean"],
                                out["z_log_var"] if self.variational else None,
                                reconstruction=self.reconstruction, beta=self.beta)
        return {name: ops.mean(value) for name, value in terms.items()}

    def _update_trackers(self, terms):
        self.loss_tracker.update_state(terms["loss"])
        self.reconstruction_tracker.update_state(terms["reconstruction"])
        self.kl_tracker.update_state(terms["kl"])
        logs = {m.name: m.result() for m in self.metrics}
        if _across_workers(self.distribute_strategy):
            # Keras 3 averages each worker's logs with strategy.reduce(MEAN, axis=0), which needs an axis to
            # reduce: give the scalars one (tensorflow/tensorflow#72388). The averaged logs are scalars again.
            logs = {k: ops.reshape(v, (1,)) for k, v in logs.items()}
        return logs

    def train_step(self, batch):
        replicas = self.distribute_strategy.num_replicas_in_sync
        with tf.GradientTape() as tape:
            terms = self.compute_terms(batch, training=True)
            # Keras sums gradients over replicas: divide so the update is that of the global-batch mean.
            loss = terms["loss"] / replicas
            loss = self.optimizer.scale_loss(loss)  # no-op unless mixed precision wraps the optimizer
        grads = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        return self._update_trackers(terms)

    def test_step(self, batch):
        return self._update_trackers(self.compute_terms(batch, training=False))

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Under a tf.distribute strategy, Keras's fit/evaluate first pull one batch and all-reduce it in order
        # to build missing variables. Every variable here already exists (the functional networks are built,
        # the trackers too, and create_model builds the optimizer), and the all-reduce of a dict batch fails
        # across workers (MultiWorkerMirroredStrategy), so skip it when there is nothing to build.
        if all(layer.built for layer in self._flatten_layers()) and (
                self.optimizer is None or self.optimizer.built):
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)


def _across_workers(strategy):
    """Whether ``strategy`` is a MultiWorkerMirroredStrategy over more than one worker."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and \
        strategy.extended._in_multi_worker_mode()


class VAE(Autoencoder):
    """Variational autoencoder: loss = reconstruction + beta * KL(q(z|x) || N(0, I))."""

    variational = True


class CVAE(VAE):
    """Conditional VAE: encoder and decoder both see the one-hot class label."""

    conditional = True


_CLASSES = {"ae": Autoencoder, "vae": VAE, "cvae": CVAE}


def build_model(kind, image_shape, latent_dim, *, arch="conv", filters=(32, 64), hidden=16, num_classes=0,
                reconstruction="bce", beta=1.0, seed=None):
    """Builds an ``ae``, ``vae`` or ``cvae`` with matching encoder and decoder.

    Args:
      kind: one of MODELS.
      image_shape: (height, width, channels).
      latent_dim: size of z.
      arch, filters, hidden: see ``networks.build_encoder``.
      num_classes: number of classes; required (> 0) for ``cvae``, ignored otherwise.
      reconstruction: "bce" (Bernoulli decoder) or "mse" (Gaussian decoder).
      beta: weight of the KL term.
      seed: seed of the sampling noise.

    Returns:
      An uncompiled ``Autoencoder``/``VAE``/``CVAE``.
    """
    if kind not in _CLASSES:
        raise ValueError(f"unknown model {kind!r}; choose one of {', '.join(MODELS)}")
    cls = _CLASSES[kind]
    if cls.conditional and num_classes < 1:
        raise ValueError("cvae needs labelled data (num_classes > 0)")
    num_classes = num_classes if cls.conditional else 0
    common = dict(arch=arch, filters=tuple(filters), hidden=hidden, num_classes=num_classes)
    encoder = networks.build_encoder(image_shape, latent_dim, variational=cls.variational, seed=seed, **common)
    decoder = networks.build_decoder(image_shape, latent_dim, **common)
    return cls(encoder, decoder, reconstruction=reconstruction, beta=beta, name=kind)
