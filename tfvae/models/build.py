"""``build_model``: every model of ``MODELS`` by its name (the autoencoders' and the VQ-VAE's builders)."""

from tfvae.models import autoencoders, vqvae

MODELS = autoencoders.MODELS + ("vqvae",)


def build_model(kind, image_shape, latent_dim, *, arch="conv", filters=(32, 64), hidden=16, num_classes=0,
                reconstruction="bce", beta=1.0, recon_weight=1.0, seed=None, codebook_size=vqvae.CODEBOOK_SIZE,
                commitment=vqvae.COMMITMENT):
    """Builds the model ``kind`` (one of MODELS), uncompiled.

    ``ae``, ``vae`` and ``cvae``: see ``tfvae.models.autoencoders.build_model`` (``codebook_size`` and
    ``commitment`` are ignored). ``vqvae``: see ``tfvae.models.vqvae.build_vqvae``; ``latent_dim`` is the size
    D of its codebook vectors, and ``hidden``, ``num_classes``, ``beta`` and ``recon_weight`` are ignored.
    """
    if kind == "vqvae":
        return vqvae.build_vqvae(image_shape, latent_dim, arch=arch, filters=filters, codebook_size=codebook_size,
                                 commitment=commitment, reconstruction=reconstruction, seed=seed)
    if kind not in MODELS:
        raise ValueError(f"unknown model {kind!r}; choose one of {', '.join(MODELS)}")
    return autoencoders.build_model(kind, image_shape, latent_dim, arch=arch, filters=filters, hidden=hidden,
                                    num_classes=num_classes, reconstruction=reconstruction, beta=beta,
                                    recon_weight=recon_weight, seed=seed)
