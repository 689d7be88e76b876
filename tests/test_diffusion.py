"""The diffusion sampler (tfvae.samplers.diffusion): its forward process against the schedule's closed form, its
draws on two 2-D toys against the target where one Gaussian fails, its ODE solvers' order on Gaussian codes, seeds,
temperature, its file, and a real run.

The toys are fitted once (module fixture) at a small test size (``TOY_FIT``), not the defaults; docs/sampling.md
gives the figures at the defaults. The bounds below hold with a wide margin at the test size (docs/sampling.md
has the values seen)."""

import shutil

import numpy as np
import pytest
import tensorflow as tf

import tfvae
from tfvae import samplers
from tfvae.errors import ArgumentError, TfvaeError, flag_message
from tfvae.samplers import diffusion, solvers
from tfvae.samplers.denoiser import alpha_sigma

RADIUS, RING_SD, MODE_SD = 2.0, 0.05, 0.1
CENTRES = RADIUS * np.stack([np.cos(np.arange(8) * np.pi / 4), np.sin(np.arange(8) * np.pi / 4)], 1)
# The test size: about 3 s of CPU a toy (the defaults: 128 wide, 3 blocks, 1,500 updates of 512 codes, learning
# rate 1.5e-3).
TOY_FIT = dict(hidden=64, blocks=2, steps=1500, batch_size=256, learning_rate=3e-3)
DRAWS = 2000


def ring(n, seed):
    """A circle of radius 2, radial noise 0.05."""
    rng = np.random.default_rng(seed)
    angle, radius = rng.uniform(0, 2 * np.pi, n), RADIUS + RING_SD * rng.standard_normal(n)
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1).astype("float32")


def eight_gaussians(n, seed):
    """Eight Gaussians (sd 0.1) evenly spaced on a circle of radius 2."""
    rng = np.random.default_rng(seed)
    return (CENTRES[rng.integers(0, 8, n)] + MODE_SD * rng.standard_normal((n, 2))).astype("float32")


def gaussian(n, seed):
    """N((1, -3), diag(2^2, 0.5^2))."""
    return (np.random.default_rng(seed).standard_normal((n, 2)) * [2.0, 0.5] + [1.0, -3.0]).astype("float32")


def in_band(x):
    """Share of draws within 4 sds of the ring (a true draw: all but 6e-5 of them)."""
    return float(np.mean(np.abs(np.linalg.norm(x, axis=1) - RADIUS) < 4 * RING_SD))


def nearest_mode(x):
    """(distance to the nearest centre, its index) per draw."""
    distance = np.linalg.norm(x[:, None] - CENTRES[None], axis=2)
    return distance.min(1), distance.argmin(1)


def near_a_mode(x):
    """Share of draws within 3 sds of a centre (a true draw: 1 - exp(-4.5), 0.989)."""
    return float(np.mean(nearest_mode(x)[0] < 3 * MODE_SD))


def sliced_wasserstein(a, b, projections=64):
    """Root mean square over random directions of the 1-D Wasserstein-2 distance between equal-size samples."""
    w = np.random.default_rng(0).standard_normal((a.shape[1], projections))
    w /= np.linalg.norm(w, axis=0)
    return float(np.sqrt(np.mean((np.sort(a @ w, 0) - np.sort(b @ w, 0)) ** 2)))


@pytest.fixture(scope="module")
def toys():
    """{name: (target sampler, fitted diffusion sampler, one-Gaussian gmm)}, each fitted to 2,000 codes and drawn
    with 20 DDIM steps; and "gaussian": N((1, -3), diag(4, 0.25)), 1,000 codes, a smaller fit (it is easy)."""
    fitted = {}
    for name, target in (("ring", ring), ("eight", eight_gaussians)):
        codes = target(2000, 0)
        fitted[name] = (target, samplers.DiffusionSampler.fit(codes, seed=0, **TOY_FIT).with_draw_settings(
            diffusion_steps=20), samplers.GaussianMixtureSampler.fit(codes, seed=0, components=1))
    codes = gaussian(1000, 0)
    small = dict(hidden=32, blocks=1, steps=300, batch_size=256, learning_rate=3e-3)
    fitted["gaussian"] = (gaussian, samplers.DiffusionSampler.fit(codes, seed=0, **small).with_draw_settings(
        diffusion_steps=20), None)
    return fitted


