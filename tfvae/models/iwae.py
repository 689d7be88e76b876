"""The importance-weighted autoencoder (IWAE; Burda, Grosse & Salakhutdinov 2016, "Importance weighted
autoencoders").

The VAE's networks and prior N(0, I), trained on a tighter bound. With K draws z_1..z_K ~ q(z|x) (reparameterised,
z_k = mu + sigma * eps_k) and the log importance weights

    log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x),

the bound is

    L_K(x) = E[ log (1/K) sum_k w_k ] = E[ logsumexp_k log w_k - log K ]  <=  log p(x).

L_1 is the ELBO: E_eps[log p(x|z) + log p(z) - log q(z|x)] = E_q[log p(x|z)] - KL(q(z|x) || p(z)). L_K grows with
K (L_K <= L_{K+1}, Burda et al. Theorem 1) and tends to log p(x) as K grows. The loss is -L_K averaged over the
batch; its gradient weights each draw's gradient by its normalised weight w_k / sum_j w_j, so draws that explain
x well count most, and q(z|x) is no longer pushed to cover only where the decoder is sure.

``beta`` and ``recon_weight`` weight the two parts of each log weight as in the VAE:
log w_k = -recon_weight * reconstruction_k - beta * (log q(z_k|x) - log p(z_k)), so beta = recon_weight = 1 is the
bound above. The logged ``reconstruction`` and ``kl`` are the K draws' means of -log p(x|z_k) and of
log q(z_k|x) - log p(z_k) (a Monte-Carlo KL); ``loss`` = -L_K <= reconstruction + kl, the gap being what the K
draws gain over the ELBO.

A calibrated Gaussian decoder (``--loss=gaussian``) sets one variance per batch from one draw, which K draws
would each see differently: an iwae takes the other decoders (``gaussian_pixel`` learns its variance).
"""

import dataclasses
import math

from keras import ops

from tfvae import losses
from tfvae.fields import setting
from tfvae.models.autoencoders import VAE
from tfvae.models.layers import Sampling

__all__ = ["IWAE", "IWAEHparams", "log_weights"]


@dataclasses.dataclass
class IWAEHparams:
    """The number of importance samples in the training bound."""

    iwae_samples: int = setting(5, "iwae: importance samples K per image in the training bound L_K (Burda et al. "
                                "used 5 and 50; 1 is the VAE's ELBO, estimated with a sampled KL).", lower=1)


def log_weights(x, logits, z, z_mean, z_log_var, reconstruction="bce", recon_weight=1.0, beta=1.0):
    """log w_k per draw and image, (K, batch) float32, with its two parts.

    Args:
      x: images (batch, H, W, C) in [0, 1].
      logits: the decoder's outputs for the K draws, (K * batch, H, W, output channels), draw-major.
      z: the draws, (K, batch, latent).
      z_mean, z_log_var: q(z|x)'s parameters, (batch, latent).

    Returns:
      (log w, reconstruction -log p(x|z_k), log q(z_k|x) - log p(z_k)), each (K, batch).
    """
    k = z.shape[0]
    tiled = ops.tile(x, (k, 1, 1, 1))
    recon = ops.reshape(losses.reconstruction_loss(tiled, logits, reconstruction), (k, -1))
    z = ops.cast(z, "float32")
    log_q = losses.diagonal_gaussian_log_prob(z, z_mean[None], z_log_var[None])
    log_p = losses.diagonal_gaussian_log_prob(z, ops.zeros_like(z), ops.zeros_like(z))
    kl = log_q - log_p
    return -recon_weight * recon - beta * kl, recon, kl


class IWAE(VAE):
    """IWAE: loss = -mean_batch(logsumexp_k log w_k - log K), K = ``iwae_samples`` (module docstring)."""

    title = "importance-weighted autoencoder"
    description = "importance-weighted autoencoder: the VAE trained on the K-sample bound L_K (--iwae_samples)"
    Hparams = IWAEHparams

    def __init__(self, encoder, decoder, *, iwae_samples=5, seed=None, **kwargs):
        super().__init__(encoder, decoder, **kwargs)
        if iwae_samples < 1:
            raise ValueError(f"iwae_samples must be at least 1 (got {iwae_samples})")
        if self.reconstruction == "gaussian":
            raise ValueError("an iwae takes no --loss=gaussian (one variance per batch from one draw); use "
                             "gaussian_pixel, mse, bce or logistic_mixture")
        self.iwae_samples = int(iwae_samples)
        self.draws = Sampling(seed=None if seed is None else seed + 1, name="iwae_draws")

    @classmethod
    def check_config(cls, config):
        if config.loss == "gaussian":
            return ("--model=iwae takes no --loss=gaussian (one variance per batch from one draw); use "
                    "--loss=gaussian_pixel, mse, bce or logistic_mixture")
        return super().check_config(config)

    @classmethod
    def model_arguments(cls, hparams, seed):
        return {"iwae_samples": hparams.iwae_samples, "seed": seed}

    def loss_terms(self, batch, out, training=False):
        """-L_K and the draws' mean reconstruction and KL terms, each averaged over the batch."""
        x = batch["image"]
        k = self.iwae_samples
        mean, log_var = ops.cast(out["z_mean"], "float32"), ops.cast(out["z_log_var"], "float32")
        z = self.draws([ops.tile(mean, (k, 1)), ops.tile(log_var, (k, 1))])  # (K * batch, latent), draw-major
        logits = self.decoder(self._decoder_inputs(z, batch), training=training)
        log_w, recon, kl = log_weights(x, logits, ops.reshape(z, (k, -1, z.shape[-1])), mean, log_var,
                                       self.reconstruction, self.recon_weight, self.beta)
        bound = ops.logsumexp(log_w, axis=0) - math.log(k)
        return {"loss": -ops.mean(bound), "reconstruction": ops.mean(recon), "kl": ops.mean(kl)}
