"""tfvae.likelihoods against brute force: the decoders' pixel distributions, their 8-bit probabilities, means and
draws, computed here independently with numpy and scipy."""

import numpy as np
import pytest
import tensorflow as tf
from scipy import integrate, special, stats

from tfvae import likelihoods, losses, metrics

LEVELS = np.arange(256) / 255.0
HALF = 0.5 / 255.0


def mixture_outputs(channels, pixels=1, scale=1.5, seed=0):
    """Random logistic-mixture parameters for ``pixels`` pixels, (1, 1, pixels, output_channels)."""
    size = likelihoods.output_channels("logistic_mixture", channels)
    return (np.random.default_rng(seed).normal(size=(1, 1, pixels, size)) * scale).astype("float32")


def numpy_logistic_mixture_prob(x, outputs, components=likelihoods.LOGISTIC_COMPONENTS):
    """P(pixel) written out: sum_k pi_k prod_c [F(x_c + w/2) - F(x_c - w/2)] with the tails in the end bins and
    channel c's location shifted by tanh(a_cj) x_j (j < c); F the logistic CDF. float64, x (..., C)."""
    x = np.asarray(x, "float64")
    o = np.asarray(outputs, "float64")
    k, c = components, x.shape[-1]
    pi = special.softmax(o[..., :k], axis=-1)
    loc = o[..., k:k + k * c].reshape(*o.shape[:-1], k, c)
    scale = np.exp(np.clip(o[..., k + k * c:k + 2 * k * c].reshape(*o.shape[:-1], k, c),
                           likelihoods.LOG_SCALE_MIN, likelihoods.LOG_SCALE_MAX))
    coeffs = np.tanh(o[..., k + 2 * k * c:].reshape(*o.shape[:-1], k, -1))
    total = 0.0
    for comp in range(k):
        prob, pair = pi[..., comp], 0
        for ch in range(c):
            mu = loc[..., comp, ch]
            for j in range(ch):
                mu = mu + coeffs[..., comp, pair] * x[..., j]
                pair += 1
            xc = x[..., ch]
            upper = np.where(xc > 1 - HALF, 1.0, special.expit((xc + HALF - mu) / scale[..., comp, ch]))
            lower = np.where(xc < HALF, 0.0, special.expit((xc - HALF - mu) / scale[..., comp, ch]))
            prob = prob * (upper - lower)
        total = total + prob
    return total


def test_discretized_logistic_mixture_sums_to_one_and_is_the_cdf_difference():
    # One channel: the probabilities of the 256 values of each of 4 pixels sum to 1 and are numpy's.
    outputs = mixture_outputs(1, pixels=4)
    x = np.broadcast_to(LEVELS[:, None, None, None], (256, 1, 4, 1)).astype("float32")
    log_p = likelihoods.logistic_mixture_pixel_log_prob(x, np.repeat(outputs, 256, axis=0)).numpy()
    np.testing.assert_allclose(np.exp(log_p.astype("float64")).sum(axis=0), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.exp(log_p[:, 0]), numpy_logistic_mixture_prob(x[:, 0], outputs[0]),
                               rtol=2e-4, atol=1e-9)
    # Each component alone (a mixture whose other weights are ~0) sums to 1 too.
    for comp in range(likelihoods.LOGISTIC_COMPONENTS):
        one = outputs.copy()
        one[..., :likelihoods.LOGISTIC_COMPONENTS] = -60.0
        one[..., comp] = 60.0
        log_p = likelihoods.logistic_mixture_pixel_log_prob(x, np.repeat(one, 256, axis=0)).numpy()
        np.testing.assert_allclose(np.exp(log_p.astype("float64")).sum(axis=0), 1.0, atol=1e-5)
    # Three coupled channels: numpy's joint at random pixels, the end values among them, and summing the blue
    # channel's 256 values leaves numpy's P(red, green), whose 65,536 values sum to 1.
    outputs = mixture_outputs(3, pixels=64, seed=1)
    rng = np.random.default_rng(2)
    pixels = rng.choice([0, 1, 2, 127, 128, 254, 255], size=(1, 1, 64, 3)) / 255.0
    np.testing.assert_allclose(
        likelihoods.logistic_mixture_pixel_log_prob(pixels.astype("float32"), outputs).numpy(),
        np.log(numpy_logistic_mixture_prob(pixels, outputs)), rtol=1e-4, atol=1e-4)
    one_pixel = outputs[:, :, :1]
    red_green = rng.integers(0, 256, size=(6, 2)) / 255.0
    red_green[0], red_green[1] = (0.0, 1.0), (1.0, 0.0)
    x = np.concatenate([np.broadcast_to(red_green[:, None], (6, 256, 2)),
                        np.broadcast_to(LEVELS[None, :, None], (6, 256, 1))], axis=-1)[None]  # (1, 6, 256, 3)
    joint = likelihoods.logistic_mixture_pixel_log_prob(
        x.astype("float32"), np.broadcast_to(one_pixel, (1, 6, 256, one_pixel.shape[-1]))).numpy()
    marginal = np.exp(joint.astype("float64")).sum(axis=-1)[0]
    r, g = np.meshgrid(LEVELS, LEVELS, indexing="ij")
    grid = np.stack([r, g, np.full_like(r, 0.5)], axis=-1)  # blue: any value (its 256 sum to 1 in numpy too)
    two = numpy_logistic_mixture_prob_red_green(grid, one_pixel[0, 0, 0])
    np.testing.assert_allclose(two.sum(), 1.0, atol=1e-9)
    rows, cols = np.rint(red_green * 255).astype(int).T
    np.testing.assert_allclose(marginal, two[rows, cols], rtol=1e-4, atol=1e-9)


