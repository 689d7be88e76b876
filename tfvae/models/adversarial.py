r"""Sharpness terms for the autoencoder family: an adversarial term and a feature-matching term (off by default).

A VAE with a factorised Gaussian or Bernoulli decoder is fitted by the pixel-wise likelihood alone; where several
sharp images are plausible for one code, the likelihood's optimum is their blurred, desaturated mean. Two extra
objectives pull the decoder towards sharp images, both built on one small discriminator D trained in the same
``fit``, and both EXTRA objectives: the logged ``loss``, ``reconstruction`` and ``kl`` stay the model's ELBO terms,
so test likelihoods stay honest (they are those of the same decoder, which no longer maximises them alone).

The discriminator
-----------------
A PatchGAN-style critic (Isola et al. 2017): stride-2 4x4 convolutions with LeakyReLU(0.2), as many and as wide
as the encoder's (``build_model`` passes its ``filters``), then a 3x3 convolution to one logit per patch (a 4x4
grid for a 64x64 image through four layers). Every convolution is spectrally normalised
(Miyato et al. 2018: W / sigma_max(W), sigma estimated by one power iteration per training step, its vector a
saved non-trainable weight), which bounds D's Lipschitz constant; D has no batch normalisation, whose batch
statistics are noisy at batch 32 and couple the real and fake halves of a batch. D is trained with the hinge
loss (Lim & Ye 2017; Miyato et al.), per patch p and averaged over patches and the batch:

    d_loss = mean_p[relu(1 - D_p(x))] + mean_p[relu(1 + D_p(x_hat))],     x_hat = sigmoid(decoder logits),

whose gradient vanishes on patches D already classifies with margin 1, so D cannot run away from a generator
that still reconstructs badly; its generator side is ``g_loss = -mean_p D_p(x_hat)``. D sees one batch of 2B
images, the B real ones and their B reconstructions, in one forward pass per step. It is not conditioned on the
CVAE's label.

The feature-matching term
-------------------------
Larsen et al. 2016 (VAE/GAN, "learned similarity metric"): a Gaussian observation model in D's hidden features
instead of pixels, i.e. per image the squared distance between the features of x and of x_hat,

    feature_match = sum_l sum_{i,j,c} (phi_l(x) - phi_l(x_hat))^2        (summed per image, mean over the batch)

over every LeakyReLU output phi_l of D. The features are learnt, by D's hinge loss, to tell real from
reconstructed images, so they weigh exactly what the pixel loss misses (edges, texture, saturation). With
``feature_match > 0`` and ``adversarial = 0`` D is still trained (its features need it); only its
adversarial gradient is withheld from the decoder. No pretrained network (VGG) is used: there is none offline.

Weights
-------
Both terms get an adaptive scale, as VQGAN's (Esser et al. 2021), measured at the decoder's output (the logits)
rather than at its last layer's kernel, which costs no second pass through the decoder:

    lambda_k = w_k * ||d ELBO / d logits|| / (||d term_k / d logits|| + 1e-4),  clipped to [0, 1e4], no gradient,

so ``w_k`` is the size of the term's pull on the image as a fraction of the ELBO's, whatever the reconstruction
loss ("bce", "gaussian" at any variance, "mse") and image size: a per-pixel scale would differ by ~100x between
a Bernoulli decoder and a calibrated Gaussian one with sigma^2 = 0.01. The encoder and decoder descend

    ELBO-loss + lambda_adv * g_loss + lambda_fm * feature_match,

in one backward pass, and D descends ``d_loss`` with its own Adam (beta_1 = 0.5, beta_2 = 0.9, the usual GAN
setting), both from the same forward pass (simultaneous updates). Under a multi-replica strategy each replica
uses the global batch's norms (``adaptive_scale``), and both losses are divided by the replica count, as the
ELBO is: two replicas make the update one device makes.
"""

import keras
import tensorflow as tf
from keras import ops

from tfvae.models.trackers import track

DISCRIMINATOR_FILTERS = (32, 64, 128)
LEAKY_SLOPE = 0.2
ADAPTIVE_EPS = 1e-4
ADAPTIVE_MAX = 1e4
DISCRIMINATOR_LR_RATIO = 0.2  # D's Adam runs the generator's learning-rate schedule scaled by this
METRIC_NAMES = ("d_loss", "g_loss", "feature_match")


