"""gridvae, the grid VAE (latent diffusion's KL autoencoder, ``tfvae.models.spatial``): its KL against the closed
form, its code grid's shape, fresh noise each step, its settings, and one tiny run through train.py that resumes,
exports, loads with safe_mode and samples with prior, gmm and diffusion (its MLP over the flattened grids, its U-Net
over the grids).
"""

import os

import numpy as np
import pytest

from tests.conftest import eagerly, run_script, tiny_run_config
from tfvae import models
from tfvae.config import Config
from tfvae.errors import ArgumentError, TfvaeError
from tfvae.models import spatial


def _tiny(**settings):
    return models.build_model("gridvae", (8, 8, 1), 3, filters=(4,), seed=0, **settings)


def test_its_kl_is_the_closed_form_summed_over_the_grid():
    # mu = 1, sigma = 1 in each of 2 x 3 x 3 x 2 cells: 1/2 (1 + 1 - 0 - 1) = 1/2 each, 9 per example.
    ones = np.ones((2, 3, 3, 2), "float32")
    np.testing.assert_allclose(np.asarray(spatial.grid_kl(ones, 0 * ones)), [9.0, 9.0], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(spatial.grid_kl(0 * ones, 0 * ones)), [0.0, 0.0], atol=1e-7)
    rng = np.random.default_rng(0)
    mu, log_var = rng.normal(size=(2, 4, 4, 3)).astype("float32"), rng.normal(size=(2, 4, 4, 3)).astype("float32")
    expected = 0.5 * (mu ** 2 + np.exp(log_var) - log_var - 1).reshape(2, -1).sum(1)
    np.testing.assert_allclose(np.asarray(spatial.grid_kl(mu, log_var)), expected, rtol=1e-5)
    # The model's loss: reconstruction + kl_weight * that KL, per image, averaged over the batch.
    model = _tiny(kl_weight=0.5)
    x = rng.random((4, 8, 8, 1)).astype("float32")
    out = model({"image": x}, training=True)
    terms = model.loss_terms({"image": x}, out)
    kl = 0.5 * (np.asarray(out["z_mean"]) ** 2 + np.exp(np.asarray(out["z_log_var"])) - np.asarray(out["z_log_var"])
                - 1).reshape(4, -1).sum(1).mean()
    logits = np.asarray(out["logits"], "float64").reshape(4, -1)
    bce = (np.logaddexp(0, logits) - x.reshape(4, -1) * logits).sum(1).mean()
    np.testing.assert_allclose(float(terms["kl"]), kl, rtol=1e-5)
    np.testing.assert_allclose(float(terms["loss"]), bce + 0.5 * kl, rtol=1e-5)


def test_its_code_is_an_h_by_w_by_c_grid_and_its_class_says_so():
    model = _tiny()
    assert isinstance(model, spatial.SpatialVAE) and model.beta == spatial.KL_WEIGHT
    out = model.encoder(np.zeros((2, 8, 8, 1), "float32"))
    assert {k: tuple(v.shape) for k, v in out.items()} == {k: (2, 4, 4, 3) for k in ("z_mean", "z_log_var", "z")}
    assert tuple(model.decoder.inputs[0].shape[1:]) == models.grid_shape((8, 8, 1), (4,), 3) == (4, 4, 3)
    cls = models.model_class("gridvae")
    assert cls.variational and cls.code_grid and not cls.quantized and cls.default_sampler == "gmm"


def test_it_draws_fresh_noise_each_compiled_step():
    import tensorflow as tf

    model = _tiny(kl_weight=1.0)
    x = {"image": np.random.default_rng(1).random((4, 8, 8, 1)).astype("float32")}
    step = tf.function(lambda batch: model(batch, training=True)["z"])
    draws = [step(x).numpy() for _ in range(3)]
    assert not np.allclose(draws[0], draws[1]) and not np.allclose(draws[1], draws[2])


def test_its_settings_are_its_own_and_checked(tmp_path):
    with pytest.raises(TfvaeError, match="--kl_weight is a hyperparameter of --model=gridvae; a vae has none"):
        Config(model="vae", kl_weight=1e-3, workdir=str(tmp_path)).validate()
    with pytest.raises(TfvaeError, match="a gridvae's is --kl_weight"):
        Config(model="gridvae", beta=0.5, workdir=str(tmp_path)).validate()
    with pytest.raises(TfvaeError, match="--model=gridvae needs --arch=conv"):
        Config(model="gridvae", arch="mlp", workdir=str(tmp_path)).validate()
    with pytest.raises(ValueError, match="a gridvae's is kl_weight"):  # from Python too: build_model's beta
        _tiny(beta=0.5)


