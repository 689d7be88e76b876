"""The sharpness terms (tfvae.models.adversarial): their losses, which weights each step moves, resume, export,
two replicas."""

import functools
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfvae
from tests.conftest import (
    REPO,
    Interrupted,
    assert_one_line_error,
    eagerly,
    run_script,
    shared_build,
    stop_after_first_epoch,
)
from tfvae import training
from tfvae.config import Config
from tfvae.errors import TfvaeError
from tfvae.models import adversarial, build_model

QUIET = dict(verbose=0, log=lambda *a: None)
SHAPE = (16, 16, 3)


def _images(n=8, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, *SHAPE)).astype("float32")


def _model(optimizer=None, d_optimizer=None, kind="vae", **overrides):
    settings = dict(filters=(8,), hidden=8, reconstruction="gaussian", seed=0, adversarial=0.5, feature_match=0.5)
    settings.update(overrides)
    model = build_model(kind, SHAPE, 3, **settings)
    model.compile(optimizer=optimizer or keras.optimizers.SGD(0.01))
    model.optimizer.build(model.autoencoder_variables)
    model.critic.attach_optimizer(d_optimizer or keras.optimizers.SGD(0.01))
    return model


def _fit_one_step(model, x):
    return model.fit(tf.data.Dataset.from_tensor_slices({"image": x}).batch(len(x)), epochs=1, verbose=0,
                     shuffle=False).history


def test_hinge_losses_match_a_hand_computation():
    real = np.array([[[[2.0]], [[0.5]]], [[[-1.0]], [[1.0]]]], "float32")  # (2 images, 2x1 patches, 1)
    fake = np.array([[[[-2.0]], [[0.0]]], [[[0.5]], [[-0.5]]]], "float32")
    # real: relu(1 - r) = 0, 0.5, 2, 0 -> mean 0.625; fake: relu(1 + f) = 0, 1, 1.5, 0.5 -> mean 0.75
    assert float(adversarial.hinge_discriminator_loss(real, fake)) == pytest.approx(1.375)
    assert float(adversarial.hinge_generator_loss(fake)) == pytest.approx(0.5)  # -mean(-2, 0, 0.5, -0.5)


def test_feature_distance_sums_per_image_and_averages_the_batch():
    real = [np.zeros((2, 2, 2, 1), "float32"), np.zeros((2, 3), "float32")]
    fake = [np.ones((2, 2, 2, 1), "float32"), np.full((2, 3), 2.0, "float32")]
    assert float(adversarial.feature_distance(real, fake)) == pytest.approx(4 * 1 + 3 * 4)


def test_adaptive_scale_is_the_ratio_of_gradient_norms():
    reference, term = np.array([3.0, 4.0], "float32"), np.array([0.0, 0.5], "float32")
    assert float(adversarial.adaptive_scale(0.1, reference, term)) == pytest.approx(0.1 * 5 / (0.5 + 1e-4))


def test_spectral_convolution_divides_the_kernel_by_its_largest_singular_value():
    layer = adversarial.SpectralConv2D(4, 3, use_bias=False)
    x = np.random.default_rng(0).normal(size=(1, 5, 5, 2)).astype("float32")
    for _ in range(50):  # power iterations converge
        layer(x, training=True)
    kernel = keras.ops.convert_to_numpy(layer.kernel).reshape(-1, 4)
    sigma = np.linalg.svd(kernel, compute_uv=False)[0]
    expected = keras.ops.convert_to_numpy(keras.ops.conv(x, layer.kernel / sigma, padding="valid"))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("frozen", ["autoencoder", "discriminator"])
def test_each_optimizer_moves_only_its_own_network(frozen):
    # A learning rate of 0 for one side: the other side's step must leave its weights as they were.
    model = _model(optimizer=keras.optimizers.SGD(0.0 if frozen == "autoencoder" else 0.01),
                   d_optimizer=keras.optimizers.SGD(0.0 if frozen == "discriminator" else 0.01))
    autoencoder = [v.numpy() for v in model.autoencoder_variables]
    critic = [v.numpy() for v in model.critic.discriminator.trainable_variables]
    history = _fit_one_step(model, _images())
    moved_ae = [not np.array_equal(a, v.numpy()) for a, v in zip(autoencoder, model.autoencoder_variables)]
    moved_d = [not np.array_equal(a, v.numpy()) for a, v in zip(critic, model.critic.discriminator.trainable_variables)]
    assert not any(moved_ae if frozen == "autoencoder" else moved_d)
    if frozen == "autoencoder":  # every kernel (a bias can have no gradient: the hinge's margins cancel at the start)
        kernels = [v.ndim > 1 for v in model.critic.discriminator.trainable_variables]
        assert all(moved for moved, kernel in zip(moved_d, kernels) if kernel)
    else:
        assert all(moved_ae[-2:])  # the decoder's last layer at least
    assert {"d_loss", "g_loss", "feature_match", "g_scale", "fm_scale", "loss", "kl"} <= set(history)


def test_the_sharpness_terms_change_the_autoencoders_gradient_and_not_the_logged_elbo():
    x = _images()
    plain = build_model("vae", SHAPE, 3, filters=(8,), hidden=8, reconstruction="gaussian", seed=0)
    sharp = _model()
    sharp.set_weights([*plain.get_weights(), *sharp.get_weights()[len(plain.get_weights()):]])
    plain.compile(optimizer=keras.optimizers.SGD(0.01))
    plain_history, sharp_history = _fit_one_step(plain, x), _fit_one_step(sharp, x)
    for name in ("loss", "reconstruction", "kl"):  # the ELBO's terms of the same forward pass
        assert sharp_history[name][0] == pytest.approx(plain_history[name][0], rel=1e-5)
    assert any(not np.allclose(a.numpy(), b.numpy()) for a, b in zip(plain.decoder.weights, sharp.decoder.weights))


