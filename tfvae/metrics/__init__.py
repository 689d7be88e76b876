r"""Metrics for autoencoders and VAEs: likelihood, reconstruction, sample quality, anomaly scores.

Every function returns plain numpy values; the reductions are explicit (sums over pixels and latent
dimensions, then one value per image, then means over images where a function says so).

Likelihood
----------
For an image x with D pixels, an encoder q(z|x) = N(mu(x), diag(sigma^2(x))) and the prior p(z) = N(0, I),
the evidence lower bound is

    ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || p(z)) <= log p(x).

``likelihood_terms`` reports -ELBO split into the reconstruction term -E_q[log p(x|z)] (a Monte-Carlo mean
over K draws z_k ~ q) and the closed-form KL. The importance-weighted (IWAE, Burda et al. 2015) estimate
uses the same K draws as importance samples:

    log p(x) ~= log (1/K) sum_k w_k,   log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x),

computed with a log-sum-exp. Its expectation is a lower bound on log p(x) that never decreases with K and
tends to log p(x) as K grows; for K = 1 it is the ELBO. The NLL it gives, -log p(x), is reported in nats
per image (lower is better) and, on binary images, in bits per dimension: NLL / (D ln 2).

The decoder's likelihood p(x|z) follows the run's training loss:

* ``bernoulli`` (``loss=bce``): log p(x|z) = -BCE(x, logits) summed over pixels, from logits exactly as
  ``tfvae.losses.bernoulli_nll``. It is a normalised likelihood only for binary x; on grey-level images it is
  the cross-entropy the model was trained on, not comparable with published (binarized) numbers.
* ``gaussian`` (``loss=mse``): the squared error of ``tfvae.losses.squared_error`` is the negative
  log-density of N(x; sigmoid(logits), 1/2) up to its constant, so the density used here is that Gaussian
  with the fixed variance 1/2: log p(x|z) = -sum (x - x_hat)^2 - (D/2) log(pi). It is a density over
  continuous pixel values, not a probability of 8-bit images: comparable only between mse runs.

A plain autoencoder has no q(z|x) or prior, so it defines no likelihood; ``reconstruct`` gives its
reconstruction term -log p(x | z_mean) instead.

Reconstruction
--------------
Per image: MSE = mean over pixels of (x - x_hat)^2, and PSNR = 10 log10(1 / MSE) for pixels in [0, 1]
(MSE is floored at 1e-10, so a perfect reconstruction reads 100 dB rather than infinity).

Sample quality
--------------
Features f of a classifier (not Inception; see ``tfvae.evaluation``) of real and generated images:

* Fréchet distance between the Gaussians fitted to the two feature sets,
  |m1 - m2|^2 + Tr(C1 + C2 - 2 (C1 C2)^(1/2)) (Heusel et al. 2017's FID, here in classifier features: FCD).
* Inception Score exp(E_x KL(p(y|x) || p(y))) of the classifier's predictions: 1 when every prediction is
  the same, the number of classes when predictions are confident and balanced.
* k-NN precision and recall (Kynkäänniemi et al. 2019, k = 3): around every real feature vector a ball
  reaching its k-th nearest real neighbour; precision is the share of generated samples inside at least
  one real ball, recall the share of real samples inside at least one generated ball.

Anomaly detection
-----------------
``auroc`` is the area under the ROC curve of scores where higher means "more anomalous", computed from
ranks (the Mann-Whitney U statistic, ties counted one half). ``png_length_nats`` is an image's complexity
L(x): its lossless PNG size in nats. Serrà et al. (2020) read -log p(x) - L(x) as a likelihood ratio
between the model and a generic compressor p_0(x) = exp(-L(x)); their score S(x) = -l_M(x) - L(x), with
l_M(x) = log p(x), is this same quantity: high S(x) means the model explains x no better than a generic
compressor does, i.e. x is likely out of distribution. ``complexity_corrected_score`` returns it.

Ex-post density
---------------
``fit_gaussian_mixture`` fits a Gaussian mixture (EM, k-means initialisation, scikit-learn) to latent codes
of the training set, to sample from instead of the prior (Ghosh et al. 2020).
"""

