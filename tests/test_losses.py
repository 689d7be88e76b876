"""The loss terms against closed forms and the Keras example's formula."""

import math

import keras
import numpy as np
import pytest
from scipy import stats

from tfvae import losses


def test_kl_of_unit_shifted_gaussian_is_half_the_squared_norm():
    # KL(N(mu, 1) || N(0, 1)) = mu^2 / 2 per dimension: mu = 1 over 10 dims gives 5.
    kl = losses.gaussian_kl(np.ones((3, 10), "float32"), np.zeros((3, 10), "float32"))
    np.testing.assert_allclose(kl, [5.0, 5.0, 5.0], rtol=1e-6)


def test_kl_of_the_prior_is_zero():
    kl = losses.gaussian_kl(np.zeros((2, 4), "float32"), np.zeros((2, 4), "float32"))
    np.testing.assert_allclose(kl, 0.0, atol=1e-7)


def test_kl_matches_the_general_closed_form():
    rng = np.random.default_rng(0)
    mu, log_var = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    var = np.exp(log_var)
    expected = 0.5 * np.sum(var + mu**2 - 1.0 - log_var, axis=-1)
    np.testing.assert_allclose(losses.gaussian_kl(mu.astype("float32"), log_var.astype("float32")), expected,
                               rtol=1e-5)


def test_bernoulli_nll_is_pixel_count_times_mean_bce():
    # The Keras example: binary_crossentropy(x, sigmoid(logits)) averaged over pixels, times 28 * 28.
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(4, 28, 28, 1)).astype("float32")
    logits = rng.normal(scale=3.0, size=(4, 28, 28, 1)).astype("float32")
    ours = np.asarray(losses.bernoulli_nll(x, logits))
    probs = 1.0 / (1.0 + np.exp(-logits))
    mean_bce = np.asarray(keras.losses.binary_crossentropy(x.reshape(4, -1), probs.reshape(4, -1)))
    np.testing.assert_allclose(ours, 28 * 28 * mean_bce, rtol=1e-4)


def test_bernoulli_nll_is_stable_for_large_logits():
    x = np.array([[1.0, 0.0, 1.0, 0.0]], "float32")
    logits = np.array([[200.0, -200.0, -200.0, 200.0]], "float32")
    # Two confident right pixels cost 0; two confident wrong ones cost 200 nats each (no clipping at 1e-7).
    np.testing.assert_allclose(losses.bernoulli_nll(x, logits), [400.0], rtol=1e-6)


def test_squared_error_sums_over_pixels():
    x = np.zeros((2, 2, 2, 1), "float32")
    logits = np.zeros((2, 2, 2, 1), "float32")  # sigmoid(0) = 0.5
    np.testing.assert_allclose(losses.squared_error(x, logits), [1.0, 1.0])
    np.testing.assert_allclose(losses.reconstruction_loss(x, logits, "mse"), [1.0, 1.0])


def test_unknown_reconstruction_loss():
    with pytest.raises(ValueError, match="unknown reconstruction loss"):
        losses.reconstruction_loss(np.zeros((1, 1)), np.zeros((1, 1)), "l1")


def test_gaussian_nll_is_the_closed_form_for_a_known_variance():
    rng = np.random.default_rng(2)
    x = rng.uniform(size=(3, 4, 4, 3)).astype("float32")
    logits = rng.normal(size=x.shape).astype("float32")
    mean = 1.0 / (1.0 + np.exp(-logits.astype("float64")))
    variance = 0.013
    expected = -stats.norm.logpdf(x, loc=mean, scale=math.sqrt(variance)).reshape(3, -1).sum(axis=1)
    np.testing.assert_allclose(losses.reconstruction_loss(x, logits, "gaussian", variance=variance), expected,
                               rtol=1e-5)
    # mse is the Gaussian with variance 1/2, up to its constant D/2 log(pi).
    half = np.asarray(losses.reconstruction_loss(x, logits, "gaussian", variance=0.5))
    np.testing.assert_allclose(half - np.asarray(losses.squared_error(x, logits)), 0.5 * 48 * math.log(math.pi),
                               rtol=1e-5)


def test_optimal_variance_matches_a_grid_search():
    rng = np.random.default_rng(3)
    x = rng.uniform(size=(8, 6, 6, 3)).astype("float32")
    logits = (np.log(x / (1 - x)) + rng.normal(scale=0.7, size=x.shape)).astype("float32")  # errors ~0.1
    num_pixels = 6 * 6 * 3
    errors = losses.squared_error(x, logits)
    analytic = float(losses.optimal_variance(errors, num_pixels))
    np.testing.assert_allclose(analytic, np.mean(np.asarray(errors)) / num_pixels, rtol=1e-6)
    # The batch's mean NLL over a grid of variances that knows nothing of the analytic value: its minimum is
    # the grid point next to it.
    grid = np.exp(np.linspace(math.log(1e-4), math.log(1.0), 2001))
    mean_nll = [float(np.mean(losses.gaussian_nll(errors, num_pixels, v))) for v in grid]
    best = int(np.argmin(mean_nll))
    step = math.log(grid[1] / grid[0])
    assert abs(math.log(grid[best]) - math.log(analytic)) <= step
    at_optimum = float(np.mean(losses.gaussian_nll(errors, num_pixels, analytic)))
    assert at_optimum <= min(mean_nll) + 1e-3
    # ... where the batch's mean loss is D/2 log(2 pi sigma^2) + D/2; the default scores a batch there.
    np.testing.assert_allclose(at_optimum, num_pixels / 2 * (math.log(2 * math.pi * analytic) + 1.0), rtol=1e-5)
    np.testing.assert_allclose(losses.reconstruction_loss(x, logits, "gaussian"),
                               losses.gaussian_nll(errors, num_pixels, analytic), rtol=1e-6)


def test_optimal_variance_is_floored_at_the_quantisation_noise():
    perfect = losses.optimal_variance(np.zeros(4, "float32"), 12)
    np.testing.assert_allclose(perfect, losses.VARIANCE_MIN)
    np.testing.assert_allclose(losses.VARIANCE_MIN, (1 / 255) ** 2 / 12)


def test_recon_weight_scales_the_reconstruction_term_and_zero_drops_it():
    x = np.zeros((2, 4, 4, 1), "float32")
    mean, log_var = np.ones((2, 10), "float32"), np.zeros((2, 10), "float32")
    full = losses.vae_loss(x, np.zeros_like(x), mean, log_var)
    half = losses.vae_loss(x, np.zeros_like(x), mean, log_var, recon_weight=0.5)
    np.testing.assert_allclose(half["loss"], 0.5 * np.asarray(full["reconstruction"]) + 5.0, rtol=1e-6)
    np.testing.assert_allclose(half["reconstruction"], full["reconstruction"])  # logged unweighted
    inf_logits = np.full_like(x, np.inf)  # a diverged decoder: 0 * inf would be NaN
    kl_only = losses.vae_loss(np.ones_like(x), -inf_logits, mean, log_var, recon_weight=0.0)
    np.testing.assert_allclose(kl_only["loss"], [5.0, 5.0], rtol=1e-6)