@pytest.fixture(scope="module")
def grid_run(mnist_dir, offline_env, tmp_path_factory):
    """A gridvae trained by train.py for one epoch on 64 digits (7x7x2 codes), then resumed for a second."""
    from tfvae import training

    workdir = tmp_path_factory.mktemp("gridvae") / "run"
    lines = []
    with eagerly():  # 2 steps an epoch
        run_script(["train.py", "--model=gridvae", "--latent=2", "--filters=4,8", "--kl_weight=1e-3", "--epochs=1",
                    "--max_examples=64", "--batch_size=32", "--steps_per_execution=1", "--precision=float32",
                    f"--data_dir={mnist_dir}", "--nodownload", f"--workdir={workdir}"], offline_env)
        result = training.train(tiny_run_config(mnist_dir, workdir, model="gridvae", latent=2, filters=(4, 8),
                                                kl_weight=1e-3, epochs=2, max_examples=64, batch_size=32,
                                                steps_per_execution=1, precision="float32"),
                                verbose=0, log=lines.append)
    return str(workdir), lines, result


def test_a_tiny_run_trains_resumes_exports_and_loads(grid_run):
    import keras

    import tfvae

    workdir, lines, result = grid_run
    assert any("resuming" in line and "after epoch 1" in line for line in lines), lines
    assert result["epochs"] == 2 and np.isfinite(result["loss"]) and result["kl"] > 0
    run = tfvae.load(workdir)  # encoder.keras and decoder.keras, loaded with safe_mode=True
    assert run.code_grids.code_shape == (7, 7, 2) and run.variational and run.default_sampler == "gmm"
    keras.saving.load_model(os.path.join(workdir, "encoder.keras"), safe_mode=True)
    x, _ = run.test_data()
    z_mean, z_log_var = run.encode(x[:4])
    assert z_mean.shape == z_log_var.shape == (4, 7, 7, 2)
    assert run.reconstruct(x[:4]).shape == (4, 28, 28, 1)
    # The likelihood flattens the grid: its KL is the closed form over every cell.
    terms = run.scores.likelihood_terms(x[:4], num_samples=2)
    np.testing.assert_allclose(terms["kl"], np.asarray(spatial.grid_kl(z_mean, z_log_var)), rtol=1e-4)
    assert np.all(np.isfinite(terms["nll"])) and np.all(np.isfinite(run.score(x[:4], samples=2)))


def test_it_samples_with_prior_gmm_and_diffusion_over_its_grids(grid_run):
    import tfvae

    workdir, _, _ = grid_run
    run = tfvae.load(workdir, log=lambda message: None)
    for name, settings in (("prior", {}), ("gmm", {"components": 2}),
                           ("diffusion", {"steps": 20, "hidden": 16, "blocks": 1, "diffusion_steps": 3}),  # the MLP
                           ("diffusion", {"steps": 20, "denoiser": "unet", "width": 4, "diffusion_steps": 3})):
        z = run.sampler(name, **settings).sample(5, seed=1)
        assert z.shape == (5, 7, 7, 2) and np.all(np.isfinite(z)), name
        images = run.sample(5, seed=1, sampler=name, **settings)
        assert images.shape == (5, 28, 28, 1) and 0.0 <= images.min() <= images.max() <= 1.0, name
    assert os.path.isfile(os.path.join(workdir, "samplers", "diffusion.npz"))
    np.testing.assert_array_equal(run.sample(3, seed=2), run.sample(3, seed=2))  # the default, gmm, reproducible
    with pytest.raises(ArgumentError, match="sampler='learned'.*has no learned prior"):
        run.sampler("learned")


@pytest.mark.parametrize("mode", ["scatter", "traverse"])
def test_vector_latent_pictures_refuse_it_in_one_line(grid_run, mode):
    from tfvae import pictures

    workdir, _, _ = grid_run
    with pytest.raises(ArgumentError, match="needs a vector latent.*gridvae, whose codes are 7x7x2 grids") as error:
        pictures.sample_to_png(workdir, mode, 3, output=os.path.join(workdir, "x.png"))
    assert "\n" not in str(error.value)


def test_the_explorer_refuses_it_in_one_line(grid_run):
    import tfvae
    from tfvae.explorer import run_cache

    workdir, _, _ = grid_run
    with pytest.raises(TfvaeError, match="is a gridvae, whose codes are 7x7x2 grids: the explorer shows vector") as e:
        run_cache.describe(tfvae.load(workdir), "run")
    assert "\n" not in str(e.value)
