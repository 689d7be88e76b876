r"""The grid VAE (``gridvae``): a VAE whose code is an h x w x c grid of continuous values, each cell pulled towards
N(0, I) by a small KL term: the KL-regularised autoencoder of latent diffusion (Rombach et al. 2022,
"High-resolution image synthesis with latent diffusion models", sec. 3 and appendix G: "KL-f4", "KL-f8").

The model. The encoder is the VQ-VAE's conv stack (``tfvae.models.vqvae.grid_features``: stride-2 convolutions
down to h, w = the image's sides over ``2 ** len(filters)``), ending in two 1x1 convolutions that give, for each
cell (i, j) and channel k < c (c = ``latent``), a mean mu_ijk(x) and a log-variance log sigma^2_ijk(x) (clamped as
the VAE's: ``tfvae.models.layers.ClipLogVar``). The posterior is factorised over the cells and channels, and
the prior is the standard normal on the grid:

    q(z | x) = prod_ijk N(z_ijk; mu_ijk(x), sigma^2_ijk(x)),        p(z) = prod_ijk N(z_ijk; 0, 1).

The decoder p(x | z) maps the grid to the image's logits with the VQ-VAE's transposed convolutions
(``tfvae.models.vqvae.build_vq_decoder``): every cell is decoded where it lies, so a cell describes its own part of
the image, and the code has h w c numbers (7 x 7 x 4 = 196 for 28 x 28 images with the default filters and
``--latent=4``) where the vector VAE has ``latent``.

The objective. The ELBO, log p(x) >= E_q[log p(x | z)] - KL(q(z | x) || p(z)), is the VAE's, its KL a sum of
one-dimensional KLs since both densities factorise. For one coordinate, with z = mu + sigma e, e ~ N(0, 1),

    KL(N(mu, sigma^2) || N(0, 1)) = E_q[log q(z) - log p(z)]
        = E[-1/2 log(2 pi sigma^2) - e^2 / 2 + 1/2 log(2 pi) + (mu + sigma e)^2 / 2]
        = 1/2 (mu^2 + sigma^2 - log sigma^2 - 1),

so that

    KL(q(z | x) || p(z)) = 1/2 sum_ijk (mu_ijk^2 + sigma_ijk^2 - log sigma_ijk^2 - 1).

The loss per image, summed over pixels and over the grid and averaged over the batch, is

    loss = recon_weight * reconstruction(x, decoder(z)) + beta * KL,      z = mu + sigma * e,

the reconstruction term the VAE's (any of ``tfvae.losses.RECONSTRUCTION_LOSSES``, the decoder emitting
``tfvae.likelihoods.output_channels`` values per pixel) and e drawn by the VAE's ``Sampling`` layer, whose
``SeedGenerator`` gives fresh noise every compiled step and is checkpointed. beta = 1 is the negative ELBO.

beta's default. beta is ``kl_weight`` (``--kl_weight``; the vector VAEs' ``--beta`` is not this model's), 1e-6
by default: the weight of the latent-diffusion autoencoders (their ``autoencoder_kl_*`` configs), whose
reconstruction term is also a sum over the image's pixels of a loss whose gradient per pixel is of order one (an
L1 distance plus LPIPS there, a cross-entropy from logits here), and whose KL is the sum above. At that weight the
KL barely moves the reconstruction ("nearly lossless" codes): its -log sigma^2 keeps each cell's posterior from
collapsing to a point, so the decoder learns to decode a neighbourhood of each code, and its mu^2 keeps the codes
from drifting far from the origin; it does not make the codes' distribution N(0, I). So the codes are sampled ex
post, from a density fitted to the training codes flattened into vectors of h w c numbers (``tfvae.samplers``):
``gmm`` by default, whose full covariance also holds the correlations between neighbouring cells, which draws of
N(0, I), independent in every cell, lack; ``diffusion`` (standardised codes, the issue's sampler) and ``prior``
work too. Whether a larger weight (a smoother latent) or a smaller one (a sharper floor) samples better is a
measurement (docs/training.md#the-models).
"""

import dataclasses

import keras
from keras import layers, ops

from tfvae import losses
from tfvae.fields import setting
from tfvae.models import networks
from tfvae.models.autoencoders import VAE
from tfvae.models.layers import ClipLogVar, Sampling
from tfvae.models.vqvae import build_vq_decoder, grid_features

__all__ = ["KL_WEIGHT", "SpatialHparams", "SpatialVAE", "build_spatial_encoder", "grid_kl"]

KL_WEIGHT = 1e-6


