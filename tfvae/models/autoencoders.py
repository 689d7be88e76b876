"""The model family's base classes: plain autoencoder, VAE and conditional VAE (``tfvae.models.registry`` builds
them, the VAE with a VampPrior of ``tfvae.models.vamp`` and the RAE and WAE of ``tfvae.models.regularized``).

Each model joins a functional encoder and decoder (``tfvae.models.networks``) and trains with ``fit`` through
a custom ``train_step``/``test_step``, so callbacks, progress bars and ``tf.distribute`` work unchanged.
Batches are dicts: ``{"image": (B, H, W, C) in [0, 1]}`` plus ``"label": (B, K) one-hot`` for the CVAE, and
``"input"`` for a denoising run: the corrupted images the encoder sees, while the loss scores the clean ``"image"``.

Losses (``tfvae.losses``) are summed over pixels and latent dimensions and averaged over the batch:

    loss = mean_batch(recon_weight * reconstruction + beta * KL)   (the plain autoencoder has no KL term)

recon_weight = 0 trains the KL term alone (the documents' "KL only" latent space); the logged
``reconstruction`` is always the unweighted term.

With ``reconstruction="gaussian"`` the decoder ends in a ``DecoderVariance`` layer. A training step scores its
batch with the batch's own optimal variance (its mean squared error per pixel) and moves the layer's running
average towards it; evaluation (``test_step``, ``compute_terms(training=False)``) uses the running average, the
variance the model was trained with, so the test loss is not fitted to the test batch. The ``variance`` metric
logs the batch optimum (the per-pixel MSE of a one-sample reconstruction).

A model whose prior is not N(0, I) says so in two hooks (``tfvae.models.vamp`` is the example): ``kl_estimate``
gives the per-example KL term the loss uses instead of the closed form, and the classmethod ``learned_prior``
gives a trained run's prior (the ``learned`` sampler of ``tfvae.samplers``; ``has_learned_prior`` says there is
one without a run).

Under a multi-replica strategy Keras sums the replicas' gradients, so the step differentiates
``loss / num_replicas_in_sync`` and logs the undivided value.

``critic`` (``tfvae.models.adversarial.Critic``, built when ``adversarial`` or ``feature_match`` > 0) adds the
sharpness terms: the training step then also runs the discriminator on the batch and its reconstructions, adds
the weighted terms to the encoder's and decoder's gradient and takes one step of the discriminator's own
optimizer. ``loss``, ``reconstruction`` and ``kl`` are logged unchanged (the ELBO's terms); ``d_loss``, ``g_loss``
and ``feature_match`` beside them.
"""

import dataclasses
import math

import keras
import tensorflow as tf
from keras import ops

from tfvae import keras_private, likelihoods, losses
from tfvae.models import networks
from tfvae.models.adversarial import Critic, build_discriminator
from tfvae.models.trackers import batch_weight, track


@dataclasses.dataclass
class NoHparams:
    """The hyperparameters of a model that has none beyond the shared settings (``tfvae.config.Config``)."""


