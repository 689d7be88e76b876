"""Samplers fitted after training (tfvae.samplers, saved by tfvae.rundir): the saved mixture reloads to the
same draws, the second-stage VAE brings the sampled codes to the training codes, damaged files are one line,
and sample.py, Run.sample and evaluate.py use them."""

import json
import os
import shutil

import numpy as np
import pytest

import tfvae
from tests.conftest import EVALUATE, SAMPLE, assert_one_line_error, eagerly, run_script, run_scripts, shared_build
from tfvae import metrics, picture_arrays, pictures, samplers, training
from tfvae.config import Config
from tfvae.errors import ArgumentError, TfvaeError, flag_message
from tfvae.models.vamp import VampPrior


@pytest.fixture(scope="module")
def ae_run(mnist_dir, tmp_path_factory):
    """A plain autoencoder (latent 4) trained for one epoch on 256 digits, in this process: its codes are not
    N(0, I). Tests copy it before writing into it (``copy_of``)."""
    def build(root):
        config = Config(model="ae", latent=4, data_dir=mnist_dir, epochs=1, batch_size=64, max_examples=256,
                        workdir=str(root / "ae"))
        with eagerly():  # 4 steps
            training.train(config, verbose=0, log=lambda message: None)

    return shared_build(tmp_path_factory, "samplers", build)[0] / "ae"


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

    path = samplers.save_sampler(str(tmp_path), "gmm", fitted.state(), {"latent": 3})
    assert path == str(tmp_path / "samplers" / "gmm.npz") and not [p for p in os.listdir(tmp_path / "samplers")
                                                                    if ".tmp" in p]
    arrays, meta = samplers.load_sampler(str(tmp_path), "gmm", 3, samplers.GaussianMixtureSampler.required)
    assert meta["format"] == 1 and meta["sampler"] == "gmm"
    reloaded = samplers.sampler_from_state("gmm", arrays)
    np.testing.assert_array_equal(reloaded.sample(500, seed=3), fitted.sample(500, seed=3))
    assert not np.array_equal(reloaded.sample(500, seed=4), fitted.sample(500, seed=3))
    with pytest.raises(TfvaeError, match="codes of size 3, but the run's latent is 5"):
        samplers.load_sampler(str(tmp_path), "gmm", 5)
    assert samplers.load_sampler(str(tmp_path), "two_stage", 3) is None