import dataclasses
import io
import math
import warnings
import weakref

import numpy as np
import tensorflow as tf
from scipy import linalg, special, stats

from tfvae import losses

LOG_2PI = math.log(2.0 * math.pi)
LIKELIHOODS = ("bernoulli", "gaussian")
GAUSSIAN_VARIANCE = 0.5  # the variance for which squared error is the negative log-density (up to a constant)
PSNR_MSE_FLOOR = 1e-10

# Compiled forward passes, one set per model, so that repeated calls do not trace again.
_COMPILED = weakref.WeakKeyDictionary()


def _compiled(model, key, build):
    """The function ``build()`` made for ``model`` under ``key``, built once per model."""
    functions = _COMPILED.setdefault(model, {})
    if key not in functions:
        functions[key] = build()
    return functions[key]


def _forward(model):
    return _compiled(model, "forward",
                     lambda: tf.function(lambda inputs: model(inputs, training=False), reduce_retracing=True,
                                         autograph=False))


# ---------------------------------------------------------------------------------------------------------
# Likelihood


def likelihood_for_loss(loss):
    """The decoder likelihood (``bernoulli`` or ``gaussian``) that a run's training ``loss`` implies."""
    if loss == "bce":
        return "bernoulli"
    if loss == "mse":
        return "gaussian"
    raise ValueError(f"unknown reconstruction loss {loss!r}; choose one of {', '.join(losses.RECONSTRUCTION_LOSSES)}")


def decoder_log_prob(x, logits, likelihood="bernoulli"):
    """log p(x|z) summed over pixels.

    Args:
      x: images in [0, 1], shape (n, ...).
      logits: decoder logits of the same shape.
      likelihood: "bernoulli" or "gaussian" (variance ``GAUSSIAN_VARIANCE``); see the module docstring.

    Returns:
      float32 tensor of shape (n,), in nats.
    """
    if likelihood == "bernoulli":
        return -losses.bernoulli_nll(x, logits)
    if likelihood == "gaussian":
        num_pixels = math.prod(int(d) for d in x.shape[1:])
        normaliser = 0.5 * num_pixels * math.log(2.0 * math.pi * GAUSSIAN_VARIANCE)
        return -losses.squared_error(x, logits) / (2.0 * GAUSSIAN_VARIANCE) - normaliser
    raise ValueError(f"unknown likelihood {likelihood!r}; choose one of {', '.join(LIKELIHOODS)}")


def encode(encoder, images, labels=None, batch_size=512):
    """Runs ``encoder`` over ``images`` in batches.

    Returns:
      (z_mean, z_log_var) as float32 numpy arrays; z_log_var is None for a deterministic encoder.
    """
    call = _forward(encoder)
    means, log_vars = [], []
    for start in range(0, len(images), batch_size):
        x = tf.convert_to_tensor(images[start:start + batch_size], tf.float32)
        inputs = x if labels is None else [x, tf.convert_to_tensor(labels[start:start + batch_size], tf.float32)]
        out = call(inputs)
        means.append(out["z_mean"].numpy())
        if "z_log_var" in out:
            log_vars.append(out["z_log_var"].numpy())
    latent = int(encoder.outputs[0].shape[-1]) if not means else means[0].shape[-1]
    z_mean = np.concatenate(means) if means else np.zeros((0, latent), "float32")
    return z_mean, (np.concatenate(log_vars) if log_vars else None)


def decode_logits(decoder, z, labels=None, batch_size=512):
    """Decoder logits for latent codes ``z`` (and one-hot ``labels`` for a conditional decoder), batched."""
    call = _forward(decoder)
    out = []
    for start in range(0, len(z), batch_size):
        zb = tf.convert_to_tensor(z[start:start + batch_size], tf.float32)
        inputs = zb if labels is None else [zb, tf.convert_to_tensor(labels[start:start + batch_size], tf.float32)]
        out.append(call(inputs).numpy())
    return np.concatenate(out)