@keras.saving.register_keras_serializable(package="tfvae")
class SpectralConv2D(keras.layers.Conv2D):
    """``Conv2D`` whose kernel is divided by its largest singular value (Miyato et al. 2018).

    The kernel, reshaped to (k * k * in, out), has sigma estimated by one power iteration from the saved vector
    ``u``; ``u`` advances in training calls only (it is state, saved in checkpoints, averaged across replicas).
    The gradient flows through sigma (u and v are constants of the step), as in the paper.
    """

    def __init__(self, *args, power_iterations=1, **kwargs):
        super().__init__(*args, **kwargs)
        self.power_iterations = power_iterations

    def build(self, input_shape):
        super().build(input_shape)
        self.u = self.add_weight(shape=(self.filters,), initializer="random_normal", trainable=False, name="u",
                                 aggregation="mean")

    def call(self, inputs, training=False):
        w = ops.reshape(ops.cast(self.kernel, "float32"), (-1, self.filters))
        u = ops.cast(self.u, "float32")
        for _ in range(self.power_iterations):
            v = _unit(ops.matmul(w, u))
            u = _unit(ops.matmul(ops.transpose(w), v))
        u, v = ops.stop_gradient(u), ops.stop_gradient(v)
        sigma = ops.sum(v * ops.matmul(w, u))
        if training:
            self.u.assign(ops.cast(u, self.u.dtype))
        kernel = ops.cast(ops.cast(self.kernel, "float32") / sigma, self.compute_dtype)
        outputs = self.convolution_op(inputs, kernel)
        if self.use_bias:
            outputs = outputs + ops.cast(self.bias, self.compute_dtype)
        return self.activation(outputs) if self.activation is not None else outputs

    # Keras's convolutions save their kernel and bias only: ``u`` is added, so checkpoints resume the power iteration.
    # (``kernel`` is the kernel variable itself: this layer never enables LoRA, which would make it a sum.)
    def _saved_variables(self):
        return [self.kernel, *([self.bias] if self.use_bias else []), self.u]

    def save_own_variables(self, store):
        if self.built:
            for i, variable in enumerate(self._saved_variables()):
                store[str(i)] = variable

    def load_own_variables(self, store):
        if not self.built:
            return
        variables = self._saved_variables()
        if len(store.keys()) != len(variables):
            raise ValueError(f"layer {self.name!r} expected {len(variables)} variables, the file holds "
                             f"{len(store.keys())}")
        for i, variable in enumerate(variables):
            variable.assign(store[str(i)])

    def get_config(self):
        return {**super().get_config(), "power_iterations": self.power_iterations}