class Autoencoder(keras_private.BuiltModelSkipsDistributedBuild, keras.Model):
    """Deterministic autoencoder: loss = reconstruction only (the documents' plain autoencoder).

    The class attributes say what a model is, so that nothing outside ``tfvae.models`` needs its name; a new
    model overrides those that differ and registers its class in ``tfvae.models.registry``.
    """

    title = "plain autoencoder"  # what the model is called in a sentence
    description = "plain autoencoder: a deterministic bottleneck, sampled from a mixture fitted to its codes"
    Hparams = NoHparams  # the model's own hyperparameters: a dataclass of ``tfvae.fields.setting`` fields
    variational = False  # the encoder is a posterior q(z|x) with a variance (it has an ELBO)
    conditional = False  # encoder and decoder take a one-hot class label
    code_grid = False  # the codes are (h, w, D) grids, not vectors (a vqvae's, a gridvae's)
    quantized = False  # the grids hold codebook vectors, one discrete index per cell, drawn by its own PixelCNN
    encoder_extras = ()  # the encoder's named outputs besides its codes (a vamp's pseudo_inputs)
    has_learned_prior = False  # True where ``learned_prior`` gives the model's own prior (the "learned" sampler)
    trains_prior_after = False  # its prior is a network trained after the model's last epoch (a vqvae's PixelCNN)
    default_sampler = "gmm"  # the sampler of codes that sample.py and Run.sample use when none is named
    # The gmm sampler's size when none is asked for: None, its fixed default (Ghosh et al.'s 10); a number, one
    # component per that many codes it is fitted to (``tfvae.samplers.run_samplers.default_components``).
    codes_per_gmm_component = None
    # The test-loss terms train.py prints after the loss and the reconstruction: (key, label, format).
    summary_terms = (("kl", "KL", ".2f"),)

    @classmethod
    def check_config(cls, config):
        """The one-line reason ``config`` (the run's settings) can't train this model, or None."""
        if config.recon_weight == 0 and (config.beta == 0 or not cls.variational):
            return "--recon_weight=0 leaves nothing to train without a KL term; use --model=vae with --beta > 0"
        return None

    @classmethod
    def build(cls, image_shape, latent_dim, hparams, *, arch="conv", filters=(32, 64), hidden=16, num_classes=0,
              reconstruction="bce", beta=1.0, recon_weight=1.0, seed=None, adversarial=0.0, feature_match=0.0,
              name=None):
        """An uncompiled model of this class with matching encoder and decoder (``tfvae.models.build_model``
        documents the arguments; ``hparams`` is a ``cls.Hparams``)."""
        if cls.conditional and num_classes < 1:
            raise ValueError(f"{cls.__name__} needs labelled data (num_classes > 0)")
        common = dict(arch=arch, filters=tuple(filters), hidden=hidden, num_classes=num_classes if cls.conditional
                      else 0)
        encoder = cls.build_encoder(image_shape, latent_dim, hparams, seed=seed, **common)
        channels = likelihoods.output_channels(likelihoods.for_loss(reconstruction), image_shape[2])
        decoder = cls.build_decoder(image_shape, latent_dim, hparams, variance=reconstruction == "gaussian",
                                    output_channels=channels, **common)
        critic = None
        if adversarial or feature_match:
            # The discriminator is as wide as the encoder (its filters): docs/sharpness.md.
            critic = Critic(build_discriminator(image_shape, filters), adversarial=adversarial,
                            feature_match=feature_match, name="critic")
        return cls(encoder, decoder, reconstruction=reconstruction, beta=beta, recon_weight=recon_weight,
                   critic=critic, name=name, **cls.model_arguments(hparams, seed))

    @classmethod
    def build_encoder(cls, image_shape, latent_dim, hparams, *, seed=None, **common):
        """The model's functional encoder (``networks.build_encoder``'s)."""
        del hparams
        return networks.build_encoder(image_shape, latent_dim, variational=cls.variational, seed=seed, **common)

    @classmethod
    def build_decoder(cls, image_shape, latent_dim, hparams, *, variance=False, output_channels=None, **common):
        """The model's functional decoder (``networks.build_decoder``'s)."""
        del hparams
        return networks.build_decoder(image_shape, latent_dim, variance=variance, output_channels=output_channels,
                                      **common)

    @classmethod
    def model_arguments(cls, hparams, seed):
        """The keyword arguments of ``cls(...)`` that come from the model's hyperparameters."""
        del hparams, seed
        return {}

    def __init__(self, encoder, decoder, *, reconstruction="bce", beta=1.0, recon_weight=1.0, critic=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.reconstruction = reconstruction
        self.beta = beta
        self.recon_weight = recon_weight
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.kl_tracker = keras.metrics.Mean(name="kl")
        self.variance_tracker = keras.metrics.Mean(name="variance")
        self.critic = critic  # the sharpness terms' discriminator (tfvae.models.adversarial), or None
        self.built = True  # every weight lives in the (already built) functional encoder and decoder

    @property
    def metrics(self):
        trackers = [self.loss_tracker, self.reconstruction_tracker, self.kl_tracker]
        trackers += [self.variance_tracker] if self.reconstruction == "gaussian" else []
        return trackers + (self.critic.trackers if self.critic is not None else [])

    @property
    def autoencoder_variables(self):
        """The encoder's and decoder's trainable variables: what the model's optimizer trains (not the critic's)."""
        return self.encoder.trainable_variables + self.decoder.trainable_variables

    @property
    def variance_layer(self):
        """The decoder's ``DecoderVariance`` layer (``reconstruction="gaussian"``), else None."""
        return networks.variance_layer(self.decoder)

    def _encoder_inputs(self, batch):
        # A denoising batch carries the corrupted images as "input"; the loss scores the clean "image".
        image = batch["input"] if "input" in batch else batch["image"]
        return [image, batch["label"]] if self.conditional else image

    def _decoder_inputs(self, z, batch):
        return [z, batch["label"]] if self.conditional else z

    def as_batch(self, data):
        """The batch dict of what Keras hands a step: a dict as it is, or images ``x`` (``fit(x)``; float in [0, 1],
        or integers in [0, 255], scaled) with, for a conditional model, labels ``y`` (``fit(x, y)``: class ids or
        one-hot rows). An unconditional model ignores ``y`` (so ``fit(x, x)`` works too)."""
        if isinstance(data, dict):
            return data
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        if isinstance(x, dict):
            return x
        x = ops.convert_to_tensor(x)
        x = ops.cast(x, "float32") / 255.0 if "int" in str(x.dtype) else ops.cast(x, "float32")
        batch = {"image": x}
        if self.conditional:
            if y is None:
                raise ValueError(f"a {self.name} takes class labels: fit(x, y)")
            num_classes = self.encoder.inputs[1].shape[-1]
            y = ops.convert_to_tensor(y)
            batch["label"] = ops.cast(y, "float32") if len(y.shape) == 2 else ops.one_hot(
                ops.cast(ops.reshape(y, (-1,)), "int32"), num_classes)
        return batch

    def call(self, batch, training=False):
        """Encodes and decodes a batch (see ``as_batch``); returns the encoder's outputs plus ``logits``."""
        batch = self.as_batch(batch)
        codes = self.encoder(self._encoder_inputs(batch), training=training)
        logits = self.decoder(self._decoder_inputs(codes["z"], batch), training=training)
        return {**codes, "logits": logits}

    def compute_terms(self, batch, training=False):
        """Per-batch loss terms of a fresh forward pass; see ``loss_terms``."""
        batch = self.as_batch(batch)
        return self.loss_terms(batch, self(batch, training=training), training=training)

    def loss_terms(self, batch, out, training=False):
        """Loss terms of the forward pass ``out``, each summed per image and averaged over the batch.

        Args:
          batch: the batch dict.
          out: the model's outputs on it.
          training: for a Gaussian decoder, score the batch with its own optimal variance (training) rather
            than the trained running average (evaluation; the batch's own until the average is set).

        Returns:
          dict with ``loss``, ``reconstruction`` and ``kl`` (scalars, float32); a Gaussian decoder adds
          ``variance``, the batch's optimal variance (its per-pixel MSE).
        """
        x = batch["image"]
        extra, variance = {}, None
        if self.reconstruction == "gaussian":
            num_pixels = math.prod(int(d) for d in x.shape[1:])
            batch_variance = losses.optimal_variance(losses.squared_error(x, out["logits"]), num_pixels)
            extra["variance"] = batch_variance
            if not training:  # score with the trained running average (the batch's own until it is set)
                stored = ops.convert_to_tensor(self.variance_layer.variance)
                variance = ops.where(stored > 0, stored, batch_variance)
        terms = losses.vae_loss(x, out["logits"], out["z_mean"], out["z_log_var"] if self.variational else None,
                                reconstruction=self.reconstruction, beta=self.beta, variance=variance,
                                recon_weight=self.recon_weight, kl=self.kl_estimate(out))
        return {**{name: ops.mean(value) for name, value in terms.items()}, **extra}

    def kl_estimate(self, out):
        """The per-example KL term of the forward pass ``out``, (batch,); None: the closed form against N(0, I)
        (``tfvae.losses.gaussian_kl``; none at all for a plain autoencoder). A model with another prior overrides it.
        """
        del out
        return None

    def prior_codes(self, noise):
        """Draws of the model's prior made from fixed standard-normal ``noise`` (n, latent), so that TensorBoard's
        samples follow a learned prior as it trains: the noise itself for N(0, I) (and for an ae, which has none).
        """
        return noise

    @classmethod
    def learned_prior(cls, encoder, encode, sample_indices=None):
        """The model's own learned prior p(z) in a trained run, or None when it has none (the prior is N(0, I)).

        The hook behind the ``learned`` sampler (``tfvae.api.Run.sampler("learned")``), read from the run's files,
        never fitted. A model with a learned prior returns an object with ``sample(n, seed, temperature=1.0)``
        -> float32 (n, latent) codes (reproducible from ``seed``; the temperature as ``tfvae.samplers`` defines it,
        checked by ``tfvae.picture_arrays.check_temperature``) and, where its density is known, ``log_prob(z)``:
        log p(z) per code as a tensor, which the likelihood (IWAE) and the KL use in place of N(0, I).

        Args:
          encoder: the run's trained Keras encoder (encoder.keras).
          encode: images in [0, 1] -> (z_mean, z_log_var) through the run's one forward path
            (``tfvae.inference.Inference.encode`` with ``encoder``).
          sample_indices: ``(n, seed, temperature)`` -> int32 (n, h, w) index grids drawn from the run's PixelCNN
            prior (prior.keras, read on the first draw), for a model whose codes are grids of codebook indices.
        """
        del encoder, encode, sample_indices
        return None

    def _update_trackers(self, terms, weight):
        """Adds the batch's terms to the epoch's means, each weighted by the batch's ``weight`` examples."""
        for tracker, name in ((self.loss_tracker, "loss"), (self.reconstruction_tracker, "reconstruction"),
                              (self.kl_tracker, "kl")):
            track(tracker, terms[name], weight)
        if "variance" in terms:
            track(self.variance_tracker, terms["variance"], weight)
        if self.critic is not None:
            self.critic.update_trackers(terms, weight)
        logs = {m.name: m.result() for m in self.metrics if m.name in terms}  # (the critic's scales: training only)
        if _across_workers(self.distribute_strategy):
            # Keras 3 averages each worker's logs with strategy.reduce(MEAN, axis=0), which needs an axis to
            # reduce: give the scalars one (tensorflow/tensorflow#72388). The averaged logs are scalars again.
            logs = {k: ops.reshape(v, (1,)) for k, v in logs.items()}
        return logs

    def train_step(self, batch):
        batch = self.as_batch(batch)
        replicas = self.distribute_strategy.num_replicas_in_sync
        critic = self.critic
        with tf.GradientTape(persistent=critic is not None) as tape:
            out = self(batch, training=True)
            terms = self.loss_terms(batch, out, training=True)
            # Keras sums gradients over replicas: divide so the update is that of the global-batch mean.
            loss = terms["loss"] / replicas
            loss = self.optimizer.scale_loss(loss)  # no-op unless mixed precision wraps the optimizer
            if critic is not None:
                terms.update(critic.terms(batch["image"], out["logits"], training=True))
        variables = self.autoencoder_variables
        if critic is None:
            grads = tape.gradient(loss, variables)
        else:  # the hook: the sharpness terms join the gradient, and the discriminator takes its own step
            scale = self.optimizer.scale_loss(ops.convert_to_tensor(1.0 / replicas))
            grads, scales = critic.generator_gradients(tape, terms["loss"], terms, out["logits"], variables, scale)
            terms.update(scales)
            critic.train_discriminator(tape, terms, replicas)
            del tape
        if replicas > 1 and isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer):
            grads = skip_together(grads)
        self.optimizer.apply_gradients(zip(grads, variables))
        if "variance" in terms:
            self.variance_layer.update(terms["variance"])
        return self._update_trackers(terms, batch_weight(batch))

    def test_step(self, batch):
        batch = self.as_batch(batch)
        out = self(batch, training=False)
        terms = self.loss_terms(batch, out, training=False)
        if self.critic is not None:
            terms.update(self.critic.terms(batch["image"], out["logits"], training=False))
        return self._update_trackers(terms, batch_weight(batch))


