"""The model family (``registry``: a name to the class that says everything about its model), the encoder and
decoder builders, the custom layers, and the VQ-VAE's PixelCNN prior."""

from tfvae.models.autoencoders import CVAE, VAE, Autoencoder
from tfvae.models.layers import ClipLogVar, Conv2DTranspose, DecoderVariance, Sampling
from tfvae.models.networks import ARCHS, build_decoder, build_encoder
from tfvae.models.pixelcnn import GridCrossEntropy, MaskedConv2D, build_pixelcnn
from tfvae.models.registry import (
    MODELS,
    build_model,
    hyperparameter_classes,
    hyperparameter_fields,
    model_class,
    models_with,
    owners,
    with_article,
)
from tfvae.models.regularized import RAE, WAE, PriorDraws
from tfvae.models.spatial import SpatialVAE
from tfvae.models.vamp import PSEUDO_INPUTS, PseudoInputs, VampPrior, VampVAE
from tfvae.models.vqvae import VQVAE, VectorQuantizer, build_vqvae, grid_shape

__all__ = ["ARCHS", "MODELS", "PSEUDO_INPUTS", "CVAE", "RAE", "VAE", "VQVAE", "WAE", "Autoencoder",
           "ClipLogVar", "Conv2DTranspose", "DecoderVariance", "GridCrossEntropy", "MaskedConv2D", "PriorDraws",
           "PseudoInputs", "Sampling", "SpatialVAE", "VampPrior", "VampVAE", "VectorQuantizer", "build_decoder",
           "build_encoder", "build_model", "build_pixelcnn", "build_vqvae", "grid_shape", "hyperparameter_classes",
           "hyperparameter_fields", "model_class", "models_with", "owners", "with_article"]