def sigmoid(logits):
    """Numerically safe logistic function (no overflow warnings for large negative logits)."""
    return special.expit(logits)


def reconstruct(encoder, decoder, images, labels=None, likelihood="bernoulli", batch_size=512):
    """Decodes every image's posterior mean (the deterministic code used at evaluation).

    Returns:
      (reconstructions in [0, 1], -log p(x | z_mean) per image in nats).
    """
    z_mean, _ = encode(encoder, images, labels, batch_size)
    logits = decode_logits(decoder, z_mean, labels, batch_size)
    nll = -decoder_log_prob(tf.constant(images, tf.float32), tf.constant(logits), likelihood).numpy()
    return sigmoid(logits).astype("float32"), nll.astype("float64")


def _log_weight_fn(decoder, likelihood, conditional):
    """A compiled function: (x, mean, log_var, labels, seed, k) -> (log p(x|z_k), log p(z_k) - log q(z_k|x))."""

    @tf.function(reduce_retracing=True)
    def log_weights(x, mean, log_var, labels, seed, k):
        batch, latent = tf.shape(mean)[0], tf.shape(mean)[1]
        eps = tf.random.stateless_normal((batch, k, latent), seed=seed)
        z = mean[:, None, :] + tf.exp(0.5 * log_var)[:, None, :] * eps  # (batch, k, latent)
        flat_z = tf.reshape(z, (batch * k, latent))
        inputs = [flat_z, tf.repeat(labels, k, axis=0)] if conditional else flat_z
        logits = decoder(inputs, training=False)
        log_px = tf.reshape(decoder_log_prob(tf.repeat(x, k, axis=0), logits, likelihood), (batch, k))
        log_pz = -0.5 * tf.reduce_sum(LOG_2PI + tf.square(z), axis=-1)
        # q(z|x) at its own draw: (z - mean)^2 / var = eps^2.
        log_qz = -0.5 * tf.reduce_sum(LOG_2PI + log_var[:, None, :] + tf.square(eps), axis=-1)
        return log_px, log_pz - log_qz

    return log_weights


