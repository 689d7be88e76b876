"""A Run's views of its latent space (``tfvae.api.Run.views``): how much each dimension is used, and traversals
that sweep one dimension at a time. Encoding and decoding go through the Run's (its one inference path).
"""

import numpy as np

from tfvae import losses, picture_arrays
from tfvae.errors import TfvaeError

TRAVERSE_RANGE = (0.05, 0.95)  # prior quantiles a traversal sweeps


class LatentViews:
    """A run's views of its latent space.

    Args:
      test_codes: a function giving (z_mean, z_log_var or None, labels or None) of the test images
        (``tfvae.api.Run.test_codes``).
      test_data: a function giving the test images and their class ids or None (``tfvae.api.Run.test_data``).
      encode: images (+ labels) -> (z_mean, z_log_var) (``tfvae.api.Run.encode``).
      decode: codes (+ labels) -> images (``tfvae.api.Run.decode``).
      vector_latent: raises, naming its argument, for a run whose codes are not vectors
        (``tfvae.code_grids.CodeGrids.vector_latent``).
      conditional: whether the encoder and decoder take labels (a cvae).
      has_learned_prior: whether the model's prior is its own (a mixture, with no per-dimension KL).
      latent_dim: size of z.
      image_shape: (height, width, channels).
    """

    def __init__(self, test_codes, test_data, encode, decode, vector_latent, *, conditional, has_learned_prior,
                 latent_dim, image_shape):
        self.test_codes, self.test_data, self.encode, self.decode = test_codes, test_data, encode, decode
        self.vector_latent, self.conditional, self.has_learned_prior = vector_latent, conditional, has_learned_prior
        self.latent_dim, self.image_shape = latent_dim, image_shape

    def latent_usage(self):
        """How much each latent dimension is used, averaged over the test images.

        Returns:
          (values (latent,), what): for a VAE the mean KL(q(z_j|x) || N(0, 1)) per dimension in nats ("KL"),
          which is ~0 for a dimension the model ignores; for a plain autoencoder, and for a model with a learned
          prior (whose mixture has no per-dimension KL), the variance of z_mean ("var").
        """
        z_mean, z_log_var, _ = self.test_codes()
        if z_log_var is None or self.has_learned_prior:
            return z_mean.var(axis=0).astype("float64"), "var"
        kl = np.asarray(losses.gaussian_kl_per_dim(z_mean, z_log_var), dtype="float64")
        return kl.mean(axis=0), "KL"

    def traverse(self, n=9, index=None, seed=0, usage=None):
        """Latent traversals: one row per dimension, sweeping it while the others keep a test image's code.

        Row r sets dimension d_r to ``norm.ppf(linspace(0.05, 0.95, n))`` and keeps the other coordinates at
        the code (z_mean) of one test image. The dimensions are all of them in order when the latent has at
        most ``n``; else the ``n`` with the highest ``latent_usage`` (average KL), highest first. A plain
        autoencoder has no prior: it is swept over the same values, and ranked by the variance of its codes.

        Args:
          n: images per row, and most rows.
          index: the test image whose code is kept (default: one drawn with ``seed``).
          seed: seed of that draw.
          usage: ``latent_usage()``'s result, if already computed.

        Returns:
          (picture (rows * H, margin + n * W, C) float32 with each row labelled in a left margin,
          list of (dimension, usage) per row, what the usage is ("KL" or "var"), the test image's index).
        """
        self.vector_latent("traverse")
        values, what = usage or self.latent_usage()
        x, y = self.test_data()
        if index is None:
            index = int(np.random.default_rng(seed).integers(len(x)))
        if not 0 <= index < len(x):
            raise TfvaeError(f"test image {index} asked for, but the run has {len(x)} (0..{len(x) - 1})")
        dims = list(range(self.latent_dim)) if self.latent_dim <= n else \
            [int(d) for d in np.argsort(-values, kind="stable")[:n]]
        z0, _ = self.encode(x[index:index + 1], None if y is None or not self.conditional else y[index:index + 1])
        z = picture_arrays.traversal_codes(z0[0], dims, n, *TRAVERSE_RANGE)
        labels = int(y[index]) if self.conditional else None
        images = self.decode(z, labels)
        picture = picture_arrays.tile(images, len(dims), n)
        rows = [(d, float(values[d])) for d in dims]
        text = [f"z[{d}] {what} {v:.2f}" for d, v in rows]
        return picture_arrays.label_rows(picture, text, self.image_shape[0]), rows, what, index
