"""The rae and wae (tfvae/models/regularized.py): their penalties against numpy, fresh prior draws every step,
exact resume, two replicas, and a trained run through tfvae.load, sample.py, TensorBoard and history.csv."""

import csv
import functools
import json
import os
import re
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import SAMPLE, TINY_MLP, TRAIN, Killed, event_tags, kill_at, run_script, tiny_run_config
from tfvae import api, rundir, training
from tfvae.config import Config
from tfvae.errors import TfvaeError
from tfvae.evaluation.likelihood_steps import likelihood_note
from tfvae.models import PriorDraws, build_model
from tfvae.models import regularized as reg
from tfvae.samplers import default_sampler

pytestmark = pytest.mark.filterwarnings("ignore:Even though the `tf.config.experimental_run_functions_eagerly`")
tiny_config = functools.partial(tiny_run_config, **TINY_MLP, latent=2)


def quiet_train(config, **kwargs):
    return training.train(config, verbose=0, log=lambda *_: None, **kwargs)


def history(workdir):
    with open(os.path.join(workdir, "history.csv")) as f:
        return list(csv.DictReader(f))


def numpy_mmd(x, y, scales=reg.MMD_SCALES):
    """The U-statistic of MMD^2 with the summed inverse multiquadratic kernels, written out pair by pair."""
    x, y = np.asarray(x, "float64"), np.asarray(y, "float64")
    n, d = x.shape

    def k(a, b):
        return sum(s * 2 * d / (s * 2 * d + np.sum((a - b) ** 2)) for s in scales)

    within = sum(k(x[i], x[j]) + k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    across = sum(k(x[i], y[j]) for i in range(n) for j in range(n)) / n ** 2
    return within - 2 * across


def test_mmd_is_the_brute_force_u_statistic():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 3)).astype("float32"), rng.normal(1.0, 2.0, size=(7, 3)).astype("float32")
    assert float(reg.mmd_squared(x, y)) == pytest.approx(numpy_mmd(x, y), rel=1e-5)
    assert float(reg.mmd_squared(x[:1], y[:1])) == 0.0  # a batch of one has no estimate
    # One scale alone, at x = y + 1 everywhere in d = 3: k = C / (C + 3) with C = 6.
    assert float(reg.imq_kernel(x[:1] + 1.0, x[:1], scales=(1.0,))[0, 0]) == pytest.approx(6 / 9, rel=1e-6)


def test_mmd_is_near_zero_for_one_distribution_and_large_for_a_shifted_one():
    rng = np.random.default_rng(1)
    a, b = (rng.normal(size=(256, 4)).astype("float32") for _ in range(2))
    same, shifted = float(reg.mmd_squared(a, b)), float(reg.mmd_squared(a, b + 1.0))
    scaled = float(reg.mmd_squared(a, 0.3 * b))  # the codes of a freshly initialised encoder: huddled near 0
    assert abs(same) < 0.01 and shifted > 0.3 and scaled > 0.3
    assert shifted > 30 * abs(same)


def test_rae_loss_terms_are_numpys_on_fixed_weights():
    shape = (8, 8, 1)
    model = build_model("rae", shape, 3, arch="mlp", hidden=16, penalty_weight=0.5, decoder_l2=0.25, seed=0)
    x = np.random.default_rng(2).uniform(size=(4, *shape)).astype("float32")
    out = model({"image": x})
    terms = model.loss_terms({"image": x}, out)
    logits = np.asarray(out["logits"], "float64").reshape(4, -1)
    bce = np.sum(np.logaddexp(0.0, logits) - x.reshape(4, -1) * logits, axis=1)
    z = np.asarray(model.encoder.predict(x, verbose=0)["z"], "float64")
    kernels = sum(np.sum(np.asarray(layer.kernel, "float64") ** 2) for layer in model.decoder.layers
                  if hasattr(layer, "kernel"))
    assert len(model.decoder_kernels) == 2  # the MLP decoder's two Dense kernels, not their biases
    penalty = np.mean(0.5 * 0.5 * np.sum(z ** 2, axis=1)) + 0.25 * kernels
    assert float(terms["reconstruction"]) == pytest.approx(np.mean(bce), rel=1e-5)
    assert float(terms["kl"]) == 0.0
    assert float(terms["penalty"]) == pytest.approx(penalty, rel=1e-5)
    assert float(terms["loss"]) == pytest.approx(np.mean(bce) + penalty, rel=1e-5)
    defaults = build_model("rae", shape, 3, arch="mlp", hidden=16)
    assert (defaults.penalty_weight, defaults.decoder_l2) == (reg.RAE_LATENT_WEIGHT, reg.RAE_DECODER_L2)


