"""tfvae.metrics against closed forms and known cases."""

import math

import numpy as np
import pytest
import tensorflow as tf
from scipy import special, stats

from tests.conftest import monte_carlo_elbo_terms
from tfvae import losses, metrics
from tfvae.inference import Inference
from tfvae.models import build_model

# ---------------------------------------------------------------------------------------------------------
# Likelihood


@pytest.fixture(scope="module")
def tiny_vae():
    """An untrained MLP VAE on 8x8 images with a 2-D latent, and 6 binary images.

    The decoder's weights are scaled up so that p(x|z) varies sharply with z while the (untrained) encoder's
    q(z|x) knows nothing of it: the ELBO is then tens of nats below log p(x), and the IWAE estimate must
    close that gap as K grows.
    """
    keras_seed = 3
    tf.keras.utils.set_random_seed(keras_seed)
    model = build_model("vae", (8, 8, 1), 2, arch="mlp", hidden=16, seed=keras_seed)
    for layer in model.decoder.layers:
        if layer.get_weights():
            layer.set_weights([3.0 * w for w in layer.get_weights()])
    images = (np.random.default_rng(0).uniform(size=(6, 8, 8, 1)) < 0.3).astype("float32")
    return model, images


def exact_log_likelihood(decoder, images, likelihood, half_width=6.0, steps=241):
    """log p(x) = log of the integral of p(x|z) p(z) over a 2-D grid (midpoint rule)."""
    ticks = np.linspace(-half_width, half_width, steps)
    z = np.stack(np.meshgrid(ticks, ticks, indexing="ij"), axis=-1).reshape(-1, 2).astype("float32")
    cell = (ticks[1] - ticks[0]) ** 2
    logits = decoder.predict(z, batch_size=8192, verbose=0)
    log_pz = -0.5 * np.sum(z.astype("float64") ** 2, axis=1) - math.log(2 * math.pi)
    out = []
    for x in images:
        log_px = metrics.decoder_log_prob(np.repeat(x[None], len(z), axis=0), logits, likelihood).numpy()
        out.append(special.logsumexp(log_px + log_pz) + math.log(cell))
    return np.array(out)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_iwae_approaches_the_exact_likelihood_and_bounds_the_elbo(tiny_vae, likelihood):
    model, images = tiny_vae
    exact = exact_log_likelihood(model.decoder, images, likelihood)
    terms = {k: Inference().likelihood_terms(model.encoder, model.decoder, images, k, likelihood=likelihood,
                                         max_batch=600, seed=1)
             for k in (1, 10, 1000)}
    nll = {k: np.mean(t["nll"]) for k, t in terms.items()}
    # The bound tightens with k (on average over images) and reaches the quadrature's value.
    assert nll[1] > nll[10] + 1.0 > nll[1000] + 1.0
    assert abs(nll[1000] - np.mean(-exact)) < 0.1
    np.testing.assert_allclose(terms[1000]["nll"], -exact, atol=0.3)
    # IWAE >= ELBO: -ELBO is well above the NLL for this mismatched encoder.
    assert np.mean(terms[1000]["neg_elbo"]) > nll[1000] + 2.0
    # The -ELBO's terms against plain Monte Carlo done here (numpy draws, the log-likelihood written out).
    out = model.encoder(images, training=False)
    recon, spread, kl = monte_carlo_elbo_terms(out["z_mean"], out["z_log_var"], model.decoder, images, likelihood,
                                               draws=4000)
    np.testing.assert_allclose(terms[1000]["kl"], kl, rtol=1e-4, atol=1e-4)
    se = spread * math.sqrt(1 / 4000 + 1 / 1000)  # this estimate's draws, and the code's
    assert np.all(np.abs(terms[1000]["reconstruction"] - recon) < 4 * se + 1e-3), (terms[1000]["reconstruction"], recon)
    assert np.all(np.abs(terms[1000]["neg_elbo"] - (recon + kl)) < 4 * se + 1e-3)


