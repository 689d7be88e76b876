r"""The ex-post density of latent codes.

Ex-post density
---------------
``fit_gaussian_mixture`` fits a Gaussian mixture (EM, k-means initialisation, scikit-learn) to latent codes
of the training set, to sample from instead of the prior (Ghosh et al. 2020). Sampling and the log density
are scikit-learn's ``GaussianMixture.sample`` and ``score_samples``.
"""

import copy
import warnings

import numpy as np


class GaussianMixture:
    """A fitted full-covariance Gaussian mixture: weights (m,), means (m, d), covariances (m, d, d).

    A thin wrapper of a fitted ``sklearn.mixture.GaussianMixture`` (``estimator``) whose ``sample`` takes a
    seed per call.
    """

    def __init__(self, estimator):
        self.estimator = estimator

    @property
    def weights(self):
        return self.estimator.weights_

    @property
    def means(self):
        return self.estimator.means_

    @property
    def covariances(self):
        return self.estimator.covariances_

    def sample(self, count, seed=0):
        """``count`` draws as float32 (count, d), reproducible from ``seed``, in random component order.

        scikit-learn's ``GaussianMixture.sample`` takes no seed: it draws from ``check_random_state`` of the
        estimator's ``random_state``, which for an int is a fresh ``RandomState(int)`` on every call. So a
        shallow copy of the estimator gets ``random_state=seed`` (the fitted one is left as it is), and each
        call with the same seed gives the same draws. It returns the draws grouped by component (all of
        component 0 first); they are shuffled with a generator seeded by ``seed`` too, so that any prefix
        (e.g. the first 100 in a sample grid) mixes the components as independent draws do.
        """
        estimator = copy.copy(self.estimator)
        estimator.random_state = seed
        draws, _ = estimator.sample(count)
        order = np.random.default_rng(seed).permutation(count)
        return draws[order].astype("float32")

    def log_prob(self, z):
        """log density of each row of ``z`` (float64, shape (n,)): scikit-learn's ``score_samples``."""
        return self.estimator.score_samples(np.atleast_2d(np.asarray(z, "float64")))


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
    return GaussianMixture(model)
