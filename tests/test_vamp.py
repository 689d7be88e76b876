"""The VAE with a VampPrior (tfvae.models.vamp) and the learned sampler: log p(z) against a brute-force mixture
density, the KL estimate against quadrature, K = 1 with u's posterior N(0, I) is the VAE, and one tiny run
trained, resumed exactly, loaded, sampled (library and sample.py), scored and checked."""

import math
import os
import shutil

import keras
import numpy as np
import pytest
from PIL import Image

import tfvae
from tests.conftest import (
    SAMPLE,
    TINY_MLP,
    assert_one_line_error,
    eagerly,
    event_tags,
    run_scripts,
    shared_build,
    tiny_run_config,
)
from tfvae import evaluation, losses, training
from tfvae.api import Run
from tfvae.config import Config
from tfvae.errors import ArgumentError, TfvaeError, flag_message
from tfvae.evaluation import likelihood_steps
from tfvae.inference import Inference
from tfvae.models import VampPrior, build_model, vamp

LATENT, K = 3, 6


def brute_force_log_mixture(z, means, log_vars):
    """log((1/K) sum_k prod_j N(z_j; m_kj, exp(v_kj))), written out with exp and float64 (no log-sum-exp)."""
    z, means, var = np.asarray(z, "float64"), np.asarray(means, "float64"), np.exp(np.asarray(log_vars, "float64"))
    density = np.exp(-0.5 * (z[:, None, :] - means) ** 2 / var) / np.sqrt(2 * np.pi * var)  # (n, K, d)
    return np.log(np.mean(np.prod(density, axis=-1), axis=1))


def test_the_mixture_log_density_is_the_brute_force_one():
    rng = np.random.default_rng(0)
    means, log_vars = rng.normal(size=(K, LATENT)), rng.uniform(-1.0, 0.5, size=(K, LATENT))
    z = rng.normal(scale=1.5, size=(50, LATENT))
    expected = brute_force_log_mixture(z, means, log_vars)
    np.testing.assert_allclose(losses.mixture_log_prob(z, means, log_vars), expected, rtol=1e-5, atol=1e-5)
    prior = VampPrior(means, log_vars)
    np.testing.assert_allclose(prior.log_prob(z), expected, rtol=1e-5, atol=1e-5)
    # Leading axes broadcast (the IWAE's (n, draws, latent)), and far from every component it stays finite.
    np.testing.assert_allclose(prior.log_prob(z.reshape(10, 5, LATENT)), expected.reshape(10, 5), rtol=1e-5,
                               atol=1e-5)
    far = np.asarray(prior.log_prob(np.full((1, LATENT), 60.0)))
    assert np.isfinite(far).all() and far[0] < -1000


def test_the_kl_estimate_averages_to_the_kl_by_quadrature():
    # q(z|x) and a 3-component mixture in 2-D; the KL integral on a fine grid is the brute-force value.
    mean, log_var = np.array([0.5, -0.3]), np.array([-0.7, 0.2])
    means = np.array([[0.0, 0.0], [1.5, -1.0], [-1.0, 1.0]])
    log_vars = np.array([[0.0, -0.5], [-1.0, 0.0], [0.3, 0.3]])
    sd = np.exp(0.5 * log_var)
    axes = [np.linspace(m - 9 * s, m + 9 * s, 801) for m, s in zip(mean, sd)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 2)
    log_q = -0.5 * np.sum(np.log(2 * np.pi) + log_var + (grid - mean) ** 2 / np.exp(log_var), axis=1)
    cell = np.prod([a[1] - a[0] for a in axes])
    kl = np.sum(np.exp(log_q) * (log_q - brute_force_log_mixture(grid, means, log_vars))) * cell

    draws = 20000
    eps = np.random.default_rng(1).standard_normal((draws, 2))
    z = (mean + sd * eps).astype("float32")
    tile = lambda a: np.tile(a.astype("float32"), (draws, 1))  # noqa: E731
    estimates = np.asarray(vamp.vamp_kl(z, tile(mean), tile(log_var), means.astype("float32"),
                                        log_vars.astype("float32")), "float64")
    standard_error = estimates.std() / math.sqrt(draws)
    assert abs(estimates.mean() - kl) < 4 * standard_error, (estimates.mean(), kl, standard_error)
    assert standard_error < 0.02 * kl  # the check can fail: the KL is well resolved


