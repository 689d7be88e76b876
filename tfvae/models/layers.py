"""Custom layers, registered so saved models load with ``safe_mode=True``."""

import keras
from keras import ops

# Log-variances are clamped to this range so that exp(log_var) can neither overflow (float16 overflows
# at exp(11.1)) nor underflow to an exactly-zero variance.
LOG_VAR_MIN = -10.0
LOG_VAR_MAX = 10.0


@keras.saving.register_keras_serializable(package="tfvae")
class Sampling(keras.layers.Layer):
    """Reparameterised draw z = z_mean + exp(z_log_var / 2) * eps, with eps ~ N(0, I).

    The design card names a ``Lambda`` here. A Lambda over a registered function loads with
    ``safe_mode=True``, but it cannot own random state, so its noise would come from the
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
