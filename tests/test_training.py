"""Training in-process: 2-replica equivalence, resume, run-directory checks, the library's errors."""

import csv
import functools
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests.conftest import tiny_run_config
from tfvae import training
from tfvae.config import Config
from tfvae.errors import TfvaeError
from tfvae.models import Sampling, build_model

tiny_config = functools.partial(tiny_run_config, batch_size=128, max_examples=256)


def _one_sgd_step(strategy, weights, batch, kind="ae", **network):
    with strategy.scope():
        model = build_model(kind, (28, 28, 1), 2, seed=0, pseudo_inputs=4, **network)
        model.compile(optimizer=keras.optimizers.SGD(0.5))  # SGD: unlike Adam, it sees the gradient's scale
    model.set_weights(weights)
    history = model.fit(tf.data.Dataset.from_tensor_slices(batch).batch(8), epochs=1, verbose=0, shuffle=False)
    return model.get_weights(), history.history["loss"][0]


# resnet: it has no normalisation layer, so no batch statistics that two replicas of 4 images would split.
# vqvae: its EMA codebook is set and moved by the counts and sums of the whole batch, summed over the replicas.
# gridvae: its KL is summed over a 7x7x2 grid of cells.
@pytest.mark.parametrize("kind,network", [("ae", {}), ("vamp", {}), ("ae", {"arch": "resnet", "filters": (8, 16)}),
                                          ("vqvae", {"codebook_size": 16}), ("gridvae", {"kl_weight": 1.0})],
                         ids=["ae", "vamp", "ae-resnet", "vqvae", "gridvae"])
def test_two_replicas_make_the_same_update_as_one_device(kind, network, monkeypatch):
    if kind in ("vamp", "gridvae"):  # z = z_mean: each replica would draw its own noise; the KL terms stay
        monkeypatch.setattr(Sampling, "call", lambda self, inputs: inputs[0])
    rng = np.random.default_rng(0)
    batch = {"image": rng.uniform(size=(8, 28, 28, 1)).astype("float32")}
    weights = build_model(kind, (28, 28, 1), 2, seed=0, pseudo_inputs=4, **network).get_weights()
    # Reduction through one device, not collective ops: collective instance keys can collide with another
    # MirroredStrategy's made earlier in the same test process.
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"],
                                              cross_device_ops=tf.distribute.ReductionToOneDevice())
    assert mirrored.num_replicas_in_sync == 2
    single_w, single_loss = _one_sgd_step(tf.distribute.get_strategy(), weights, batch, kind, **network)
    mirrored_w, mirrored_loss = _one_sgd_step(mirrored, weights, batch, kind, **network)
    assert any(not np.allclose(a, b) for a, b in zip(weights, single_w))  # the step did move the weights
    # Two replicas sum their halves' gradients in another order than one device, and oneDNN may pick other
    # kernels for a batch of 4 than of 8: float32 round-off, up to 1.7e-5 on the resnet's deeper stack on an
    # AVX2-only CPU. So each tensor's update is compared against its own largest step: a loss not divided by
    # the replicas (a step twice as long) or a gradient not summed (half) would be off by 100% or 50% of it.
    for w0, a, b in zip(weights, single_w, mirrored_w):
        step, error = np.abs(a - w0).max(), np.abs(b - a).max()
        assert error <= 0.01 * step + 1e-7, (w0.shape, error, step)
    assert mirrored_loss == pytest.approx(single_loss, rel=1e-5)  # the undivided loss is logged


