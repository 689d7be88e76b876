r"""Deterministic autoencoders made to generate: the regularized autoencoder (RAE) and the Wasserstein
autoencoder (WAE-MMD).

Both keep the plain autoencoder's deterministic encoder z = f(x) (``z == z_mean``; no ``z_log_var``, so no
ELBO and no likelihood p(x)) and add one penalty to its reconstruction term. Reconstruction is the project's
(``tfvae.losses``): -log p(x | z) summed over the pixels, averaged over the batch. Every model logs ``loss``,
``reconstruction``, ``kl`` (0: there is no KL term, as for the plain autoencoder) and ``penalty``, the
weighted regulariser, so that ``loss = recon_weight * reconstruction + penalty``.

RAE (Ghosh et al. 2020, "From variational to deterministic autoencoders"), the RAE-L2 variant
------------------------------------------------------------------------------------------------
A VAE with a Gaussian posterior of fixed small variance injects noise that makes the decoder smooth around each
code, and its KL pulls the means towards the origin. The RAE replaces the noise by an explicit smoothness
regulariser of the decoder and keeps the pull on the codes:

    loss = mean_batch(reconstruction(x) + beta_z * 1/2 ||z||^2) + lambda * ||theta_dec||^2,

z = f(x). 1/2 ||z||^2 is -log N(z; 0, I) up to a constant, the mean part of the VAE's KL. It alone is
degenerate: the encoder can scale its codes by c -> 0 and the decoder's first layer by 1/c, which leaves
reconstruction unchanged and drives the penalty to 0. The decoder's L2 term (weight decay on its kernels)
breaks that symmetry: scaling costs beta_z/2 c^2 E||z||^2 + lambda ||W_1||^2 / c^2 (W_1 the first layer's
kernel), minimised at c^4 = 2 lambda ||W_1||^2 / (beta_z E||z||^2), so the codes settle at a bounded scale,
and a decoder with small weights varies slowly with z (its Lipschitz constant is at most the product of its
kernels' norms). Only kernels are penalised: biases do not change how fast the decoder varies. The term is a
property of the weights, not of an image: it is added once to the batch mean.

The RAE has no prior to sample from; it is sampled ex post, from a density fitted to its training codes
(``tfvae.samplers``: ``gmm`` by default, as in the paper).

Defaults, on this project's scale. The official RAE code weights the mean over latent dimensions of z^2 by
1e-4 and the decoder's kernels by 1e-7, against a reconstruction of summed squared errors; our
reconstruction is a summed cross-entropy, whose gradient with respect to the logits, sigmoid(l) - x, is 2-4x
that of a squared error of sigmoid(l) (which carries the factor 2 sigmoid'(l) <= 1/2). ``beta_z = 1e-2``
(``RAE_LATENT_WEIGHT``) is a weak pull, a hundredth of the VAE's: at the codes' typical norm of a few units
beta_z/2 ||z||^2 is a small fraction of a nat per image against a reconstruction of many nats, enough to keep the
codes near the origin without moving them onto a prior. ``lambda = 1e-3`` (``RAE_DECODER_L2``) is as small
against the default conv decoder's ||theta||^2 at initialisation and stops the scale escape above. What the
pull did to a run's codes (a mild pull, as intended) is measured in docs/training.md#the-models.

WAE-MMD (Tolstikhin et al. 2018, "Wasserstein auto-encoders")
--------------------------------------------------------------
The WAE bounds the optimal-transport cost between the data and the model p(x) = int p(x | z) p(z) dz by the
reconstruction cost plus a divergence between the aggregate code distribution q(z) = E_x[delta(z - f(x))]
and the prior p(z) = N(0, I). With the maximum mean discrepancy as that divergence,

    loss = mean_batch(reconstruction(x)) + lambda * MMD_k^2(q(z), p(z)),

    MMD_k^2(q, p) = E_{z, z' ~ q} k(z, z') + E_{u, u' ~ p} k(u, u') - 2 E_{z ~ q, u ~ p} k(z, u),

which is 0 exactly when q = p for a characteristic kernel k. Unlike the VAE's KL it penalises the aggregate
codes, not each image's posterior, so the codes of different images need not overlap. The kernel is the
inverse multiquadratic k(x, y) = C / (C + ||x - y||^2), whose heavy tails keep a gradient for codes far from
the prior, with C = 2 d sigma^2 (d the latent size, sigma^2 = 1 the prior's variance, so C is the expected
||u - u'||^2 of two prior draws) summed over the scales s C, s in ``MMD_SCALES`` (0.1 to 10), as the
paper's code does. Per batch of n codes z_i and n prior draws u_i the unbiased U-statistic is

    MMD_u^2 = 1/(n(n-1)) sum_{i != j} [k(z_i, z_j) + k(u_i, u_j)] - 2/n^2 sum_{i, j} k(z_i, u_j)

(Algorithm 2 of the paper; it can be slightly negative; a batch of one has no estimate and scores 0). The
prior draws come from a ``PriorDraws`` layer owned by the model: its ``SeedGenerator`` state advances every
step (fresh draws inside a compiled step) and is checkpointed with the sampling noise, so a resumed run draws
what an uninterrupted one would. ``lambda = 100`` (``WAE_WEIGHT``): the paper's 10 on MNIST was set against
a reconstruction of 0.05 x summed squared error, whose gradient is ~40x smaller than our summed
cross-entropy's. With 100 the MMD term is large in a first epoch (codes huddled near 0 at initialisation are
far from N(0, I)) and falls to the U-statistic's noise around 0 within a few epochs, and the test codes' means
and spreads come out near the prior's where a plain autoencoder's do not (the run: docs/training.md#the-models).
The WAE is sampled from its prior N(0, I).

MMD^2 is a statistic of a batch, not a sum over images: its ``val_penalty`` measures each test batch's codes
against the prior. It is noisy (at batch 32 it swings by an order of magnitude from epoch to epoch) and only
comparable with the training value when the test batches are mixed like the training ones: the test set is not
shuffled, and a test set stored sorted by class gives batches of one class, far from N(0, I) on their own.
"""

