"""The model family by name: ``MODELS``, ``model_class`` and ``build_model``.

    ae     plain autoencoder (``autoencoders.Autoencoder``)
    vae    VAE with the prior N(0, I) (``autoencoders.VAE``)
    cvae   conditional VAE (``autoencoders.CVAE``)
    vamp   VAE with a VampPrior: a mixture of the posteriors of K learned pseudo-inputs (``vamp.VampVAE``)
    rae    regularized autoencoder, RAE-L2 (``regularized.RAE``; its objective is derived there)
    wae    Wasserstein autoencoder with an MMD penalty (``regularized.WAE``)
    vqvae  VQ-VAE: an EMA codebook, codes on a grid, a PixelCNN prior trained after it (``vqvae.VQVAE``)
"""

from tfvae import likelihoods
from tfvae.models import adversarial as adversarial_lib
from tfvae.models import networks, regularized, vamp, vqvae
from tfvae.models.autoencoders import CVAE, VAE, Autoencoder

MODELS = ("ae", "vae", "cvae", "vamp", "rae", "wae", "vqvae")
_CLASSES = {"ae": Autoencoder, "vae": VAE, "cvae": CVAE, "vamp": vamp.VampVAE, "rae": regularized.RAE,
            "wae": regularized.WAE, "vqvae": vqvae.VQVAE}


def model_class(kind):
    """The class of model ``kind`` (one of MODELS): its hooks (``has_learned_prior``, ``learned_prior``) without
    building one."""
    if kind not in _CLASSES:
        raise ValueError(f"unknown model {kind!r}; choose one of {', '.join(MODELS)}")
    return _CLASSES[kind]


def build_model(kind, image_shape, latent_dim, *, arch="conv", filters=(32, 64), hidden=16, num_classes=0,
                reconstruction="bce", beta=1.0, recon_weight=1.0, seed=None, pseudo_inputs=vamp.PSEUDO_INPUTS,
                penalty_weight=None, decoder_l2=None, adversarial=0.0, feature_match=0.0,
                codebook_size=vqvae.CODEBOOK_SIZE, commitment=vqvae.COMMITMENT):
    """Builds an ``ae``, ``vae``, ``cvae``, ``vamp``, ``rae``, ``wae`` or ``vqvae`` with matching encoder and decoder.

    Args:
      kind: one of MODELS.
      image_shape: (height, width, channels).
      latent_dim: size of z.
      arch, filters, hidden: see ``networks.build_encoder``.
      num_classes: number of classes; required (> 0) for ``cvae``, ignored otherwise.
      reconstruction: "bce" (Bernoulli decoder), "mse" (Gaussian decoder with variance 1/2), "gaussian"
        (Gaussian decoder with a calibrated shared variance; the decoder gets a ``DecoderVariance`` layer),
        "gaussian_pixel" (a learned variance per pixel) or "logistic_mixture" (PixelCNN++'s discretized
        logistic mixture); the decoder emits ``tfvae.likelihoods.output_channels`` values per pixel.
      beta: weight of the KL term (vae, cvae, vamp).
      recon_weight: weight of the reconstruction term (0: the KL term alone).
      seed: seed of the sampling noise (and of a vamp's initial pseudo-inputs, a wae's prior draws).
      pseudo_inputs: K, a vamp's number of pseudo-inputs (ignored by the others).
      penalty_weight: weight of the regulariser of the codes: the RAE's beta_z on 1/2 ||z||^2, the WAE's lambda
        on MMD^2; None: the module's default (``regularized.RAE_LATENT_WEIGHT``, ``regularized.WAE_WEIGHT``).
        Ignored by the other models.
      decoder_l2: the RAE's lambda on its decoder kernels' ||theta||^2; None: ``regularized.RAE_DECODER_L2``.
        Ignored by the other models.
      adversarial, feature_match: weights of the sharpness terms (``tfvae.models.adversarial``); either > 0
        gives the model a ``critic`` (a discriminator), which the caller gives an optimizer
        (``model.critic.attach_optimizer``) before training.
      codebook_size, commitment: a vqvae's K codebook vectors and commitment weight (ignored by the others).

    A ``vqvae`` is ``vqvae.build_vqvae``'s: ``latent_dim`` is the size D of its codebook vectors, and ``hidden``,
    ``num_classes``, ``beta`` and ``recon_weight`` are ignored.

    Returns:
      An uncompiled ``Autoencoder``/``VAE``/``CVAE``/``VampVAE``/``RAE``/``WAE``/``VQVAE``.
    """
    cls = model_class(kind)
    if kind == "vqvae":
        if adversarial or feature_match:
            raise ValueError("adversarial and feature_match are sharpness terms of the VAE family's decoders; a "
                             "vqvae takes neither")
        return vqvae.build_vqvae(image_shape, latent_dim, arch=arch, filters=filters, codebook_size=codebook_size,
                                 commitment=commitment, reconstruction=reconstruction, seed=seed)
    if cls.conditional and num_classes < 1:
        raise ValueError("cvae needs labelled data (num_classes > 0)")
    if kind == "vamp" and pseudo_inputs < 1:
        raise ValueError(f"pseudo_inputs must be at least 1 (got {pseudo_inputs})")
    num_classes = num_classes if cls.conditional else 0
    common = dict(arch=arch, filters=tuple(filters), hidden=hidden, num_classes=num_classes)
    if kind == "vamp":
        encoder = vamp.build_encoder(image_shape, latent_dim, pseudo_inputs, seed=seed, **common)
    else:
        encoder = networks.build_encoder(image_shape, latent_dim, variational=cls.variational, seed=seed, **common)
    channels = likelihoods.output_channels(likelihoods.for_loss(reconstruction), image_shape[2])
    decoder = networks.build_decoder(image_shape, latent_dim, variance=reconstruction == "gaussian",
                                     output_channels=channels, **common)
    extra = {}
    if penalty_weight is not None and issubclass(cls, regularized.RegularizedAutoencoder):
        extra["penalty_weight"] = penalty_weight
    if decoder_l2 is not None and cls is regularized.RAE:
        extra["decoder_l2"] = decoder_l2
    if cls is regularized.WAE:
        extra["seed"] = seed
    if adversarial or feature_match:
        # The discriminator is as wide as the encoder (its filters): cheaper than a fixed 32-64-128 critic on the
        # folder config's 16-32-64-128 VAE, and no worse (docs/sharpness.md#cost-and-effect-on-the-emoji-set).
        extra["critic"] = adversarial_lib.Critic(adversarial_lib.build_discriminator(image_shape, filters),
                                                 adversarial=adversarial, feature_match=feature_match, name="critic")
    return cls(encoder, decoder, reconstruction=reconstruction, beta=beta, recon_weight=recon_weight, name=kind,
               **extra)
