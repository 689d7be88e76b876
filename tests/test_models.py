"""Encoder/decoder shapes, the model's loss, fresh noise per step, and .keras round trips."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfvae.models  # noqa: F401  (registers the custom layers for loading)
from tfvae import losses
from tfvae.models import Sampling, build_decoder, build_encoder, build_model


def batch_for(shape, n=4, num_classes=10, seed=0):
    rng = np.random.default_rng(seed)
    return {"image": rng.uniform(size=(n, *shape)).astype("float32"),
            "label": np.eye(num_classes, dtype="float32")[rng.integers(0, num_classes, n)]}


@pytest.mark.parametrize("arch", ["conv", "mlp", "resnet"])
@pytest.mark.parametrize("shape", [(28, 28, 1), (64, 64, 3)])
def test_encoder_and_decoder_shapes(arch, shape):
    encoder = build_encoder(shape, 5, arch=arch)
    decoder = build_decoder(shape, 5, arch=arch)
    codes = encoder(batch_for(shape)["image"])
    assert set(codes) == {"z_mean", "z_log_var", "z"}
    assert all(tuple(v.shape) == (4, 5) for v in codes.values())
    assert tuple(decoder(codes["z"]).shape) == (4, *shape)


@pytest.mark.parametrize("shape,grid", [((28, 28, 1), (7, 7, 16)), ((64, 64, 3), (4, 4, 32)),
                                        ((128, 128, 1), (4, 4, 32)), ((128, 64, 3), (8, 4, 32)),
                                        ((24, 24, 3), (6, 6, 16))])
def test_resnet_depth_follows_the_image_size(shape, grid):
    # Stages halve the sides while they are even and the halves at least 4; widths are filters, the last repeated.
    from tfvae.models import resnet

    filters = (8, 16, 32)
    assert resnet.grid_shape(shape, filters) == grid
    encoder = build_encoder(shape, 2, arch="resnet", filters=filters, hidden=8, num_classes=3)
    assert tuple(encoder.get_layer("enc_out").output.shape[1:]) == grid
    assert len([la for la in encoder.layers if la.name.startswith("down")]) == resnet.num_stages(shape)
    decoder = build_decoder(shape, 2, arch="resnet", filters=filters, num_classes=3, variance=True)
    assert [i.name for i in decoder.inputs] == ["z", "label"]
    assert tuple(decoder.output.shape[1:]) == shape and decoder.layers[-1].name == "decoder_variance"
    # A decoder of a likelihood's parameters (gaussian_pixel, logistic_mixture) emits more values per pixel.
    assert tuple(build_decoder(shape, 2, arch="resnet", filters=filters, output_channels=5).output.shape[1:]) == \
        (*shape[:2], 5)
    with pytest.raises(ValueError, match="too small or odd"):
        build_encoder((7, 7, 1), 2, arch="resnet")


def test_resnet_block_starts_as_the_identity_and_learns():
    from tfvae.models import resnet

    x = keras.Input((6, 6, 4))
    block = keras.Model(x, resnet.residual_block(x, "b"))
    h = np.random.default_rng(0).normal(size=(2, 6, 6, 4)).astype("float32")
    np.testing.assert_array_equal(block(h), h)  # the branch's last convolution starts at zero
    # ... but it is no dead end: the zero convolution's gradient is non-zero, so one step moves the block.
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(block(h) * h)
    grads = dict(zip([w.path for w in block.trainable_weights], tape.gradient(loss, block.trainable_weights)))
    assert float(tf.reduce_max(tf.abs(grads["b_conv2/kernel"]))) > 0
    block.get_layer("b_conv2").kernel.assign_add(1e-2 * grads["b_conv2/kernel"])
    assert not np.allclose(block(h), h)


def test_conditional_and_deterministic_encoders():
    shape = (28, 28, 1)
    b = batch_for(shape)
    cond = build_encoder(shape, 3, num_classes=10)
    assert [i.name for i in cond.inputs] == ["image", "label"]
    assert tuple(cond([b["image"], b["label"]])["z"].shape) == (4, 3)
    plain = build_encoder(shape, 3, variational=False)
    codes = plain(b["image"])
    assert set(codes) == {"z_mean", "z"}
    np.testing.assert_array_equal(codes["z"], codes["z_mean"])


def test_decoder_returns_unbounded_logits():
    decoder = build_decoder((28, 28, 1), 2)
    assert decoder.layers[-1].activation is keras.activations.linear
    logits = decoder(np.full((2, 2), 50.0, "float32")).numpy()
    assert logits.min() < 0.0 or logits.max() > 1.0  # not squashed into [0, 1]


def test_default_conv_vae_has_the_keras_examples_size():
    # keras.io VAE: encoder 69,076 + decoder 65,089 parameters.
    model = build_model("vae", (28, 28, 1), 2)
    assert model.encoder.count_params() == 69_076
    assert model.decoder.count_params() == 65_089


def test_image_size_must_fit_the_downsampling():
    with pytest.raises(ValueError, match="not divisible by 4"):
        build_encoder((30, 30, 1), 2)


def test_model_loss_is_pixels_times_mean_bce_plus_kl():
    shape = (28, 28, 1)
    model = build_model("vae", shape, 2, beta=1.0, seed=3)
    b = batch_for(shape, n=8)
    out = model(b)
    terms = model.loss_terms(b, out)
    probs = tf.sigmoid(out["logits"]).numpy().reshape(8, -1)
    mean_bce = keras.losses.binary_crossentropy(b["image"].reshape(8, -1), probs).numpy()
    mean, log_var = np.asarray(out["z_mean"], "float64"), np.asarray(out["z_log_var"], "float64")
    kl = 0.5 * np.sum(mean ** 2 + np.exp(log_var) - 1.0 - log_var, axis=1)  # KL(N(mean, var) || N(0, I))
    np.testing.assert_allclose(float(terms["reconstruction"]), np.mean(784 * mean_bce), rtol=1e-4)
    np.testing.assert_allclose(float(terms["kl"]), np.mean(kl), rtol=1e-4)
    np.testing.assert_allclose(float(terms["loss"]), np.mean(784 * mean_bce + kl), rtol=1e-4)


def test_beta_weights_the_kl_and_ae_has_none():
    shape = (28, 28, 1)
    b = batch_for(shape)
    vae = build_model("vae", shape, 2, beta=4.0)
    t = vae.compute_terms(b)
    np.testing.assert_allclose(float(t["loss"]), float(t["reconstruction"] + 4.0 * t["kl"]), rtol=1e-5)
    ae = build_model("ae", shape, 2)
    t = ae.compute_terms(b)
    assert float(t["kl"]) == 0.0 and float(t["loss"]) == pytest.approx(float(t["reconstruction"]))


def test_recon_weight_weights_the_reconstruction_and_zero_leaves_kl_alone():
    shape = (28, 28, 1)
    b = batch_for(shape)
    half = build_model("vae", shape, 2, recon_weight=0.5, seed=0).compute_terms(b)
    np.testing.assert_allclose(float(half["loss"]), float(0.5 * half["reconstruction"] + half["kl"]), rtol=1e-5)
    kl_only = build_model("vae", shape, 2, recon_weight=0.0, seed=0)
    with tf.GradientTape() as tape:
        terms = kl_only.compute_terms(b, training=True)
    np.testing.assert_allclose(float(terms["loss"]), float(terms["kl"]), rtol=1e-6)
    assert float(terms["reconstruction"]) > 0  # still logged, unweighted
    grads = tape.gradient(terms["loss"], kl_only.decoder.trainable_weights + kl_only.encoder.trainable_weights)
    decoder_grads = grads[:len(kl_only.decoder.trainable_weights)]
    assert all(g is None for g in decoder_grads)  # the reconstruction term's gradient never reaches the decoder
    assert any(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in grads[len(decoder_grads):])


@pytest.mark.filterwarnings("ignore:Gradients do not exist")  # the decoder's: the point of the test
def test_kl_only_training_collapses_the_codes_onto_the_prior():
    shape = (8, 8, 1)
    rng = np.random.default_rng(0)
    images = (rng.uniform(size=(256, *shape)) > 0.5).astype("float32")
    model = build_model("vae", shape, 2, arch="mlp", hidden=32, recon_weight=0.0, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(tf.data.Dataset.from_tensor_slices({"image": images}).batch(64).repeat(50), verbose=0, shuffle=False)
    codes = model.encoder(images)
    kl = losses.gaussian_kl(codes["z_mean"], codes["z_log_var"]).numpy()
    assert kl.mean() < 0.01  # every posterior is the prior N(0, I)
    z = codes["z"].numpy()
    np.testing.assert_allclose(z.mean(0), [0, 0], atol=0.2)
    np.testing.assert_allclose(z.std(0), [1, 1], atol=0.2)


def test_cvae_needs_classes():
    with pytest.raises(ValueError, match="labelled"):
        build_model("cvae", (28, 28, 1), 2, num_classes=0)


def test_compiled_steps_draw_fresh_noise():
    layer = Sampling(seed=7)
    mean, log_var = np.zeros((4, 3), "float32"), np.zeros((4, 3), "float32")

    @tf.function
    def draw():
        return layer([mean, log_var])

    first, second = draw().numpy(), draw().numpy()
    assert not np.allclose(first, second)
    assert abs(first.std() - 1.0) < 0.8  # unit-variance noise around the zero mean


@pytest.mark.parametrize("kind", ["vae", "vamp"])
def test_training_steps_see_different_noise(kind):
    # Two fit() steps on the same batch must not reuse the same eps: the noise state advances.
    shape = (28, 28, 1)
    model = build_model(kind, shape, 2, seed=1, pseudo_inputs=3)
    model.compile(optimizer=keras.optimizers.SGD(0.0))  # lr 0: only the noise can change the loss
    ds = tf.data.Dataset.from_tensors(batch_for(shape)).repeat(3)
    state = model.encoder.get_layer("z").seed_generator.state
    before = state.numpy().copy()
    seen = []
    cb = keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: seen.append(float(logs["loss"])))
    model.fit(ds, epochs=1, verbose=0, callbacks=[cb])
    assert not np.array_equal(before, state.numpy())
    # The running mean changes only if the per-step losses differ, which with lr=0 only the noise can do.
    assert len(set(np.round(seen, 5))) > 1


def test_same_seed_same_noise():
    mean, log_var = np.zeros((2, 2), "float32"), np.zeros((2, 2), "float32")
    a = Sampling(seed=11)([mean, log_var]).numpy()
    b = Sampling(seed=11)([mean, log_var]).numpy()
    np.testing.assert_array_equal(a, b)


def test_sampling_config_round_trip():
    layer = Sampling(seed=5, name="z")
    clone = Sampling.from_config(layer.get_config())
    assert clone.seed == 5 and clone.name == "z"


@pytest.mark.parametrize("kind,arch", [("ae", "conv"), ("vae", "conv"), ("cvae", "conv"), ("vamp", "conv"),
                                       ("rae", "conv"), ("wae", "conv"), ("cvae", "resnet")])
def test_keras_files_round_trip_with_safe_mode(kind, arch, tmp_path):
    shape = (28, 28, 1)
    model = build_model(kind, shape, 3, arch=arch, filters=(8, 16) if arch == "resnet" else (32, 64),
                        num_classes=10, seed=2, pseudo_inputs=5)
    rng = np.random.default_rng(1)
    for w in model.trainable_weights:  # the resnet's zero-initialised convolutions too must survive the trip
        w.assign(w + 0.05 * rng.normal(size=w.shape).astype("float32"))
    b = batch_for(shape)
    enc_in = [b["image"], b["label"]] if kind == "cvae" else b["image"]
    z = np.random.default_rng(0).normal(size=(4, 3)).astype("float32")
    dec_in = [z, b["label"]] if kind == "cvae" else z
    model.encoder.save(tmp_path / "encoder.keras")
    model.decoder.save(tmp_path / "decoder.keras")
    encoder = keras.saving.load_model(tmp_path / "encoder.keras", safe_mode=True)
    decoder = keras.saving.load_model(tmp_path / "decoder.keras", safe_mode=True)
    np.testing.assert_allclose(encoder(enc_in)["z_mean"], model.encoder(enc_in)["z_mean"], rtol=1e-6)
    np.testing.assert_allclose(decoder(dec_in), model.decoder(dec_in), rtol=1e-5, atol=1e-6)
    if kind in ("vae", "cvae"):
        np.testing.assert_allclose(encoder(enc_in)["z_log_var"], model.encoder(enc_in)["z_log_var"], rtol=1e-6)
        assert isinstance(encoder.get_layer("z"), Sampling)
    if kind == "vamp":  # the pseudo-inputs travel in encoder.keras
        assert encoder(enc_in)["pseudo_inputs"].shape == (5, *shape)
        np.testing.assert_array_equal(encoder(enc_in)["pseudo_inputs"], model.encoder(enc_in)["pseudo_inputs"])


def test_gaussian_decoder_keeps_the_variance_it_is_trained_with(tmp_path):
    from tfvae import metrics
    from tfvae.models import DecoderVariance

    shape = (8, 8, 3)
    model = build_model("vae", shape, 2, arch="mlp", hidden=16, reconstruction="gaussian", seed=0)
    layer = model.variance_layer
    assert isinstance(layer, DecoderVariance) and float(layer.variance) == 0.0
    assert build_model("vae", shape, 2, arch="mlp", hidden=16, reconstruction="mse").variance_layer is None
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    b = {"image": batch_for(shape, n=16)["image"]}
    stored, batch_optima = [], []

    def record(step, logs):
        stored.append(float(layer.variance))
        # The logged "variance" is the running mean of the steps' batch optima.
        batch_optima.append((step + 1) * float(logs["variance"]) - sum(batch_optima))

    model.fit(tf.data.Dataset.from_tensors(b).repeat(3), epochs=1, verbose=0, shuffle=False,
              callbacks=[keras.callbacks.LambdaCallback(on_train_batch_end=record)])
    assert 0.01 < batch_optima[0] < 0.5  # uniform pixels against an untrained decoder
    assert len(set(np.round(batch_optima, 6))) == 3  # the weights (and the noise) change every step
    np.testing.assert_allclose(stored[0], batch_optima[0], rtol=1e-5)  # the first step sets it
    for i in (1, 2):  # then an exponential moving average
        np.testing.assert_allclose(stored[i], 0.98 * stored[i - 1] + 0.02 * batch_optima[i], rtol=1e-5)

    # Evaluation scores with the stored variance, not the batch's own optimum.
    out = model(b)
    terms = model.loss_terms(b, out, training=False)
    stored = stored[-1]
    # -log N(x; sigmoid(logits), stored) summed over the 192 pixels, written out.
    means = 1 / (1 + np.exp(-np.asarray(out["logits"], "float64")))
    errors = np.sum((b["image"].astype("float64") - means) ** 2, axis=(1, 2, 3))
    nll = errors / (2 * stored) + 0.5 * 192 * math.log(2 * math.pi * stored)
    np.testing.assert_allclose(terms["reconstruction"], np.mean(nll), rtol=1e-5)
    own = model.loss_terms(b, out, training=True)["reconstruction"]
    assert float(own) < float(terms["reconstruction"])  # the batch's optimum fits the batch best

    # decoder.keras carries it; evaluation reads it back.
    model.decoder.save(tmp_path / "decoder.keras")
    decoder = keras.saving.load_model(tmp_path / "decoder.keras", safe_mode=True)
    assert metrics.decoder_variance(decoder, "gaussian") == pytest.approx(stored, rel=1e-6)
    assert metrics.decoder_variance(decoder, "mse") == 0.5 and metrics.decoder_variance(decoder, "bce") is None
    z = np.zeros((2, 2), "float32")
    np.testing.assert_allclose(decoder(z), model.decoder(z), rtol=1e-6)
    untrained = build_model("vae", shape, 2, arch="mlp", hidden=16, reconstruction="gaussian").decoder
    with pytest.raises(ValueError, match="never set"):
        metrics.decoder_variance(untrained, "gaussian")