def numpy_logistic_mixture_prob_red_green(grid, outputs):
    """P(red, green) of one pixel: the mixture with the blue channel summed out (its component's 256 values sum
    to 1), written with numpy_logistic_mixture_prob on two channels of a three-channel layout."""
    k = likelihoods.LOGISTIC_COMPONENTS
    o = np.asarray(outputs, "float64")
    loc, log_scale = o[k:4 * k].reshape(k, 3), o[4 * k:7 * k].reshape(k, 3)
    coeffs = o[7 * k:].reshape(k, 3)
    two_channel = np.concatenate([o[:k], loc[:, :2].ravel(), log_scale[:, :2].ravel(), coeffs[:, :1].ravel()])
    return numpy_logistic_mixture_prob(grid[..., :2], two_channel)


def test_logistic_mixture_mean_and_draws_are_the_distributions():
    outputs = mixture_outputs(1, pixels=3, seed=3)
    x = np.broadcast_to(LEVELS[:, None, None, None], (256, 1, 3, 1)).astype("float32")
    p = np.exp(likelihoods.logistic_mixture_pixel_log_prob(x, np.repeat(outputs, 256, axis=0)).numpy()
               .astype("float64"))
    exact_mean = (p * LEVELS[:, None, None]).sum(axis=0)
    np.testing.assert_allclose(likelihoods.mean(outputs, "logistic_mixture").numpy()[0, 0, :, 0], exact_mean[0],
                               atol=2e-4)
    draws = likelihoods.sample(np.repeat(outputs, 4000, axis=0), "logistic_mixture", 5).numpy()
    assert np.array_equal(draws, likelihoods.sample(np.repeat(outputs, 4000, axis=0), "logistic_mixture", 5))
    codes = np.rint(draws * 255)
    np.testing.assert_allclose(draws, codes / 255.0, atol=1e-6)  # 8-bit values
    for pixel in range(3):
        hist = np.bincount(codes[:, 0, pixel, 0].astype(int), minlength=256) / 4000
        assert 0.5 * np.abs(hist - p[:, 0, pixel]).sum() < 0.1  # total variation (~0.06 expected from noise)
    # Colour: the mean lies in [0, 1] and the draws' average is near it.
    outputs = mixture_outputs(3, pixels=2, scale=0.7, seed=4)
    mean = likelihoods.mean(outputs, "logistic_mixture").numpy()
    draws = likelihoods.sample(np.repeat(outputs, 4000, axis=0), "logistic_mixture", 6).numpy()
    assert mean.min() >= 0 and mean.max() <= 1
    np.testing.assert_allclose(draws.mean(axis=0), mean[0], atol=0.03)


def test_gaussian_pixel_nll_is_scipys_density_with_the_floored_variance():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(2, 3, 4, 3)) / 255.0
    outputs = rng.normal(size=(2, 3, 4, 6)).astype("float32") * 3
    outputs[0, 0, 0, 3] = -40.0  # a log-variance far below the floor
    mean = special.expit(outputs[..., :3].astype("float64"))
    variance = likelihoods.VARIANCE_MIN + np.exp(np.clip(outputs[..., 3:].astype("float64"), -30, 5))
    assert variance.min() == pytest.approx(likelihoods.VARIANCE_MIN, rel=1e-6)
    expected = -stats.norm.logpdf(x, mean, np.sqrt(variance)).reshape(2, -1).sum(axis=1)
    np.testing.assert_allclose(likelihoods.gaussian_pixel_nll(x, outputs).numpy(), expected, rtol=1e-4)
    np.testing.assert_allclose(losses.reconstruction_loss(x, outputs, "gaussian_pixel").numpy(), expected, rtol=1e-4)
    np.testing.assert_allclose(likelihoods.mean(outputs, "gaussian_pixel").numpy(), mean, rtol=1e-6)
    # Its 8-bit probability: the Gaussian's mass over each pixel's bin.
    upper = np.where(x > 1 - HALF, 1.0, stats.norm.cdf(x + HALF, mean, np.sqrt(variance)))
    lower = np.where(x < HALF, 0.0, stats.norm.cdf(x - HALF, mean, np.sqrt(variance)))
    per_value = likelihoods.discretized_gaussian_log_prob(x, mean, variance).numpy()
    visible = upper - lower > 1e-300  # scipy's difference underflows in the far tails, where ours is finite
    assert np.all(np.isfinite(per_value)) and visible.mean() > 0.5
    np.testing.assert_allclose(per_value[visible], np.log((upper - lower)[visible]), rtol=1e-6)
    np.testing.assert_allclose(metrics.decoder_log_prob(x, outputs, "gaussian_pixel").numpy(),
                               per_value.reshape(2, -1).sum(axis=1), rtol=1e-5)