@pytest.mark.parametrize("schedule", diffusion.SCHEDULES)
def test_the_forward_process_has_the_schedules_marginals(schedule):
    # q(c_t | c_0) = N(alpha_t c_0, sigma_t^2 I), variance preserving, drawn by the fit's own (TensorFlow) path.
    t = np.array([0.05, 0.3, 0.5, 0.7, 0.95], "float32")
    alpha, sigma = diffusion.alpha_sigma(t, schedule)
    np.testing.assert_allclose(alpha ** 2 + sigma ** 2, 1.0, rtol=1e-6)
    assert np.all(np.diff(alpha) < 0)
    if schedule == "cosine":  # cos^2(pi t / 2) away from the ends, where the log-SNR is cut to [-10, 10]
        np.testing.assert_allclose(alpha[1:4] ** 2, np.cos(np.pi * t[1:4] / 2) ** 2, atol=0.01)
        ends = diffusion.alpha_sigma(np.array([0.0, 1.0]), schedule)
        np.testing.assert_allclose(np.log(ends[0] ** 2 / ends[1] ** 2), [10.0, -10.0], atol=1e-6)
    else:  # DDPM's discrete product of (1 - beta_i), betas linear in 1e-4..0.02 over 1,000 steps
        betas = np.linspace(1e-4, 0.02, 1000)
        discrete = np.array([np.prod(1 - betas[:round(1000 * s)]) for s in t])
        np.testing.assert_allclose(alpha ** 2, discrete, rtol=0.02, atol=1e-4)
    tf_alpha, tf_sigma = diffusion.alpha_sigma(tf.constant(t), schedule, diffusion.TENSORFLOW)
    np.testing.assert_allclose(tf_alpha.numpy(), alpha, rtol=1e-5)
    np.testing.assert_allclose(tf_sigma.numpy(), sigma, rtol=1e-5)
    draws = 20000
    c_0 = np.array([[1.5, -0.5]], "float32")
    for i in range(len(t)):
        e = tf.random.stateless_normal((draws, 2), seed=(0, i))
        c_t = diffusion.noised(tf.constant(np.repeat(c_0, draws, 0)), tf.fill([draws], t[i]), e, schedule,
                               diffusion.TENSORFLOW).numpy()
        # The mean's standard error is sigma / sqrt(20000), under 0.01; the variance's relative one is 0.01.
        np.testing.assert_allclose(c_t.mean(0), alpha[i] * c_0[0], atol=0.04 * sigma[i] + 1e-6)
        np.testing.assert_allclose(c_t.var(0), sigma[i] ** 2, rtol=0.05)


VARIANCES = np.array([4.0, 0.25, 1.0])  # Gaussian codes N(0, diag(VARIANCES)), whose denoiser is known exactly