def test_likelihood_terms_do_not_depend_on_the_batching(tiny_vae):
    model, images = tiny_vae
    a = Inference().likelihood_terms(model.encoder, model.decoder, images, 50, max_batch=1000, seed=4)
    b = Inference().likelihood_terms(model.encoder, model.decoder, images, 50, max_batch=20, seed=4)
    # Different chunking draws different noise: only the estimates agree, not the draws.
    np.testing.assert_allclose(a["kl"], b["kl"], rtol=1e-6)
    assert abs(np.mean(a["nll"]) - np.mean(b["nll"])) < 0.5


def test_a_bfloat16_decoder_copy_gives_the_float32_likelihood_to_a_fraction_of_a_nat():
    from tfvae import training

    tf.keras.utils.set_random_seed(5)
    model = build_model("vae", (16, 16, 1), 2, filters=(8, 16), seed=5)
    images = np.random.default_rng(1).uniform(size=(8, 16, 16, 1)).astype("float32")
    copy = training.policy_copy(model.decoder, "mixed_bfloat16")
    assert [layer.compute_dtype for layer in copy.layers][1:-1] == ["bfloat16"] * (len(copy.layers) - 2)
    assert copy.layers[-1].compute_dtype == "float32" and copy.output.dtype == "float32"
    exact = Inference().likelihood_terms(model.encoder, model.decoder, images, 64, seed=2)
    fast = Inference().likelihood_terms(model.encoder, copy, images, 64, seed=2)
    # Same draws: only bfloat16's rounding (about 2^-8 of each activation) separates the two.
    assert not np.array_equal(fast["nll"], exact["nll"])
    np.testing.assert_allclose(fast["nll"], exact["nll"], atol=0.05)
    assert abs(np.mean(fast["nll"]) - np.mean(exact["nll"])) < 0.01


def test_the_gaussian_likelihood_is_the_mass_of_each_8bit_bin_under_variance_one_half():
    rng = np.random.default_rng(0)
    x = (rng.integers(0, 256, size=(3, 4, 4, 1)) / 255.0).astype("float32")
    x[0, 0, 0], x[0, 0, 1] = 0.0, 1.0  # the end bins take the tails
    logits = rng.normal(size=(3, 4, 4, 1)).astype("float32")
    mean, sd, half = special.expit(logits.astype("float64")), math.sqrt(0.5), 0.5 / 255
    upper = np.where(x > 1 - half, 1.0, stats.norm.cdf(x + half, mean, sd))
    lower = np.where(x < half, 0.0, stats.norm.cdf(x - half, mean, sd))
    expected = np.log(upper - lower).reshape(3, -1).sum(axis=1)
    np.testing.assert_allclose(metrics.decoder_log_prob(x, logits, "gaussian"), expected, rtol=1e-5)
    np.testing.assert_allclose(metrics.decoder_log_prob(x, logits, "bernoulli"),
                               -np.asarray(losses.bernoulli_nll(x, logits)), rtol=1e-6)
    assert metrics.likelihood_for_loss("bce") == "bernoulli" and metrics.likelihood_for_loss("mse") == "gaussian"


def test_bits_per_dim():
    np.testing.assert_allclose(metrics.bits_per_dim(784 * math.log(2.0), 784), 1.0)


def test_reconstruct_and_mse_psnr(tiny_vae):
    model, images = tiny_vae
    recon, nll = Inference().reconstruct(model.encoder, model.decoder, images)
    assert recon.shape == images.shape and nll.shape == (len(images),) and np.all(nll > 0)
    mse, psnr = metrics.mse_psnr(np.zeros((2, 4, 4, 1)), np.stack([np.full((4, 4, 1), 0.1), np.zeros((4, 4, 1))]))
    np.testing.assert_allclose(mse, [0.01, 0.0], atol=1e-12)
    np.testing.assert_allclose(psnr, [20.0, 100.0])


# ---------------------------------------------------------------------------------------------------------
# Sample quality


