"""Samplers fitted after training (tfvae.samplers, saved by tfvae.rundir): the saved mixture reloads to the
same draws, the second-stage VAE brings the sampled codes to the training codes, damaged files are one line,
and sample.py, Run.sample and evaluate.py use them."""

import json
import os
import shutil

import numpy as np
import pytest

import tfvae
from tests.conftest import EVALUATE, SAMPLE, assert_one_line_error, run_script, run_scripts
from tfvae import metrics, rundir, samplers, training
from tfvae.config import Config
from tfvae.errors import ArgumentError, TfvaeError


@pytest.fixture(scope="module")
def ae_run(mnist_dir, tmp_path_factory):
    """A plain autoencoder (latent 4) trained for one epoch on 256 digits, in this process: its codes are not
    N(0, I). Tests copy it before writing into it (``copy_of``)."""
    workdir = tmp_path_factory.mktemp("samplers") / "ae"
    config = Config(model="ae", latent=4, data_dir=mnist_dir, epochs=1, batch_size=64, max_examples=256,
                    workdir=str(workdir))
    training.train(config, verbose=0, log=lambda message: None)
    return workdir


def copy_of(workdir, tmp_path):
    target = tmp_path / "ae"
    shutil.copytree(workdir, target)
    return target


def test_gmm_draws_are_scikit_learns_and_survive_the_file(tmp_path):
    rng = np.random.default_rng(0)
    codes = np.concatenate([rng.normal(-3, 1, (300, 3)), rng.normal(4, 0.5, (200, 3))])
    fitted = samplers.GaussianMixtureSampler.fit(codes, seed=0, components=2)
    estimator = metrics.fit_gaussian_mixture(codes, 2, seed=0)
    np.testing.assert_array_equal(fitted.sample(500, seed=3), estimator.sample(500, seed=3))  # evaluation's draws

    path = rundir.save_sampler(str(tmp_path), "gmm", fitted.state(), {"latent": 3})
    assert path == str(tmp_path / "samplers" / "gmm.npz") and not [p for p in os.listdir(tmp_path / "samplers")
                                                                    if ".tmp" in p]
    arrays, meta = rundir.load_sampler(str(tmp_path), "gmm", 3, samplers.GaussianMixtureSampler.required)
    assert meta["format"] == 1 and meta["sampler"] == "gmm"
    reloaded = samplers.sampler_from_state("gmm", arrays)
    np.testing.assert_array_equal(reloaded.sample(500, seed=3), fitted.sample(500, seed=3))
    assert not np.array_equal(reloaded.sample(500, seed=4), fitted.sample(500, seed=3))
    with pytest.raises(TfvaeError, match="codes of size 3, but the run's latent is 5"):
        rundir.load_sampler(str(tmp_path), "gmm", 5)
    assert rundir.load_sampler(str(tmp_path), "two_stage", 3) is None


def test_saved_samplers_reload_to_identical_samples(ae_run, tmp_path):
    workdir = copy_of(ae_run, tmp_path)
    lines = []
    run = tfvae.load(str(workdir), log=lines.append)
    assert run.default_sampler == "gmm"
    first = run.sample(12, seed=5)  # an ae's default: the gmm, fitted now
    assert any("fitted the gmm sampler to 256 training codes" in line for line in lines)
    assert (workdir / "samplers" / "gmm.npz").is_file()
    lines = []
    again = tfvae.load(str(workdir), log=lines.append)
    np.testing.assert_array_equal(again.sample(12, seed=5, sampler="gmm"), first)
    np.testing.assert_array_equal(again.sampler("gmm").sample(7, seed=1), run.sampler("gmm").sample(7, seed=1))
    assert not lines  # read from the file, not fitted again
    two = run.sampler("two_stage", steps=300)
    np.testing.assert_array_equal(tfvae.load(str(workdir)).sampler("two_stage", steps=300).sample(9, seed=2),
                                  two.sample(9, seed=2))