def exact_denoiser(schedule):
    """(c_t, t) -> (c_0^, e^) of the optimal denoiser of N(0, diag(VARIANCES)) codes: E[c_0 | c_t] =
    alpha v / (alpha^2 v + sigma^2) c_t per dimension (v its variance)."""
    def denoised(c, t):
        alpha, sigma = (float(v) for v in alpha_sigma(np.float64(t), schedule))
        clean = (alpha * VARIANCES / (alpha ** 2 * VARIANCES + sigma ** 2) * c).astype("float32")
        return clean, ((c - alpha * clean) / sigma).astype("float32")
    return denoised


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_the_solvers_follow_the_exact_flow_at_their_order(schedule):
    # For Gaussian codes the probability-flow ODE keeps c_t / sqrt(alpha_t^2 v + sigma_t^2) constant, so its end is
    # known in closed form. DDIM's error halves when the steps double (first order), DPM-Solver++(2M)'s quarters
    # (second order), and 2M at 20 steps is nearer than DDIM at 80.
    c_1 = np.random.default_rng(0).standard_normal((2000, 3)).astype("float32")
    (alpha_1, sigma_1), (alpha_0, sigma_0) = ([float(v) for v in alpha_sigma(np.float64(t), schedule)] for t in (1, 0))
    exact = c_1 * np.sqrt(alpha_0 ** 2 * VARIANCES + sigma_0 ** 2) / np.sqrt(alpha_1 ** 2 * VARIANCES + sigma_1 ** 2)
    error = {(solver, k): np.sqrt(np.mean((solvers.solve(exact_denoiser(schedule), c_1, k, schedule, solver)
                                           - exact) ** 2)) for solver in solvers.SOLVERS for k in (20, 40, 80)}
    assert 1.7 < error["ddim", 40] / error["ddim", 80] < 2.3
    assert error["dpmpp_2m", 40] / error["dpmpp_2m", 80] > 3.3
    assert error["dpmpp_2m", 20] < error["ddim", 80]
    # the times: DDIM's uniform in t; 2M's uniform in lambda = log(alpha / sigma) up to the last, which is 0
    np.testing.assert_allclose(solvers.times(8, "ddim", schedule), np.linspace(1, 0, 9))
    path = solvers.times(8, "dpmpp_2m", schedule)
    assert path[0] == 1.0 and path[-1] == 0.0 and np.all(np.diff(path) < 0)
    steps = np.diff(solvers.half_log_snr(path[:-1], schedule))
    np.testing.assert_allclose(steps, steps[0], rtol=1e-3)
    with pytest.raises(ArgumentError, match="solver='euler': the diffusion sampler draws with one of dpmpp_2m, ddim"):
        solvers.check_solver("euler")


