"""iwae, the importance-weighted autoencoder (Burda et al. 2016), added through the registry: its module, one
registry line, these tests and its docs rows.

- L_1 is the VAE's ELBO (exactly per draw with a sampled KL; in expectation with the closed form).
- L_K tightens with K towards log p(x), against a brute-force importance-sampling estimate.
- It draws fresh noise each compiled step, trains through train.py, resumes and scores like any model.
"""

import json
import os

import numpy as np
import pytest
from scipy.special import logsumexp

from tests.conftest import run_script, tiny_run_config
from tfvae import models
from tfvae.config import Config
from tfvae.errors import TfvaeError


def test_its_settings_are_its_own_and_checked(tmp_path):
    with pytest.raises(TfvaeError, match="--iwae_samples is a hyperparameter of --model=iwae; a vae has none"):
        Config(model="vae", iwae_samples=6, workdir=str(tmp_path)).validate()
    with pytest.raises(TfvaeError, match=r"--iwae_samples must be at least 1 \(got 0\)"):
        Config(model="iwae", iwae_samples=0, workdir=str(tmp_path)).validate()
    with pytest.raises(TfvaeError, match="--model=iwae takes no --loss=gaussian"):
        Config(model="iwae", loss="gaussian", workdir=str(tmp_path)).validate()


def test_a_config_json_from_before_iwae_still_loads(tmp_path):
    old = json.loads(Config(model="vae", image_shape=(28, 28, 1)).to_json())
    del old["iwae_samples"]
    (tmp_path / "config.json").write_text(json.dumps(old))
    assert Config.load(str(tmp_path)).iwae_samples == 5


def _tiny_iwae(samples, seed=0):
    return models.build_model("iwae", (4, 4, 1), 2, arch="mlp", hidden=8, seed=seed, iwae_samples=samples)


def _log_weights(model, x, draws, seed):
    """(draws, n) log importance weights of images ``x`` under ``model``'s networks, in numpy."""
    from tfvae.models.iwae import log_weights

    out = model.encoder(x, training=False)
    mean, log_var = np.asarray(out["z_mean"]), np.asarray(out["z_log_var"])
    eps = np.random.default_rng(seed).standard_normal((draws,) + mean.shape).astype("float32")
    z = mean[None] + np.exp(0.5 * log_var)[None] * eps
    logits = model.decoder(z.reshape(-1, z.shape[-1]), training=False)
    log_w, recon, kl = log_weights(x, logits, z, mean, log_var)
    return np.asarray(log_w, "float64"), np.asarray(recon), np.asarray(kl), (mean, log_var)


def test_iwae_k1_bound_is_the_vaes_elbo():
    from tfvae import losses

    model = _tiny_iwae(1)
    x = np.random.default_rng(0).uniform(size=(6, 4, 4, 1)).astype("float32")
    log_w, recon, kl, (mean, log_var) = _log_weights(model, x, 20000, seed=1)
    # Each draw's log weight is exactly -(reconstruction + log q - log p) at that draw.
    np.testing.assert_allclose(log_w, -(recon + kl), rtol=1e-6)
    # In expectation L_1 = E_q[log p(x|z)] - KL(q || N(0, I)): the VAE's ELBO with its closed-form KL.
    elbo = -recon.mean(axis=0) - np.asarray(losses.gaussian_kl(mean, log_var))
    standard_error = log_w.std(axis=0) / np.sqrt(len(log_w))
    np.testing.assert_array_less(np.abs(log_w.mean(axis=0) - elbo), 4 * standard_error + 1e-4)


def test_iwae_bound_tightens_with_k_towards_a_brute_force_log_likelihood():
    model = _tiny_iwae(1, seed=3)
    x = np.random.default_rng(1).uniform(size=(5, 4, 4, 1)).astype("float32")
    log_w, *_ = _log_weights(model, x, 200_000, seed=2)
    log_px = logsumexp(log_w, axis=0) - np.log(len(log_w))  # brute force: 200,000 importance samples

    def bound(k):  # L_k, estimated from disjoint groups of k draws
        groups = log_w[: len(log_w) // k * k].reshape(-1, k, log_w.shape[1])
        return (logsumexp(groups, axis=1) - np.log(k)).mean(axis=0)

    l1, l5, l50 = bound(1), bound(5), bound(50)
    assert np.all(l1 < l5) and np.all(l5 < l50) and np.all(l50 <= log_px + 1e-3)
    assert np.all(log_px - l50 < log_px - l1)  # nearer the likelihood
    # The model's own loss is the batch mean of -L_K: with K draws of its own noise, near the estimate above.
    model5 = _tiny_iwae(5, seed=3)
    model5.set_weights(model.get_weights())
    losses_5 = [float(model5.compute_terms({"image": x}, training=True)["loss"]) for _ in range(60)]
    assert abs(np.mean(losses_5) + l5.mean()) < 4 * np.std(losses_5) / np.sqrt(len(losses_5)) + 1e-2


def test_iwae_draws_fresh_noise_each_compiled_step():
    import tensorflow as tf

    model = _tiny_iwae(3)
    x = {"image": np.random.default_rng(0).uniform(size=(4, 4, 4, 1)).astype("float32")}
    step = tf.function(lambda batch: model.compute_terms(batch, training=True)["loss"])
    assert len({float(step(x)) for _ in range(3)}) == 3


@pytest.fixture(scope="module")
def iwae_run(mnist_dir, tmp_path_factory):
    from tfvae import training

    config = tiny_run_config(mnist_dir, tmp_path_factory.mktemp("iwae"), model="iwae", latent=2, arch="mlp",
                             hidden=16, max_examples=256, batch_size=64, iwae_samples=4)
    return config, training.train(config, verbose=0, log=lambda *a: None)


def test_iwae_trains_exports_loads_and_scores_like_any_model(iwae_run):
    import tfvae

    config, result = iwae_run
    assert np.isfinite(result["loss"]) and result["loss"] <= result["reconstruction"] + result["kl"] + 1e-3
    saved = json.load(open(os.path.join(config.workdir, "config.json")))
    assert (saved["model"], saved["iwae_samples"]) == ("iwae", 4)
    run = tfvae.load(config.workdir)
    assert run.variational and run.default_sampler == "prior"
    x, _ = run.test_data()
    assert run.sample(3, seed=0).shape == (3, 28, 28, 1)
    assert np.all(np.isfinite(run.score(x[:4])))


def test_train_py_takes_the_iwae_and_prints_its_terms(mnist_dir, offline_env, tmp_path):
    proc = run_script(["train.py", "--model=iwae", "--iwae_samples=2", "--arch=mlp", "--hidden=8", "--epochs=1",
                       "--max_examples=64", f"--data_dir={mnist_dir}", "--nodownload", f"--workdir={tmp_path / 'run'}"],
                      offline_env)
    assert "final test loss" in proc.stdout and ", KL " in proc.stdout
    assert json.load(open(tmp_path / "run" / "config.json"))["iwae_samples"] == 2

