"""Encoder/decoder builders, the sampling layer, the model classes (AE, VAE, CVAE, VAE with a VampPrior, RAE, WAE,
VQ-VAE) and the VQ-VAE's PixelCNN prior."""

from tfvae.models.autoencoders import CVAE, VAE, Autoencoder
from tfvae.models.family import MODELS, build_model, model_class
from tfvae.models.layers import ClipLogVar, Conv2DTranspose, DecoderVariance, Sampling
from tfvae.models.networks import ARCHS, build_decoder, build_encoder
from tfvae.models.pixelcnn import GridCrossEntropy, MaskedConv2D, build_pixelcnn
from tfvae.models.regularized import RAE, WAE, PriorDraws
from tfvae.models.vamp import PSEUDO_INPUTS, PseudoInputs, VampPrior, VampVAE
from tfvae.models.vqvae import VQVAE, VectorQuantizer, build_vqvae, grid_shape

__all__ = ["ARCHS", "MODELS", "PSEUDO_INPUTS", "CVAE", "RAE", "VAE", "VQVAE", "WAE", "Autoencoder", "ClipLogVar",
           "Conv2DTranspose", "DecoderVariance", "GridCrossEntropy", "MaskedConv2D", "PriorDraws", "PseudoInputs",
           "Sampling", "VampPrior", "VampVAE", "VectorQuantizer", "build_decoder", "build_encoder", "build_model",
           "build_pixelcnn", "build_vqvae", "grid_shape", "model_class"]