def test_wae_penalty_is_the_mmd_to_its_own_prior_draws():
    shape = (8, 8, 1)
    model = build_model("wae", shape, 3, arch="mlp", hidden=16, penalty_weight=7.0, seed=5)
    assert build_model("wae", shape, 3, arch="mlp", hidden=16).penalty_weight == reg.WAE_WEIGHT
    x = np.random.default_rng(3).uniform(size=(6, *shape)).astype("float32")
    terms = model.compute_terms({"image": x})
    z = np.asarray(model.encoder.predict(x, verbose=0)["z"])
    draws = np.asarray(PriorDraws(seed=5)(z))  # a fresh generator with the model's seed draws what it drew
    assert float(terms["penalty"]) == pytest.approx(7.0 * numpy_mmd(z, draws), rel=1e-4)
    assert float(terms["loss"]) == pytest.approx(float(terms["reconstruction"] + terms["penalty"]), rel=1e-6)
    # The next call draws afresh.
    assert float(model.compute_terms({"image": x})["penalty"]) != pytest.approx(float(terms["penalty"]))
    layer = PriorDraws.from_config(PriorDraws(seed=9, name="p").get_config())
    assert (layer.seed, layer.name) == (9, "p")


def test_wae_draws_fresh_prior_codes_every_compiled_step():
    shape = (8, 8, 1)
    model = build_model("wae", shape, 2, arch="mlp", hidden=8, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.0))  # the weights stay: only the prior draws change
    start = keras.ops.convert_to_numpy(model.prior_draws.seed_generator.state).copy()
    batch = {"image": np.random.default_rng(4).uniform(size=(16, *shape)).astype("float32")}
    means = []
    model.fit(tf.data.Dataset.from_tensors(batch).repeat(3), epochs=1, verbose=0, shuffle=False,
              callbacks=[keras.callbacks.LambdaCallback(on_train_batch_end=lambda s, logs: means.append(
                  float(logs["penalty"])))])
    penalties = [means[0]] + [(i + 1) * means[i] - i * means[i - 1] for i in range(1, 3)]  # undo the running mean
    assert len(set(np.round(penalties, 5))) == 3
    assert not np.array_equal(keras.ops.convert_to_numpy(model.prior_draws.seed_generator.state), start)


@pytest.mark.parametrize("kind", ["rae", "wae"])
def test_two_replicas_train_a_regularized_model(kind):
    batch = {"image": np.random.default_rng(5).uniform(size=(8, 8, 8, 1)).astype("float32")}
    weights = build_model(kind, (8, 8, 1), 2, arch="mlp", hidden=8, seed=0).get_weights()
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"],
                                              cross_device_ops=tf.distribute.ReductionToOneDevice())
    results = []
    for strategy in (tf.distribute.get_strategy(), mirrored):
        with strategy.scope():
            model = build_model(kind, (8, 8, 1), 2, arch="mlp", hidden=8, seed=0)
            model.compile(optimizer=keras.optimizers.SGD(0.1))
        model.set_weights(weights)
        logs = model.fit(tf.data.Dataset.from_tensor_slices(batch).batch(8), epochs=1, verbose=0,
                         shuffle=False).history
        results.append((model.get_weights(), logs))
    (single, single_logs), (pair, pair_logs) = results
    assert np.isfinite(pair_logs["loss"][0]) and np.isfinite(pair_logs["penalty"][0])
    assert any(not np.allclose(a, b) for a, b in zip(weights, pair))
    if kind == "rae":  # per-image terms and a weight term: the same update as one device
        for a, b in zip(single, pair):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
        assert pair_logs["loss"][0] == pytest.approx(single_logs["loss"][0], rel=1e-5)


