r"""Metrics for autoencoders and VAEs: likelihood, reconstruction, sample quality, anomaly scores.

Every function returns plain numpy values; the reductions are explicit (sums over pixels and latent
dimensions, then one value per image, then means over images where a function says so). One file per kind,
each with its maths in its docstring:

    nll.py          log p(x|z), the ELBO's and the importance-weighted NLL's maths, bits/dim, MSE and PSNR
    quality.py      Fréchet distance, Inception Score, k-NN precision and recall in classifier features, and
                    novelty: the distance to the training images and the share of near copies
    anomaly.py      AUROC, PNG length and Serrà et al.'s complexity-corrected score
    perception.py   what a person sees: sharpness (Laplacian) and colourfulness (Hasler & Suesstrunk 2003)
    mixture.py      the ex-post Gaussian mixture of latent codes (scikit-learn)

Every public name is importable from here: ``from tfvae import metrics; metrics.auroc(...)``.
"""

from tfvae.metrics.anomaly import auroc, complexity_corrected_score, png_length_nats
from tfvae.metrics.mixture import GaussianMixture, fit_gaussian_mixture
from tfvae.metrics.nll import (
    GAUSSIAN_VARIANCE,
    LIKELIHOODS,
    LOG_2PI,
    PIXEL_LEVELS,
    PSNR_MSE_FLOOR,
    bits_per_dim,
    decoder_log_prob,
    decoder_variance,
    importance_log_weights,
    importance_sampled_nll,
    likelihood_for_loss,
    mean_image,
    mse_psnr,
    reports_bits_per_dim,
    sigmoid,
)
from tfvae.metrics.perception import colourfulness, perception, ratio, sharpness
from tfvae.metrics.quality import (
    NEAR_COPY_QUANTILE,
    frechet_distance,
    frechet_distance_of_features,
    gaussian_stats,
    inception_score,
    knn_radii,
    manifold_coverage,
    nearest_distances,
    novelty,
    precision_recall,
    training_distance_ratio,
)

__all__ = [
    "GAUSSIAN_VARIANCE", "LIKELIHOODS", "LOG_2PI", "NEAR_COPY_QUANTILE", "PIXEL_LEVELS", "PSNR_MSE_FLOOR",
    "GaussianMixture", "auroc", "bits_per_dim", "complexity_corrected_score", "decoder_log_prob", "decoder_variance",
    "fit_gaussian_mixture", "importance_log_weights", "importance_sampled_nll",
    "frechet_distance", "frechet_distance_of_features", "gaussian_stats", "inception_score", "knn_radii",
    "likelihood_for_loss", "manifold_coverage", "mean_image", "mse_psnr", "nearest_distances", "novelty",
    "png_length_nats", "precision_recall", "training_distance_ratio",
    "reports_bits_per_dim", "sigmoid",
    "colourfulness", "perception", "ratio", "sharpness",
]