@keras.saving.register_keras_serializable(package="tfvae")
class LeakyReLU(keras.layers.Layer):
    """max(x, slope * x). Keras's LeakyReLU is TensorFlow's LeakyRelu op, which grappler's remapper fuses with the
    convolution and its bias; the training step's second gradient through D then fails that rewrite with an
    error line in every run's output ("remapper failed: ... LeakyReluGrad ... missing node"). Same values."""

    def __init__(self, negative_slope=LEAKY_SLOPE, **kwargs):
        super().__init__(**kwargs)
        self.negative_slope = negative_slope

    def call(self, inputs):
        return ops.maximum(inputs, self.negative_slope * inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


def _unit(x):
    return x / (ops.sqrt(ops.sum(ops.square(x))) + 1e-12)


def build_discriminator(image_shape, filters=DISCRIMINATOR_FILTERS, name="discriminator"):
    """Builds the PatchGAN critic (see the module docstring).

    Args:
      image_shape: (height, width, channels) of the images, pixels in [0, 1].
      filters: filters of each stride-2 layer.
      name: model name.

    Returns:
      A functional ``keras.Model`` from images to a dict: ``logits`` (B, h, w, 1), one per patch, in float32,
      and ``features``, the list of the LeakyReLU outputs.
    """
    # Under mixed_float16 the critic computes in float32: its hinge gradients are small and no loss scale of its
    # own keeps them above float16's underflow. (bfloat16 has float32's exponent range: it keeps the policy.)
    dtype = "float32" if keras.mixed_precision.global_policy().name == "mixed_float16" else None
    image = keras.Input(tuple(image_shape), name="image")
    h = keras.layers.Rescaling(2.0, offset=-1.0, dtype=dtype)(image)
    features = []
    for f in filters:
        h = SpectralConv2D(f, 4, strides=2, padding="same", dtype=dtype)(h)
        h = LeakyReLU(LEAKY_SLOPE, dtype=dtype)(h)
        features.append(h)
    logits = SpectralConv2D(1, 3, padding="same", name="patch_logits", dtype=dtype)(h)
    logits = keras.layers.Activation("linear", name="logits_float32", dtype="float32")(logits)
    return keras.Model(image, {"logits": logits, "features": features}, name=name)


def hinge_discriminator_loss(real_logits, fake_logits):
    """D's hinge loss, mean over patches and batch: mean relu(1 - real) + mean relu(1 + fake)."""
    real_logits, fake_logits = ops.cast(real_logits, "float32"), ops.cast(fake_logits, "float32")
    return ops.mean(ops.relu(1.0 - real_logits)) + ops.mean(ops.relu(1.0 + fake_logits))


def hinge_generator_loss(fake_logits):
    """The generator's side of the hinge loss: -mean of D's logits on the reconstructions."""
    return -ops.mean(ops.cast(fake_logits, "float32"))


def feature_distance(real_features, fake_features):
    """Squared distance between two lists of feature maps, summed per image over every map, mean over the batch."""
    total = 0.0
    for real, fake in zip(real_features, fake_features):
        diff = ops.cast(real, "float32") - ops.cast(fake, "float32")
        total = total + ops.sum(ops.reshape(ops.square(diff), (ops.shape(diff)[0], -1)), axis=-1)
    return ops.mean(total)


def adaptive_scale(weight, reference_grad, term_grad):
    """VQGAN's adaptive weight, at the logits: weight * ||reference_grad|| / (||term_grad|| + eps), clipped.

    The norms are those of the global batch's gradients: under a multi-replica strategy each replica holds its
    rows' gradient of its own mean, and the squared norms are summed across replicas (the global mean's gradient
    is the replicas' divided by their count), so every replica uses the scale one device would.
    """
    squares = ops.stack([ops.sum(ops.square(reference_grad)), ops.sum(ops.square(term_grad))])
    context = tf.distribute.get_replica_context()
    replicas = 1
    if context is not None and context.num_replicas_in_sync > 1:
        squares = context.all_reduce(tf.distribute.ReduceOp.SUM, squares)
        replicas = context.num_replicas_in_sync
    norms = ops.sqrt(squares) / replicas
    return ops.stop_gradient(ops.clip(weight * norms[0] / (norms[1] + ADAPTIVE_EPS), 0.0, ADAPTIVE_MAX))


@keras.saving.register_keras_serializable(package="tfvae")
class Critic(keras.layers.Layer):
    """The discriminator, its optimizer (set by ``attach_optimizer``), the terms' weights and their trackers.

    An attribute of the model (``model.critic``), so that its weights, its power-iteration vectors and its
    optimizer's state are saved in the model's checkpoints. Not part of the exported encoder/decoder: sampling
    never needs it.
    """

    def __init__(self, discriminator, adversarial=0.0, feature_match=0.0, **kwargs):
        super().__init__(**kwargs)
        self.discriminator = discriminator
        self.adversarial = float(adversarial)
        self.feature_match = float(feature_match)
        self.optimizer = None
        self.trackers = [keras.metrics.Mean(name=name) for name in METRIC_NAMES]
        self.scale_names = [name for name, weight in (("g_scale", self.adversarial),
                                                       ("fm_scale", self.feature_match)) if weight]
        self.trackers += [keras.metrics.Mean(name=name) for name in self.scale_names]
        self.built = True

    def attach_optimizer(self, optimizer):
        """Gives D its optimizer and builds it (in the strategy's scope: call inside it)."""
        self.optimizer = optimizer
        optimizer.build(self.discriminator.trainable_variables)

    def terms(self, images, logits, training=False):
        """D's outputs on a batch of real ``images`` and the reconstructions of ``logits``, as losses.

        Returns:
          dict of float32 scalars: ``d_loss``, ``g_loss`` and ``feature_match`` (see the module docstring).
        """
        real = ops.cast(images, "float32")
        fake = ops.sigmoid(ops.cast(logits, "float32"))
        out = self.discriminator(ops.concatenate([real, fake], axis=0), training=training)
        batch = ops.shape(real)[0]
        real_logits, fake_logits = out["logits"][:batch], out["logits"][batch:]
        real_features = [f[:batch] for f in out["features"]]
        fake_features = [f[batch:] for f in out["features"]]
        return {"d_loss": hinge_discriminator_loss(real_logits, fake_logits),
                "g_loss": hinge_generator_loss(fake_logits),
                "feature_match": feature_distance(real_features, fake_features)}

    def generator_gradients(self, tape, elbo, terms, logits, variables, scale):
        """Gradients of ELBO-loss + lambda_adv * g_loss + lambda_fm * feature_match for ``variables``.

        Args:
          tape: a persistent GradientTape that recorded the forward pass.
          elbo: the batch's ELBO loss (the model's ``loss``, unscaled).
          terms: ``self.terms(...)`` of the same pass.
          logits: the decoder's logits of the same pass.
          variables: the encoder's and decoder's trainable variables.
          scale: the factor each loss is multiplied by for the gradient (1 / replicas, times a loss scale).

        Returns:
          (gradients, {"g_scale": ..., "fm_scale": ...} for the terms that are on).
        """
        reference = tape.gradient(elbo, logits)
        targets, output_gradients, scales = [elbo], [scale], {}
        for name, scale_name, weight in (("g_loss", "g_scale", self.adversarial),
                                         ("feature_match", "fm_scale", self.feature_match)):
            if weight:
                scales[scale_name] = adaptive_scale(weight, reference, tape.gradient(terms[name], logits))
                targets.append(terms[name])
                output_gradients.append(scale * scales[scale_name])
        grads = tape.gradient(targets, variables, output_gradients=[ops.cast(g, "float32") for g in output_gradients])
        return grads, scales

    def train_discriminator(self, tape, terms, replicas):
        """One step of D's optimizer on ``terms["d_loss"]`` (recorded by the persistent ``tape``)."""
        variables = self.discriminator.trainable_variables
        # The tape has stopped recording: the loss's factor (1 / replicas, times a loss scale) enters as its gradient.
        scale = ops.cast(self.optimizer.scale_loss(ops.convert_to_tensor(1.0 / replicas)), "float32")
        grads = tape.gradient(terms["d_loss"], variables, output_gradients=scale)
        self.optimizer.apply_gradients(zip(grads, variables))

    def update_trackers(self, values, weight):
        """Adds the batch's ``values`` to the trackers named like them, weighted by its ``weight`` examples."""
        for tracker in self.trackers:
            if tracker.name in values:
                track(tracker, values[tracker.name], weight)

    def get_config(self):
        return {**super().get_config(), "adversarial": self.adversarial, "feature_match": self.feature_match,
                "discriminator": keras.saving.serialize_keras_object(self.discriminator)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["discriminator"] = keras.saving.deserialize_keras_object(config["discriminator"])
        return cls(**config)


def discriminator_optimizer(learning_rate):
    """D's Adam: the generator's learning rate (or schedule) times ``DISCRIMINATOR_LR_RATIO``."""
    if isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        return keras.optimizers.Adam(_ScaledSchedule(learning_rate, DISCRIMINATOR_LR_RATIO), beta_1=0.5, beta_2=0.9)
    return keras.optimizers.Adam(DISCRIMINATOR_LR_RATIO * learning_rate, beta_1=0.5, beta_2=0.9)


class _ScaledSchedule(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, schedule, factor):
        self.schedule, self.factor = schedule, factor

    def __call__(self, step):
        return self.factor * self.schedule(step)

    def get_config(self):
        return {"schedule": keras.saving.serialize_keras_object(self.schedule), "factor": self.factor}