def test_config_checks_the_penalty_weights(tmp_path):
    for name, bad in (("penalty_weight", -1.0), ("decoder_l2", -0.1)):
        with pytest.raises(TfvaeError, match=f"--{name} must be at least 0"):
            Config(model="rae", workdir=str(tmp_path), **{name: bad}).validate()
    with pytest.raises(TfvaeError, match="--penalty_weight is a hyperparameter of --model=rae or wae; a vae has none"):
        Config(model="vae", penalty_weight=1.0, workdir=str(tmp_path)).validate()
    with pytest.raises(TfvaeError, match="--decoder_l2 is a hyperparameter of --model=rae; a wae has none"):
        Config(model="wae", decoder_l2=1.0, workdir=str(tmp_path)).validate()
    with pytest.raises(TfvaeError, match="--recon_weight=0 leaves nothing to train"):
        Config(model="wae", recon_weight=0.0, workdir=str(tmp_path)).validate()
    config = Config(model="rae", latent=2, image_shape=(8, 8, 1), arch="mlp", penalty_weight=0.5, decoder_l2=0.25)
    model = training.create_model(config)
    assert (model.name, model.penalty_weight, model.decoder_l2) == ("rae", 0.5, 0.25)
    default = training.create_model(Config(model="wae", latent=2, image_shape=(8, 8, 1), arch="mlp"))
    assert default.penalty_weight == reg.WAE_WEIGHT  # 0: the module's default


def test_a_wae_killed_mid_epoch_resumes_exactly(mnist_dir, tmp_path, monkeypatch, eager):
    reference, workdir = str(tmp_path / "reference"), str(tmp_path / "run")
    config = functools.partial(tiny_config, mnist_dir, model="wae", epochs=2, checkpoint_every_steps=1)
    quiet_train(config(reference))
    kill_at(monkeypatch, "step-end", 4)  # after epoch 2's last step: its first step is the newest checkpoint
    with pytest.raises(Killed):
        quiet_train(config(workdir))
    monkeypatch.undo()
    state = json.loads(open(os.path.join(workdir, "checkpoints", "state.json")).read())
    assert len(state["noise"]) == 1 and state["step_in_epoch"] == 1  # the prior draws' generator
    quiet_train(config(workdir))
    for name in ("encoder", "decoder"):
        mine, theirs = (keras.saving.load_model(os.path.join(w, f"{name}.keras"), safe_mode=True)
                        for w in (workdir, reference))
        for a, b in zip(mine.get_weights(), theirs.get_weights()):
            np.testing.assert_array_equal(a, b)
    columns = ("epoch", "loss", "reconstruction", "kl", "penalty", "val_penalty")
    assert [[r[k] for k in columns] for r in history(workdir)] == [[r[k] for k in columns] for r in history(reference)]
    run = api.load(workdir)  # a wae is sampled from its prior
    assert run.default_sampler == "prior" and run.sample(2, seed=0).shape == (2, 28, 28, 1)


@pytest.fixture(scope="module")
def rae_run(mnist_dir, offline_env, tmp_path_factory):
    """A conv rae trained by train.py for one epoch of 2 steps on mnist_dir's digits, with its penalty flags."""
    workdir = str(tmp_path_factory.mktemp("rae") / "rae")
    proc = run_script([TRAIN, "--model=rae", "--latent=2", f"--data_dir={mnist_dir}", "--download=false",
                       "--epochs=1", "--batch_size=32", "--max_examples=64", "--steps_per_execution=1",
                       "--strategy=default", "--penalty_weight=0.02", "--decoder_l2=0.002", f"--workdir={workdir}"],
                      offline_env)
    return workdir, proc