def test_numpys_denoiser_is_tensorflows():
    params = diffusion.initial_params(3, 16, 2, 8, seed=1)
    params["out_kernel"] = np.random.default_rng(0).standard_normal((16, 3)).astype("float32")  # not 0
    c = np.random.default_rng(1).standard_normal((5, 3)).astype("float32")
    t = np.linspace(0, 1, 5).astype("float32")
    tensors = {k: tf.constant(v) for k, v in params.items()}
    np.testing.assert_allclose(diffusion.denoise(params, c, t),
                               diffusion.denoise(tensors, tf.constant(c), tf.constant(t), diffusion.TENSORFLOW).numpy(),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("toy", ["ring", "eight"])
def test_the_draws_match_the_toy_where_one_gaussian_does_not(toys, toy):
    target, fitted, one_gaussian = toys[toy]
    draws, single, real = fitted.sample(DRAWS, seed=1), one_gaussian.sample(DRAWS, seed=1), target(DRAWS, 1)
    distances = {name: sliced_wasserstein(x, real) for name, x in
                 (("diffusion", draws), ("gaussian", single), ("real", target(DRAWS, 2)))}
    shares = {name: (in_band if toy == "ring" else near_a_mode)(x) for name, x in
              (("diffusion", draws), ("gaussian", single))}
    print(toy, shares, distances)
    assert distances["diffusion"] < 0.5 * distances["gaussian"], distances
    if toy == "ring":
        assert shares["diffusion"] > 0.85 and shares["gaussian"] < 0.3, shares
    else:
        assert shares["diffusion"] > 0.75 and shares["gaussian"] < 0.2, shares
        counts = np.bincount(nearest_mode(draws)[1], minlength=8) / DRAWS  # every mode drawn, none twice as often
        assert counts.min() > 0.06 and counts.max() < 0.2, counts


def test_draws_are_reproducible_and_temperature_shrinks_them(toys):
    _, fitted, _ = toys["gaussian"]
    first = fitted.sample(500, seed=3)
    np.testing.assert_array_equal(fitted.sample(500, seed=3), first)
    assert not np.array_equal(fitted.sample(500, seed=4), first)
    np.testing.assert_array_equal(fitted.sample(500, seed=3, temperature=1.0), first)
    # tau scales the initial noise, the only noise of DDIM's eta = 0 path. For Gaussian codes that path is an
    # affine map of c_1 (the optimal denoiser is linear), so the draws' spread is multiplied by tau about the same
    # centre. (On the ring and the eight Gaussians it barely shrinks them: docs/sampling.md.)
    draws = {tau: fitted.sample(DRAWS, seed=3, temperature=tau) for tau in (1.0, 0.5, 0.2)}
    for tau in (0.5, 0.2):
        np.testing.assert_allclose(draws[tau].std(0) / draws[1.0].std(0), tau, rtol=0.1)
        np.testing.assert_allclose(draws[tau].mean(0), draws[1.0].mean(0), atol=0.1)
    np.testing.assert_allclose(draws[1.0].std(0), [2.0, 0.5], rtol=0.1)
    with pytest.raises(ArgumentError) as error:
        fitted.sample(4, seed=0, temperature=0)
    assert error.value.argument == "temperature"
    with pytest.raises(ArgumentError, match="diffusion_steps=0: the diffusion sampler takes a whole number") as error:
        fitted.sample(4, seed=0, diffusion_steps=0)
    assert flag_message(error.value).startswith("--diffusion_steps=0: ")


def test_smoothing_draws_the_codes_density_convolved_with_the_kernel(toys):
    """Fitted to codes blurred by s times each number's spread, the draws follow the codes' density convolved with
    that Gaussian: for N(m, diag(v)) codes, N(m, diag((1 + s^2) v)) (against the unsmoothed fit of the same size)."""
    _, plain, _ = toys["gaussian"]
    small = dict(hidden=32, blocks=1, steps=300, batch_size=256, learning_rate=3e-3)
    smoothed = samplers.DiffusionSampler.fit(gaussian(1000, 0), seed=0, smoothing=1.0, **small).with_draw_settings(
        diffusion_steps=20)
    assert smoothed.settings()["smoothing"] == 1.0 and plain.settings()["smoothing"] == 0.0
    draws, before = smoothed.sample(DRAWS, seed=3), plain.sample(DRAWS, seed=3)
    np.testing.assert_allclose(draws.std(0), np.sqrt(2.0) * np.array([2.0, 0.5]), rtol=0.1)
    np.testing.assert_allclose(draws.std(0) / before.std(0), np.sqrt(2.0), rtol=0.1)
    np.testing.assert_allclose(draws.mean(0), [1.0, -3.0], atol=0.15)
    for bad in (-0.5, float("nan"), True, "0.2"):
        with pytest.raises(ArgumentError, match="the diffusion sampler takes a number >= 0") as error:
            samplers.DiffusionSampler.fit(np.zeros((10, 2), "float32"), smoothing=bad)
        assert error.value.argument == "smoothing"


def test_the_file_round_trips_to_identical_draws_and_damage_is_one_line(toys, tmp_path):
    _, fitted, _ = toys["ring"]
    path = samplers.save_sampler(str(tmp_path), "diffusion", fitted.state(),
                                 {"latent": 2, "settings": fitted.settings()})
    arrays, meta = samplers.load_sampler(str(tmp_path), "diffusion", 2, samplers.DiffusionSampler.required)
    assert meta["settings"]["prediction"] == fitted.prediction and all(v.dtype != object for v in arrays.values())
    reloaded = samplers.sampler_from_state("diffusion", arrays, meta["settings"])
    assert reloaded.diffusion_steps == samplers.DIFFUSION_STEPS and fitted.diffusion_steps == 20
    np.testing.assert_array_equal(reloaded.sample(300, seed=2, diffusion_steps=20), fitted.sample(300, seed=2))
    fewer = reloaded.with_draw_settings(diffusion_steps=10)
    np.testing.assert_array_equal(fewer.sample(300, seed=2), fitted.sample(300, seed=2, diffusion_steps=10))
    assert not np.array_equal(fewer.sample(300, seed=2), fitted.sample(300, seed=2))
    ddim = fewer.with_draw_settings(solver="ddim")
    assert (ddim.solver, ddim.diffusion_steps, fewer.solver) == ("ddim", 10, samplers.SOLVER)
    np.testing.assert_array_equal(ddim.sample(300, seed=2),
                                  fitted.sample(300, seed=2, diffusion_steps=10, solver="ddim"))
    data = open(path, "rb").read()
    for damage, expected in ((data[: len(data) // 2], "cut short"), (b"not an archive" * 10, ""),
                             (None, "lacks the arrays"), (b"", "")):
        if damage is None:
            samplers.save_sampler(str(tmp_path), "diffusion", {"shift": np.zeros(2)}, {"latent": 2})
        else:
            open(path, "wb").write(damage)
        with pytest.raises(TfvaeError) as error:
            samplers.load_sampler(str(tmp_path), "diffusion", 2, samplers.DiffusionSampler.required)
        message = str(error.value)
        assert "\n" not in message and path in message and expected in message and "delete it" in message, message


def test_the_mlps_default_width_is_four_times_the_code_within_its_bounds():
    """4 d for mid-sized codes; a small code gets the lower bound, a 16 x 16 x 3 grid (768 numbers) the upper."""
    low, high = diffusion.HIDDEN_BOUNDS
    rng = np.random.default_rng(0)
    for shape, width in (((8,), low), ((7, 7, 2), 4 * 98), ((16, 16, 3), high)):
        fitted = samplers.DiffusionSampler.fit(rng.normal(size=(8, *shape)).astype("float32"), steps=1, batch_size=4)
        assert fitted.params["in_kernel"].shape == (int(np.prod(shape)), width), shape


def test_unknown_settings_and_the_other_denoisers_sizes_are_refused_in_one_line():
    with pytest.raises(TfvaeError, match="denoiser='unet' convolves over code grids, but these codes are vectors"):
        samplers.DiffusionSampler.fit(np.zeros((10, 4), "float32"), denoiser="unet")
    with pytest.raises(ArgumentError, match="hidden=8 given, but denoiser=unet does not take it"):
        samplers.DiffusionSampler.fit(np.zeros((10, 3, 3, 1), "float32"), denoiser="unet", hidden=8)
    with pytest.raises(ArgumentError, match="width=8 given, but denoiser=mlp does not take it"):
        samplers.DiffusionSampler.fit(np.zeros((10, 3, 3, 1), "float32"), width=8)  # the MLP: the default
    with pytest.raises(TfvaeError, match=r"vector codes \(n, d\) or grids \(n, h, w, c\), not an array of shape"):
        samplers.DiffusionSampler.fit(np.zeros((10, 3, 3), "float32"))
    for size in ({"blocks": 0}, {"hidden": 0}):  # 0 is refused, not taken for the default
        with pytest.raises(ArgumentError, match=f"{next(iter(size))}=0: the diffusion sampler takes a whole number"):
            samplers.DiffusionSampler.fit(np.zeros((10, 2), "float32"), **size)
    with pytest.raises(ArgumentError, match="levels=0: the diffusion sampler takes a whole number"):
        samplers.DiffusionSampler.fit(np.zeros((10, 3, 3, 1), "float32"), denoiser="unet", levels=0)
    with pytest.raises(ArgumentError, match="denoiser='cnn': choose one of mlp, unet"):
        samplers.DiffusionSampler.fit(np.zeros((10, 2), "float32"), denoiser="cnn")
    with pytest.raises(ArgumentError, match="prediction='x0': choose one of eps, v"):
        samplers.DiffusionSampler.fit(np.zeros((10, 2), "float32"), prediction="x0")
    with pytest.raises(ArgumentError, match="schedule='sigmoid': choose one of cosine, linear"):
        samplers.DiffusionSampler.fit(np.zeros((10, 2), "float32"), schedule="sigmoid")


# --- The U-Net over code grids (tfvae.samplers.unet) ---
PATTERNS = np.random.default_rng(5).choice([-1.5, 1.5], size=(4, 5, 5, 1)).astype("float32")


def patterns(n, seed):
    """Grid codes: one of four random 5 x 5 sign patterns (+-1.5) each, plus noise of sd 0.1 in every cell."""
    rng = np.random.default_rng(seed)
    return (PATTERNS[rng.integers(0, 4, n)] + 0.1 * rng.standard_normal((n, 5, 5, 1))).astype("float32")


def pattern_distances(grids):
    """(root mean square distance per cell to the nearest pattern, its index) per grid."""
    distance = np.sqrt(np.mean((grids[:, None] - PATTERNS[None]) ** 2, axis=(2, 3, 4)))
    return distance.min(1), distance.argmin(1)


def test_the_unet_weights_are_checked_and_start_at_zero_output():
    from tfvae.samplers import unet

    params = unet.initial_params(3, 8, 2, 16, seed=0)
    assert set(params) == set(unet.shapes(3, 8, 2, 16)) and unet.levels_of(params) == 2
    unet.check_shapes((5, 5, 3), params)
    c = np.random.default_rng(0).standard_normal((6, 5, 5, 3)).astype("float32")
    t = np.linspace(0.1, 0.9, 6).astype("float32")
    assert np.array_equal(unet.denoise(params, c, t).numpy(), np.zeros_like(c))  # the output kernel starts at 0
    params["out_kernel"] = np.random.default_rng(1).standard_normal(params["out_kernel"].shape).astype("float32")
    out = unet.denoise(params, c, t).numpy()
    assert out.shape == c.shape and np.all(np.isfinite(out)) and out.std() > 0
    # One time for all the codes is the same as that time given for each.
    np.testing.assert_allclose(unet.denoise(params, c, t[:1]).numpy(), unet.denoise(params, c, np.repeat(t[:1], 6)),
                               rtol=1e-5, atol=1e-5)
    for broken, expected in ((dict(params, extra=np.zeros(3)), "extra is not a weight"),
                             ({k: v for k, v in params.items() if k != "middle_kernel_1"}, "middle_kernel_1 missing")):
        with pytest.raises(ValueError, match=expected):
            unet.check_shapes((5, 5, 3), broken)
    with pytest.raises(ValueError, match="do not fit codes of shape"):
        unet.check_shapes((5, 5, 2), params)


@pytest.fixture(scope="module")
def grid_toy():
    """A U-Net diffusion sampler fitted to 1,000 pattern grids (a test size, about 5 s: 8 wide, 300 updates of 64)."""
    return samplers.DiffusionSampler.fit(patterns(1000, 0), seed=0, denoiser="unet", width=8, levels=2, steps=300,
                                         batch_size=64, learning_rate=5e-3).with_draw_settings(diffusion_steps=20)


def test_the_unet_draws_the_patterns_where_one_gaussian_does_not(grid_toy, tmp_path):
    assert grid_toy.denoiser == "unet" and grid_toy.settings()["width"] == 8
    draws = grid_toy.sample(1000, seed=1)
    assert draws.shape == (1000, 5, 5, 1)
    distance, which = pattern_distances(draws)
    real = pattern_distances(patterns(1000, 1))[0]
    gaussian = samplers.GaussianMixtureSampler.fit(patterns(1000, 0).reshape(1000, -1), seed=0, components=1)
    single = pattern_distances(gaussian.sample(1000, seed=1).reshape(-1, 5, 5, 1))[0]
    # A true draw is about 0.1 from its pattern, the U-Net's about 0.25 at this test size; the one Gaussian's about
    # 1.0 (it spreads its draws between the patterns).
    assert np.median(distance) < 4 * np.median(real) and np.median(single) > 6 * np.median(real), (
        np.median(distance), np.median(real), np.median(single))
    assert np.bincount(which, minlength=4).min() > 150  # every pattern drawn, near its 1 in 4
    # The MLP over the same grids, flattened, draws grids too.
    flat = samplers.DiffusionSampler.fit(patterns(100, 0), seed=0, hidden=16, blocks=1, steps=20)
    assert flat.denoiser == "mlp" and flat.params["in_kernel"].shape == (25, 16)
    assert flat.sample(3, seed=0, diffusion_steps=2).shape == (3, 5, 5, 1)
    # The file: identical draws after a round trip.
    samplers.save_sampler(str(tmp_path), "diffusion", grid_toy.state(), {"latent": 25, "settings": {}})
    arrays, _ = samplers.load_sampler(str(tmp_path), "diffusion", 25, samplers.DiffusionSampler.required)
    reloaded = samplers.sampler_from_state("diffusion", arrays, {})
    assert reloaded.denoiser == "unet" and reloaded.code_shape == (5, 5, 1)
    np.testing.assert_array_equal(reloaded.sample(50, seed=2, diffusion_steps=20), grid_toy.sample(50, seed=2))


def test_a_trained_run_samples_with_diffusion_and_keeps_its_file(trained, tmp_path):
    workdir = tmp_path / "vae"
    shutil.copytree(trained / "runs" / "vae", workdir)
    lines = []
    run = tfvae.load(str(workdir), log=lines.append)
    small = dict(hidden=32, blocks=1, steps=100)  # a test-size fit
    images = run.sample(6, seed=1, sampler="diffusion", **small)
    assert images.shape[0] == 6 and np.isfinite(images).all() and 0 <= images.min() and images.max() <= 1
    assert any("fitted the diffusion sampler to 512 training codes" in line for line in lines), lines
    arrays, meta = samplers.load_sampler(str(workdir), "diffusion", run.latent_dim)
    assert meta["encoder_sha256"] == samplers.encoder_fingerprint(str(workdir))
    assert meta["settings"]["steps"] == 100 and meta["settings"]["held_out"] == 51
    lines = []
    again = tfvae.load(str(workdir), log=lines.append)
    np.testing.assert_array_equal(again.sample(6, seed=1, sampler="diffusion", **small), images)
    # diffusion_steps is a setting of the draws: other draws from the same file, never a second fit.
    z = again.sampler("diffusion", diffusion_steps=5, **small).sample(6, seed=1)
    np.testing.assert_array_equal(z, again.sampler("diffusion", **small).sample(6, seed=1, diffusion_steps=5))
    # so is the solver: DDIM draws other codes from the same noise and the same file
    ddim = again.sampler("diffusion", solver="ddim", **small).sample(6, seed=1)
    np.testing.assert_array_equal(ddim, again.sampler("diffusion", **small).sample(6, seed=1, solver="ddim"))
    assert not np.allclose(ddim, again.sampler("diffusion", **small).sample(6, seed=1))
    assert not lines
    # smoothing is a setting of the fit: a fit with another one is made (and saved) in its place; a file saved
    # before the setting existed counts as smoothing 0, not as another fit
    again.sampler("diffusion", smoothing=0.5, **small)
    assert any("fitted with other settings than {'smoothing': 0.5}" in line for line in lines), lines
    assert samplers.load_sampler(str(workdir), "diffusion", run.latent_dim)[1]["settings"]["smoothing"] == 0.5
    older = dict(meta, settings={k: v for k, v in meta["settings"].items() if k != "smoothing"})
    samplers.save_sampler(str(workdir), "diffusion", arrays, older)
    lines = []
    np.testing.assert_array_equal(tfvae.load(str(workdir), log=lines.append).sample(6, seed=1, sampler="diffusion",
                                                                                    **small), images)
    assert not lines
    with pytest.raises(ArgumentError, match="diffusion_steps=5 given, but sampler=gmm takes components"):
        again.sampler("gmm", diffusion_steps=5)
    # A file whose arrays have the right names but do not fit together: one line, as a damaged file is.
    arrays["out_kernel"] = arrays["out_kernel"][:, :2]
    samplers.save_sampler(str(workdir), "diffusion", arrays, meta)
    with pytest.raises(TfvaeError) as error:
        tfvae.load(str(workdir)).sample(2, sampler="diffusion", **small)
    message = str(error.value)
    assert "\n" not in message and "diffusion.npz holds arrays that are not one diffusion sampler" in message
    assert "out_kernel (32, 2), not (32, 4)" in message and "delete it" in message, message