def test_two_stage_brings_sampled_codes_to_the_training_codes(ae_run, tmp_path):
    run = tfvae.load(str(copy_of(ae_run, tmp_path)), log=lambda message: None)
    codes = run.train_codes()
    prior = metrics.frechet_distance_of_features(run.sampler("prior").sample(len(codes), seed=0), codes)
    two_stage = metrics.frechet_distance_of_features(run.sampler("two_stage").sample(len(codes), seed=0), codes)
    gmm = metrics.frechet_distance_of_features(run.sampler("gmm").sample(len(codes), seed=0), codes)
    print(f"Frechet distance to the training codes: prior {prior:.2f}, two_stage {two_stage:.2f}, gmm {gmm:.2f}")
    assert two_stage < 0.2 * prior and gmm < 0.2 * prior, (prior, two_stage, gmm)


@pytest.mark.parametrize("damage", ["cut", "garbage", "empty", "other run"])
def test_a_damaged_sampler_file_is_one_line(ae_run, tmp_path, damage):
    workdir = copy_of(ae_run, tmp_path)
    tfvae.load(str(workdir), log=lambda message: None).sampler("gmm")
    path = workdir / "samplers" / "gmm.npz"
    data = path.read_bytes()
    if damage == "cut":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not an archive" * 10)
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        rundir.save_sampler(str(workdir), "gmm", {"weights": np.ones(1)}, {"latent": 7})
    with pytest.raises(TfvaeError) as error:
        tfvae.load(str(workdir)).sample(4, sampler="gmm")
    message = str(error.value)
    assert "\n" not in message and str(path) in message and "delete it" in message, message


def test_an_unknown_sampler_names_the_choices(trained):
    run = tfvae.load(str(trained / "runs" / "vae"))
    with pytest.raises(ArgumentError, match="sampler='bogus' is not a sampler; choose one of prior, gmm, "
                                            "two_stage, learned") as error:
        run.sample(4, sampler="bogus")
    assert error.value.argument == "sampler"


def test_sample_py_fits_the_sampler_once_then_reuses_it(ae_run, tmp_path, offline_env):
    workdir = copy_of(ae_run, tmp_path)
    out1, out2 = tmp_path / "one.png", tmp_path / "two.png"
    first = run_script([SAMPLE, f"--workdir={workdir}", "--mode=random", "--grid=4", "--sampler=gmm",
                        f"--output={out1}"], offline_env)
    assert "fitted the gmm sampler" in first.stdout and out1.is_file(), first.stdout + first.stderr
    path = workdir / "samplers" / "gmm.npz"
    mtime = path.stat().st_mtime_ns
    # No --sampler: an ae's default is the gmm, read from the file; the same draws make the same picture.
    second, wrong = run_scripts([[SAMPLE, f"--workdir={workdir}", "--mode=random", "--grid=4", f"--output={out2}"],
                                 [SAMPLE, f"--workdir={workdir}", "--mode=reconstruct", "--sampler=gmm"]],
                                offline_env, check=False)
    assert second.returncode == 0 and "fitted" not in second.stdout, second.stdout + second.stderr
    assert path.stat().st_mtime_ns == mtime and out2.read_bytes() == out1.read_bytes()
    assert_one_line_error(wrong, "--sampler=gmm given, but the reconstruct picture draws no samples")
    path.write_bytes(path.read_bytes()[:100])
    third = run_script([SAMPLE, f"--workdir={workdir}", "--mode=random", "--sampler=gmm"], offline_env, check=False)
    assert_one_line_error(third, "gmm.npz is cut short", "delete it")