def test_frechet_distance_of_a_set_with_itself_is_zero():
    features = np.random.default_rng(0).normal(size=(500, 8))
    assert abs(metrics.frechet_distance_of_features(features, features)) < 1e-6


def random_spd(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T + 0.1 * np.eye(d)


def test_frechet_distance_matches_an_independent_computation():
    rng = np.random.default_rng(1)
    d = 5
    m1, m2, c1, c2 = rng.normal(size=d), rng.normal(size=d), random_spd(rng, d), random_spd(rng, d)
    # Tr (C1 C2)^(1/2) = Tr (C1^(1/2) C2 C1^(1/2))^(1/2): symmetric, so eigenvalues suffice.
    w, v = np.linalg.eigh(c1)
    root1 = v @ np.diag(np.sqrt(w)) @ v.T
    trace_root = np.sum(np.sqrt(np.linalg.eigvalsh(root1 @ c2 @ root1)))
    expected = np.sum((m1 - m2) ** 2) + np.trace(c1) + np.trace(c2) - 2 * trace_root
    assert metrics.frechet_distance(m1, c1, m2, c2) == pytest.approx(expected, rel=1e-8)
    # One dimension: (m1 - m2)^2 + (s1 - s2)^2.
    assert metrics.frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4.0 + 1.0)


def test_frechet_distance_of_samples_approaches_the_formula():
    rng = np.random.default_rng(2)
    a = rng.normal(0.0, 1.0, size=(20000, 2))
    b = rng.normal(1.0, 2.0, size=(20000, 2))
    # Per dimension (0 - 1)^2 + (1 - 2)^2 = 2.
    assert metrics.frechet_distance_of_features(a, b) == pytest.approx(4.0, abs=0.1)


def test_inception_score_bounds():
    assert metrics.inception_score(np.full((100, 10), 0.1))[0] == pytest.approx(1.0)
    confident = np.eye(10)[np.arange(1000) % 10]
    assert metrics.inception_score(confident)[0] == pytest.approx(10.0)
    mean, std = metrics.inception_score(confident, num_splits=10)
    assert mean == pytest.approx(10.0) and std == pytest.approx(0.0, abs=1e-9)
    one_class = np.eye(10)[np.zeros(50, int)]
    assert metrics.inception_score(one_class)[0] == pytest.approx(1.0)


def test_precision_recall_known_cases():
    rng = np.random.default_rng(3)
    real = rng.normal(size=(300, 4))
    assert metrics.precision_recall(real, real, k=3, batch_size=64) == (1.0, 1.0)
    far = rng.normal(size=(200, 4)) + 100.0
    assert metrics.precision_recall(real, far, k=3) == (0.0, 0.0)
    # Generated samples that cover only half of the real data: precise, but half the recall.
    half = real[real[:, 0] > 0]
    precision, recall = metrics.precision_recall(real, half, k=3)
    assert precision == 1.0 and 0.3 < recall < 0.8


def test_training_distance_ratio_tells_copies_new_draws_and_far_samples_apart():
    rng = np.random.default_rng(4)
    train, test = rng.normal(size=(500, 8)), rng.normal(size=(300, 8))
    np.testing.assert_allclose(metrics.nearest_distances([[0.0, 3.0]], [[0.0, 0.0], [4.0, 3.0]]), [3.0])
    copies = train[rng.choice(500, 300)] + rng.normal(scale=1e-3, size=(300, 8))  # a sampler that copies
    assert metrics.training_distance_ratio(train, test, copies) < 0.01
    fresh = rng.normal(size=(300, 8))  # new draws of the training distribution: as far off as the test images
    assert 0.9 < metrics.training_distance_ratio(train, test, fresh, batch_size=64) < 1.1
    assert metrics.training_distance_ratio(train, test, fresh * 3.0) > 2.0  # spread past the data