import dataclasses

import keras
from keras import ops

from tfvae.fields import setting
from tfvae.models.autoencoders import Autoencoder
from tfvae.models.trackers import track

RAE_LATENT_WEIGHT = 1e-2
RAE_DECODER_L2 = 1e-3
WAE_WEIGHT = 100.0
MMD_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
PRIOR_VARIANCE = 1.0


def latent_l2(z):
    """1/2 ||z||^2 per example, in float32: (batch,)."""
    return 0.5 * ops.sum(ops.square(ops.cast(z, "float32")), axis=-1)


def kernels_l2(kernels):
    """||theta||^2: the sum of the squares of the given weights, in float32 (a scalar)."""
    return sum(ops.sum(ops.square(ops.cast(w, "float32"))) for w in kernels)


def imq_kernel(x, y, scales=MMD_SCALES, variance=PRIOR_VARIANCE):
    """sum_s k_s(x_i, y_j), k_s(x, y) = s C / (s C + ||x - y||^2), C = 2 d variance: an (n, m) matrix.

    Args:
      x: (n, d) codes; y: (m, d) codes.
      scales: the multiples s of C summed over.
      variance: sigma^2 of the prior the kernel's scale is set for.
    """
    x = ops.cast(x, "float32")
    y = ops.cast(y, "float32")
    dim = int(x.shape[-1])
    # ||x - y||^2 = |x|^2 + |y|^2 - 2 x.y, floored at 0 against rounding.
    squared = ops.maximum(ops.sum(ops.square(x), axis=-1)[:, None] + ops.sum(ops.square(y), axis=-1)[None, :]
                          - 2.0 * ops.matmul(x, ops.transpose(y)), 0.0)
    base = 2.0 * dim * variance
    return sum((s * base) / (s * base + squared) for s in scales)


def mmd_squared(z, prior, scales=MMD_SCALES, variance=PRIOR_VARIANCE):
    """The unbiased U-statistic of MMD^2 between the samples ``z`` and ``prior`` (both (n, d); see the module
    docstring), with the inverse multiquadratic kernel ``imq_kernel``. A scalar float32; 0 when n < 2."""
    n = ops.cast(ops.shape(z)[0], "float32")
    k_zz = imq_kernel(z, z, scales, variance)
    k_pp = imq_kernel(prior, prior, scales, variance)
    k_zp = imq_kernel(z, prior, scales, variance)
    pairs = ops.maximum(n * (n - 1.0), 1.0)
    within = (ops.sum(k_zz) - ops.sum(ops.diagonal(k_zz)) + ops.sum(k_pp) - ops.sum(ops.diagonal(k_pp))) / pairs
    across = 2.0 * ops.sum(k_zp) / ops.maximum(n * n, 1.0)
    return ops.where(n > 1.0, within - across, 0.0)


