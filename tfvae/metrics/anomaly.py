r"""Anomaly scores: AUROC, PNG complexity and the complexity-corrected score.

Anomaly detection
-----------------
``auroc`` is the area under the ROC curve of scores where higher means "more anomalous" (scikit-learn's
``roc_auc_score``: the Mann-Whitney U statistic, ties counted one half). ``png_length_nats`` is an image's complexity
L(x): its lossless PNG size in nats. Serrà et al. (2020) read -log p(x) - L(x) as a likelihood ratio
between the model and a generic compressor p_0(x) = exp(-L(x)); their score S(x) = -l_M(x) - L(x), with
l_M(x) = log p(x), is this same quantity: high S(x) means the model explains x no better than a generic
compressor does, i.e. x is likely out of distribution. ``complexity_corrected_score`` returns it.
"""

import io
import math

import numpy as np


def auroc(inlier_scores, outlier_scores):
    """Area under the ROC curve for telling outliers (positives) from inliers by a higher score.

    scikit-learn's ``roc_auc_score`` with the outliers labelled 1: the Mann-Whitney U / (n_in n_out), tied
    scores counting one half. 1.0: every outlier scores above every inlier; 0.5: no better than chance (e.g.
    identical score distributions).

    Args:
      inlier_scores: scores of in-distribution examples, any shape (flattened).
      outlier_scores: scores of out-of-distribution examples, any shape (flattened).

    Returns:
      The AUROC, a float in [0, 1].
    """
    from sklearn import metrics as sk_metrics  # imported here: scikit-learn takes a second to import

    inlier_scores = np.asarray(inlier_scores, "float64").ravel()
    outlier_scores = np.asarray(outlier_scores, "float64").ravel()
    if not len(inlier_scores) or not len(outlier_scores):
        raise ValueError("auroc needs at least one inlier and one outlier score")
    is_outlier = np.concatenate([np.zeros(len(inlier_scores)), np.ones(len(outlier_scores))])
    return float(sk_metrics.roc_auc_score(is_outlier, np.concatenate([inlier_scores, outlier_scores])))


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