def test_near_copies_count_the_samples_nearer_the_training_set_than_new_real_images_come():
    rng = np.random.default_rng(5)
    train, test, fresh = rng.normal(size=(500, 8)), rng.normal(size=(1000, 8)), rng.normal(size=(1000, 8))
    copies = train[rng.choice(500, 1000)] + rng.normal(scale=1e-3, size=(1000, 8))
    share = {name: metrics.novelty(train, test, fake)["near_copies"]
             for name, fake in (("fresh", fresh), ("copies", copies), ("far", fresh * 3.0))}
    # New draws: nearer than the test images' 5% quantile about 5% of the time (binomial sd 0.007 over 1,000).
    assert 0.025 < share["fresh"] < 0.08 and share["copies"] == 1.0 and share["far"] == 0.0, share
    # A fifth of copies among new draws: the median ratio barely moves, the share of near copies does.
    mixed = np.concatenate([fresh[:800], copies[:200]])
    guard = metrics.novelty(train, test, mixed, batch_size=128)
    assert guard["training_distance_ratio"] > 0.85 and 0.2 < guard["near_copies"] < 0.3, guard
    assert guard["training_distance_ratio"] == metrics.training_distance_ratio(train, test, mixed)


def test_knn_radii_are_the_kth_neighbour_distance():
    points = np.array([[0.0], [1.0], [3.0], [6.0]])
    np.testing.assert_allclose(metrics.knn_radii(points, k=1), [1.0, 1.0, 4.0, 9.0])
    np.testing.assert_allclose(metrics.knn_radii(points, k=2), [9.0, 4.0, 9.0, 25.0])


# ---------------------------------------------------------------------------------------------------------
# Anomaly detection and the ex-post density


def test_auroc_known_cases():
    assert metrics.auroc([0.1, 0.2, 0.3], [0.5, 0.9]) == 1.0
    assert metrics.auroc([0.5, 0.9], [0.1, 0.2, 0.3]) == 0.0
    same = np.random.default_rng(0).normal(size=100)
    assert metrics.auroc(same, same) == 0.5
    assert metrics.auroc([1.0, 1.0], [1.0, 1.0, 1.0]) == 0.5  # all ties
    assert metrics.auroc([0.0, 2.0], [1.0, 3.0]) == 0.75


def mann_whitney_auroc(inlier_scores, outlier_scores):
    """The rank formula tfvae used before scikit-learn: U / (n_in n_out), ties at their average rank."""
    n_in, n_out = len(inlier_scores), len(outlier_scores)
    ranks = stats.rankdata(np.concatenate([inlier_scores, outlier_scores]))
    return (np.sum(ranks[n_in:]) - n_out * (n_out + 1) / 2.0) / (n_in * n_out)


def test_auroc_is_the_mann_whitney_statistic_with_ties():
    rng = np.random.default_rng(5)
    for n_in, n_out, shift in [(50, 70, 0.0), (200, 30, 0.7), (13, 400, -0.4)]:
        # Rounded to one decimal, so that many scores tie within and across the two sets.
        inliers = np.round(rng.normal(size=n_in), 1)
        outliers = np.round(rng.normal(shift, size=n_out), 1)
        assert metrics.auroc(inliers, outliers) == pytest.approx(mann_whitney_auroc(inliers, outliers), abs=1e-12)
    # Higher means more anomalous: swapping the two sets gives 1 - AUROC.
    assert metrics.auroc(outliers, inliers) == pytest.approx(1.0 - metrics.auroc(inliers, outliers), abs=1e-12)
    with pytest.raises(ValueError, match="at least one inlier and one outlier"):
        metrics.auroc([], [1.0])


def test_complexity_score_and_png_length():
    flat = np.zeros((1, 28, 28, 1), np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, size=(1, 28, 28, 1), dtype=np.uint8)
    lengths = metrics.png_length_nats(np.concatenate([flat, noise]))
    assert lengths[0] < lengths[1]
    # Incompressible noise needs at least 8 bits per pixel.
    assert lengths[1] >= 28 * 28 * 8 * math.log(2.0)
    np.testing.assert_allclose(metrics.complexity_corrected_score([100.0, 100.0], lengths), 100.0 - lengths)


