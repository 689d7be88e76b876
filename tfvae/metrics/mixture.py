r"""The ex-post density of latent codes.

Ex-post density
---------------
``fit_gaussian_mixture`` fits a Gaussian mixture (EM, k-means initialisation, scikit-learn) to latent codes
of the training set, to sample from instead of the prior (Ghosh et al. 2020).
"""

import dataclasses
import warnings

import numpy as np
from scipy import special, stats


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
