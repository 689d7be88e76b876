r"""Sample-quality metrics in the features of a classifier.

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
"""

import math
import warnings

import numpy as np
from scipy import linalg, special


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
        kl = np.sum(special.rel_entr(part, marginal), axis=1)  # p log(p / q), 0 where p = 0
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


def nearest_distances(queries, reference, batch_size=1024):
    """Euclidean distance from every row of ``queries`` to its nearest row of ``reference``."""
    queries, reference = np.asarray(queries, "float64"), np.asarray(reference, "float64")
    nearest = np.empty(len(queries))
    for start in range(0, len(queries), batch_size):
        nearest[start:start + batch_size] = _squared_distances(queries[start:start + batch_size], reference).min(1)
    return np.sqrt(nearest)


def training_distance_ratio(train_features, test_features, fake_features, batch_size=1024):
    """How near generated images come to the training images, against how near new real images come.

    The median distance from a generated image to its nearest training image, over the same median for the real
    test images, in classifier features. About 1: the samples are as far from the training set as unseen real
    images are; well below 1: they sit on training images (a sampler that copies, such as a mixture with a
    component per training code); above 1: they lie farther off than real images do (blurred or off-manifold
    samples, which precision and FCD also see). A median, so a few copied images do not move it; a test in the
    spirit of Meehan et al. 2020's data-copying test, not that test.
    """
    return novelty(train_features, test_features, fake_features, batch_size=batch_size)["training_distance_ratio"]


NEAR_COPY_QUANTILE = 0.05


def novelty(train_features, test_features, fake_features, quantile=NEAR_COPY_QUANTILE, batch_size=1024):
    """How new generated images are, from their distances to the nearest training image (each computed once).

    Returns:
      {"training_distance_ratio": ``training_distance_ratio``'s median ratio, "near_copies": the share of
      generated images nearer their nearest training image than the ``quantile`` quantile of the test images'
      nearest-training distances}. A near copy is a sample nearer the training set than all but a ``quantile``
      of new real images come: a sampler whose draws are as new as real images gives about ``quantile``; one
      that copies training images, up to 1; blurred or off-manifold samples, about 0. Unlike the median ratio
      it counts a minority of copies (e.g. a mixture component sitting on one training code) among novel draws.
    """
    real = nearest_distances(test_features, train_features, batch_size)
    fake = nearest_distances(fake_features, train_features, batch_size)
    return {"training_distance_ratio": float(np.median(fake) / np.median(real)),
            "near_copies": float(np.mean(fake < np.quantile(real, quantile)))}

