"""The side of a Run whose codes are grids (``tfvae.api.Run.code_grids``): their shape, and a vqvae's codebook
indices and the PixelCNN prior over them (prior.keras).

A vqvae's code is an (h, w, D) grid of codebook vectors (``tfvae.models.vqvae``; ``quantized``), a gridvae's an
(h, w, c) grid of continuous values (``tfvae.models.spatial``): not vectors, so the methods that need a vector
latent (scatter, traverse, the Projector) refuse them in one line (``vector_latent``). A vqvae's codebook indices
(h, w) are what its PixelCNN prior scores and draws (``tfvae.models.pixelcnn``). Every other model's
``code_shape`` is (latent,).
"""

from tfvae import arguments, models, rundir
from tfvae.errors import ArgumentError, TfvaeError


class CodeGrids:
    """A run's codes as grids: their shape, a vqvae's codebook indices and its PixelCNN prior.

    Args:
      workdir: the run directory (prior.keras is read from it; errors name it).
      config: the run's Config: its ``model``, ``image_shape``, ``filters`` and ``latent``.
      inference: the Run's one forward path (``tfvae.inference.Inference``).
      networks: gives the run's Keras ``encoder`` (``tfvae.rundir.ExportedModels``: loaded on first use).
    """

    def __init__(self, workdir, config, inference, networks):
        self.workdir, self.config, self.inference, self.networks = workdir, config, inference, networks
        self._prior = None  # prior.keras, once loaded

    @property
    def gridded(self):
        """Whether the run's codes are (h, w, D) grids (a vqvae's, a gridvae's), not vectors."""
        return models.model_class(self.config.model).code_grid

    @property
    def quantized(self):
        """Whether the run's codes are (h, w, D) grids of codebook vectors (a vqvae's), sampled by its PixelCNN."""
        return models.model_class(self.config.model).quantized

    @property
    def code_shape(self):
        """The shape of one code: (latent,), or a grid model's (h, w, D)."""
        image_shape, latent_dim = tuple(int(d) for d in self.config.image_shape), int(self.config.latent)
        if self.gridded:
            return models.grid_shape(image_shape, self.config.filters, latent_dim)
        return (latent_dim,)

    def kind(self):
        """What the run's codes are, for a sentence: "7x7 grids of codebook indices", "7x7x4 grids"."""
        h, w, d = self.code_shape
        return f"{h}x{w} grids of codebook indices" if self.quantized else f"{h}x{w}x{d} grids"

    def vector_latent(self, what, argument="mode"):
        """Raises ArgumentError (naming ``argument``) when ``what`` needs a vector latent and the run's codes are
        grids."""
        if self.gridded:
            raise ArgumentError(argument, f"{argument}={what} needs a vector latent, but {self.workdir} holds a "
                                          f"{self.config.model}, whose codes are {self.kind()}; use random, grid, "
                                          "reconstruct or interpolate")

    @property
    def prior(self):
        """A vqvae's PixelCNN prior (prior.keras): int index grids (n, h, w) -> logits (n, h, w, K)."""
        if self._prior is None:
            self._prior = rundir.load_prior(self.workdir)
        return self._prior

    def code_indices(self, images):
        """A vqvae's codebook indices of ``images`` (the Run's images: ``tfvae.arguments.images``): int32 (n, h, w)."""
        if not self.quantized:
            raise TfvaeError(f"{self.workdir} holds a {self.config.model}: only a vqvae's codes are codebook indices")
        x = arguments.images(images, tuple(int(d) for d in self.config.image_shape))
        return self.inference.indices(self.networks.encoder, x)

    def prior_nll(self, images):
        """-log p(k) in nats (float64 (n,)) of ``images``' index grids k under a vqvae's PixelCNN prior."""
        return self.inference.indices_nll(self.prior, self.code_indices(images))

    def sample_indices(self, n, seed, temperature=1.0):
        """``n`` index grids, int32 (n, h, w), drawn from the PixelCNN prior at ``temperature`` (what a vqvae's
        learned prior decodes through its codebook: ``tfvae.models.vqvae.VQVAE.learned_prior``)."""
        return self.inference.sample_indices(self.prior, n, seed, temperature=temperature)