@keras.saving.register_keras_serializable(package="tfvae")
class PriorDraws(keras.layers.Layer):
    """Draws as many N(0, I) codes as it is given, from its own ``SeedGenerator`` (the WAE's prior samples).

    Its state is a variable that advances every call, also inside a compiled step, and that the checkpoints
    keep with the encoder's sampling noise (``tfvae.training.checkpoints``).
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.built = True  # no weights

    def call(self, z):
        return keras.random.normal(ops.shape(z), dtype="float32", seed=self.seed_generator)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@dataclasses.dataclass
class PenaltyHparams:
    """The weight of a regularized autoencoder's penalty on its codes (rae and wae share the flag)."""

    penalty_weight: float = setting(0.0, "rae: weight beta_z of 1/2 |z|^2; wae: weight lambda of the MMD between "
                                    "the codes and N(0, I); 0: the model's default (rae 1e-2, wae 100).", lower=0)


@dataclasses.dataclass
class RAEHparams(PenaltyHparams):
    """The RAE's hyperparameters: the code penalty's weight and its decoder's weight decay."""

    decoder_l2: float = setting(0.0, "rae: weight lambda of the L2 penalty on the decoder's kernels; 0: the default "
                                "(1e-3).", lower=0)


class RegularizedAutoencoder(Autoencoder):
    """A deterministic autoencoder whose loss adds ``penalty(out)`` (logged as ``penalty``) to the
    reconstruction term; subclasses define the penalty."""

    Hparams = PenaltyHparams
    summary_terms = (("penalty", "penalty", ".4g"),)

    def __init__(self, encoder, decoder, *, penalty_weight, **kwargs):
        super().__init__(encoder, decoder, **kwargs)
        self.penalty_weight = float(penalty_weight)
        self.penalty_tracker = keras.metrics.Mean(name="penalty")

    @property
    def metrics(self):
        return super().metrics + [self.penalty_tracker]

    def penalty(self, out):
        """The weighted regulariser of the forward pass ``out``: a float32 scalar."""
        raise NotImplementedError

    def loss_terms(self, batch, out, training=False):
        """The plain autoencoder's terms (``Autoencoder.loss_terms``; ``kl`` is 0) plus ``penalty``, which
        ``loss`` includes."""
        terms = super().loss_terms(batch, out, training=training)
        penalty = self.penalty(out)
        return {**terms, "loss": terms["loss"] + penalty, "penalty": penalty}

    def _update_trackers(self, terms, weight):
        track(self.penalty_tracker, terms["penalty"], weight)
        return super()._update_trackers(terms, weight)


class RAE(RegularizedAutoencoder):
    """RAE-L2: loss = mean_batch(reconstruction + beta_z * 1/2 ||z||^2) + lambda * ||decoder kernels||^2."""

    title = "regularized autoencoder"
    description = ("regularized autoencoder (RAE-L2, Ghosh et al. 2020): deterministic, sampled from a mixture "
                   "fitted to its codes")
    Hparams = RAEHparams

    @classmethod
    def model_arguments(cls, hparams, seed):
        return {"penalty_weight": hparams.penalty_weight or RAE_LATENT_WEIGHT,
                "decoder_l2": hparams.decoder_l2 or RAE_DECODER_L2}

    def __init__(self, encoder, decoder, *, penalty_weight=RAE_LATENT_WEIGHT, decoder_l2=RAE_DECODER_L2, **kwargs):
        super().__init__(encoder, decoder, penalty_weight=penalty_weight, **kwargs)
        self.decoder_l2 = float(decoder_l2)

    @property
    def decoder_kernels(self):
        """The decoder's trainable kernels (no biases), which the L2 term penalises."""
        return [w for w in self.decoder.trainable_weights if w.path.split("/")[-1] == "kernel"]

    def penalty(self, out):
        latent = ops.mean(latent_l2(out["z"]))
        return self.penalty_weight * latent + self.decoder_l2 * kernels_l2(self.decoder_kernels)


class WAE(RegularizedAutoencoder):
    """WAE-MMD: loss = mean_batch(reconstruction) + lambda * MMD^2(codes, N(0, I) draws)."""

    title = "Wasserstein autoencoder"
    description = "Wasserstein autoencoder with an MMD penalty (Tolstikhin et al. 2018): sampled from N(0, I)"
    default_sampler = "prior"

    @classmethod
    def model_arguments(cls, hparams, seed):
        return {"penalty_weight": hparams.penalty_weight or WAE_WEIGHT, "seed": seed}

    def __init__(self, encoder, decoder, *, penalty_weight=WAE_WEIGHT, seed=None, **kwargs):
        super().__init__(encoder, decoder, penalty_weight=penalty_weight, **kwargs)
        self.prior_draws = PriorDraws(seed=seed, name="prior_draws")

    def penalty(self, out):
        z = out["z"]
        return self.penalty_weight * mmd_squared(z, self.prior_draws(z))