def likelihood_terms(encoder, decoder, images, num_samples, *, labels=None, likelihood="bernoulli",
                     max_batch=1024, seed=0, progress=None):
    """Per-image -ELBO (reconstruction + KL) and the importance-sampled NLL of a VAE.

    Vectorised over the K = ``num_samples`` draws: each call decodes up to ``max_batch`` codes, i.e.
    ``max_batch // K`` images with all their draws, or one image's draws in chunks when K > max_batch.
    The noise is stateless and depends only on ``seed``, so results are reproducible and independent of
    ``max_batch`` only up to float rounding.

    Args:
      encoder: maps images (and one-hot labels) to a dict with ``z_mean`` and ``z_log_var``.
      decoder: maps z (and labels) to logits.
      images: float images in [0, 1], shape (n, H, W, C).
      num_samples: K, the number of draws z_k ~ q(z|x) per image.
      labels: one-hot labels (n, num_classes) for a conditional model (the likelihood is then p(x|y)).
      likelihood: "bernoulli" or "gaussian"; see the module docstring.
      max_batch: most codes decoded per call (bounds memory).
      seed: seed of the draws.
      progress: optional callable(done_images, total_images), called after each batch of images.

    Returns:
      dict of float64 arrays of shape (n,), all in nats: ``nll`` (IWAE estimate of -log p(x) with K
      samples), ``neg_elbo`` (= reconstruction + kl), ``reconstruction`` (-mean_k log p(x|z_k)) and ``kl``
      (closed form).
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be at least 1, got {num_samples}")
    z_mean, z_log_var = encode(encoder, images, labels, max_batch)
    if z_log_var is None:
        raise ValueError("likelihood_terms needs a variational encoder (with z_log_var); a plain autoencoder "
                         "defines no likelihood")
    conditional = labels is not None
    fn = _compiled(decoder, ("log_weights", likelihood, conditional),
                   lambda: _log_weight_fn(decoder, likelihood, conditional))
    k_chunk = min(num_samples, max_batch)
    images_per_call = max(1, max_batch // k_chunk)
    n = len(images)
    nll, recon = np.zeros(n), np.zeros(n)
    call = 0
    for start in range(0, n, images_per_call):
        stop = min(start + images_per_call, n)
        x = tf.constant(images[start:stop], tf.float32)
        mean, log_var = tf.constant(z_mean[start:stop]), tf.constant(z_log_var[start:stop])
        lab = tf.constant(labels[start:stop], tf.float32) if labels is not None else tf.zeros((stop - start, 0))
        log_px, log_ratio = [], []
        for k_start in range(0, num_samples, k_chunk):
            k = min(k_chunk, num_samples - k_start)
            px, ratio = fn(x, mean, log_var, lab, tf.constant([seed, call], tf.int64), tf.constant(k))
            call += 1
            log_px.append(px.numpy().astype("float64"))
            log_ratio.append(ratio.numpy().astype("float64"))
        log_px, log_ratio = np.concatenate(log_px, axis=1), np.concatenate(log_ratio, axis=1)
        nll[start:stop] = math.log(num_samples) - special.logsumexp(log_px + log_ratio, axis=1)
        recon[start:stop] = -np.mean(log_px, axis=1)
        if progress is not None:
            progress(stop, n)
    kl = np.asarray(losses.gaussian_kl(z_mean, z_log_var), dtype="float64")
    return {"nll": nll, "neg_elbo": recon + kl, "reconstruction": recon, "kl": kl}


def bits_per_dim(nats, num_dims):
    """Converts nats per image into bits per dimension: nats / (num_dims * ln 2)."""
    return np.asarray(nats, dtype="float64") / (num_dims * math.log(2.0))


# ---------------------------------------------------------------------------------------------------------
# Reconstruction


def mse_psnr(images, reconstructions):
    """Per-image mean squared error and PSNR (dB) for pixels in [0, 1].

    Returns:
      (mse, psnr), float64 arrays of shape (n,). MSE is floored at ``PSNR_MSE_FLOOR`` for the PSNR only.
    """
    diff = np.asarray(images, "float64") - np.asarray(reconstructions, "float64")
    mse = np.mean(np.square(diff).reshape(len(diff), -1), axis=1)
    psnr = 10.0 * np.log10(1.0 / np.maximum(mse, PSNR_MSE_FLOOR))
    return mse, psnr


# ---------------------------------------------------------------------------------------------------------
# Sample quality


def gaussian_stats(features):
    """Mean and covariance (unbiased, features in columns) of a (n, d) feature matrix, in float64."""
    features = np.asarray(features, dtype="float64")
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need a (n >= 2, d) feature matrix, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mean1, cov1, mean2, cov2, eps=1e-6):
    """Fréchet distance |m1 - m2|^2 + Tr(C1 + C2 - 2 (C1 C2)^(1/2)) between two Gaussians.

    (C1 C2)^(1/2) is computed with scipy.linalg.sqrtm. If it is not finite (a singular product), ``eps`` is
    added to both diagonals and it is computed again; a small imaginary part from round-off is dropped (a
    large one is reported with a warning).

    Returns:
      float, >= 0 up to round-off.
    """
    mean1, mean2 = np.atleast_1d(mean1).astype("float64"), np.atleast_1d(mean2).astype("float64")
    cov1, cov2 = np.atleast_2d(cov1).astype("float64"), np.atleast_2d(cov2).astype("float64")
    if mean1.shape != mean2.shape or cov1.shape != cov2.shape:
        raise ValueError(f"shapes differ: means {mean1.shape} vs {mean2.shape}, covariances {cov1.shape} vs "
                         f"{cov2.shape}")
    diff = mean1 - mean2
    with warnings.catch_warnings():
        # Singular products (features that are always 0, e.g. dead ReLUs) are expected; non-finite results
        # are handled below.
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(cov1 @ cov2)
        if not np.isfinite(covmean).all():
            offset = np.eye(len(cov1)) * eps
            covmean = linalg.sqrtm((cov1 + offset) @ (cov2 + offset))
    if np.iscomplexobj(covmean):
        imaginary = np.max(np.abs(np.diagonal(covmean).imag))
        scale = max(1.0, float(np.max(np.abs(np.diagonal(covmean).real))))
        if imaginary > 1e-3 * scale:
            warnings.warn(f"frechet_distance: sqrtm has an imaginary component {imaginary:.3g}; using its real "
                          "part", RuntimeWarning, stacklevel=2)
        covmean = covmean.real
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * np.trace(covmean))


def frechet_distance_of_features(features1, features2):
    """Fréchet distance between Gaussians fitted to two (n, d) feature matrices."""
    return frechet_distance(*gaussian_stats(features1), *gaussian_stats(features2))


def inception_score(probs, num_splits=1):
    """exp(E_x KL(p(y|x) || p(y))) of class probabilities, over ``num_splits`` equal splits.

    Args:
      probs: (n, num_classes) predicted class probabilities (rows sum to 1).
      num_splits: the score is computed on each split; 10 is the convention for 50k Inception samples.

    Returns:
      (mean, std) over the splits (std is 0 for one split).
    """
    probs = np.asarray(probs, dtype="float64")
    scores = []
    for part in np.array_split(probs, num_splits):
        marginal = part.mean(axis=0, keepdims=True)
        kl = np.sum(special.xlogy(part, part) - special.xlogy(part, marginal), axis=1)
        scores.append(math.exp(float(np.mean(kl))))
    return float(np.mean(scores)), float(np.std(scores))


def _squared_distances(a, b):
    """(len(a), len(b)) squared Euclidean distances, float64, clipped at 0."""
    d = np.sum(a * a, axis=1)[:, None] - 2.0 * (a @ b.T) + np.sum(b * b, axis=1)[None, :]
    return np.maximum(d, 0.0)


def knn_radii(features, k=3, batch_size=1024):
    """Squared distance from every row of ``features`` to its k-th nearest other row."""
    features = np.asarray(features, dtype="float64")
    if len(features) <= k:
        raise ValueError(f"need more than k={k} feature vectors, got {len(features)}")
    radii = np.empty(len(features))
    for start in range(0, len(features), batch_size):
        d = _squared_distances(features[start:start + batch_size], features)
        # Column 0 of the sorted row is the point itself (distance 0): index k is the k-th other neighbour.
        radii[start:start + batch_size] = np.partition(d, k, axis=1)[:, k]
    return radii


def manifold_coverage(reference, radii, queries, batch_size=1024):
    """Share of ``queries`` inside at least one ball (centre ``reference[j]``, squared radius ``radii[j]``)."""
    reference, queries = np.asarray(reference, "float64"), np.asarray(queries, "float64")
    inside = 0
    for start in range(0, len(queries), batch_size):
        d = _squared_distances(queries[start:start + batch_size], reference)
        inside += int(np.count_nonzero(np.any(d <= radii[None, :], axis=1)))
    return inside / len(queries)


def precision_recall(real_features, fake_features, k=3, batch_size=1024):
    """k-NN precision and recall of generated against real features (Kynkäänniemi et al. 2019).

    Returns:
      (precision, recall), each in [0, 1].
    """
    precision = manifold_coverage(real_features, knn_radii(real_features, k, batch_size), fake_features,
                                  batch_size)
    recall = manifold_coverage(fake_features, knn_radii(fake_features, k, batch_size), real_features, batch_size)
    return precision, recall


# ---------------------------------------------------------------------------------------------------------
# Anomaly detection


def auroc(inlier_scores, outlier_scores):
    """Area under the ROC curve for telling outliers (positives) from inliers by a higher score.

    Rank-based (Mann-Whitney U / (n_in n_out)); tied scores count one half. 1.0: every outlier scores above
    every inlier; 0.5: no better than chance (e.g. identical score distributions).
    """
    inlier_scores = np.asarray(inlier_scores, "float64").ravel()
    outlier_scores = np.asarray(outlier_scores, "float64").ravel()
    n_in, n_out = len(inlier_scores), len(outlier_scores)
    if not n_in or not n_out:
        raise ValueError("auroc needs at least one inlier and one outlier score")
    ranks = stats.rankdata(np.concatenate([inlier_scores, outlier_scores]))  # ties get their average rank
    u = np.sum(ranks[n_in:]) - n_out * (n_out + 1) / 2.0
    return float(u / (n_in * n_out))


def png_length_nats(images_uint8, binary=False, compress_level=9):
    """Size of each image losslessly compressed as PNG, in nats (bytes * 8 * ln 2).

    Args:
      images_uint8: (n, H, W, C) uint8 images, C = 1 or 3.
      binary: store one-channel images as 1-bit PNGs (pixel > 127 is white), the natural code length of a
        binarized image; otherwise 8 bits per channel.
      compress_level: zlib level of the PNG encoder.

    Returns:
      float64 array of shape (n,).
    """
    from PIL import Image

    images_uint8 = np.asarray(images_uint8)
    if images_uint8.dtype != np.uint8:
        raise ValueError(f"png_length_nats needs uint8 images, got {images_uint8.dtype}")
    lengths = np.empty(len(images_uint8))
    for i, image in enumerate(images_uint8):
        buffer = io.BytesIO()
        picture = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
        if binary and image.shape[-1] == 1:
            picture = picture.point(lambda v: 255 if v > 127 else 0).convert("1")
        picture.save(buffer, format="PNG", compress_level=compress_level)
        lengths[i] = buffer.tell()
    return lengths * 8.0 * math.log(2.0)


def complexity_corrected_score(nll_nats, complexity_nats):
    """Serrà et al.'s S(x) = -log p(x) - L(x): higher is more anomalous (see the module docstring)."""
    return np.asarray(nll_nats, "float64") - np.asarray(complexity_nats, "float64")