def test_gaussian_mixture_recovers_two_separated_clusters():
    rng = np.random.default_rng(0)
    z = np.concatenate([rng.normal([-10.0, 0.0], 1.0, size=(600, 2)), rng.normal([10.0, 5.0], 0.5, size=(400, 2))])
    gmm = metrics.fit_gaussian_mixture(z, num_components=2, seed=0)
    order = np.argsort(gmm.means[:, 0])
    np.testing.assert_allclose(gmm.means[order], [[-10.0, 0.0], [10.0, 5.0]], atol=0.2)
    np.testing.assert_allclose(gmm.weights[order], [0.6, 0.4], atol=0.02)
    np.testing.assert_allclose(gmm.covariances[order[1]], 0.25 * np.eye(2), atol=0.05)
    samples = gmm.sample(2000, seed=1)
    assert samples.dtype == np.float32 and samples.shape == (2000, 2)
    assert np.mean(samples[:, 0] > 0) == pytest.approx(0.4, abs=0.05)
    np.testing.assert_array_equal(samples, gmm.sample(2000, seed=1))
    assert gmm.log_prob([[-10.0, 0.0]])[0] > gmm.log_prob([[0.0, 0.0]])[0]


def test_gaussian_mixture_sample_and_log_prob_match_the_closed_forms():
    rng = np.random.default_rng(1)
    z = np.concatenate([rng.normal([-4.0, 0.0, 1.0], 1.0, size=(300, 3)),
                        rng.normal([4.0, 2.0, -1.0], [0.5, 1.0, 2.0], size=(200, 3))])
    gmm = metrics.fit_gaussian_mixture(z, num_components=2, seed=0)
    # log p(z) = logsumexp_m (log w_m + log N(z; mu_m, C_m)), the hand-written formula it replaces.
    points = rng.normal(size=(50, 3)) * 4.0
    per_component = np.stack([stats.multivariate_normal.logpdf(points, m, c)
                              for m, c in zip(gmm.means, gmm.covariances)], axis=-1)
    expected = special.logsumexp(per_component + np.log(gmm.weights), axis=-1)
    np.testing.assert_allclose(gmm.log_prob(points), expected, rtol=1e-10, atol=1e-10)
    # Draws follow the mixture: component shares, means and covariances within sampling error.
    samples = gmm.sample(20000, seed=7)
    np.testing.assert_array_equal(samples, gmm.sample(20000, seed=7))
    assert not np.array_equal(samples, gmm.sample(20000, seed=8))
    right = samples[:, 0] > 0
    order = np.argsort(gmm.means[:, 0])
    assert np.mean(right) == pytest.approx(gmm.weights[order[1]], abs=0.02)
    np.testing.assert_allclose(samples[right].mean(axis=0), gmm.means[order[1]], atol=0.1)
    np.testing.assert_allclose(np.cov(samples[right], rowvar=False), gmm.covariances[order[1]], atol=0.15)
    # The draws come in random component order (sklearn groups them), so a prefix mixes both clusters.
    assert 0.2 < np.mean(right[:100]) < 0.6
    # Sampling does not change the fitted estimator's own seed.
    assert gmm.estimator.random_state == 0


def test_gaussian_likelihood_with_a_trained_variance_and_its_8bit_bits_per_dim():
    rng = np.random.default_rng(4)
    x = (rng.integers(16, 240, size=(5, 4, 4, 3)) / 255.0).astype("float32")
    near = np.clip(x + rng.normal(scale=0.05, size=x.shape), 0.01, 0.99)  # a decoder mean near each pixel
    logits = special.logit(near).astype("float32")
    mean = special.expit(logits.astype("float64"))
    sigma = 0.05
    # The training density, and the reported probability of the 8-bit pixels: the Gaussian's mass over each
    # pixel's bin of width 1/255. While sigma spans several bins the mass is the density times the bin width.
    density = -losses.reconstruction_loss(x, logits, "gaussian", variance=sigma**2).numpy()
    np.testing.assert_allclose(density, stats.norm.logpdf(x, mean, sigma).reshape(5, -1).sum(axis=1), rtol=1e-5)
    k = np.rint(x.astype("float64") * 255.0)
    exact = np.log(stats.norm.cdf((k + 0.5) / 255.0, mean, sigma) - stats.norm.cdf((k - 0.5) / 255.0, mean, sigma))
    log_p = metrics.decoder_log_prob(x, logits, "gaussian", variance=sigma**2).numpy()
    np.testing.assert_allclose(log_p, exact.reshape(5, -1).sum(axis=1), rtol=1e-6)
    np.testing.assert_allclose(metrics.bits_per_dim(-log_p, 48), (-density + 48 * math.log(255)) / (48 * math.log(2)),
                               atol=1e-3)
    assert metrics.likelihood_for_loss("gaussian") == "gaussian"