def test_the_mixture_size_is_asked_for_and_a_default_draw_fits_the_default_size_again(ae_run, tmp_path,
                                                                                     offline_env):
    workdir = copy_of(ae_run, tmp_path)
    three, prior, wrong_mode = run_scripts(
        [[SAMPLE, f"--workdir={workdir}", "--mode=random", "--grid=2", "--sampler=gmm", "--gmm_components=3",
          f"--output={tmp_path / 'three.png'}"],
         [SAMPLE, f"--workdir={workdir}", "--mode=random", "--sampler=prior", "--gmm_components=3"],
         [SAMPLE, f"--workdir={workdir}", "--mode=reconstruct", "--gmm_components=3"]], offline_env, check=False)
    assert three.returncode == 0, three.stderr
    arrays, meta = rundir.load_sampler(str(workdir), "gmm", 4)
    assert arrays["weights"].shape == (3,) and meta["settings"]["components"] == 3
    assert_one_line_error(prior, "--gmm_components=3 given, but sampler=prior takes no settings")
    assert_one_line_error(wrong_mode, "--gmm_components=3 given, but the reconstruct picture draws no samples")
    # Asked for nothing, a draw gets the default size: the saved 3-component mixture is fitted again, not reused.
    lines = []
    run = tfvae.load(str(workdir), log=lines.append)
    assert run.sampler("gmm").weights.shape == (samplers.GMM_COMPONENTS,)
    assert any("fitted with other settings" in line for line in lines), lines
    assert len(run.sample(3, sampler="gmm", components=2)) == 3
    assert rundir.load_sampler(str(workdir), "gmm", 4)[0]["weights"].shape == (2,)
    with pytest.raises(ArgumentError, match="components=3 given, but sampler=two_stage takes hidden, steps") as error:
        run.sampler("two_stage", components=3)
    assert error.value.argument == "components"
    with pytest.raises(ArgumentError, match="components=257: a mixture of 1 to 256 Gaussians") as error:
        run.sampler("gmm", components=257)
    assert error.value.argument == "components"


def test_evaluate_py_reports_fcd_for_two_stage(ae_run, tmp_path, offline_env):
    workdir = copy_of(ae_run, tmp_path)
    env = dict(offline_env, TFVAE_CACHE=str(tmp_path / "cache"))
    run_script([EVALUATE, f"--workdir={workdir}", "--sampler=prior,two_stage,gmm", "--gmm_components=2",
                "--sample_count=64", "--classifier_epochs=1", "--batch_size=256"], env)
    results = json.loads((workdir / "eval.json").read_text())
    for sampler in ("prior", "two_stage", "gmm"):
        assert isinstance(results["samplers"][sampler]["fcd"], float)
        assert 0 < results["samplers"][sampler]["training_distance_ratio"] < 100
    assert results["settings"]["gmm_components"] == 2
    assert rundir.load_sampler(str(workdir), "gmm", 4)[0]["weights"].shape == (2,)
    assert (workdir / "samplers" / "two_stage.npz").is_file()
    # The saved second stage is the one Run.sample draws from.
    meta = rundir.load_sampler(str(workdir), "two_stage", 4)[1]
    assert meta["codes"] == 256 and meta["settings"]["hidden"] == 64


def test_a_sampler_of_another_encoder_is_fitted_again(ae_run, tmp_path):
    workdir = copy_of(ae_run, tmp_path)
    fitted = tfvae.load(str(workdir), log=lambda message: None).sampler("gmm")
    # As if the run had trained further since: the file names another encoder.keras.
    meta = rundir.load_sampler(str(workdir), "gmm", 4)[1]
    rundir.save_sampler(str(workdir), "gmm", fitted.state(), dict(meta, encoder_sha256="0" * 64))
    lines = []
    refitted = tfvae.load(str(workdir), log=lines.append).sampler("gmm")
    assert "was fitted to another encoder.keras (the run has trained since): fitting it again" in lines[0]
    assert rundir.load_sampler(str(workdir), "gmm", 4)[1]["encoder_sha256"] == rundir.encoder_fingerprint(
        str(workdir))
    np.testing.assert_allclose(refitted.sample(5, seed=0), fitted.sample(5, seed=0), atol=1e-4)  # same codes, fit
