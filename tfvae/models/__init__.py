"""Encoder/decoder builders, the sampling layer and the model classes (AE, VAE, CVAE, VAE with a VampPrior, RAE,
WAE)."""

from tfvae.models.autoencoders import CVAE, VAE, Autoencoder
from tfvae.models.family import MODELS, build_model, model_class
from tfvae.models.layers import ClipLogVar, Conv2DTranspose, DecoderVariance, Sampling
from tfvae.models.networks import ARCHS, build_decoder, build_encoder
from tfvae.models.regularized import RAE, WAE, PriorDraws
from tfvae.models.vamp import PSEUDO_INPUTS, PseudoInputs, VampPrior, VampVAE

__all__ = ["ARCHS", "MODELS", "PSEUDO_INPUTS", "CVAE", "RAE", "VAE", "WAE", "Autoencoder", "ClipLogVar",
           "Conv2DTranspose", "DecoderVariance", "PriorDraws", "PseudoInputs", "Sampling", "VampPrior", "VampVAE",
           "build_decoder", "build_encoder", "build_model", "model_class"]