def test_one_pseudo_input_encoded_to_the_standard_normal_is_the_vae():
    shape = (8, 8, 1)
    keras.utils.set_random_seed(0)  # the initial kernels: the image's posterior differs from the prior by a set KL
    model = build_model("vamp", shape, LATENT, arch="mlp", hidden=16, pseudo_inputs=1, seed=0)
    encoder = model.encoder
    # u = sigmoid(-40) ~ 0 reaches the dense layer as zeros; zero biases then make its posterior exactly N(0, I),
    # while the (non-zero) images get posteriors of their own through the kernels.
    encoder.get_layer("pseudo_inputs").logits.assign(np.full((1, *shape), -40.0, "float32"))
    for layer in encoder.layers:
        if isinstance(layer, keras.layers.Dense):
            layer.bias.assign(np.zeros(layer.bias.shape, "float32"))
    images = np.random.default_rng(0).uniform(size=(1, *shape)).astype("float32")
    batch = {"image": np.repeat(images, 4000, axis=0)}
    out = model(batch)
    np.testing.assert_allclose(out["prior_mean"], 0.0, atol=1e-6)
    np.testing.assert_allclose(out["prior_log_var"], 0.0, atol=1e-6)
    z = np.asarray(out["z"], "float64")
    standard_normal = -0.5 * np.sum(np.log(2 * np.pi) + z ** 2, axis=1)
    prior = VampPrior(out["prior_mean"], out["prior_log_var"])
    np.testing.assert_allclose(prior.log_prob(z), standard_normal, rtol=1e-5, atol=1e-5)  # the prior is N(0, I)
    # The loss's KL term: the estimate whose mean is the VAE's closed form (its draws are independent, 4000 of them).
    estimates = np.asarray(model.kl_estimate(out), "float64")
    closed = float(losses.gaussian_kl(out["z_mean"][:1], out["z_log_var"][:1])[0])
    assert abs(estimates.mean() - closed) < 4 * estimates.std() / math.sqrt(len(estimates)), (estimates.mean(), closed)
    assert closed > 0.05  # the image's posterior is not the prior: the check can fail
    noise = np.random.default_rng(1).standard_normal((5, LATENT)).astype("float32")
    np.testing.assert_allclose(model.prior_codes(noise), noise, atol=1e-5)  # TensorBoard's samples: N(0, I) draws
    # The IWAE with this prior is the VAE's, draw for draw.
    inference = Inference()
    theirs = inference.likelihood_terms(encoder, model.decoder, images, 1000, seed=3)
    mine = inference.likelihood_terms(encoder, model.decoder, images, 1000, seed=3, prior=prior)
    np.testing.assert_allclose(mine["nll"], theirs["nll"], rtol=1e-5)
    np.testing.assert_allclose(mine["reconstruction"], theirs["reconstruction"], rtol=1e-6)
    np.testing.assert_allclose(theirs["kl"], closed, rtol=1e-5)
    # With a prior the -ELBO's KL is the Monte-Carlo mean over the 1000 draws, whose mean is the closed form.
    assert abs(float(mine["kl"][0]) - closed) < 4 * estimates.std() / math.sqrt(1000), (mine["kl"], closed)


def test_learned_sampler_needs_a_learned_prior_and_names_the_argument(tmp_path):
    run = Run(str(tmp_path), Config(model="vae", workdir=str(tmp_path)))
    with pytest.raises(ArgumentError) as error:
        run.sampler("learned")
    message = str(error.value)
    assert error.value.argument == "sampler" and "\n" not in message and "no learned prior" in message
    assert flag_message(error.value).startswith("--sampler=learned, but ")


@pytest.fixture(scope="module")
def vamp_run(mnist_dir, tmp_path_factory):
    """A vamp (MLP, latent 3, K = 6) trained one epoch and resumed for a second, and the same two epochs trained
    at once: (resumed run's workdir, uninterrupted run's workdir, the resumed run's log)."""
    config = dict(model="vamp", latent=LATENT, pseudo_inputs=K, **TINY_MLP)

    def build(root):
        resumed, straight = root / "resumed", root / "straight"
        messages = []
        with eagerly():  # 2 steps an epoch
            training.train(tiny_run_config(mnist_dir, resumed, **config), verbose=0, log=lambda m: None)
            training.train(tiny_run_config(mnist_dir, resumed, epochs=2, **config), verbose=0, log=messages.append)
            training.train(tiny_run_config(mnist_dir, straight, epochs=2, **config), verbose=0, log=lambda m: None)
        return messages

    root, messages = shared_build(tmp_path_factory, "vamp", build)  # trained once for the xdist workers
    return root / "resumed", root / "straight", messages


