r"""The VAE with a VampPrior (Tomczak & Welling 2018, "VAE with a VampPrior"): ``--model=vamp``.

The prior
---------
A VAE's KL term pulls every posterior towards p(z) = N(0, I), while the best prior for a given encoder is its
aggregate posterior q(z) = (1/n) sum_i q(z | x_i), a mixture over the n training images: too many components to
evaluate. The VampPrior ("variational mixture of posteriors") keeps the form of that optimum with K learned
pseudo-inputs u_1..u_K in place of the images,

    p(z) = (1/K) sum_k q(z | u_k),      q(z | u_k) = N(z; m_k, diag(exp(v_k))),   (m_k, v_k) = encoder(u_k),

so the prior is made by the same encoder as the posteriors and moves with it. Each u_k is an image of the run's
shape, u_k = sigmoid(w_k) with w_k a free (H, W, C) weight of the ``PseudoInputs`` layer, so it stays in the
encoder's input range (0, 1) wherever the gradient moves w_k (a hard clip would stop the gradient of a pixel
once it hits 0 or 1). The w_k start as N(0, 1) noise (grey noise images after the sigmoid), seeded by the run's
seed; they are trained with the networks by the same gradient steps. The model is unconditional: a cvae's label
input is not needed (the mixture over pseudo-inputs already lets the prior have one mode per kind of image).

The objective
-------------
The ELBO is the VAE's, with the new prior in its KL term:

    log p(x) >= E_q[log p(x|z)] - KL(q(z|x) || p(z)),    KL = E_q[log q(z|x) - log p(z)].

q(z|x) is Gaussian, but log p(z) is the log of a sum, so E_q[log p(z)] (and the KL) has no closed form. The loss
uses the single-sample estimate at the reparameterised draw z = mu + sigma * eps the decoder also sees:

    KL_hat(x) = log q(z|x) - log p(z),
    log q(z|x) = -1/2 sum_j (log 2 pi + log sigma_j^2 + eps_j^2),
    log p(z)   = logsumexp_k [ -1/2 sum_j (log 2 pi + v_kj + (z_j - m_kj)^2 / exp(v_kj)) ] - log K,

(``tfvae.losses.mixture_log_prob``, a log-sum-exp over the K components, stable when every component is far
from z). E_eps[KL_hat] = KL, so loss = recon_weight * reconstruction + beta * KL_hat is an unbiased estimate of
the (beta-)negative ELBO, as the VAE's; its gradient reaches the encoder through both q(z|x) and the K
components, and the pseudo-inputs through the components. One image's KL_hat can be negative (a draw where the
prior is denser than the posterior); its batch mean is the logged ``kl``. With K = 1 and an encoder that maps
u_1 to N(0, I), p(z) = N(0, I) and this is the VAE (tests/test_vamp.py checks both).

Everything downstream that needs the prior uses the same log p(z): the importance-weighted likelihood (IWAE)
weights log p(x|z_k) + log p(z_k) - log q(z_k|x) (``tfvae.metrics.importance_log_weights``'s ``prior``), and the
-ELBO's KL is then the Monte-Carlo mean of log q - log p over the same draws. The ``learned`` sampler draws from
p(z): a uniform component k, then z ~ N(m_k, diag(exp(v_k))) (``VampPrior.sample``).

How many pseudo-inputs
----------------------
K (``--pseudo_inputs``) is 100 by default. Each training step encodes the K pseudo-inputs beside the batch, which
adds K E / (B (E + D)) to a batch of B's forward maths, E and D the encoder's and decoder's multiply-adds per
image (``tfvae.flops``). The conv encoder costs about a sixth of the conv decoder (1.0 M against 5.6 M on 28 x 28
digits with the default filters), so K = 100 adds about an eighth to a batch of 128; an MLP's encoder costs as
much as its decoder, and there it adds K / (2 B), about two fifths. Tomczak & Welling used K = 500 on MNIST's
60,000 images; with K near the number of training images each pseudo-input can turn into one training image and
the prior memorises the data, and tfvae also trains on folders of a few hundred images and on the offline
quickstart's 4,500 digits (one pseudo-input per 45 of those at K = 100). Use --pseudo_inputs=500 for the
paper's setting.

The run directory
-----------------
The ``PseudoInputs`` layer is part of the encoder: ``encoder.keras`` gives the sigmoid images u_k as a fourth
output, ``pseudo_inputs`` (K, H, W, C), beside ``z_mean``, ``z_log_var`` and ``z`` (a sigmoid of K images per
call, nothing next to the convolutions). So the exported, float32, safe_mode-loadable encoder carries the whole
prior, and the checkpoints, resume and the damaged-file checks cover it with no new file.
"""

