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


# -- a run directory from your own model or arrays: tfvae.save_run and tfvae.train(config, data=...) ----------------

def _tiny_config(workdir, **overrides):
    from tfvae.config import Config

    return Config(**{**dict(model="vae", arch="mlp", hidden=16, epochs=1, batch_size=32, steps_per_execution=1,
                            workdir=str(workdir)), **overrides})


def test_save_run_writes_a_run_that_load_sample_py_and_evaluate_py_use(tmp_path, offline_env):
    """A model fitted by hand (a Keras callback too), saved with the images it was fitted on and held-out ones:
    tfvae.load samples from it, sample.py draws the 15x15 grid, evaluate.py scores it. About 15 s."""
    import json

    import keras

    import tfvae
    from tests.conftest import run_scripts

    x, _ = _digits()
    model = models.build_model("vae", x.shape[1:], 2, arch="mlp", hidden=16, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(x[16:], epochs=2, batch_size=32, verbose=0, validation_data=(x[:16],),
              callbacks=[keras.callbacks.CSVLogger(str(tmp_path / "fit.csv"))])
    workdir = tmp_path / "runs" / "mine"
    lines = []
    assert tfvae.save_run(model, str(workdir), data=x[16:], test_data=x[:16], log=lines.append) == str(workdir)
    assert "wrote" in lines[0] and "data.npz" in lines[0]
    config = json.loads((workdir / "config.json").read_text())
    assert (config["model"], config["latent"], config["arch"], config["hidden"]) == ("vae", 2, "mlp", 16)
    assert (config["image_shape"], config["num_examples"], config["dataset"]) == ([8, 8, 1], 80, "arrays")
    assert (tmp_path / "runs" / "latest").read_text().strip() == "mine"

    said = []
    run = tfvae.load(str(tmp_path / "runs" / "latest"), log=said.append)
    assert run.sample(4).shape == (4, 8, 8, 1) and run.epochs_trained == 2 and not said  # no "state.json" line
    np.testing.assert_array_equal(run.test_data()[0], x[:16].astype("float32") / 255.0)
    np.testing.assert_allclose(run.encode(x[:4])[0], model.encoder.predict(x[:4] / 255.0, verbose=0)["z_mean"],
                               atol=1e-5)
    sample, evaluate = run_scripts([["sample.py", f"--workdir={workdir}", "--grid", "15"],
                                    ["evaluate.py", f"--workdir={workdir}", "--num_samples=4", "--num_images=16",
                                     "--sample_count=64", "--elbo_samples=2"]], offline_env)
    assert (workdir / "grid.png").is_file() and "grid.png" in sample.stdout
    from tfvae.explorer.run_cache import describe

    shown = describe(run, "mine")  # what the explorer's page gets: the test codes, their ranges
    assert shown["test_images"] == 16 and len(shown["codes"]) == 16
    scored = json.loads((workdir / "eval.json").read_text())
    assert scored["run"]["num_test_images"] == 16 and scored["metrics"]["neg_elbo"] > 0 and "-ELBO" in evaluate.stdout


def test_save_run_refuses_what_it_cannot_write_truthfully(tmp_path):
    """One line each: not a tfvae model, images of another shape, a cvae's data without labels, a directory that
    train.py trained. Builds two models, fits none: about 2 s."""
    import keras

    import tfvae
    from tfvae.errors import TfvaeError

    x, y = _digits()
    vae = models.build_model("vae", x.shape[1:], 2, arch="mlp", hidden=16)
    cvae = models.build_model("cvae", x.shape[1:], 2, arch="mlp", hidden=16, num_classes=3)
    cases = [
        (lambda: tfvae.save_run(keras.Sequential([keras.Input((2,))]), str(tmp_path / "a")), "takes a tfvae model"),
        (lambda: tfvae.save_run(vae, str(tmp_path / "b"), data=np.zeros((8, 4, 4, 1), "uint8")),
         r"the data's images are \(4, 4, 1\), but a vae of \(8, 8, 1\)"),
        (lambda: tfvae.save_run(cvae, str(tmp_path / "c"), data=x), "a cvae takes class labels"),
        (lambda: tfvae.save_run(vae, str(tmp_path / "d"), data=x, dataset="mnist"), "data= and dataset="),
    ]
    (tmp_path / "trained" / "checkpoints").mkdir(parents=True)
    cases.append((lambda: tfvae.save_run(vae, str(tmp_path / "trained"), data=x), "holds a run that train.py"))
    for call, message in cases:
        with pytest.raises(TfvaeError, match=message) as raised:
            call()
        assert "\n" not in str(raised.value)
    assert not any((tmp_path / name).exists() for name in "abcd")  # nothing written
    tfvae.save_run(cvae, str(tmp_path / "e"), data=(x, y), log=lambda line: None)  # labelled: saved
    run = tfvae.load(str(tmp_path / "e"))
    assert run.num_classes == 3 and run.sample(3, label=2).shape == (3, 8, 8, 1)
    tfvae.save_run(vae, str(tmp_path / "f"), log=lambda line: None)  # no data: the prior's samples, no test set
    run = tfvae.load(str(tmp_path / "f"))
    assert run.sample(2).shape == (2, 8, 8, 1)
    with pytest.raises(TfvaeError, match=r"data.npz is missing; give the run its images .*save_run\(model, "
                                         r"workdir, data=...\)") as raised:
        run.test_data()
    assert "\n" not in str(raised.value)


def test_train_on_numpy_arrays_resumes_with_the_same_and_refuses_other_shapes(tmp_path, eager):
    """tfvae.train(config, data=(x, y)): a cvae on labelled uint8 arrays, a tenth held out; the run loads and
    samples; resuming with arrays of other shapes is one line; with none, the run's data.npz is used. About 8 s."""
    import tfvae
    from tfvae.errors import TfvaeError

    x, y = _digits()
    config = _tiny_config(tmp_path / "cvae", model="cvae")
    result = tfvae.train(config, data=(x, y), verbose=0, log=lambda line: None)
    assert result["config"].dataset == "arrays" and result["config"].num_examples == 86  # 96 - a tenth
    run = tfvae.load(str(tmp_path / "cvae"))
    assert run.num_classes == 3 and run.test_data()[0].shape == (10, 8, 8, 1)
    assert run.sample(3, label=1).shape == (3, 8, 8, 1)
    with pytest.raises(TfvaeError, match="was trained on other arrays .*86 train / 10 test images of 8x8x1.* than "
                                         "these .*45 train / 5 test") as raised:
        tfvae.train(_tiny_config(tmp_path / "cvae", model="cvae", epochs=2), data=(x[:50], y[:50]), verbose=0)
    assert "\n" not in str(raised.value)
    lines = []  # no arrays: the run's own (dataset arrays, read from its data.npz)
    tfvae.train(_tiny_config(tmp_path / "cvae", model="cvae", dataset="arrays"), verbose=0, log=lines.append)
    assert any("already finished 1 epochs" in line for line in lines)


def test_train_on_a_tf_data_pipeline_of_plain_tensors(tmp_path):
    """tfvae.train(config, data=pipeline): a batched tf.data pipeline of float images is read once into the run's
    arrays; the run loads. About 4 s."""
    import tensorflow as tf

    import tfvae

    x, _ = _digits()
    pipeline = tf.data.Dataset.from_tensor_slices(x.astype("float32") / 255.0).batch(32)
    result = tfvae.train(_tiny_config(tmp_path / "tf"), data=pipeline, verbose=0, log=lambda line: None)
    assert result["config"].num_examples == 86 and "tf.data pipeline" in result["config"].data_source
    run = tfvae.load(str(tmp_path / "tf"))
    x_test, _ = run.test_data()  # a tenth of the images, back from float to the 8 bits they were made of
    assert x_test.shape == (10, 8, 8, 1) and any(np.array_equal(x_test[0] * 255.0, image) for image in x)
    assert run.sample(2).shape == (2, 8, 8, 1)


@pytest.mark.parametrize("data, message", [
    (np.zeros((4, 8)), r"images of shape \(4, 8\); expected \(n, H, W, C\) or \(n, H, W\)"),
    (np.zeros((0, 8, 8)), r"data holds no images"),
    ((np.zeros((4, 8, 8), "uint8"), np.arange(3)), r"4 images but labels of shape \(3,\)"),
    (np.zeros((4, 8, 8, 4), "uint8"), r"4 channels .*drop the alpha channel"),
    (np.full((4, 8, 8), 2.0), r"float images must lie in \[0, 1\]"),
    ((np.zeros((4, 8, 8), "uint8"), np.array([0, 1, -1, 2])), r"labels must be class ids"),
    ("tf.data repeated", r"endless"),
])
def test_bad_data_is_one_line_before_anything_is_written(tmp_path, data, message):
    """Each in well under a second: the data is checked before the run directory is made."""
    import tensorflow as tf

    import tfvae
    from tfvae.errors import TfvaeError

    if isinstance(data, str):
        data = tf.data.Dataset.from_tensor_slices(np.zeros((4, 8, 8, 1), "float32")).repeat()
    with pytest.raises(TfvaeError, match=message) as raised:
        tfvae.train(_tiny_config(tmp_path / "run"), data=data, verbose=0)
    assert "\n" not in str(raised.value) and not (tmp_path / "run").exists()
