"""The loss terms against closed forms and the Keras example's formula."""

import keras
import numpy as np
import pytest

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
