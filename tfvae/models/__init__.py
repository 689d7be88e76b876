"""Encoder/decoder builders, the sampling layer and the AE/VAE/CVAE model classes."""

from tfvae.models.autoencoders import CVAE, MODELS, VAE, Autoencoder, build_model
from tfvae.models.layers import ClipLogVar, Conv2DTranspose, DecoderVariance, Sampling
from tfvae.models.networks import ARCHS, build_decoder, build_encoder

__all__ = ["ARCHS", "MODELS", "CVAE", "VAE", "Autoencoder", "ClipLogVar", "Conv2DTranspose", "DecoderVariance",
           "Sampling",
           "build_decoder", "build_encoder", "build_model"]
