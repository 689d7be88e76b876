"""Custom layers, registered so saved models load with ``safe_mode=True``."""

import keras
import tensorflow as tf
from keras import ops

# Log-variances are clamped to this range so that exp(log_var) can neither overflow (float16 overflows
# at exp(11.1)) nor underflow to an exactly-zero variance.
LOG_VAR_MIN = -10.0
LOG_VAR_MAX = 10.0


@keras.saving.register_keras_serializable(package="tfvae")
class Sampling(keras.layers.Layer):
    """Reparameterised draw z = z_mean + exp(z_log_var / 2) * eps, with eps ~ N(0, I).

    The Keras post wraps its ``sampling`` function in a ``Lambda`` layer. A Lambda over a registered function
    loads with ``safe_mode=True``, but it cannot own random state, so its noise would come from the
    process-global generator: a resumed run would replay the noise stream from its start, and the stream
    would shift whenever any other code draws a random number. This layer owns a ``SeedGenerator``
    whose state is a (non-trainable) variable: it advances on every compiled step (fresh noise each step),
    is reproducible from ``seed``, and is saved in checkpoints so resuming continues the stream.
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        eps = keras.random.normal(ops.shape(z_mean), dtype=z_mean.dtype, seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * eps

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable(package="tfvae")
class ClipLogVar(keras.layers.Layer):
    """Clamps a log-variance to [LOG_VAR_MIN, LOG_VAR_MAX] (see the constants)."""

    def call(self, inputs):
        return ops.clip(inputs, LOG_VAR_MIN, LOG_VAR_MAX)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="tfvae")
class Conv2DTranspose(keras.layers.Conv2DTranspose):
    """``keras.layers.Conv2DTranspose`` whose bias gradient is summed in float32 under mixed precision.

    Keras adds a transposed convolution's bias with ``BiasAdd``. Under ``mixed_bfloat16`` on CPU
    (TensorFlow 2.21), ``BiasAddGrad`` then sums the bias gradient over batch x height x width (100,352 values
    for a 128 x 28 x 28 output) in bfloat16, whose 8-bit mantissa stops absorbing small terms once the sum
    is large: the gradient comes out too large and a short run trains worse (the figures:
    docs/performance.md#how-the-defaults-were-chosen). Convolutions proper are unaffected (oneDNN fuses their
    bias gradient and accumulates in float32). Here the bias gradient is summed in float32 and rounded once; the
    forward pass is unchanged.
    """

    def call(self, inputs):
        if not self.use_bias or self.compute_dtype == "float32":
            return super().call(inputs)
        outputs = ops.conv_transpose(inputs, self.kernel, strides=list(self.strides), padding=self.padding,
                                     output_padding=self.output_padding, dilation_rate=self.dilation_rate,
                                     data_format=self.data_format)
        outputs = bias_add_float32_gradient(outputs, self.bias, self.data_format)
        return self.activation(outputs) if self.activation is not None else outputs


def bias_add_float32_gradient(x, bias, data_format="channels_last"):
    """``tf.nn.bias_add`` whose bias gradient is accumulated in float32 (see ``Conv2DTranspose``)."""
    channel_axis = -1 if data_format == "channels_last" else 1
    tf_format = "NHWC" if data_format == "channels_last" else "NCHW"

    @tf.custom_gradient
    def add(x, bias):
        def grad(dy):
            axes = [a for a in range(len(dy.shape)) if a != channel_axis % len(dy.shape)]
            return dy, tf.cast(tf.reduce_sum(tf.cast(dy, tf.float32), axis=axes), bias.dtype)

        return tf.nn.bias_add(x, bias, data_format=tf_format if len(x.shape) == 4 else None), grad

    return add(x, tf.cast(bias, x.dtype))


@keras.saving.register_keras_serializable(package="tfvae")
class DecoderVariance(keras.layers.Layer):
    """The last layer of a Gaussian decoder (``loss=gaussian``): passes the logits through and holds sigma^2.

    The decoder's likelihood is N(x; sigmoid(logits), sigma^2 I) with one variance shared by all pixels. Training
    sets sigma^2 to each batch's analytic optimum, its mean squared error per pixel (``tfvae.losses``); this
    layer keeps an exponential moving average of those optima (``update``, weight ``1 - momentum`` on the newest,
    about the last ``1 / (1 - momentum)`` steps), so that the variance the model was trained with is saved in
    checkpoints and in decoder.keras, and evaluation scores test images with it. 0 until the first update. It is
    not a trainable weight: no gradient reaches it.
    """

    def __init__(self, momentum=0.98, **kwargs):
        super().__init__(**kwargs)
        self.momentum = momentum
        # "mean": under a multi-replica strategy each replica assigns its own batch's estimate; they are averaged.
        self.variance = self.add_weight(shape=(), initializer="zeros", trainable=False, name="variance",
                                        aggregation="mean")

    def call(self, logits):
        return logits

    def update(self, batch_variance):
        """Moves the average towards ``batch_variance`` (the first update sets it)."""
        batch_variance = ops.cast(batch_variance, self.variance.dtype)
        old = ops.convert_to_tensor(self.variance)
        self.variance.assign(ops.where(old > 0, self.momentum * old + (1.0 - self.momentum) * batch_variance,
                                       batch_variance))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum}