def test_two_replicas_make_the_same_update_as_one_device():
    # A plain autoencoder with a Bernoulli decoder: no sampling noise (each replica would draw the same) and no
    # per-batch variance (each replica would use its half-batch's), so one device's update is the exact reference.
    x = _images()
    setup = dict(kind="ae", reconstruction="bce")
    weights = _model(**setup).get_weights()

    def step(strategy):
        with strategy.scope():
            model = _model(**setup)
        model.set_weights(weights)
        loss = _fit_one_step(model, x)["d_loss"][0]
        return model.get_weights(), loss

    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"],
                                              cross_device_ops=tf.distribute.ReductionToOneDevice())
    single_w, single_loss = step(tf.distribute.get_strategy())
    mirrored_w, mirrored_loss = step(mirrored)
    for a, b in zip(single_w, mirrored_w):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert mirrored_loss == pytest.approx(single_loss, rel=1e-5)


def test_negative_weights_are_refused(tmp_path):
    with pytest.raises(TfvaeError, match=r"--adversarial must be at least 0 \(got -1.0\)"):
        Config(workdir=str(tmp_path), adversarial=-1.0).validate()


@pytest.fixture(scope="module")
def sharp_runs(mnist_dir, tmp_path_factory):
    """Two runs of 2 epochs with both terms on: one straight, one stopped after epoch 1 and resumed."""
    def config(name, root):
        return Config(model="vae", arch="conv", filters=(8, 16), hidden=16, latent=4, dataset="mnist",
                      data_dir=mnist_dir, download=False, epochs=2, batch_size=64, max_examples=128,
                      precision="float32", adversarial=0.5, feature_match=0.5, workdir=str(root / name))

    def build(root):
        with eagerly():  # 4 steps a run
            training.train(config("straight", root), **QUIET)
            with pytest.raises(Interrupted):
                training.train(config("resumed", root), callbacks=[stop_after_first_epoch()], **QUIET)
            training.train(config("resumed", root), **QUIET)

    root = shared_build(tmp_path_factory, "sharp", build)[0]
    return root, functools.partial(config, root=root)


@pytest.mark.parametrize("name", ["encoder", "decoder", "discriminator"])
def test_a_resumed_run_trains_as_an_uninterrupted_one(sharp_runs, name):
    root, _ = sharp_runs
    straight = keras.saving.load_model(root / "straight" / f"{name}.keras", safe_mode=True).get_weights()
    resumed = keras.saving.load_model(root / "resumed" / f"{name}.keras", safe_mode=True).get_weights()
    for a, b in zip(straight, resumed):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_the_exported_discriminator_is_the_checkpoints_and_sampling_does_not_need_it(sharp_runs, tmp_path):
    root, config = sharp_runs
    straight = tmp_path / "straight"  # a copy: the run is shared with the other tests (and xdist worker)
    shutil.copytree(root / "straight", straight)
    run_config = Config.load(str(straight))
    model = training.create_model(run_config)
    state = training.Checkpointer(str(straight)).restore(model)
    assert state["epoch"] == 2
    assert int(model.critic.optimizer.iterations.numpy()) == int(model.optimizer.iterations.numpy()) == 4
    exported = keras.saving.load_model(straight / "discriminator.keras", safe_mode=True)
    x = np.random.default_rng(0).uniform(size=(4, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(exported(x)["logits"], model.critic.discriminator(x)["logits"], rtol=1e-5, atol=1e-6)
    (straight / "discriminator.keras").unlink()
    assert tfvae.load(str(straight)).sample(3).shape == (3, 28, 28, 1)


def test_critic_selection_keeps_the_pictures_the_critic_scores_highest(sharp_runs, offline_env, tmp_path):
    import re

    root, _ = sharp_runs
    script = os.path.join(REPO, "benchmarks", "critic_selection.py")
    proc = run_script([script, str(root / "resumed"), "--sampler=prior", "--count=16", "--keep=1,0.5",
                       "--classifier_epochs=1", f"--cache_dir={tmp_path / 'cache'}", f"--output={tmp_path}"],
                      offline_env)
    lines = {float(m.group(1)): m for m in re.finditer(
        r"keep ([0-9.]+) of (\d+): critic score (-?[0-9.e-]+) \(all \d+: (-?[0-9.e-]+)\); FCD ([0-9.]+)", proc.stdout)}
    assert sorted(lines) == [0.5, 1.0], proc.stdout
    assert lines[1.0].group(2) == "16" and lines[1.0].group(3) == lines[1.0].group(4)  # k = 1 keeps every draw
    assert lines[0.5].group(2) == "32" and float(lines[0.5].group(3)) > float(lines[0.5].group(4))  # the best half
    assert (tmp_path / "keep0.5.png").is_file() and (tmp_path / "keep1.png").is_file()
    # A run without a critic is one line.
    plain = tmp_path / "plain"
    shutil.copytree(root / "resumed", plain)
    (plain / "discriminator.keras").unlink()
    proc = run_script([script, str(plain), "--sampler=prior", f"--output={tmp_path}"], offline_env, check=False)
    assert_one_line_error(proc, "has no discriminator.keras: train it with --adversarial or --feature_match")
