"""A Keras user's first lines work: build a model, compile it, ``fit`` it on numpy arrays or a tf.data pipeline of
plain tensors, with Keras's own callbacks (keras.io's VAE example ends with ``vae.fit(mnist_digits, epochs=30,
batch_size=128)``)."""

import numpy as np
import pytest

from tfvae import models


def _digits(n=96, side=8, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(3, size=n)
    x = np.zeros((n, side, side, 1), "uint8")
    for i, label in enumerate(y):  # three classes of bars, learnable in a few steps
        x[i, :, 2 * label: 2 * label + 2] = 255
    return x, y


def test_fit_on_a_numpy_array_of_images_with_keras_callbacks(tmp_path):
    import keras

    x, _ = _digits()
    model = models.build_model("vae", x.shape[1:], 2, arch="mlp", hidden=16, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    log = tmp_path / "log.csv"
    history = model.fit(x, epochs=4, batch_size=32, verbose=0, validation_data=(x[:32],),
                        callbacks=[keras.callbacks.CSVLogger(str(log)),
                                   keras.callbacks.EarlyStopping(monitor="val_loss", patience=10)])
    losses = history.history["loss"]
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert {"loss", "reconstruction", "kl", "val_loss"} <= set(history.history)
    assert log.read_text().splitlines()[0].startswith("epoch")
    # uint8 images are scaled to [0, 1]: the same posterior (its closed-form KL, free of the sampling noise)
    as_float = model.evaluate(x.astype("float32") / 255.0, batch_size=96, verbose=0, return_dict=True)
    assert model.evaluate(x, batch_size=96, verbose=0, return_dict=True)["kl"] == pytest.approx(as_float["kl"],
                                                                                               rel=1e-5)


def test_a_conditional_model_fits_images_and_class_ids_and_needs_them():
    import keras

    x, y = _digits()
    model = models.build_model("cvae", x.shape[1:], 2, arch="mlp", hidden=16, num_classes=3, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    one_hot = np.eye(3, dtype="float32")[y]  # one-hot rows work as well as ids
    ids = model.evaluate(x, y, batch_size=96, verbose=0, return_dict=True)
    rows = model.evaluate(x, one_hot, batch_size=96, verbose=0, return_dict=True)
    assert ids["kl"] == pytest.approx(rows["kl"], rel=1e-5)  # the same posteriors (KL is free of the noise)
    shuffled = model.evaluate(x, (y + 1) % 3, batch_size=96, verbose=0, return_dict=True)
    assert shuffled["kl"] != pytest.approx(ids["kl"], rel=1e-5)  # and the labels do reach the encoder
    with pytest.raises(ValueError, match="takes class labels: fit\\(x, y\\)"):
        model.compute_terms(x[:4].astype("float32") / 255.0)


def test_fit_on_a_tf_data_pipeline_of_plain_tensors():
    import keras
    import tensorflow as tf

    x, _ = _digits()
    model = models.build_model("wae", x.shape[1:], 2, arch="mlp", hidden=16, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    data = tf.data.Dataset.from_tensor_slices(x.astype("float32") / 255.0).batch(32)
    history = model.fit(data, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0] and "penalty" in history.history