def build_spatial_encoder(image_shape, channels, *, filters=(32, 64), seed=None, name="encoder"):
    """Builds q(z | x): images -> {"z_mean", "z_log_var", "z"}, each an (h, w, ``channels``) grid (``z`` drawn by a
    ``Sampling`` layer seeded with ``seed``; ``tfvae.models.vqvae.grid_shape`` gives h, w)."""
    networks.check_image_shape(image_shape, "conv", filters)
    image = keras.Input(image_shape, name="image")
    h = grid_features(image, filters)
    # The heads stay in float32 under mixed precision, as the VAE's: the KL and the noise are computed from them.
    z_mean = layers.Conv2D(channels, 1, name="z_mean", dtype="float32")(h)
    z_log_var = layers.Conv2D(channels, 1, name="z_log_var_raw", dtype="float32")(h)
    z_log_var = ClipLogVar(name="z_log_var", dtype="float32")(z_log_var)
    z = Sampling(seed=seed, name="z", dtype="float32")([z_mean, z_log_var])
    return keras.Model(image, {"z_mean": z_mean, "z_log_var": z_log_var, "z": z}, name=name)


def grid_kl(z_mean, z_log_var):
    """KL(q(z | x) || N(0, I)) per example, summed over every cell and channel: float32 (batch,)."""
    per_dim = losses.gaussian_kl_per_dim(z_mean, z_log_var)
    return ops.sum(ops.reshape(per_dim, (ops.shape(per_dim)[0], -1)), axis=1)


@dataclasses.dataclass
class SpatialHparams:
    """The weight of the grid VAE's KL term."""

    kl_weight: float = setting(KL_WEIGHT, "gridvae: weight beta of the KL term toward N(0, I) per grid cell (1 is "
                               "the ELBO; 1e-6, latent diffusion's autoencoders', keeps reconstructions nearly "
                               "lossless).", lower=0)


class SpatialVAE(VAE):
    """Grid VAE: loss = reconstruction + beta * 1/2 sum_grid (mu^2 + sigma^2 - log sigma^2 - 1) (see the module
    docstring; Rombach et al. 2022)."""

    title = "grid VAE"
    description = ("grid VAE (latent diffusion's KL autoencoder): a continuous code grid of --latent channels per "
                   "cell, a KL term toward N(0, I) weighted by --kl_weight, sampled from a mixture fitted to its codes")
    Hparams = SpatialHparams
    code_grid = True
    default_sampler = "gmm"
    # Its codes are grids of many numbers: a mixture of 10 broad Gaussians puts draws between their modes, one
    # component per 40 codes follows their shape (chosen by measurement: docs/results_generation.md, "A mixture of
    # 500-1,000 components").
    codes_per_gmm_component = 40

    @classmethod
    def check_config(cls, config):
        if config.arch != "conv":
            return f"--model=gridvae needs --arch=conv (its codes are a grid), got --arch={config.arch}"
        if config.beta != 1.0:
            return (f"--beta={config.beta} weighs a vector VAE's KL term; a gridvae's is --kl_weight (default "
                    f"{KL_WEIGHT:g})")
        if config.recon_weight == 0 and config.kl_weight == 0:
            return "--recon_weight=0 and --kl_weight=0 leave nothing to train"
        return None

    @classmethod
    def build(cls, image_shape, latent_dim, hparams, *, beta=1.0, arch="conv", **settings):
        """``Autoencoder.build``'s model with beta = ``hparams.kl_weight`` (the shared ``beta``, which must be left at
        1, is not this model's); ``latent_dim`` is the number of channels per grid cell; ``arch`` must be "conv"."""
        if beta != 1.0:
            raise ValueError(f"beta={beta} weighs a vector VAE's KL term; a gridvae's is kl_weight")
        if arch != "conv":
            raise ValueError(f"gridvae needs arch='conv' (its codes are a grid), got arch={arch!r}")
        return super().build(image_shape, latent_dim, hparams, beta=hparams.kl_weight, arch=arch, **settings)

    @classmethod
    def build_encoder(cls, image_shape, latent_dim, hparams, *, seed=None, filters=(32, 64), **common):
        del hparams, common
        return build_spatial_encoder(image_shape, latent_dim, filters=filters, seed=seed)

    @classmethod
    def build_decoder(cls, image_shape, latent_dim, hparams, *, variance=False, output_channels=None,
                      filters=(32, 64), **common):
        del hparams, common
        return build_vq_decoder(image_shape, latent_dim, filters=filters, variance=variance,
                                output_channels=output_channels)

    def kl_estimate(self, out):
        """The closed form above, summed over the grid (``grid_kl``)."""
        return grid_kl(out["z_mean"], out["z_log_var"])