# ---------------------------------------------------------------------------------------------------------
# What a person sees: sharpness and colourfulness


def slow_sharpness(image):
    """Mean |4-neighbour Laplacian| of one (H, W, C) image in [0, 1], pixel by pixel on the 0..255 scale."""
    height, width, channels = image.shape
    grey = [[0.0] * width for _ in range(height)]
    for i in range(height):
        for j in range(width):
            if channels == 1:
                grey[i][j] = 255.0 * float(image[i, j, 0])
            else:
                r, g, b = (255.0 * float(v) for v in image[i, j])
                grey[i][j] = 0.299 * r + 0.587 * g + 0.114 * b
    total = 0.0
    for i in range(1, height - 1):
        for j in range(1, width - 1):
            total += abs(grey[i - 1][j] + grey[i + 1][j] + grey[i][j - 1] + grey[i][j + 1] - 4 * grey[i][j])
    return total / ((height - 2) * (width - 2))


def slow_colourfulness(image):
    """Hasler & Suesstrunk's M of one (H, W, 3) image in [0, 1], by plain sums on the 0..255 scale."""
    rg, yb = [], []
    for row in image:
        for r, g, b in row:
            r, g, b = 255.0 * float(r), 255.0 * float(g), 255.0 * float(b)
            rg.append(r - g)
            yb.append((r + g) / 2 - b)

    def mean(v):
        return sum(v) / len(v)

    def variance(v):
        return sum((a - mean(v)) ** 2 for a in v) / len(v)

    return math.sqrt(variance(rg) + variance(yb)) + 0.3 * math.sqrt(mean(rg) ** 2 + mean(yb) ** 2)


def test_sharpness_of_hand_made_images():
    flat = np.full((2, 5, 7, 3), 0.4)
    np.testing.assert_allclose(metrics.sharpness(flat), 0.0, atol=1e-9)
    checker = (np.indices((6, 6)).sum(axis=0) % 2).astype("float32")[None, ..., None]
    # Every interior pixel differs from its 4 neighbours by 1 (255): |Laplacian| = 4 x 255.
    np.testing.assert_allclose(metrics.sharpness(checker), [1020.0])
    # A white/black checkerboard in colour has the same luma (0.299 + 0.587 + 0.114 = 1).
    np.testing.assert_allclose(metrics.sharpness(np.repeat(checker, 3, axis=-1)), [1020.0], rtol=1e-6)
    # One bright interior pixel of 1 in a 3x3 grey image: the one interior Laplacian is -4 x 255.
    dot = np.zeros((1, 3, 3, 1))
    dot[0, 1, 1, 0] = 1.0
    np.testing.assert_allclose(metrics.sharpness(dot), [1020.0])
    # On the border it counts only through its interior neighbour: a 3x4 image, pixel (0, 1) lit.
    edge = np.zeros((1, 3, 4, 1))
    edge[0, 0, 1, 0] = 1.0
    np.testing.assert_allclose(metrics.sharpness(edge), [255.0 / 2])  # interior (1,1): 255; (1,2): 0
    # A vertical step from 0 to 1: the columns either side of it respond +-255, of 4 interior columns.
    step = np.zeros((1, 4, 6, 1))
    step[..., 3:, :] = 1.0
    np.testing.assert_allclose(metrics.sharpness(step), [2 * 255.0 / 4])
    with pytest.raises(ValueError, match="at least 3x3"):
        metrics.sharpness(np.zeros((1, 2, 5, 1)))
    with pytest.raises(ValueError, match="C = 1 or 3"):
        metrics.sharpness(np.zeros((1, 5, 5, 4)))