def skip_together(grads):
    """This replica's gradients, made non-finite when any replica's are (the replicas' gradients are not yet summed).

    Under mixed_float16 the LossScaleOptimizer skips a step, and halves its loss scale, when it sees an overflow,
    but it checks this replica's gradients only (Keras 3.15); another replica's overflow reached Adam as inf
    through the sum. With every replica's gradients non-finite, every replica skips the step together.
    """
    overflowed = ops.cast(ops.logical_not(ops.all(ops.stack([ops.all(ops.isfinite(g)) for g in grads
                                                              if g is not None]))), "float32")
    overflowed = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, overflowed)
    return [g if g is None else ops.where(overflowed > 0, ops.full_like(g, float("nan")), g) for g in grads]


def _across_workers(strategy):
    """Whether ``strategy`` is a MultiWorkerMirroredStrategy over more than one worker."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and \
        _worker_count(strategy.cluster_resolver) > 1


def _worker_count(resolver):
    """The workers of the cluster a ``tf.distribute.cluster_resolver.ClusterResolver`` describes, counted as
    TensorFlow counts them: its chief and workers (for an evaluator: the evaluators); 0 without a cluster."""
    cluster = resolver.cluster_spec().as_dict()
    kinds = ("evaluator",) if resolver.task_type == "evaluator" else ("chief", "worker")
    return sum(len(cluster.get(kind, [])) for kind in kinds)


class VAE(Autoencoder):
    """Variational autoencoder: loss = reconstruction + beta * KL(q(z|x) || N(0, I)) (Kingma & Welling 2014)."""

    title = "variational autoencoder"
    description = "variational autoencoder: q(z|x) = N(mu, sigma^2), prior N(0, I)"
    variational = True
    default_sampler = "prior"


class CVAE(VAE):
    """Conditional VAE: encoder and decoder both see the one-hot class label (Sohn et al. 2015)."""

    title = "conditional VAE"
    description = "conditional VAE: encoder and decoder see the one-hot class label"
    conditional = True
