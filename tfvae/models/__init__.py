"""Encoder/decoder builders, the sampling layer and the model classes (AE, VAE, CVAE, VAE with a VampPrior)."""

from tfvae.models.autoencoders import CVAE, VAE, Autoencoder
from tfvae.models.family import MODELS, build_model, model_class
from tfvae.models.layers import ClipLogVar, Conv2DTranspose, DecoderVariance, Sampling
from tfvae.models.networks import ARCHS, build_decoder, build_encoder
from tfvae.models.vamp import PSEUDO_INPUTS, PseudoInputs, VampPrior, VampVAE

__all__ = ["ARCHS", "MODELS", "PSEUDO_INPUTS", "CVAE", "VAE", "Autoencoder", "ClipLogVar", "Conv2DTranspose",
           "DecoderVariance", "PseudoInputs", "Sampling", "VampPrior", "VampVAE",
           "build_decoder", "build_encoder", "build_model", "model_class"]