def test_resume_continues_from_the_last_finished_epoch(mnist_dir, tmp_path, eager):
    workdir = tmp_path / "run"
    training.train(tiny_config(mnist_dir, workdir, epochs=1), verbose=0, log=lambda *_: None)
    messages = []
    result = training.train(tiny_config(mnist_dir, workdir, epochs=2), verbose=0, log=messages.append)
    assert any("resuming" in m and "after epoch 1" in m for m in messages)
    with open(workdir / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert result["epochs"] == 2
    state = json.loads((workdir / "checkpoints" / "state.json").read_text())
    assert {k: state[k] for k in ("epoch", "checkpoint")} == {"epoch": 2, "checkpoint": "ckpt-2.weights.h5"}
    assert len(state["noise"]) == 1  # the sampling layer's noise state, which save_weights leaves out
    # The last two end-of-epoch checkpoints are kept (--keep_checkpoints=2), each with its size and sha256.
    assert sorted(os.listdir(workdir / "checkpoints")) == ["ckpt-1.weights.h5", "ckpt-2.weights.h5", "state.json"]
    assert [(e["checkpoint"], e["size"]) for e in state["checkpoints"]] == [
        (f"ckpt-{epoch}.weights.h5", os.path.getsize(workdir / "checkpoints" / f"ckpt-{epoch}.weights.h5"))
        for epoch in (2, 1)]
    # The optimizer state came back too: 2 epochs x 2 steps (256 examples, batch 128).
    config = tiny_config(mnist_dir, workdir)
    config.image_shape, config.num_classes = (28, 28, 1), 10
    model = training.create_model(config)
    assert training.Checkpointer(str(workdir)).restore(model)["epoch"] == 2
    assert int(model.optimizer.iterations.numpy()) == 4
    # A finished run asked again trains nothing more, and leaves its exports as they were (samplers fitted to
    # encoder.keras stay valid); one that was damaged meanwhile is rebuilt from the last checkpoint.
    exported = {name: (workdir / name).read_bytes() for name in ("encoder.keras", "decoder.keras")}
    (workdir / "decoder.keras").write_bytes(exported["decoder.keras"][:100])
    messages.clear()
    training.train(tiny_config(mnist_dir, workdir, epochs=2), verbose=0, log=messages.append)
    assert any("nothing to train" in m for m in messages)
    with open(workdir / "history.csv") as f:
        assert len(list(csv.DictReader(f))) == 2
    assert (workdir / "encoder.keras").read_bytes() == exported["encoder.keras"]
    rebuilt = keras.saving.load_model(workdir / "decoder.keras", safe_mode=True)
    for a, b in zip(rebuilt.get_weights(), model.decoder.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_workdir_of_another_architecture_is_refused(mnist_dir, tmp_path):
    training.train(tiny_config(mnist_dir, tmp_path / "run"), verbose=0, log=lambda *_: None)
    with pytest.raises(TfvaeError, match="holds a different run.*latent=2 \\(asked 3\\)"):
        training.train(tiny_config(mnist_dir, tmp_path / "run", latent=3), verbose=0, log=lambda *_: None)
    # The loss sets what the decoder emits (a logistic mixture's 15 values per grey pixel, not 1 logit).
    with pytest.raises(TfvaeError, match="holds a different run.*loss=bce \\(asked logistic_mixture\\)"):
        training.train(tiny_config(mnist_dir, tmp_path / "run", loss="logistic_mixture"), verbose=0,
                       log=lambda *_: None)


def test_cvae_on_unlabelled_folder_is_refused(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(folder / f"{i}.png")
    config = Config(model="cvae", dataset="folder", data_dir=str(folder), image_size=8, channels=1,
                    workdir=str(tmp_path / "run"))
    with pytest.raises(TfvaeError, match="cvae needs class labels"):
        training.train(config, verbose=0, log=lambda *_: None)


@pytest.mark.parametrize("overrides,message", [
    (dict(model="gan"), "unknown --model='gan'"),
    (dict(dataset="cifar"), "unknown --dataset='cifar'"),
    (dict(latent=0), "--latent must be at least 1"),
    (dict(data_dir="/nonexistent/dir"), "does not exist"),
    (dict(dataset="folder", data_dir=""), "--dataset=folder needs --data_dir"),
])
def test_config_errors(overrides, message, tmp_path):
    with pytest.raises(TfvaeError, match=message.replace("(", "\\(").replace("[", "\\[")):
        Config(workdir=str(tmp_path), **overrides).validate()


def test_image_size_not_fitting_the_encoder_is_a_clear_error(mnist_dir, tmp_path):
    with pytest.raises(TfvaeError, match="not divisible by 4"):
        training.train(tiny_config(mnist_dir, tmp_path / "run", image_size=30), verbose=0, log=lambda *_: None)


def test_auto_strategy_on_a_cpu_machine_is_the_default_strategy():
    assert training.make_strategy("auto") is tf.distribute.get_strategy()
    assert training.make_strategy("mirrored", ["/cpu:0", "/cpu:1"]).num_replicas_in_sync == 2


def test_two_replicas_average_the_gaussian_decoders_variance():
    # Each replica assigns its own half-batch's optimal variance; the "mean" aggregation keeps their average,
    # which for equal halves is the whole batch's (the logged value averages the replicas the same way).
    batch = {"image": np.random.default_rng(1).uniform(size=(8, 8, 8, 3)).astype("float32")}
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"],
                                              cross_device_ops=tf.distribute.ReductionToOneDevice())
    with mirrored.scope():
        model = build_model("vae", (8, 8, 3), 2, arch="mlp", hidden=8, reconstruction="gaussian", seed=0)
        model.compile(optimizer=keras.optimizers.SGD(0.0))
    history = model.fit(tf.data.Dataset.from_tensor_slices(batch).batch(8), epochs=1, verbose=0, shuffle=False)
    stored = float(keras.ops.convert_to_numpy(model.variance_layer.variance))
    assert 0.01 < stored < 0.5
    assert stored == pytest.approx(history.history["variance"][0], rel=1e-5)


def test_each_epoch_validates_on_the_first_test_images_and_the_result_on_all(mnist_dir, tmp_path):
    # An ae (no sampling noise): the history's val_loss is the first 64 test images' mean loss, the result all 128's.
    workdir = tmp_path / "run"
    result = training.train(tiny_config(mnist_dir, workdir, model="ae", arch="mlp", hidden=16, batch_size=128,
                                        max_examples=0, validation_images=64), verbose=0, log=lambda *_: None)
    model = training.create_model(result["config"], 512)
    training.Checkpointer(str(workdir)).restore(model)
    x_test = training.load_data(result["config"], log=lambda *_: None).x_test.astype("float32") / 255.0
    assert len(x_test) == 128
    with open(workdir / "history.csv") as f:
        validated = float(next(csv.DictReader(f))["val_loss"])
    assert validated == pytest.approx(float(model.compute_terms({"image": x_test[:64]})["loss"]), rel=1e-4)
    assert result["loss"] == pytest.approx(float(model.compute_terms({"image": x_test})["loss"]), rel=1e-4)