@pytest.mark.parametrize("variance", [likelihoods.VARIANCE_MIN, 1e-3, 0.5])
def test_the_discretized_gaussian_is_the_integral_over_each_bin(variance):
    sigma = np.sqrt(variance)
    for mu in (-0.3, 0.0, 0.4, 1.0, 1.6):
        log_p = likelihoods.discretized_gaussian_log_prob(LEVELS, mu, variance).numpy()
        assert np.all(log_p <= 0)
        np.testing.assert_allclose(np.exp(log_p).sum(), 1.0, atol=1e-9)
        for k in (0, 1, 100, 200, 254, 255):  # numerical integration of the density over the bin
            lo = -np.inf if k == 0 else LEVELS[k] - HALF
            hi = np.inf if k == 255 else LEVELS[k] + HALF
            inside = np.isfinite(lo) and np.isfinite(hi) and lo < mu < hi
            mass = integrate.quad(stats.norm(mu, sigma).pdf, lo, hi, points=[mu] if inside else None,
                                  epsabs=0, epsrel=1e-10)[0]
            if mass > 1e-300:
                assert log_p[k] == pytest.approx(np.log(mass), rel=1e-6, abs=1e-9), (mu, k)
    # Far tails (erfc underflows in float64 near -38 standard deviations) stay finite and match scipy.
    t = np.array([-200.0, -45.0, -20.5, -19.5, -3.0, 0.0, 4.0, 30.0])
    np.testing.assert_allclose(likelihoods.log_ndtr(t).numpy(), stats.norm.logcdf(t), rtol=1e-9, atol=1e-15)


def test_density_times_bin_width_would_exceed_one_but_the_bin_mass_never_does():
    x = np.full((1, 1, 1, 1), 0.5)
    logits = np.zeros((1, 1, 1, 1), "float32")  # mean 0.5: the pixel sits at the centre of its bin
    density_nats = -losses.reconstruction_loss(x, logits, "gaussian", variance=likelihoods.VARIANCE_MIN).numpy()
    assert np.exp(density_nats[0]) / 255.0 == pytest.approx(1.38, abs=0.01)  # a "probability" above 1
    log_p = metrics.decoder_log_prob(x, logits, "gaussian", likelihoods.VARIANCE_MIN).numpy()
    assert np.exp(log_p[0]) == pytest.approx(stats.norm.cdf(np.sqrt(3)) - stats.norm.cdf(-np.sqrt(3)), rel=1e-6)


@pytest.mark.parametrize("loss", ["gaussian_pixel", "logistic_mixture"])
def test_the_losses_gradients_are_finite_at_0_and_1(loss):
    x = tf.constant([0.0, 1.0, 0.0, 1.0, 0.5, 1 / 255], shape=(1, 1, 2, 3))
    size = likelihoods.output_channels(likelihoods.for_loss(loss), 3)
    rng = np.random.default_rng(0)
    for scale in (0.1, 3.0, 30.0):  # parameters from tame to extreme: far outside [0, 1], tiny or huge scales
        outputs = tf.Variable(rng.normal(size=(1, 1, 2, size)).astype("float32") * scale)
        with tf.GradientTape() as tape:
            value = losses.reconstruction_loss(x, outputs, loss)
        assert np.all(np.isfinite(value.numpy())) and np.all(np.isfinite(tape.gradient(value, outputs).numpy()))
        with tf.GradientTape() as tape:
            value = metrics.decoder_log_prob(x, outputs, likelihoods.for_loss(loss))
        assert np.all(np.isfinite(value.numpy())) and np.all(np.isfinite(tape.gradient(value, outputs).numpy()))


def test_layouts_and_bernoulli_has_no_8bit_probability():
    assert likelihoods.output_channels("logistic_mixture", 3) == 10 * likelihoods.LOGISTIC_COMPONENTS  # PixelCNN++
    assert likelihoods.output_channels("logistic_mixture", 1) == 3 * likelihoods.LOGISTIC_COMPONENTS
    assert likelihoods.output_channels("gaussian_pixel", 3) == 6
    for name in likelihoods.LIKELIHOODS:
        for channels in (1, 3):
            assert likelihoods.image_channels(name, likelihoods.output_channels(name, channels)) == channels
    with pytest.raises(ValueError, match="no probability of 8-bit images"):
        likelihoods.log_prob_8bit(np.zeros((1, 2, 2, 1)), np.zeros((1, 2, 2, 1)), "bernoulli")
    assert not metrics.reports_bits_per_dim("bernoulli", binarized=False)
    assert metrics.reports_bits_per_dim("bernoulli", binarized=True) and metrics.reports_bits_per_dim("gaussian", False)
