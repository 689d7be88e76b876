"""Several replicas lose nothing: a short last batch, a float16 overflow on one replica, XLA where Keras can't.

Two logical CPU devices (tests/conftest.py) stand in for two GPUs. Each MirroredStrategy here reduces through one
device: collective instance keys can collide with another MirroredStrategy made earlier in the same process.
"""

import functools
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import TINY_MLP, tiny_run_config
from tfvae import training
from tfvae.errors import TfvaeError
from tfvae.models import build_model
from tfvae.models.autoencoders import skip_together
from tfvae.models.trackers import track


def two_replicas():
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"],
                                          cross_device_ops=tf.distribute.ReductionToOneDevice())


@pytest.fixture(scope="module")
def remainder_of_one(mnist_dir, tmp_path_factory):
    """A data_dir of 129 train / 65 test digits: at batch 32 both splits end with a batch of 1 image."""
    digits = np.load(os.path.join(mnist_dir, "mnist.npz"))
    directory = tmp_path_factory.mktemp("remainder")
    np.savez(directory / "mnist.npz", x_train=digits["x_train"][:129], y_train=digits["y_train"][:129],
             x_test=digits["x_test"][:65], y_test=digits["y_test"][:65])
    return str(directory)


def test_a_last_batch_of_one_image_trains_and_evaluates_exactly_on_two_replicas(remainder_of_one, tmp_path):
    # Before: the replica given no image of the last batch logged a NaN loss ("lower --learning_rate"), or with
    # convolutions (which mis-shape an empty batch) crashed.
    config = tiny_run_config(remainder_of_one, tmp_path / "run", **{**TINY_MLP, "max_examples": 0, "arch": "conv"},
                             model="ae", filters=(4, 8))
    lines = []
    result = training.train(config, strategy=two_replicas(), verbose=0, log=lines.append)
    assert np.isfinite(result["loss"])
    model = training.create_model(result["config"], 128)
    state = training.Checkpointer(str(tmp_path / "run")).restore(model)
    # Training ran whole batches only: 4 steps of 32 (the 129th image, a different one each epoch, is dropped).
    assert state["epoch"] == 1 and int(model.optimizer.iterations.numpy()) == 4
    # Evaluation counts all 65 test images, each once: the loss is their mean, as one batch on one device gives.
    dataset = training.load_data(result["config"], log=lambda *_: None)
    assert len(dataset.x_test) == 65
    whole = model.compute_terms({"image": dataset.x_test.astype("float32") / 255.0})
    assert result["loss"] == pytest.approx(float(whole["loss"]), rel=1e-5)
    _, test = training.pipelines(result["config"], dataset)
    assert model.evaluate(test, verbose=0, return_dict=True)["loss"] == pytest.approx(result["loss"], rel=1e-5)


def test_two_replicas_need_one_whole_batch(remainder_of_one, tmp_path):
    config = tiny_run_config(remainder_of_one, tmp_path / "run", **{**TINY_MLP, "max_examples": 0, "batch_size": 256})
    with pytest.raises(TfvaeError, match=r"--batch_size=256 is more than the 129 training images: 2 replicas"):
        training.train(config, strategy=two_replicas(), verbose=0, log=lambda *_: None)


def test_the_epoch_means_count_examples_not_batches():
    # A batch of 3 and a batch of 1 give the mean over 4 images (not over 2 batches); a replica's empty share of a
    # batch (mean NaN, 0 images) counts for nothing.
    model = build_model("ae", (8, 8, 1), 2, filters=(4, 4), seed=0)
    model.compile(optimizer="adam")
    images = np.random.default_rng(0).uniform(size=(4, 8, 8, 1)).astype("float32")
    model.test_step({"image": images[:3]})
    logs = {k: float(v) for k, v in model.test_step({"image": images[3:]}).items()}
    whole = model.compute_terms({"image": images})
    assert logs["loss"] == pytest.approx(float(whole["loss"]), rel=1e-5)
    mean = keras.metrics.Mean()
    track(mean, 2.0, 3.0)
    track(mean, float("nan"), 0.0)
    assert float(mean.result()) == 2.0


def test_a_float16_overflow_on_one_replica_skips_the_step_on_both():
    strategy = two_replicas()
    with strategy.scope():
        variable = keras.Variable(np.ones(3, "float32"))
        optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1), initial_scale=512.0)
        optimizer.build([variable])

    def step(guard):
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        grads = [tf.where(replica == 1, np.inf, 1.0) * tf.ones(3)]  # replica 1 overflowed, replica 0 did not
        if guard:
            grads = skip_together(grads)
        optimizer.apply_gradients(zip(grads, [variable]))

    strategy.run(tf.function(functools.partial(step, True)))
    np.testing.assert_array_equal(variable.numpy(), np.ones(3))  # the step was skipped...
    assert float(optimizer.dynamic_scale.numpy()) == 256.0  # ...and the loss scale halved, once
    # Why the guard exists: Keras's LossScaleOptimizer checks only its own replica's gradients, so without it replica
    # 0 applies the summed (infinite) gradient. If this starts to fail, Keras checks all replicas: drop skip_together.
    strategy.run(tf.function(functools.partial(step, False)))
    assert not np.all(np.isfinite(variable.numpy()))


def test_the_sharpness_critic_computes_in_float32_under_mixed_float16():
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_model("vae", (16, 16, 1), 2, filters=(8, 8), adversarial=0.1, seed=0)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert model.encoder.layers[1].compute_dtype == "float16"  # the autoencoder keeps the policy
    assert {layer.compute_dtype for layer in model.critic.discriminator.layers[1:]} == {"float32"}


def test_xla_is_refused_in_one_line_under_a_mirrored_strategy(mnist_dir, tmp_path):
    config = tiny_run_config(mnist_dir, tmp_path / "run", **TINY_MLP, jit_compile=True, image_shape=(28, 28, 1))
    with two_replicas().scope(), pytest.raises(TfvaeError, match="--jit_compile=true cannot run under a mirrored"):
        training.create_model(config, 64)
    assert training.resolve_jit_compile("auto") is bool(tf.config.list_logical_devices("GPU"))
    assert training.resolve_jit_compile("auto", mirrored=True) is False


def test_a_tpu_strategy_without_a_tpu_is_one_line():
    message = r"^--strategy=tpu found no TPU \(.*\); run on a Cloud TPU VM or set TPU_NAME$"
    with pytest.raises(TfvaeError, match=message):
        training.make_strategy("tpu")
