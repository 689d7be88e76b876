"""The VQ-VAE and its PixelCNN prior: the quantizer against brute force, the EMA codebook against a hand
computation, the straight-through gradient, the PixelCNN's causality, and one tiny run (train, prior, sample,
reload with safe_mode, resume of the prior)."""

import dataclasses
import functools
import math
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import eagerly, shared_build, tiny_run_config
from tfvae.errors import ArgumentError
from tfvae.models import pixelcnn, vqvae
from tfvae.training.prior import train_prior


def quantizer_with(codebook, decay=0.9, epsilon=1e-3, count=None, total=None):
    """A built, already initialised VectorQuantizer holding ``codebook`` (and the averages N, m)."""
    layer = vqvae.VectorQuantizer(len(codebook), decay=decay, epsilon=epsilon)
    layer.build((None, codebook.shape[1]))
    layer.embeddings.assign(codebook)
    layer.ema_count.assign(np.ones(len(codebook), "float32") if count is None else count)
    layer.ema_sum.assign(codebook if total is None else total)
    layer.initialized.assign(1.0)
    return layer


def test_quantizer_picks_the_nearest_codebook_vector():
    rng = np.random.default_rng(0)
    codebook = rng.normal(size=(7, 3)).astype("float32")
    z_e = rng.normal(size=(4, 5, 6, 3)).astype("float32")
    z, indices = quantizer_with(codebook)(z_e)
    distances = ((z_e[..., None, :] - codebook) ** 2).sum(-1)  # brute force: every vector to every code
    np.testing.assert_array_equal(np.asarray(indices), distances.argmin(-1))
    np.testing.assert_allclose(np.asarray(z), codebook[distances.argmin(-1)], atol=1e-6)


def test_ema_update_matches_a_hand_computation():
    rng = np.random.default_rng(1)
    codebook = rng.normal(size=(4, 2)).astype("float32")
    count = np.array([2.0, 0.5, 1.0, 3.0], "float32")
    total = codebook * count[:, None]
    decay, eps = 0.9, 1e-3
    layer = quantizer_with(codebook, decay, eps, count, total)
    z_e = rng.normal(size=(2, 3, 1, 2)).astype("float32")
    _, indices = layer(z_e, training=True)
    flat = z_e.reshape(-1, 2)
    k = ((flat[:, None] - codebook) ** 2).sum(-1).argmin(-1)  # assigned with the codebook as it was
    np.testing.assert_array_equal(np.asarray(indices).ravel(), k)
    n_k = np.bincount(k, minlength=4)
    s_k = np.stack([flat[k == j].sum(0) for j in range(4)])
    new_count = decay * count + (1 - decay) * n_k
    new_total = decay * total + (1 - decay) * s_k
    n = new_count.sum()
    smoothed = (new_count + eps) / (n + 4 * eps) * n
    np.testing.assert_allclose(layer.ema_count.numpy(), new_count, rtol=1e-6)
    np.testing.assert_allclose(layer.ema_sum.numpy(), new_total, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.embeddings.numpy(), new_total / smoothed[:, None], rtol=1e-5, atol=1e-6)
    before = layer.embeddings.numpy()
    layer(z_e, training=False)  # inference leaves the codebook alone
    np.testing.assert_array_equal(layer.embeddings.numpy(), before)


def test_first_training_batch_seeds_the_codebook_with_its_own_vectors():
    layer = vqvae.VectorQuantizer(4, decay=0.5)
    z_e = np.arange(16, dtype="float32").reshape(1, 8, 1, 2)
    layer(z_e, training=True)
    flat = z_e.reshape(-1, 2)
    picks = flat[[0, 2, 4, 6]]  # K evenly spaced vectors of the batch, each then its own nearest code
    k = ((flat[:, None] - picks) ** 2).sum(-1).argmin(-1)
    counts = 0.5 + 0.5 * np.bincount(k, minlength=4)
    sums = 0.5 * picks + 0.5 * np.stack([flat[k == j].sum(0) for j in range(4)])
    n = counts.sum()
    expected = sums / ((counts + 1e-5) / (n + 4e-5) * n)[:, None]
    np.testing.assert_allclose(layer.embeddings.numpy(), expected, rtol=1e-5)
    assert layer.initialized.numpy() == 1.0