def test_a_trained_rae_loads_samples_and_logs_its_penalty(rae_run, tmp_path, offline_env):
    workdir, proc = rae_run
    assert re.search(r"final test loss [\d.]+ \(reconstruction [\d.]+, penalty [\d.]+\)", proc.stdout), proc.stdout
    config = Config.load(workdir)  # the flags reached the run's config, and the config the model
    model = training.create_model(config)
    assert (config.penalty_weight, model.penalty_weight, model.decoder_l2) == (0.02, 0.02, 0.002)
    rows = history(workdir)
    assert list(rows[0])[:5] == ["epoch", "loss", "reconstruction", "kl", "penalty"] and "val_penalty" in rows[0]
    for prefix in ("", "val_"):
        row = {k: float(rows[0][prefix + k]) for k in ("loss", "reconstruction", "kl", "penalty")}
        assert row["penalty"] > 0 and row["kl"] == 0.0
        assert row["loss"] == pytest.approx(row["reconstruction"] + row["penalty"], rel=1e-5)
    assert {"train/epoch_penalty", "validation/epoch_penalty"} <= event_tags(os.path.join(workdir, "logs"))
    # A damaged history.csv is rebuilt from TensorBoard with its penalty column.
    copy = str(tmp_path / "copy")
    shutil.copytree(workdir, copy)
    os.remove(os.path.join(copy, "history.csv"))
    rebuilt = rundir.load_history(os.path.join(copy, "history.csv"), 1, log=lambda *_: None,
                                  logdir=os.path.join(copy, "logs"))
    assert float(rebuilt[0]["penalty"]) == pytest.approx(float(rows[0]["penalty"]), rel=1e-5)

    run = api.load(workdir)
    assert not run.variational and run.default_sampler == "gmm" == default_sampler("rae")
    assert default_sampler("wae") == "prior"
    images = run.sample(4, seed=1)  # from a mixture fitted to the training codes
    assert images.shape == (4, 28, 28, 1) and os.path.isfile(os.path.join(workdir, "samplers", "gmm.npz"))
    z, log_var = run.encode(run.test_data()[0][:3])
    assert log_var is None and z.shape == (3, 2)
    with pytest.raises(TfvaeError, match="holds an rae, a deterministic autoencoder, which defines no likelihood"):
        run.scores.likelihood_terms(run.test_data()[0][:2])
    assert likelihood_note(run).startswith("A regularized autoencoder (rae) defines no density p(x)")
    out = tmp_path / "gmm.png"
    proc = run_script([SAMPLE, f"--workdir={workdir}", "--mode=random", "--grid=2", f"--output={out}"], offline_env)
    assert out.is_file() and "gmm" in proc.stdout, proc.stdout  # the rae's default sampler


def test_evaluating_an_rae_reports_reconstruction_and_says_why_there_is_no_likelihood(rae_run, tmp_path):
    from tfvae import evaluation

    workdir, _ = rae_run
    options = evaluation.EvalOptions(num_samples=4, num_images=32, sample_count=64, classifier_epochs=1,
                                     elbo_samples=2, batch_size=256, samplers=("prior", "gmm"),
                                     output=str(tmp_path / "eval"))
    results = evaluation.evaluate_run(workdir, options, log=lambda *_: None)
    m = results["metrics"]
    assert m["reconstruction"] > 0 and 0.0 < m["mse"] < 0.25
    assert "neg_elbo" not in m and "iwae_nll" not in m and "kl" not in m
    assert any(note.startswith("A regularized autoencoder (rae) defines no density") for note in results["notes"])
    assert set(results["samplers"]) == {"prior", "gmm"}
