"""A vqvae's side of a Run (``tfvae.api.Run`` inherits ``CodeGrids``): codes that are grids of codebook vectors,
their indices, and the PixelCNN prior over them (prior.keras).

A vqvae's code is an (h, w, D) grid (``tfvae.models.vqvae``), not a vector: the methods that need a vector latent
(scatter, traverse, the Projector) refuse it in one line (``vector_latent``), and its codebook indices (h, w) are
what its PixelCNN prior scores and draws (``tfvae.models.pixelcnn``). Every other model's ``code_shape`` is
(latent,).
"""

from tfvae import models, rundir
from tfvae.errors import ArgumentError, TfvaeError


class CodeGrids:
    """The vqvae methods of a Run; they use its ``workdir``, ``config``, ``image_shape``, ``latent_dim``,
    ``inference``, ``encoder``, ``images`` and ``_prior`` (None until prior.keras is loaded)."""

    @property
    def quantized(self):
        """Whether the run is a vqvae: its codes are (h, w, D) grids of codebook vectors, sampled by its PixelCNN."""
        return self.model_class.code_grid

    @property
    def code_shape(self):
        """The shape of one code: (latent,), or a vqvae's (h, w, D) grid."""
        if self.quantized:
            return models.grid_shape(self.image_shape, self.config.filters, self.latent_dim)
        return (self.latent_dim,)

    def vector_latent(self, what, argument="mode"):
        """Raises ArgumentError (naming ``argument``) when ``what`` needs a vector latent and the run is a vqvae."""
        if self.quantized:
            h, w, _ = self.code_shape
            raise ArgumentError(argument, f"{argument}={what} needs a vector latent, but {self.workdir} holds a vqvae, "
                                          f"whose codes are {h}x{w} grids of codebook indices; use random, grid, "
                                          "reconstruct or interpolate")

    @property
    def prior(self):
        """A vqvae's PixelCNN prior (prior.keras): int index grids (n, h, w) -> logits (n, h, w, K)."""
        if self._prior is None:
            self._prior = rundir.load_prior(self.workdir)
        return self._prior

    def code_indices(self, images):
        """A vqvae's codebook indices of ``images``: int32 (n, h, w)."""
        if not self.quantized:
            raise TfvaeError(f"{self.workdir} holds a {self.config.model}: only a vqvae's codes are codebook indices")
        return self.inference.indices(self.encoder, self.images(images))

    def prior_nll(self, images):
        """-log p(k) in nats (float64 (n,)) of ``images``' index grids k under a vqvae's PixelCNN prior."""
        return self.inference.indices_nll(self.prior, self.code_indices(images))
