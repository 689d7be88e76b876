"""Encoder/decoder builders, the sampling layer and the model classes (AE, VAE, CVAE, RAE, WAE)."""

from tfvae.models.autoencoders import CVAE, VAE, Autoencoder
from tfvae.models.family import MODELS, build_model
from tfvae.models.layers import ClipLogVar, Conv2DTranspose, DecoderVariance, Sampling
from tfvae.models.networks import ARCHS, build_decoder, build_encoder
from tfvae.models.regularized import RAE, WAE, PriorDraws

__all__ = ["ARCHS", "MODELS", "CVAE", "RAE", "VAE", "WAE", "Autoencoder", "ClipLogVar", "Conv2DTranspose",
           "DecoderVariance", "PriorDraws", "Sampling",
           "build_decoder", "build_encoder", "build_model"]