import dataclasses

import keras
import numpy as np
from keras import ops

from tfvae import losses, picture_arrays
from tfvae.fields import setting
from tfvae.models import networks
from tfvae.models.autoencoders import VAE

PSEUDO_INPUTS = 100  # the default K; see the module docstring
PSEUDO_INPUTS_LAYER = "pseudo_inputs"


@keras.saving.register_keras_serializable(package="tfvae")
class PseudoInputs(keras.layers.Layer):
    """K learned images u_k = sigmoid(w_k) in (0, 1), one (H, W, C) weight each: the VampPrior's pseudo-inputs.

    Called on a batch of images (for their shape only), it returns the (K, H, W, C) pseudo-inputs.

    Args:
      count: K.
      seed: seed of the N(0, 1) initial weights w_k.
    """

    def __init__(self, count=PSEUDO_INPUTS, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.count = int(count)
        self.seed = seed

    def build(self, input_shape):
        self.logits = self.add_weight(shape=(self.count, *input_shape[1:]), name="logits",
                                      initializer=keras.initializers.RandomNormal(stddev=1.0, seed=self.seed))

    def call(self, images):
        del images
        return ops.sigmoid(ops.convert_to_tensor(self.logits))

    def compute_output_shape(self, input_shape):
        return (self.count, *input_shape[1:])

    def images(self):
        """The pseudo-inputs as numpy float32 (K, H, W, C) in (0, 1)."""
        return np.asarray(ops.convert_to_numpy(ops.sigmoid(ops.convert_to_tensor(self.logits))), "float32")

    def get_config(self):
        return {**super().get_config(), "count": self.count, "seed": self.seed}


def build_encoder(image_shape, latent_dim, pseudo_inputs=PSEUDO_INPUTS, *, seed=None, **common):
    """The VAE's encoder (``networks.build_encoder``) with the ``PseudoInputs`` layer as a fourth output.

    Returns:
      A functional ``keras.Model`` from ``image`` to ``z_mean``, ``z_log_var``, ``z`` (batch, latent) and
      ``pseudo_inputs`` (K, H, W, C).
    """
    base = networks.build_encoder(image_shape, latent_dim, variational=True, seed=seed, **common)
    image = base.inputs[0]
    u = PseudoInputs(pseudo_inputs, seed=seed, name=PSEUDO_INPUTS_LAYER, dtype="float32")(image)
    return keras.Model(image, {**base.output, PSEUDO_INPUTS_LAYER: u}, name=base.name)


def vamp_kl(z, z_mean, z_log_var, prior_means, prior_log_vars):
    """The single-sample KL estimate log q(z|x) - log p(z) per example, (batch,) float32 (module docstring).

    Args:
      z: the draws z ~ q(z|x), (batch, latent).
      z_mean, z_log_var: q(z|x)'s parameters, (batch, latent).
      prior_means, prior_log_vars: the K components q(z | u_k), (K, latent) each.
    """
    return (losses.diagonal_gaussian_log_prob(z, z_mean, z_log_var)
            - losses.mixture_log_prob(z, prior_means, prior_log_vars))


class VampPrior:
    """p(z) = (1/K) sum_k N(z; means_k, diag(exp(log_vars_k))): a trained run's VampPrior (the learned sampler).

    Attributes:
      means, log_vars: float32 (K, latent), the pseudo-inputs' posterior parameters.
    """

    name = "learned"
    fitted = False

    def __init__(self, means, log_vars):
        self.means = np.asarray(means, "float32")
        self.log_vars = np.asarray(log_vars, "float32")
        self.latent = self.means.shape[1]

    def log_prob(self, z):
        """log p(z) of codes (..., latent) as a float32 tensor (...) (``tfvae.losses.mixture_log_prob``)."""
        return losses.mixture_log_prob(z, self.means, self.log_vars)

    def sample(self, n, seed=0, temperature=1.0):
        """``n`` draws, float32 (n, latent): k uniform over the components, then z ~ N(means_k, exp(log_vars_k)),
        from one generator seeded by ``seed``; the noise's spread multiplied by ``temperature``."""
        temperature = picture_arrays.check_temperature(temperature)
        rng = np.random.default_rng(seed)
        k = rng.integers(len(self.means), size=n)
        eps = rng.standard_normal((n, self.latent)) * temperature
        return (self.means[k] + np.exp(0.5 * self.log_vars[k]) * eps).astype("float32")


@dataclasses.dataclass
class VampHparams:
    """The VampPrior's size."""

    pseudo_inputs: int = setting(PSEUDO_INPUTS, "vamp: the VampPrior's number of learned pseudo-inputs K (Tomczak & "
                                 "Welling used 500 on MNIST; each step encodes them beside the batch).", lower=1,
                                 architecture=True)


class VampVAE(VAE):
    """VAE with a VampPrior: loss = reconstruction + beta * (log q(z|x) - log p(z)), p the mixture of the
    pseudo-inputs' posteriors (module docstring; Tomczak & Welling 2018)."""

    title = "VAE with a VampPrior"
    description = "VAE with a VampPrior: a mixture of the posteriors of --pseudo_inputs learned images"
    Hparams = VampHparams
    encoder_extras = (PSEUDO_INPUTS_LAYER,)
    has_learned_prior = True
    default_sampler = "learned"

    @classmethod
    def build_encoder(cls, image_shape, latent_dim, hparams, *, seed=None, **common):
        if hparams.pseudo_inputs < 1:
            raise ValueError(f"pseudo_inputs must be at least 1 (got {hparams.pseudo_inputs})")
        return build_encoder(image_shape, latent_dim, hparams.pseudo_inputs, seed=seed, **common)

    @property
    def pseudo_inputs(self):
        """The encoder's ``PseudoInputs`` layer."""
        return self.encoder.get_layer(PSEUDO_INPUTS_LAYER)

    def call(self, batch, training=False):
        """The VAE's outputs plus ``prior_mean`` and ``prior_log_var`` (K, latent): the pseudo-inputs' posteriors."""
        out = super().call(batch, training=training)
        prior = self.encoder(out[PSEUDO_INPUTS_LAYER], training=training)
        return {**out, "prior_mean": prior["z_mean"], "prior_log_var": prior["z_log_var"]}

    def prior_codes(self, noise):
        """Draw i of the current VampPrior: component i mod K, z = m_k + exp(v_k / 2) * noise_i."""
        prior = self.encoder(self.pseudo_inputs(noise), training=False)  # PseudoInputs ignores what it is given
        k = np.arange(len(noise)) % self.pseudo_inputs.count
        means, log_vars = ops.take(prior["z_mean"], k, axis=0), ops.take(prior["z_log_var"], k, axis=0)
        return means + ops.exp(0.5 * log_vars) * ops.cast(noise, means.dtype)

    def kl_estimate(self, out):
        return vamp_kl(out["z"], out["z_mean"], out["z_log_var"], out["prior_mean"], out["prior_log_var"])

    @classmethod
    def learned_prior(cls, encoder, encode, sample_indices=None):
        """The run's VampPrior: its ``encoder``'s pseudo-inputs, encoded by ``encode`` (the Run's one forward path);
        see ``Autoencoder.learned_prior``."""
        del sample_indices
        means, log_vars = encode(encoder.get_layer(PSEUDO_INPUTS_LAYER).images())
        return VampPrior(means, log_vars)