def two_clusters(count=300):
    """``count`` codes of size 3 in two clusters."""
    rng = np.random.default_rng(0)
    return np.concatenate([rng.normal(-3, 1, (count // 2, 3)), rng.normal(4, 0.5, (count - count // 2, 3))])


def test_a_gmm_is_fitted_to_at_most_max_codes_codes_drawn_with_its_seed():
    # Four 2-component fits of 100-300 codes of size 3: well under a second.
    codes = two_clusters()
    subset = samplers.capped_codes(codes, 100, seed=0)
    assert subset.shape == (100, 3) and len(np.unique(subset, axis=0)) == 100
    assert (subset[:, None] == codes[None]).all(axis=-1).any(axis=1).all()  # rows of the codes, each once
    np.testing.assert_array_equal(samplers.capped_codes(codes, 100, seed=0), subset)  # the same seed, the same subset
    assert not np.array_equal(samplers.capped_codes(codes, 100, seed=1), subset)
    assert samplers.capped_codes(codes, 300) is codes and samplers.capped_codes(codes, 1000) is codes  # no cap
    fitted = samplers.GaussianMixtureSampler.fit(codes, seed=0, components=2, max_codes=100)
    alone = metrics.fit_gaussian_mixture(subset, 2, seed=0)  # the mixture of exactly those 100 codes
    np.testing.assert_array_equal(fitted.sample(50, seed=2), alone.sample(50, seed=2))
    again = samplers.GaussianMixtureSampler.fit(codes, seed=0, components=2, max_codes=100)
    np.testing.assert_array_equal(again.means, fitted.means)
    every = samplers.GaussianMixtureSampler.fit(codes, seed=0, components=2)  # the default cap is above 300: all
    np.testing.assert_array_equal(every.sample(50, seed=2), metrics.fit_gaussian_mixture(codes, 2, seed=0).sample(
        50, seed=2))


@pytest.mark.parametrize("max_codes, components, message", [
    (0, 2, "max_codes=0: the gmm is fitted to at most this many training codes, a whole number above 0"),
    (-5, 2, "max_codes=-5: the gmm is fitted to at most this many training codes"),
    (True, 2, "max_codes=True: the gmm is fitted to at most this many training codes"),
    (2.5, 2, "max_codes=2.5: the gmm is fitted to at most this many training codes"),
    (5, 10, "max_codes=5: fewer codes than the mixture's 10 components; give it at least 10")])
def test_a_bad_max_codes_is_one_line_naming_it(max_codes, components, message):
    with pytest.raises(ArgumentError) as error:  # refused before any fit
        samplers.GaussianMixtureSampler.fit(two_clusters(), components=components, max_codes=max_codes)
    assert error.value.argument == "max_codes" and "\n" not in str(error.value)
    assert str(error.value).startswith(message), str(error.value)
    assert flag_message(error.value, {"max_codes": "gmm_max_codes"}).startswith(f"--gmm_max_codes={max_codes}: ")


def test_a_capped_fit_says_so_keeps_its_settings_and_is_reused(tmp_path):
    # load_or_fit on 300 codes of size 3 in a folder without a run (no encoder.keras): three tiny fits.
    codes, workdir, calls = two_clusters(), str(tmp_path), []

    def fit(settings):
        lines = []
        fitted = samplers.load_or_fit(workdir, "gmm", 3, lambda: calls.append(1) or codes, settings, lines.append)
        return fitted, lines

    first, lines = fit({"components": 2, "max_codes": 100})
    assert len(lines) == 1 and lines[0].startswith(
        "fitted the gmm sampler to 100 of 300 training codes (a random subset: max_codes=100) in "), lines
    meta = samplers.load_sampler(workdir, "gmm", 3)[1]
    assert meta["codes"] == 100 and meta["training_codes"] == 300
    assert meta["settings"] == {"components": 2, "max_codes": 100}
    again, lines = fit({"components": 2, "max_codes": 100})
    assert not lines and len(calls) == 1  # read back, not fitted again (the codes not even asked for)
    np.testing.assert_array_equal(again.sample(20, seed=1), first.sample(20, seed=1))
    # Asked for nothing: the default cap (above 300) fits all 300, a fit of other codes.
    every, lines = fit({"components": 2})
    assert "was fitted with other settings than {'max_codes': 20000}" in lines[0], lines
    assert lines[1].startswith("fitted the gmm sampler to 300 training codes in ")
    assert samplers.load_sampler(workdir, "gmm", 3)[1]["codes"] == 300
    # Any cap at or above the 300 codes fits all of them, the same fit: reused.
    assert not fit({"components": 2, "max_codes": 300})[1] and not fit({"components": 2, "max_codes": 5000})[1]
    # A file written before the cap (no max_codes, no training_codes; fitted to all its codes) is reused while the
    # cap takes them all, and fitted again, to a subset, when it does not.
    samplers.save_sampler(workdir, "gmm", every.state(), {"latent": 3, "codes": 300, "encoder_sha256": None,
                                                         "settings": {"components": 2}, "seconds": 0.1})
    old, lines = fit({"components": 2})
    assert not lines and len(calls) == 2
    np.testing.assert_array_equal(old.sample(20, seed=1), every.sample(20, seed=1))
    lines = fit({"components": 2, "max_codes": 150})[1]
    assert "was fitted with other settings than {'max_codes': 150}" in lines[0] and "150 of 300" in lines[1]


def test_a_gridvaes_gmm_has_a_component_per_40_codes_within_a_fits_work_and_the_others_ten():
    from tfvae.samplers import run_samplers

    def never():
        raise AssertionError("a model of a fixed default size counts no codes")

    for model in ("ae", "vae", "cvae", "rae", "wae"):
        assert run_samplers.default_components(model, never, 98) == samplers.GMM_COMPONENTS == 10
    # (codes, numbers a code) -> components: Fashion-MNIST's 7x7x2 and the emoji's 16x16x3 as measured; few codes;
    # a 16x16x3 grid of 20,000 codes, where 500 components would take 30 times the work, gets what the work allows.
    for (codes, size), components in (((20_000, 98), 500), ((3_372, 768), 84), ((399, 768), 10), ((100, 4), 10),
                                      ((20_000, 768), 16), ((10**6, 4), 500), ((20_000, 4096), 10)):
        assert run_samplers.default_components("gridvae", lambda n=codes: n, size) == components, (codes, size)
        if components > 10:  # within the work, unless the floor of 10 asks for more
            assert codes * components * size ** 2 <= run_samplers.GMM_DEFAULT_WORK


def test_a_runs_gmm_asked_for_no_size_gets_its_models_size_for_the_codes_it_uses(tmp_path):
    # RunSamplers as Run makes it, in a folder without a run (no encoder.keras), over 1,000 codes of 2x2x1 grids:
    # three tiny fits of a gridvae's mixture, then a vae's.
    from tfvae.samplers.run_samplers import RunSamplers

    codes, counted = np.random.default_rng(0).normal(size=(1000, 2, 2, 1)).astype("float32"), []

    def made(model, shape, workdir):
        return RunSamplers(str(workdir), model=model, code_shape=shape, quantized=False, learned_prior=lambda: None,
                           train_codes=lambda: codes.reshape((len(codes), *shape)),
                           num_train_codes=lambda: counted.append(1) or len(codes), log=lambda line: None)

    grid = made("gridvae", (2, 2, 1), tmp_path / "grid")
    assert grid.get("gmm").settings() == {"components": 25}  # 1,000 codes / 40
    assert grid.get("gmm", max_codes=600).settings() == {"components": 15}  # the 600 of them it is fitted to
    assert grid.get("gmm", components=3).settings() == {"components": 3}  # asked for: as asked
    assert grid.get("gmm", components=None).settings() == {"components": 25}  # evaluate.py's "not asked"
    assert samplers.load_sampler(str(tmp_path / "grid"), "gmm", 4)[1]["settings"]["components"] == 3
    counted.clear()
    vector = made("vae", (4,), tmp_path / "vae")
    assert vector.get("gmm").settings() == {"components": 10} and not counted


def test_evaluation_asks_each_sampler_for_its_settings():
    # evaluate.py's draws (sample_latents) ask Run.sampler for the flags' gmm and diffusion settings, then the
    # options' sampler_settings, which win. No run: a stand-in records what is asked (milliseconds).
    from tfvae import evaluation

    class Asked:
        def sampler(self, name, **settings):
            self.asked = (name, settings)
            return samplers.Prior(2)

    run = Asked()
    samplers.sample_latents(run, "gmm", 3, 0)  # no size: the run's model's (RunSamplers)
    assert run.asked == ("gmm", {"components": None, "max_codes": samplers.GMM_MAX_CODES})
    samplers.sample_latents(run, "gmm", 3, 0, gmm_components=4)
    assert run.asked == ("gmm", {"components": 4, "max_codes": samplers.GMM_MAX_CODES})
    samplers.sample_latents(run, "gmm", 3, 0, gmm_max_codes=500, settings={"gmm": {"components": 50}})
    assert run.asked == ("gmm", {"components": 50, "max_codes": 500})
    samplers.sample_latents(run, "diffusion", 3, 0, settings={"diffusion": {"steps": 16000}, "gmm": {"components": 5}})
    assert run.asked == ("diffusion", {"diffusion_steps": samplers.DIFFUSION_STEPS, "solver": samplers.SOLVER,
                                       "steps": 16000})
    with pytest.raises(TfvaeError, match="sampler settings for bogus: not a sampler; choose from prior, gmm"):
        evaluation.EvalOptions(sampler_settings={"bogus": {"x": 1}}).validate()
    with pytest.raises(TfvaeError, match="--gmm_max_codes must be at least 1"):
        evaluation.EvalOptions(gmm_max_codes=0).validate()


def nearest(draws, means):
    """Index of the nearest of ``means`` for each draw."""
    return np.argmin(((draws[:, None, :] - means[None]) ** 2).sum(-1), axis=1)


def test_temperature_scales_each_samplers_noise_around_its_centres():
    rng = np.random.default_rng(0)
    means = np.array([[-8.0, 0.0, 3.0], [8.0, 2.0, -3.0]])
    codes = np.concatenate([rng.normal(means[0], 1.0, (300, 3)), rng.normal(means[1], 0.5, (200, 3))])
    # tau = 1 is the density itself, the draws of before the knob: N(0, I) from numpy's generator, and
    # scikit-learn's own mixture draws.
    prior = samplers.Prior(3)
    np.testing.assert_array_equal(prior.sample(400, seed=2, temperature=1.0),
                                  np.random.default_rng(2).standard_normal((400, 3)).astype("float32"))
    np.testing.assert_allclose(prior.sample(400, seed=2, temperature=0.7), 0.7 * prior.sample(400, seed=2),
                               rtol=1e-6)
    gmm = samplers.GaussianMixtureSampler.fit(codes, seed=0, components=2)
    one = gmm.sample(4000, seed=3, temperature=1.0)
    np.testing.assert_array_equal(one, metrics.fit_gaussian_mixture(codes, 2, seed=0).sample(4000, seed=3))
    # Each draw stays with its component and moves towards the component's mean: x -> m_k + tau (x - m_k).
    half = gmm.sample(4000, seed=3, temperature=0.5)
    k = nearest(one, gmm.means)
    np.testing.assert_array_equal(nearest(half, gmm.means), k)
    np.testing.assert_allclose(half - gmm.means[k], 0.5 * (one - gmm.means[k]), atol=1e-5)
    for j, sd in enumerate((1.0, 0.5)):  # the mixture's spreads, halved
        np.testing.assert_allclose((half[k == j] - means[j]).std(0), 0.5 * sd, rtol=0.1)
    # A VampPrior's components likewise (its k uniform, its noise from the same generator).
    vamp = VampPrior(means.astype("float32"), np.log([[1.0] * 3, [0.25] * 3]).astype("float32"))
    one, cool = vamp.sample(4000, seed=1), vamp.sample(4000, seed=1, temperature=0.25)
    k = nearest(one, vamp.means)
    np.testing.assert_allclose(cool - vamp.means[k], 0.25 * (one - vamp.means[k]), atol=1e-5)
    # Two-stage: u and e shrink together, so the draws close in on the one code the second decoder gives u = 0.
    two = samplers.TwoStageSampler.fit(codes.astype("float32"), seed=0, steps=300)
    np.testing.assert_array_equal(two.sample(50, seed=4, temperature=1.0), two.sample(50, seed=4))
    spreads = [two.sample(2000, seed=4, temperature=tau).std(0).mean() for tau in (1.0, 0.3, 1e-3)]
    assert spreads[0] > spreads[1] > 10 * spreads[2], spreads
    centre = two.shift + two.scale * two.decode(np.zeros((1, 3), "float32"))
    np.testing.assert_allclose(two.sample(20, seed=4, temperature=1e-3), np.repeat(centre, 20, 0), atol=0.05)


@pytest.mark.parametrize("temperature", [0, -0.5, float("nan"), float("inf"), True, "0.5", None])
def test_a_temperature_not_above_zero_is_refused_naming_it(temperature):
    vamp = VampPrior(np.zeros((2, 3), "float32"), np.zeros((2, 3), "float32"))
    gmm = samplers.GaussianMixtureSampler(np.ones(1), np.zeros((1, 3)), np.eye(3)[None])
    for sampler in (samplers.Prior(3), gmm, vamp):
        with pytest.raises(ArgumentError) as error:
            sampler.sample(4, seed=0, temperature=temperature)
        assert error.value.argument == "temperature" and "\n" not in str(error.value)
        assert flag_message(error.value).startswith(f"--temperature={temperature}: the draws' spread is "
                                                    "multiplied by it, so it must be a number above 0")


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
        samplers.save_sampler(str(workdir), "gmm", {"weights": np.ones(1)}, {"latent": 7})
    with pytest.raises(TfvaeError) as error:
        tfvae.load(str(workdir)).sample(4, sampler="gmm")
    message = str(error.value)
    assert "\n" not in message and str(path) in message and "delete it" in message, message


def test_an_unknown_sampler_names_the_choices(trained):
    run = tfvae.load(str(trained / "runs" / "vae"))
    with pytest.raises(ArgumentError, match="sampler='bogus' is not a sampler; choose one of prior, gmm, "
                                            "two_stage, diffusion, learned") as error:
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
    second, wrong, unknown = run_scripts(
        [[SAMPLE, f"--workdir={workdir}", "--mode=random", "--grid=4", f"--output={out2}"],
         [SAMPLE, f"--workdir={workdir}", "--mode=reconstruct", "--sampler=gmm"],
         [SAMPLE, f"--workdir={workdir}", "--mode=random", "--sampler=bogus"]], offline_env, check=False)
    assert second.returncode == 0 and "fitted" not in second.stdout, second.stdout + second.stderr
    assert path.stat().st_mtime_ns == mtime and out2.read_bytes() == out1.read_bytes()
    assert_one_line_error(wrong, "--sampler=gmm given, but the reconstruct picture draws no samples")
    # The choices are the library's one list (tfvae.samplers.SAMPLERS), named by its error.
    assert_one_line_error(unknown, f"--sampler=bogus is not a sampler; choose one of {', '.join(samplers.SAMPLERS)}")
    path.write_bytes(path.read_bytes()[:100])
    third = run_script([SAMPLE, f"--workdir={workdir}", "--mode=random", "--sampler=gmm"], offline_env, check=False)
    assert_one_line_error(third, "gmm.npz is cut short", "delete it")


def test_the_mixture_size_is_asked_for_and_a_default_draw_fits_the_default_size_again(ae_run, tmp_path,
                                                                                     offline_env):
    workdir = copy_of(ae_run, tmp_path)
    three, prior, wrong_mode = run_scripts(
        [[SAMPLE, f"--workdir={workdir}", "--mode=random", "--grid=2", "--sampler=gmm", "--gmm_components=3",
          "--gmm_max_codes=200", f"--output={tmp_path / 'three.png'}"],
         [SAMPLE, f"--workdir={workdir}", "--mode=random", "--sampler=prior", "--gmm_components=3"],
         [SAMPLE, f"--workdir={workdir}", "--mode=reconstruct", "--gmm_components=3"]], offline_env, check=False)
    assert three.returncode == 0, three.stderr
    assert "fitted the gmm sampler to 200 of 256 training codes (a random subset: max_codes=200)" in three.stdout
    arrays, meta = samplers.load_sampler(str(workdir), "gmm", 4)
    assert arrays["weights"].shape == (3,) and meta["settings"] == {"components": 3, "max_codes": 200}
    assert meta["codes"] == 200 and meta["training_codes"] == 256
    too_few = run_script([SAMPLE, f"--workdir={workdir}", "--mode=random", "--sampler=gmm", "--gmm_components=3",
                          "--gmm_max_codes=2"], offline_env, check=False)
    assert_one_line_error(too_few, "--gmm_max_codes=2: fewer codes than the mixture's 3 components")
    assert_one_line_error(prior, "--gmm_components=3 given, but sampler=prior takes no settings")
    assert_one_line_error(wrong_mode, "--gmm_components=3 given, but the reconstruct picture draws no samples")
    # Asked for nothing, a draw gets the default size: the saved 3-component mixture is fitted again, not reused.
    lines = []
    run = tfvae.load(str(workdir), log=lines.append)
    assert run.sampler("gmm").weights.shape == (samplers.GMM_COMPONENTS,)
    assert any("fitted with other settings" in line for line in lines), lines
    assert len(run.sample(3, sampler="gmm", components=2)) == 3
    assert samplers.load_sampler(str(workdir), "gmm", 4)[0]["weights"].shape == (2,)
    with pytest.raises(ArgumentError, match="components=3 given, but sampler=two_stage takes hidden, steps") as error:
        run.sampler("two_stage", components=3)
    assert error.value.argument == "components"
    with pytest.raises(ArgumentError, match="components=257: a mixture of 1 to 256 Gaussians") as error:
        run.sampler("gmm", components=257)
    assert error.value.argument == "components"


def test_sample_py_temperature_reaches_the_draws_and_is_refused_where_nothing_is_drawn(ae_run, tmp_path,
                                                                                      offline_env):
    workdir = copy_of(ae_run, tmp_path)
    cool, scatter, zero = run_scripts(
        [[SAMPLE, f"--workdir={workdir}", "--mode=random", "--grid=3", "--sampler=prior", "--temperature=0.5",
          f"--output={tmp_path / 'cool.png'}"],
         [SAMPLE, f"--workdir={workdir}", "--mode=scatter", "--temperature=0.5"],
         [SAMPLE, f"--workdir={workdir}", "--mode=random", "--temperature=0"]], offline_env, check=False)
    assert cool.returncode == 0, cool.stderr
    run = tfvae.load(str(workdir))
    # The picture is Run.sample's at that temperature: z = 0.5 e, not e.
    cool = run.sample(9, seed=0, sampler="prior", temperature=0.5)
    expected = picture_arrays.save_png(str(tmp_path / "expected.png"), picture_arrays.tile(cool, 3, 3))
    hot = picture_arrays.save_png(str(tmp_path / "hot.png"),
                                  picture_arrays.tile(run.sample(9, seed=0, sampler="prior"), 3, 3))
    picture = (tmp_path / "cool.png").read_bytes()
    assert picture == open(expected, "rb").read() and picture != open(hot, "rb").read()
    assert_one_line_error(scatter, "--temperature=0.5 given, but the scatter picture draws no samples")
    assert_one_line_error(zero, "--temperature=0.0: the draws' spread is multiplied by it")
    assert not (workdir / "scatter.png").exists() and not (workdir / "random.png").exists()
    with pytest.raises(ArgumentError, match="temperature=-1: ") as error:
        run.sample(4, temperature=-1)
    assert error.value.argument == "temperature"
    with pytest.raises(ArgumentError, match="the reconstruct picture draws no samples"):
        pictures.picture(run, "reconstruct", 2, temperature=0.8)


def test_evaluate_py_reports_fcd_for_two_stage(ae_run, tmp_path, offline_env):
    workdir = copy_of(ae_run, tmp_path)
    env = dict(offline_env, TFVAE_CACHE=str(tmp_path / "cache"))
    # A test-size diffusion fit, saved first: evaluate.py asks for the default prediction and schedule, so it reads
    # this one (the fit's size is the file's) instead of fitting one of the default size.
    small = tfvae.load(str(workdir), log=lambda line: None).sampler("diffusion", hidden=32, blocks=1, steps=100)
    run_script([EVALUATE, f"--workdir={workdir}", "--sampler=prior,two_stage,gmm,diffusion", "--gmm_components=2",
                "--sample_count=64", "--classifier_epochs=1", "--batch_size=256", "--temperature=0.5",
                "--diffusion_steps=20", "--diffusion_solver=ddim"], env)
    results = json.loads((workdir / "eval.json").read_text())
    assert results["settings"]["diffusion_steps"] == 20 and results["settings"]["diffusion_solver"] == "ddim"
    scored = results["samplers"]["diffusion"]["sharpness"]
    for solver, equal in (("ddim", True), ("dpmpp_2m", False)):  # the draws scored are DDIM's, 20 steps
        seen = metrics.perception(tfvae.load(str(workdir)).sample(64, seed=0, sampler="diffusion", temperature=0.5,
                                                                  diffusion_steps=20, solver=solver))["sharpness"]
        assert np.isclose(seen, scored, rtol=1e-5) == equal, (solver, seen, scored)
    # sample.py draws with the solver asked for, from the same file; an unknown solver is refused by its flag
    pictures = {solver: tmp_path / f"{solver}.png" for solver in ("ddim", "dpmpp_2m")}
    *drawn, unknown = run_scripts(
        [[SAMPLE, f"--workdir={workdir}", "--mode=random", "--grid=2", "--sampler=diffusion",
          f"--diffusion_solver={solver}", f"--output={path}"] for solver, path in pictures.items()]
        + [[SAMPLE, f"--workdir={workdir}", "--mode=random", "--sampler=diffusion", "--diffusion_solver=euler"]],
        env, check=False)
    assert all(done.returncode == 0 and "fitted" not in done.stdout for done in drawn), drawn
    assert pictures["ddim"].read_bytes() != pictures["dpmpp_2m"].read_bytes()
    assert unknown.returncode != 0 and "diffusion_solver" in unknown.stderr
    assert samplers.load_sampler(str(workdir), "diffusion", 4)[1]["settings"]["hidden"] == 32  # not fitted again
    np.testing.assert_array_equal(tfvae.load(str(workdir)).sampler("diffusion").sample(5, seed=0),
                                  small.sample(5, seed=0))
    for sampler in ("prior", "two_stage", "gmm", "diffusion"):
        assert isinstance(results["samplers"][sampler]["fcd"], float)
        assert 0 < results["samplers"][sampler]["training_distance_ratio"] < 100
        assert 0 <= results["samplers"][sampler]["near_copies"] <= 1
        assert f"| {sampler} at temperature 0.5 |" in (workdir / "report.md").read_text()
    assert results["settings"]["gmm_components"] == 2 and results["settings"]["temperature"] == 0.5
    # The scored samples are Run.sample's at temperature 0.5 (same seed, count and sampler), not at 1.
    run = tfvae.load(str(workdir))
    for tau, equal in ((0.5, True), (1.0, False)):
        seen = metrics.perception(run.sample(64, seed=0, sampler="prior", temperature=tau))["sharpness"]
        assert np.isclose(seen, results["samplers"]["prior"]["sharpness"], rtol=1e-5) == equal, (tau, seen)
    assert samplers.load_sampler(str(workdir), "gmm", 4)[0]["weights"].shape == (2,)
    assert (workdir / "samplers" / "two_stage.npz").is_file()
    # The saved second stage is the one Run.sample draws from.
    meta = samplers.load_sampler(str(workdir), "two_stage", 4)[1]
    assert meta["codes"] == 256 and meta["settings"]["hidden"] == 64


def test_a_sampler_of_another_encoder_is_fitted_again(ae_run, tmp_path):
    workdir = copy_of(ae_run, tmp_path)
    fitted = tfvae.load(str(workdir), log=lambda message: None).sampler("gmm")
    # As if the run had trained further since: the file names another encoder.keras.
    meta = samplers.load_sampler(str(workdir), "gmm", 4)[1]
    samplers.save_sampler(str(workdir), "gmm", fitted.state(), dict(meta, encoder_sha256="0" * 64))
    lines = []
    refitted = tfvae.load(str(workdir), log=lines.append).sampler("gmm")
    assert "was fitted to another encoder.keras (the run has trained since): fitting it again" in lines[0]
    assert samplers.load_sampler(str(workdir), "gmm", 4)[1]["encoder_sha256"] == samplers.encoder_fingerprint(
        str(workdir))
    np.testing.assert_allclose(refitted.sample(5, seed=0), fitted.sample(5, seed=0), atol=1e-4)  # same codes, fit
