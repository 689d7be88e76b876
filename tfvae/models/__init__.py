"""Encoder/decoder builders, the sampling layer, the AE/VAE/CVAE and VQ-VAE model classes and the PixelCNN prior."""

from tfvae.models.autoencoders import CVAE, VAE, Autoencoder
from tfvae.models.build import MODELS, build_model
from tfvae.models.layers import ClipLogVar, Conv2DTranspose, DecoderVariance, Sampling
from tfvae.models.networks import ARCHS, build_decoder, build_encoder
from tfvae.models.pixelcnn import GridCrossEntropy, MaskedConv2D, build_pixelcnn
from tfvae.models.vqvae import VQVAE, VectorQuantizer, build_vqvae, grid_shape

__all__ = ["ARCHS", "MODELS", "CVAE", "VAE", "VQVAE", "Autoencoder", "ClipLogVar", "Conv2DTranspose",
           "DecoderVariance", "GridCrossEntropy", "MaskedConv2D", "Sampling", "VectorQuantizer",
           "build_decoder", "build_encoder", "build_model", "build_pixelcnn", "build_vqvae", "grid_shape"]