def test_a_vamp_run_resumes_exactly_and_exports_its_prior(vamp_run):
    resumed, straight, messages = vamp_run
    assert any("resuming" in m and "after epoch 1" in m for m in messages)
    mine, theirs = tfvae.load(str(resumed)), tfvae.load(str(straight))
    for a, b in zip(mine.encoder.get_weights() + mine.decoder.get_weights(),
                    theirs.encoder.get_weights() + theirs.decoder.get_weights()):
        np.testing.assert_array_equal(a, b)
    # encoder.keras (float32, loaded with safe_mode) carries the K pseudo-inputs, trained away from their start.
    layer = mine.encoder.get_layer("pseudo_inputs")
    assert layer.dtype_policy.name == "float32" and layer.images().shape == (K, 28, 28, 1)
    fresh = build_model("vamp", (28, 28, 1), LATENT, arch="mlp", hidden=16, pseudo_inputs=K, seed=0)
    assert not np.allclose(layer.images(), fresh.encoder.get_layer("pseudo_inputs").images(), atol=1e-4)
    tags = event_tags(str(resumed / "logs"))
    assert {"train/epoch_kl", "validation/epoch_kl", "images/samples"} <= tags, sorted(tags)


def test_another_number_of_pseudo_inputs_is_another_run(vamp_run, mnist_dir, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(vamp_run[0], workdir)
    config = tiny_run_config(mnist_dir, workdir, model="vamp", latent=LATENT, pseudo_inputs=K + 1, epochs=3,
                             **TINY_MLP)
    with pytest.raises(TfvaeError, match=f"holds a different run.*pseudo_inputs={K} \\(asked {K + 1}\\)"):
        training.train(config, verbose=0, log=lambda m: None)
    assert "pseudo_inputs" not in Config(model="vae").architecture()  # only a vamp's shape depends on it


def test_the_learned_sampler_draws_from_the_pseudo_inputs_posteriors(vamp_run):
    run = tfvae.load(str(vamp_run[0]))
    assert run.default_sampler == "learned"
    prior = run.sampler()
    assert prior is run.sampler("learned") and isinstance(prior, VampPrior)
    # Its components are the pseudo-inputs' posteriors, by a direct call of the loaded encoder.
    codes = run.encoder(run.encoder.get_layer("pseudo_inputs").images())
    np.testing.assert_allclose(prior.means, codes["z_mean"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(prior.log_vars, codes["z_log_var"], rtol=1e-5, atol=1e-6)
    z = prior.sample(6000, seed=1)
    np.testing.assert_array_equal(z, prior.sample(6000, seed=1))
    variance = np.mean(np.exp(prior.log_vars), axis=0) + np.var(prior.means, axis=0)  # the mixture's, per dim
    np.testing.assert_allclose(z.mean(0), prior.means.mean(0), atol=4 * np.sqrt(variance / 6000).max())
    np.testing.assert_allclose(z.var(0), variance, rtol=0.1)
    images = run.sample(8, seed=2)
    assert images.shape == (8, 28, 28, 1) and 0 <= images.min() and images.max() <= 1
    np.testing.assert_allclose(images, run.decode(prior.sample(8, seed=2)), rtol=1e-6)
    # evaluate.py --sampler=learned draws the same codes (tfvae.evaluation.sample_latents); options accept it.
    codes, sampler = evaluation.sample_latents(run, "learned", 8, seed=2)
    assert sampler is prior and np.array_equal(codes, prior.sample(8, seed=2))
    evaluation.EvalOptions(samplers=("prior", "learned")).validate()
    assert not os.path.exists(vamp_run[0] / "samplers")  # nothing fitted, nothing saved


def test_a_vamp_runs_likelihood_uses_its_prior(vamp_run):
    run = tfvae.load(str(vamp_run[0]))
    x, _ = run.test_data()
    x = x[:4]
    terms = run.scores.likelihood_terms(x, num_samples=64, seed=0)
    # The KL by brute force: numpy draws from q(z|x), log q - log p with the mixture written out.
    z_mean, z_log_var = run.encode(x)
    eps = np.random.default_rng(5).standard_normal((4, 4000, LATENT))
    z = z_mean[:, None] + np.exp(0.5 * z_log_var)[:, None] * eps
    log_q = -0.5 * np.sum(np.log(2 * np.pi) + z_log_var[:, None] + eps ** 2, axis=-1)
    prior = run.learned_prior
    log_p = brute_force_log_mixture(z.reshape(-1, LATENT), prior.means, prior.log_vars).reshape(4, -1)
    kl = (log_q - log_p).mean(axis=1)
    spread = (log_q - log_p).std(axis=1)
    assert np.all(np.abs(terms["kl"] - kl) < 4 * spread * math.sqrt(1 / 64 + 1 / 4000) + 1e-3), (terms["kl"], kl)
    np.testing.assert_allclose(terms["neg_elbo"], terms["reconstruction"] + terms["kl"], rtol=1e-9)
    assert np.all(terms["nll"] <= terms["neg_elbo"] + 1e-3)  # the IWAE bound is at least the ELBO's
    assert run.score(x).shape == (4,)
    # evaluate.py's likelihood steps: the same terms, and a note that says which prior they use.
    options = evaluation.EvalOptions(num_samples=64, num_images=4, elbo_samples=64)
    scores, _ = likelihood_steps.per_image_scores(run, x, None, options)
    assert abs(np.mean(scores["kl"]) - np.mean(kl)) < 4 * np.mean(spread) / math.sqrt(64) + 1e-3
    m = {}
    likelihood_steps.iwae_estimate(run, x, None, scores, options, m, log=lambda line: None)
    assert m["iwae_nll"] <= m["iwae_neg_elbo"] + 1e-3 and m["iwae_num_images"] == 4
    assert "VampPrior" in likelihood_steps.likelihood_note(run)


def test_sample_py_learned_and_a_vamp_encoder_that_lost_its_prior(vamp_run, offline_env, tmp_path):
    workdir, broken = tmp_path / "run", tmp_path / "broken"
    shutil.copytree(vamp_run[0], workdir)
    shutil.copytree(vamp_run[0], broken)
    # A vae's encoder.keras in place of the vamp's (same shapes, no pseudo-inputs) is refused in one line.
    build_model("vae", (28, 28, 1), LATENT, arch="mlp", hidden=16).encoder.save(broken / "encoder.keras")
    with pytest.raises(TfvaeError, match="lacks pseudo-inputs, config.json says a vamp"):
        tfvae.load(str(broken)).sample(2)
    out = tmp_path / "learned.png"
    learned, refused = run_scripts([
        [SAMPLE, f"--workdir={workdir}", "--mode=random", "--grid=3", "--sampler=learned", f"--output={out}"],
        [SAMPLE, f"--workdir={broken}", "--mode=random", "--sampler=learned"]], offline_env, check=False)
    assert learned.returncode == 0 and out.is_file(), learned.stderr
    assert "fitted" not in learned.stdout and not os.path.exists(workdir / "samplers")  # nothing to fit or save
    assert_one_line_error(refused, "encoder.keras does not fit", "lacks pseudo-inputs")


def test_a_conv_vamp_on_a_colour_folder_with_a_gaussian_decoder(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(16):
        Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    workdir = tmp_path / "run"
    config = Config(model="vamp", dataset="folder", data_dir=str(folder), image_size=8, channels=3, latent=2,
                    filters=(4,), hidden=8, pseudo_inputs=4, loss="gaussian", epochs=1, batch_size=8,
                    strategy="default", workdir=str(workdir), steps_per_execution=1)
    training.train(config, verbose=0, log=lambda m: None)
    run = tfvae.load(str(workdir))
    assert run.learned_prior.means.shape == (4, 2) and run.encoder.get_layer("pseudo_inputs").images().shape == (
        4, 8, 8, 3)
    assert run.sample(3).shape == (3, 8, 8, 3)
    x, _ = run.test_data()
    terms = run.scores.likelihood_terms(x[:2], num_samples=8)
    assert run.likelihood == "gaussian" and np.isfinite(terms["nll"]).all() and np.isfinite(terms["kl"]).all()