def test_colourfulness_of_hand_made_images():
    red = np.zeros((1, 4, 4, 3))
    red[..., 0] = 1.0
    # rg = 255, yb = 127.5 everywhere: no spread, M = 0.3 sqrt(255^2 + 127.5^2).
    np.testing.assert_allclose(metrics.colourfulness(red), [0.3 * math.sqrt(255.0 ** 2 + 127.5 ** 2)])
    assert metrics.colourfulness(red)[0] == pytest.approx(85.53, abs=0.01)
    # Half red, half green: rg = +-255 (mean 0, std 255), yb = 127.5 (std 0): M = 255 + 0.3 x 127.5.
    red_green = red.copy()
    red_green[:, 2:] = [0.0, 1.0, 0.0]
    np.testing.assert_allclose(metrics.colourfulness(red_green), [255.0 + 0.3 * 127.5])
    # Grey in three equal channels, and grey images (C = 1): 0.
    np.testing.assert_allclose(metrics.colourfulness(np.full((2, 4, 4, 3), 0.7)), 0.0, atol=1e-9)
    np.testing.assert_array_equal(metrics.colourfulness(np.random.default_rng(0).uniform(size=(3, 4, 4, 1))),
                                  np.zeros(3))


def test_perception_matches_slow_loops_on_random_images():
    rng = np.random.default_rng(1)
    colour = rng.uniform(size=(5, 7, 9, 3)).astype("float32")
    grey = rng.uniform(size=(4, 6, 5, 1)).astype("float32")
    np.testing.assert_allclose(metrics.sharpness(colour), [slow_sharpness(x) for x in colour], rtol=1e-9)
    np.testing.assert_allclose(metrics.sharpness(grey), [slow_sharpness(x) for x in grey], rtol=1e-9)
    np.testing.assert_allclose(metrics.colourfulness(colour), [slow_colourfulness(x) for x in colour], rtol=1e-9)
    # More images than one vectorised chunk: the same values image by image.
    many = rng.uniform(size=(600, 4, 4, 3))
    np.testing.assert_allclose(metrics.sharpness(many)[[0, 255, 256, 599]],
                               [slow_sharpness(many[i]) for i in (0, 255, 256, 599)], rtol=1e-9)
    np.testing.assert_allclose(metrics.colourfulness(many)[[0, 511, 512, 599]],
                               [slow_colourfulness(many[i]) for i in (0, 511, 512, 599)], rtol=1e-9)


def test_perception_ratios_and_their_undefined_case():
    rng = np.random.default_rng(2)
    real, fake = rng.uniform(size=(6, 8, 8, 3)), 0.5 + 0.1 * rng.uniform(size=(4, 8, 8, 3))
    real_means = metrics.perception(real)
    assert set(real_means) == {"sharpness", "colourfulness"}
    out = metrics.perception(fake, real_means)
    assert out["sharpness"] == pytest.approx(float(np.mean(metrics.sharpness(fake))))
    assert out["sharpness_ratio"] == pytest.approx(out["sharpness"] / real_means["sharpness"])
    assert out["colourfulness_ratio"] == pytest.approx(out["colourfulness"] / real_means["colourfulness"])
    assert 0 < out["sharpness_ratio"] < 1  # a tenth of the contrast: less sharp
    grey_real = metrics.perception(real[..., :1])
    grey_out = metrics.perception(fake[..., :1], grey_real)
    assert grey_out["colourfulness"] == 0.0 and grey_out["colourfulness_ratio"] is None
    assert grey_out["sharpness_ratio"] is not None
    assert metrics.ratio(3.0, 0.0) is None and metrics.ratio(3.0, 2.0) == 1.5
