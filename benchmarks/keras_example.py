"""The keras.io "Variational AutoEncoder" example, reproduced as published, as a baseline.

Sigmoid decoder output, ``binary_crossentropy`` on probabilities summed over pixels, the KL term, a custom
``train_step`` and a plain ``fit`` on a NumPy array (batch 128, Adam 1e-3, latent 2). The only addition
is a ``test_step`` computing the same loss, so a test loss can be compared with tfvae's.

    python benchmarks/keras_example.py --dataset=fashion_mnist --epochs=30 --output=keras_example.json
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfvae import startup  # noqa: E402

startup.quiet_tensorflow_startup()  # TensorFlow without its C++ start-up notices and info logs

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402
from keras import layers, ops  # noqa: E402


class Sampling(layers.Layer):
    """Uses (z_mean, z_log_var) to sample z, the vector encoding a digit."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(1337)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        batch = ops.shape(z_mean)[0]
        dim = ops.shape(z_mean)[1]
        epsilon = keras.random.normal(shape=(batch, dim), seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon


def build_encoder(latent_dim=2):
    encoder_inputs = keras.Input(shape=(28, 28, 1))
    x = layers.Conv2D(32, 3, activation="relu", strides=2, padding="same")(encoder_inputs)
    x = layers.Conv2D(64, 3, activation="relu", strides=2, padding="same")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(16, activation="relu")(x)
    z_mean = layers.Dense(latent_dim, name="z_mean")(x)
    z_log_var = layers.Dense(latent_dim, name="z_log_var")(x)
    z = Sampling()([z_mean, z_log_var])
    return keras.Model(encoder_inputs, [z_mean, z_log_var, z], name="encoder")


def build_decoder(latent_dim=2):
    latent_inputs = keras.Input(shape=(latent_dim,))
    x = layers.Dense(7 * 7 * 64, activation="relu")(latent_inputs)
    x = layers.Reshape((7, 7, 64))(x)
    x = layers.Conv2DTranspose(64, 3, activation="relu", strides=2, padding="same")(x)
    x = layers.Conv2DTranspose(32, 3, activation="relu", strides=2, padding="same")(x)
    decoder_outputs = layers.Conv2DTranspose(1, 3, activation="sigmoid", padding="same")(x)
    return keras.Model(latent_inputs, decoder_outputs, name="decoder")


class VAE(keras.Model):
    def __init__(self, encoder, decoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.total_loss_tracker = keras.metrics.Mean(name="total_loss")
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")

    @property
    def metrics(self):
        return [self.total_loss_tracker, self.reconstruction_loss_tracker, self.kl_loss_tracker]

    def _loss_terms(self, data):
        z_mean, z_log_var, z = self.encoder(data)
        reconstruction = self.decoder(z)
        reconstruction_loss = ops.mean(
            ops.sum(keras.losses.binary_crossentropy(data, reconstruction), axis=(1, 2)))
        kl_loss = -0.5 * (1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var))
        kl_loss = ops.mean(ops.sum(kl_loss, axis=1))
        return reconstruction_loss + kl_loss, reconstruction_loss, kl_loss

    def _track(self, total_loss, reconstruction_loss, kl_loss):
        self.total_loss_tracker.update_state(total_loss)
        self.reconstruction_loss_tracker.update_state(reconstruction_loss)
        self.kl_loss_tracker.update_state(kl_loss)
        return {"loss": self.total_loss_tracker.result(),
                "reconstruction_loss": self.reconstruction_loss_tracker.result(),
                "kl_loss": self.kl_loss_tracker.result()}

    def train_step(self, data):
        with tf.GradientTape() as tape:
            total_loss, reconstruction_loss, kl_loss = self._loss_terms(data)
        grads = tape.gradient(total_loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        return self._track(total_loss, reconstruction_loss, kl_loss)

    def test_step(self, data):  # added: the example trains on train + test and reports no test loss
        return self._track(*self._loss_terms(data))


def build_vae(latent_dim=2):
    vae = VAE(build_encoder(latent_dim), build_decoder(latent_dim))
    vae.compile(optimizer=keras.optimizers.Adam())
    return vae


def define_flags():  # not at import: benchmarks/throughput.py imports this module next to train.py's flags
    flags.DEFINE_enum("dataset", "fashion_mnist", ["mnist", "fashion_mnist"], "Dataset (tfvae's loaders).")
    flags.DEFINE_string("data_dir", "", "As train.py's --data_dir.")
    flags.DEFINE_integer("epochs", 30, "Epochs (the example's 30).")
    flags.DEFINE_integer("max_examples", 0, "Cap on training examples (0: all).")
    flags.DEFINE_integer("seed", 0, "Global seed.")
    flags.DEFINE_string("output", "", "Write the per-epoch history and timings here as JSON.")


FLAGS = flags.FLAGS


def main(argv):
    del argv
    from tfvae import data as data_lib

    keras.utils.set_random_seed(FLAGS.seed)
    ds = data_lib.load_dataset(FLAGS.dataset, data_dir=FLAGS.data_dir or None, max_examples=FLAGS.max_examples)
    x_train = ds.x_train.astype("float32") / 255.0
    x_test = ds.x_test.astype("float32") / 255.0
    print(f"data: {ds.source}; {len(x_train)} train / {len(x_test)} test")
    vae = build_vae()
    start = time.perf_counter()
    history = vae.fit(x_train, epochs=FLAGS.epochs, batch_size=128, validation_data=(x_test,), verbose=2)
    seconds = time.perf_counter() - start
    test = vae.evaluate(x_test, batch_size=128, verbose=0, return_dict=True)
    print(f"keras example: final test loss {test['loss']:.2f} (reconstruction {test['reconstruction_loss']:.2f}, "
          f"KL {test['kl_loss']:.2f}) after {FLAGS.epochs} epochs, {seconds:.0f} s")
    if FLAGS.output:
        with open(FLAGS.output, "w") as f:
            json.dump({"history": history.history, "test": test, "seconds": seconds,
                       "source": ds.source}, f, indent=2)


if __name__ == "__main__":
    define_flags()
    app.run(main)