def test_straight_through_gradient_is_the_identity():
    rng = np.random.default_rng(2)
    layer = quantizer_with(rng.normal(size=(5, 3)).astype("float32"))
    z_e = tf.constant(rng.normal(size=(2, 4, 4, 3)).astype("float32"))
    weights = tf.constant(rng.normal(size=(2, 4, 4, 3)).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(z_e)
        z, _ = layer(z_e)
        objective = tf.reduce_sum(z * weights)
    np.testing.assert_allclose(tape.gradient(objective, z_e).numpy(), weights.numpy(), rtol=1e-6)


def test_vqvae_loss_is_reconstruction_plus_weighted_commitment():
    model = vqvae.build_vqvae((8, 8, 1), 3, filters=(4,), codebook_size=6, commitment=0.5, seed=0)
    x = np.random.default_rng(3).random((4, 8, 8, 1)).astype("float32")
    out = model({"image": x})
    terms = model.loss_terms({"image": x}, out)
    z_e, z = np.asarray(out["z_e"]), np.asarray(out["z"])
    commitment = ((z_e - z) ** 2).reshape(4, -1).sum(1).mean()  # summed over the grid, mean over the batch
    logits = np.asarray(out["logits"], "float64").reshape(4, -1)
    bce = (np.logaddexp(0, logits) - x.reshape(4, -1) * logits).sum(1).mean()
    np.testing.assert_allclose(float(terms["commitment"]), commitment, rtol=1e-5)
    np.testing.assert_allclose(float(terms["reconstruction"]), bce, rtol=1e-5)
    np.testing.assert_allclose(float(terms["loss"]), bce + 0.5 * commitment, rtol=1e-5)
    np.testing.assert_allclose(float(terms["kl"]), 4 * 4 * math.log(6), rtol=1e-6)  # h w log K
    assert 1.0 <= float(terms["perplexity"]) <= 6.0


@pytest.mark.parametrize("loss", ["bce", "mse", "gaussian", "gaussian_pixel", "logistic_mixture"])
def test_family_builds_a_vqvae_whose_decoder_emits_the_likelihoods_outputs(loss):
    from tfvae import likelihoods, losses, models

    assert "vqvae" in models.MODELS and models.model_class("vqvae") is vqvae.VQVAE
    assert vqvae.VQVAE.has_learned_prior and not vqvae.VQVAE.variational
    model = models.build_model("vqvae", (8, 8, 3), 3, filters=(4,), codebook_size=6, reconstruction=loss, seed=0)
    assert isinstance(model, vqvae.VQVAE) and model.codebook_size == 6
    channels = likelihoods.output_channels(likelihoods.for_loss(loss), 3)
    x = np.random.default_rng(3).random((4, 8, 8, 3)).astype("float32")
    out = model({"image": x})
    assert tuple(out["logits"].shape) == (4, 8, 8, channels)
    terms = model.loss_terms({"image": x}, out, training=True)
    recon = float(np.mean(losses.reconstruction_loss(x, out["logits"], loss)))
    np.testing.assert_allclose(float(terms["reconstruction"]), recon, rtol=1e-5)
    np.testing.assert_allclose(float(terms["loss"]), recon + model.commitment * float(terms["commitment"]), rtol=1e-5)


def test_causal_mask():
    np.testing.assert_array_equal(pixelcnn.causal_mask((3, 3), "A"), [[1, 1, 1], [1, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(pixelcnn.causal_mask((3, 3), "B"), [[1, 1, 1], [1, 1, 0], [0, 0, 0]])


def test_pixelcnn_output_depends_only_on_earlier_positions():
    height, width, codes = 4, 5, 6
    model = pixelcnn.build_pixelcnn((height, width), codes, filters=8, blocks=2, seed=1)
    rng = np.random.default_rng(4)
    grid = rng.integers(0, codes, size=(1, height, width)).astype("int32")
    base = np.asarray(model(grid)).reshape(height * width, codes)
    for t in range(height * width):
        changed = grid.copy().reshape(-1)
        changed[t] = (changed[t] + 1 + rng.integers(codes - 1)) % codes
        out = np.asarray(model(changed.reshape(1, height, width))).reshape(height * width, codes)
        moved = np.abs(out - base).max(axis=1) > 0
        assert not moved[:t + 1].any(), f"position {t}'s input reached outputs at or before it: {moved}"
        if t % width < width - 1:
            assert moved[t + 1], f"the output after position {t} does not see it"


def test_pixelcnn_and_quantizer_round_trip_with_safe_mode(tmp_path):
    model = vqvae.build_vqvae((8, 8, 1), 3, filters=(4,), codebook_size=6, seed=0)
    x = np.random.default_rng(5).random((4, 8, 8, 1)).astype("float32")
    model({"image": x}, training=True)  # the EMA state moves: it must travel with the file
    model.encoder.save(tmp_path / "encoder.keras")
    encoder = keras.saving.load_model(tmp_path / "encoder.keras", safe_mode=True)
    np.testing.assert_array_equal(vqvae.quantizer(encoder).embeddings.numpy(),
                                  vqvae.quantizer(model.encoder).embeddings.numpy())
    np.testing.assert_array_equal(np.asarray(encoder(x)["indices"]), np.asarray(model.encoder(x)["indices"]))
    prior = pixelcnn.build_pixelcnn((4, 4), 6, filters=8, blocks=1)
    prior.save(tmp_path / "prior.keras")
    loaded = keras.saving.load_model(tmp_path / "prior.keras", safe_mode=True)
    grid = np.random.default_rng(6).integers(0, 6, size=(3, 4, 4)).astype("int32")
    np.testing.assert_allclose(np.asarray(loaded(grid)), np.asarray(prior(grid)), rtol=1e-6)


tiny = functools.partial(tiny_run_config, model="vqvae", latent=4, filters=(8, 16), codebook_size=16, batch_size=32,
                         max_examples=64, steps_per_execution=1, prior_epochs=1, precision="float32")


@pytest.fixture(scope="module")
def vq_run(mnist_dir, tmp_path_factory):
    """A vqvae trained for one epoch on 64 digits, with one epoch of its PixelCNN prior."""
    from tfvae import training

    def build(root):
        with eagerly():  # 2 steps, and 2 of the prior's
            training.train(tiny(mnist_dir, root / "run"), verbose=0, log=lambda message: None)

    return str(shared_build(tmp_path_factory, "vqvae", build)[0] / "run")


def test_tiny_vqvae_trains_samples_and_reloads_with_safe_mode(vq_run):
    from tfvae import api, rundir

    for name in ("encoder.keras", "decoder.keras", "prior.keras", os.path.join("prior", "state.json")):
        assert os.path.isfile(os.path.join(vq_run, name)), name
    run = api.load(vq_run)  # encoder, decoder and prior load with safe_mode=True (tfvae.rundir)
    assert run.default_sampler == "learned" and run.code_grids.code_shape == (7, 7, 4)
    images = run.sample(6, seed=3)
    assert images.shape == (6, 28, 28, 1) and 0.0 <= images.min() <= images.max() <= 1.0
    np.testing.assert_array_equal(images, run.sample(6, seed=3))  # reproducible from the seed
    indices = run.inference.sample_indices(run.code_grids.prior, 6, seed=3)
    assert indices.shape == (6, 7, 7) and 0 <= indices.min() and indices.max() < 16
    codebook = vqvae.quantizer(run.encoder).embeddings.numpy()
    np.testing.assert_allclose(images, run.decode(codebook[indices]), atol=1e-6)  # the samples are the prior's
    x, _ = run.test_data()
    assert run.reconstruct(x[:3]).shape == (3, 28, 28, 1)
    bits = run.prior_nll(x) / (49 * math.log(2))
    state = rundir.read_prior_state(vq_run)
    assert np.all(bits > 0) and state["epoch"] == 1
    # The Run's path (encoder.keras, prior.keras) gives the test loss training's evaluation recorded.
    np.testing.assert_allclose(bits.mean(), state["bits_per_code"], rtol=1e-4)
    with pytest.raises(ArgumentError, match="sampler=learned"):
        run.sampler("prior")


def test_the_pixelcnns_temperature_divides_its_logits(vq_run):
    from tfvae import api

    run = api.load(vq_run)
    np.testing.assert_array_equal(run.sample(4, seed=3, temperature=1.0), run.sample(4, seed=3))
    # As tau -> 0 the softmax of logits / tau is the argmax: every draw is the one greedy grid, whatever the seed
    # (tau small enough for logits 1e-5 apart: a PixelCNN after one epoch is nearly flat).
    greedy = run.inference.sample_indices(run.code_grids.prior, 8, seed=3, temperature=1e-7)
    assert (greedy == greedy[:1]).all()
    np.testing.assert_array_equal(run.inference.sample_indices(run.code_grids.prior, 3, seed=9, temperature=1e-7),
                                  greedy[:3])
    assert not (run.inference.sample_indices(run.code_grids.prior, 8, seed=3) == greedy[:1]).all()
    # The greedy grid, built here position by position from the network's own argmax.
    grid = np.zeros((1, *greedy.shape[1:]), "int32")
    for t in range(grid.size):
        i, j = divmod(t, grid.shape[2])
        grid[0, i, j] = np.argmax(run.code_grids.prior(grid, training=False).numpy()[0, i, j])
    np.testing.assert_array_equal(greedy[0], grid[0])
    # The codes are the learned sampler's; a new temperature is a new input, not a new trace.
    np.testing.assert_array_equal(run.sampler().sample(2, seed=3, temperature=1e-7),
                                  vqvae.quantizer(run.encoder).embeddings.numpy()[greedy[:2]])
    draw = pixelcnn.autoregressive_sampler(run.code_grids.prior)
    for tau in (1.0, 0.5, 2.0):
        draw(tf.constant(2), tf.constant([0, 0], tf.int64), tf.constant(tau))
    assert draw.experimental_get_tracing_count() == 1
    with pytest.raises(ArgumentError, match="temperature=0: "):
        run.sample(2, temperature=0)


def test_checkpoint_restores_the_ema_codebook_exactly(vq_run):
    from tfvae import rundir, training

    config = rundir.load_config(vq_run)
    model = training.create_model(config)
    training.Checkpointer(vq_run).restore(model)
    exported = vqvae.quantizer(rundir.load_model_file(vq_run, "encoder", config))
    restored = vqvae.quantizer(model.encoder)
    assert restored.initialized.numpy() == 1.0
    for name in ("embeddings", "ema_count", "ema_sum"):
        np.testing.assert_array_equal(getattr(restored, name).numpy(), getattr(exported, name).numpy())


@pytest.mark.parametrize("mode", ["scatter", "traverse", "projector"])
def test_vector_latent_pictures_refuse_a_vqvae_in_one_line(vq_run, mode):
    from tfvae import pictures

    with pytest.raises(ArgumentError, match="needs a vector latent") as error:
        pictures.sample_to_png(vq_run, mode, 3, output=os.path.join(vq_run, "x.png"))
    assert "\n" not in str(error.value) and error.value.argument == "mode"


def test_prior_resumes_as_if_never_stopped(vq_run, mnist_dir, tmp_path):
    from tfvae import rundir, training

    resumed, fresh = str(tmp_path / "resumed"), str(tmp_path / "fresh")
    shutil.copytree(vq_run, resumed)
    lines = []
    training.train(tiny(mnist_dir, resumed, prior_epochs=2), verbose=0, log=lines.append)  # the same command again
    assert any("resuming the PixelCNN prior after epoch 1 of 2" in line for line in lines), lines
    # Two epochs in one go, from the same VQ-VAE (train() calls train_prior just so after the last epoch).
    config = dataclasses.replace(rundir.load_config(vq_run), prior_epochs=2)
    model = training.create_model(config)
    training.Checkpointer(vq_run).restore(model)
    train_prior(config, model, training.load_data(config, log=lambda message: None), fresh, log=lambda message: None)
    assert rundir.read_prior_state(resumed)["epoch"] == 2
    for a, b in zip(rundir.load_prior(resumed).get_weights(), rundir.load_prior(fresh).get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_prior_on_two_replicas_takes_the_steps_it_takes_on_one_device(vq_run, tmp_path):
    from tfvae import rundir, training

    config = dataclasses.replace(rundir.load_config(vq_run), prior_epochs=1)
    model = training.create_model(config)
    training.Checkpointer(vq_run).restore(model)
    dataset = training.load_data(config, log=lambda message: None)
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"],
                                              cross_device_ops=tf.distribute.ReductionToOneDevice())
    for name, strategy in (("one", None), ("two", mirrored)):
        train_prior(config, model, dataset, str(tmp_path / name), log=lambda message: None, strategy=strategy)
    one, two = (rundir.load_prior(str(tmp_path / name)).get_weights() for name in ("one", "two"))
    grid = tuple(rundir.load_prior(vq_run).input_shape[1:])
    initial = pixelcnn.build_pixelcnn(grid, config.codebook_size, seed=int(config.seed)).get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(initial, one))  # the epoch did move the weights
    # The same steps, up to round-off: Adam divides by the root of a gradient's second moment, so a weight whose
    # gradient is nearly 0 takes a step whose sign is round-off, and oneDNN's AVX2 kernels round otherwise than
    # its AVX-512 ones (on AVX2 here 76 of 102,400 weights differed by up to 4.4e-4; on AVX-512 none by 1e-6). A
    # replica bug (a batch seen twice, or not at all) moves most weights otherwise, and by as much as they move.
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(initial, one))
    close = [np.isclose(a, b, rtol=1e-4, atol=1e-5) for a, b in zip(one, two)]
    assert sum(int(c.sum()) for c in close) >= 0.995 * sum(c.size for c in close)
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(one, two)) < 0.1 * moved