# ---------------------------------------------------------------------------------------------------------
# Ex-post density


@dataclasses.dataclass
class GaussianMixture:
    """A Gaussian mixture with full covariances: weights (m,), means (m, d), covariances (m, d, d)."""

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray

    def sample(self, count, seed=0):
        """``count`` draws as float32 (count, d), reproducible from ``seed``."""
        rng = np.random.default_rng(seed)
        component = rng.choice(len(self.weights), size=count, p=self.weights / self.weights.sum())
        chol = np.linalg.cholesky(self.covariances)
        eps = rng.standard_normal((count, self.means.shape[1]))
        return (self.means[component] + np.einsum("nij,nj->ni", chol[component], eps)).astype("float32")

    def log_prob(self, z):
        """log density of each row of ``z`` (float64, shape (n,))."""
        z = np.asarray(z, "float64")
        per_component = np.stack([stats.multivariate_normal.logpdf(z, m, c, allow_singular=True)
                                  for m, c in zip(self.means, self.covariances)], axis=-1)
        return special.logsumexp(per_component.reshape(len(z), -1) + np.log(self.weights), axis=-1)


def fit_gaussian_mixture(z, num_components=10, seed=0, reg_covar=1e-6, max_iter=200):
    """Fits a full-covariance Gaussian mixture to latent codes by EM (scikit-learn, k-means initialisation).

    Args:
      z: (n, d) codes, e.g. the training set's posterior means.
      num_components: mixture size (capped at n).
      seed: seed of the initialisation.
      reg_covar: added to the covariance diagonals, so that no component collapses onto a point.
      max_iter: EM iterations.

    Returns:
      A ``GaussianMixture``.
    """
    from sklearn import mixture  # imported here: it takes a second and only the gmm sampler needs it

    z = np.asarray(z, "float64")
    model = mixture.GaussianMixture(n_components=max(1, min(num_components, len(z))), covariance_type="full",
                                    reg_covar=reg_covar, max_iter=max_iter, n_init=1, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: the last EM step is still a usable mixture
        model.fit(z)
    return GaussianMixture(model.weights_, model.means_, model.covariances_)
