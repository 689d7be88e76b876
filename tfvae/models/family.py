"""The model family by name: ``MODELS`` and ``build_model``, which joins an encoder and a decoder into one.

``ae``, ``vae`` and ``cvae`` are ``tfvae.models.autoencoders``'; ``rae`` and ``wae``, the deterministic
autoencoders made to generate, are ``tfvae.models.regularized``' (their objectives are derived there).
"""

from tfvae.models import networks, regularized
from tfvae.models.autoencoders import CVAE, VAE, Autoencoder

MODELS = ("ae", "vae", "cvae", "rae", "wae")
_CLASSES = {"ae": Autoencoder, "vae": VAE, "cvae": CVAE, "rae": regularized.RAE, "wae": regularized.WAE}


def build_model(kind, image_shape, latent_dim, *, arch="conv", filters=(32, 64), hidden=16, num_classes=0,
                reconstruction="bce", beta=1.0, recon_weight=1.0, penalty_weight=None, decoder_l2=None, seed=None):
    """Builds an ``ae``, ``vae``, ``cvae``, ``rae`` or ``wae`` with matching encoder and decoder.

    Args:
      kind: one of MODELS.
      image_shape: (height, width, channels).
      latent_dim: size of z.
      arch, filters, hidden: see ``networks.build_encoder``.
      num_classes: number of classes; required (> 0) for ``cvae``, ignored otherwise.
      reconstruction: "bce" (Bernoulli decoder), "mse" (Gaussian decoder with variance 1/2) or "gaussian"
        (Gaussian decoder with a calibrated shared variance; the decoder gets a ``DecoderVariance`` layer).
      beta: weight of the KL term (vae, cvae).
      recon_weight: weight of the reconstruction term (0: the KL term alone).
      penalty_weight: weight of the regulariser of the codes: the RAE's beta_z on 1/2 ||z||^2, the WAE's lambda
        on MMD^2; None: the module's default (``regularized.RAE_LATENT_WEIGHT``, ``regularized.WAE_WEIGHT``).
        Ignored by the other models.
      decoder_l2: the RAE's lambda on its decoder kernels' ||theta||^2; None: ``regularized.RAE_DECODER_L2``.
        Ignored by the other models.
      seed: seed of the sampling noise (the VAE's posterior draws, the WAE's prior draws).

    Returns:
      An uncompiled ``Autoencoder`` (or subclass).
    """
    if kind not in _CLASSES:
        raise ValueError(f"unknown model {kind!r}; choose one of {', '.join(MODELS)}")
    cls = _CLASSES[kind]
    if cls.conditional and num_classes < 1:
        raise ValueError("cvae needs labelled data (num_classes > 0)")
    num_classes = num_classes if cls.conditional else 0
    common = dict(arch=arch, filters=tuple(filters), hidden=hidden, num_classes=num_classes)
    encoder = networks.build_encoder(image_shape, latent_dim, variational=cls.variational, seed=seed, **common)
    decoder = networks.build_decoder(image_shape, latent_dim, variance=reconstruction == "gaussian", **common)
    extra = {}
    if penalty_weight is not None and issubclass(cls, regularized.RegularizedAutoencoder):
        extra["penalty_weight"] = penalty_weight
    if decoder_l2 is not None and cls is regularized.RAE:
        extra["decoder_l2"] = decoder_l2
    if cls is regularized.WAE:
        extra["seed"] = seed
    return cls(encoder, decoder, reconstruction=reconstruction, beta=beta, recon_weight=recon_weight, name=kind,
               **extra)
