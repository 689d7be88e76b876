r"""The VQ-VAE (van den Oord et al. 2017, "Neural discrete representation learning"): a conv encoder to a grid
of vectors, each replaced by its nearest codebook vector, and a conv decoder of the quantized grid.

The model. The encoder maps an image x to z_e(x), a (h, w, D) grid (h, w = the image's sides over
``2 ** len(filters)``; D = ``latent``). The codebook holds K vectors e_1..e_K in R^D. Each grid vector is
replaced by its nearest codebook vector,

    k_ij = argmin_k ||z_e(x)_ij - e_k||^2,     z_q(x)_ij = e_{k_ij},

and the decoder p(x | z_q) gives the image's logits. The posterior q(k | x) is one-hot on the k_ij (it is
deterministic), and the prior over the h*w indices is uniform while the VQ-VAE trains, so

    KL(q(k | x) || p(k)) = sum_ij [ 0 - log(1 / K) ] = h w log K          (a constant, logged as ``kl``),

and the ELBO is -(reconstruction) - h w log K: training maximises the reconstruction term alone. A PixelCNN
p(k) over the index grids (``tfvae.models.pixelcnn``) is fitted afterwards and is the model's sampler.

Gradients. The argmin has no gradient. The straight-through estimator passes the decoder's gradient with
respect to z_q unchanged to z_e: the quantizer outputs z_e + sg(z_q - z_e), whose value is z_q and whose
Jacobian with respect to z_e is the identity (sg: stop-gradient).

The loss, per image, summed over the grid and averaged over the batch:

    loss = reconstruction(x, decoder(z_q)) + beta_commit * sum_ij ||z_e(x)_ij - sg(z_q(x)_ij)||^2,

with the reconstruction term the VAE's (any of ``tfvae.losses.RECONSTRUCTION_LOSSES``: ``bce``, ``mse``,
``gaussian``, ``gaussian_pixel`` or ``logistic_mixture``, the decoder emitting ``tfvae.likelihoods.output_channels``
values per pixel) and
beta_commit = ``commitment`` (0.25, the paper's). The commitment term keeps the encoder's outputs near the
codebook vectors they chose. The paper's third term, ||sg(z_e) - e||^2, moves the codebook; here the codebook
follows exponential moving averages instead (the paper's appendix A.1; Razavi et al. 2019, VQ-VAE-2), with no
gradient: for a training batch with n_k grid vectors assigned to code k, summing to s_k,

    N_k <- gamma N_k + (1 - gamma) n_k,      m_k <- gamma m_k + (1 - gamma) s_k,      e_k = m_k / N~_k,

with decay gamma = 0.99 and the Laplace-smoothed counts N~_k = (N_k + eps) / (N + K eps) * N, N = sum_k N_k,
eps = 1e-5, so that an unused code's count never reaches 0. e_k is the running mean of the vectors assigned to
k: the minimiser of the codebook term the EMA replaces. N, m and e are non-trainable weights of the quantizer
(saved in checkpoints and encoder.keras), so a resumed run continues the averages exactly. They are updated
in the quantizer's training-mode call, after the batch has been quantized with the codebook as it was. The
first training batch sets the codebook first, to K of its own grid vectors evenly spaced over it (N_k = 1,
m_k = e_k): a codebook drawn at random far from where the encoder's outputs lie leaves most codes unused for
good (docs/vqvae.md#the-objective).

Logged besides: ``commitment`` (unweighted) and ``perplexity``, exp of the entropy of the batch's code usage
(K when every code is used equally, 1 when one code takes every vector).
"""

import dataclasses
import math

import keras
import tensorflow as tf
from keras import layers, ops

from tfvae import likelihoods
from tfvae.fields import setting
from tfvae.models import networks, pixelcnn
from tfvae.models.autoencoders import Autoencoder
from tfvae.models.layers import Conv2DTranspose, DecoderVariance
from tfvae.models.trackers import track

CODEBOOK_SIZE = 128
COMMITMENT = 0.25
EMA_DECAY = 0.99
EMA_EPSILON = 1e-5


@keras.saving.register_keras_serializable(package="tfvae")
class VectorQuantizer(keras.layers.Layer):
    """Nearest-codebook-vector quantization of the last axis, with an EMA codebook (see the module docstring).

    Takes z_e (..., D) and returns ``(z, indices)``: z = z_e + sg(z_q - z_e) (value z_q, straight-through
    gradient) and the int32 codebook indices (...). In training mode it also moves the codebook.
    """

    def __init__(self, num_codes, decay=EMA_DECAY, epsilon=EMA_EPSILON, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.num_codes, self.decay, self.epsilon, self.seed = int(num_codes), float(decay), float(epsilon), seed

    def build(self, input_shape):
        dim = int(input_shape[-1])
        init = keras.initializers.VarianceScaling(distribution="uniform", seed=self.seed)
        # "mean": under a multi-replica strategy every replica computes the same update from the whole batch's
        # statistics (``_replicas_sum``), so the mean of their assignments is that update.
        self.embeddings = self.add_weight(shape=(self.num_codes, dim), initializer=init, trainable=False,
                                          name="embeddings", aggregation="mean")
        self.ema_count = self.add_weight(shape=(self.num_codes,), initializer="ones", trainable=False,
                                         name="ema_count", aggregation="mean")
        self.ema_sum = self.add_weight(shape=(self.num_codes, dim), initializer="zeros", trainable=False,
                                       name="ema_sum", aggregation="mean")
        self.ema_sum.assign(self.embeddings)  # e = m / N with N = 1: the averages start at the initial codebook
        self.initialized = self.add_weight(shape=(), initializer="zeros", trainable=False, name="initialized",
                                           aggregation="mean")

    def nearest(self, z_e, codebook=None):
        """(indices (n,), z_q (n, D)) of flat vectors z_e (n, D) under ``codebook`` (default the present one)."""
        codebook = ops.convert_to_tensor(self.embeddings) if codebook is None else codebook
        distances = (ops.sum(ops.square(z_e), axis=1, keepdims=True) - 2.0 * ops.matmul(z_e, ops.transpose(codebook))
                     + ops.sum(ops.square(codebook), axis=1)[None, :])
        indices = ops.cast(ops.argmin(distances, axis=1), "int32")
        return indices, ops.take(codebook, indices, axis=0)

    def first_codebook(self, z_e):
        """(codebook, N, m) to quantize a training batch of flat vectors z_e (n, D) with and update from: the
        present ones, or before the first training batch, K of the batch's own vectors, evenly spaced over it
        (N = 1, m = e: a codebook where the encoder's outputs are, so that no code starts out of reach). Under a
        multi-replica strategy "the batch" is the global one, the replicas' parts in order (``_global_picks``)."""
        fresh = 1.0 - ops.convert_to_tensor(self.initialized)
        picks = _global_picks(z_e, self.num_codes)
        codebook = fresh * picks + (1.0 - fresh) * ops.convert_to_tensor(self.embeddings)
        count = fresh + (1.0 - fresh) * ops.convert_to_tensor(self.ema_count)
        total = fresh * picks + (1.0 - fresh) * ops.convert_to_tensor(self.ema_sum)
        return codebook, count, total

    def ema_update(self, z_e, indices, count=None, total=None):
        """Moves the averages (``count`` N, ``total`` m: default the present ones) towards the batch's flat
        vectors z_e (n, D) and their ``indices`` (n,)."""
        one_hot = ops.one_hot(indices, self.num_codes, dtype="float32")
        counts = _replicas_sum(ops.sum(one_hot, axis=0))  # the whole batch's n_k and s_k, over every replica
        sums = _replicas_sum(ops.matmul(ops.transpose(one_hot), z_e))
        count = ops.convert_to_tensor(self.ema_count) if count is None else count
        total = ops.convert_to_tensor(self.ema_sum) if total is None else total
        count = self.decay * count + (1.0 - self.decay) * counts
        total = self.decay * total + (1.0 - self.decay) * sums
        n = ops.sum(count)
        smoothed = (count + self.epsilon) / (n + self.num_codes * self.epsilon) * n
        self.ema_count.assign(count)
        self.ema_sum.assign(total)
        self.embeddings.assign(total / smoothed[:, None])
        self.initialized.assign(1.0)

    def call(self, z_e, training=False):
        z_e = ops.cast(z_e, "float32")
        shape = ops.shape(z_e)
        flat = ops.reshape(z_e, (-1, shape[-1]))
        if training:
            codebook, count, total = self.first_codebook(flat)
            indices, z_q = self.nearest(flat, codebook)
            self.ema_update(flat, indices, count, total)
        else:
            indices, z_q = self.nearest(flat)
        z_q = ops.reshape(z_q, shape)
        return z_e + ops.stop_gradient(z_q - z_e), ops.reshape(indices, shape[:-1])

    def compute_output_spec(self, z_e, training=False):
        return (keras.KerasTensor(z_e.shape, dtype="float32"), keras.KerasTensor(z_e.shape[:-1], dtype="int32"))

    def get_config(self):
        return {**super().get_config(), "num_codes": self.num_codes, "decay": self.decay, "epsilon": self.epsilon,
                "seed": self.seed}


def _replicas_sum(x):
    """x summed over the replicas of the tf.distribute strategy that runs this step (x itself on one device)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return x
    return context.all_reduce(tf.distribute.ReduceOp.SUM, x)


def _global_picks(z_e, count):
    """``count`` vectors evenly spaced over the global batch, rows i * n // count of the replicas' parts of z_e
    (n, D) in replica order (how a distributed dataset splits a batch), n their total: each replica fills the
    rows it holds and the sum over replicas gathers them (an all-reduce, which every cross-device op supports)."""
    local = ops.shape(z_e)[0]
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return ops.take(z_e, (ops.arange(count) * local) // count, axis=0)
    replica = context.replica_id_in_sync_group
    sizes = context.all_reduce(tf.distribute.ReduceOp.SUM,
                               tf.one_hot(replica, context.num_replicas_in_sync, dtype=tf.int32) * local)
    offset, n = tf.reduce_sum(sizes[:replica]), tf.reduce_sum(sizes)
    rows = (tf.range(count) * n) // count - offset
    mine = (rows >= 0) & (rows < local)
    taken = tf.gather(z_e, tf.clip_by_value(rows, 0, tf.maximum(local - 1, 0)))
    return context.all_reduce(tf.distribute.ReduceOp.SUM, taken * tf.cast(mine, z_e.dtype)[:, None])


def grid_shape(image_shape, filters, latent_dim):
    """(h, w, D): the shape of a VQ-VAE's code grid for images of ``image_shape``."""
    factor = networks.downsampling_factor("conv", filters)
    return (int(image_shape[0]) // factor, int(image_shape[1]) // factor, int(latent_dim))


def grid_features(image, filters):
    """The conv encoder's features of ``image`` (a Keras tensor): ``len(filters)`` stride-2 3x3 convolutions and one
    more 3x3 convolution, all ReLU, giving an (h, w, filters[-1]) grid (``grid_shape``'s h, w)."""
    h = image
    for f in filters:
        h = layers.Conv2D(f, 3, strides=2, padding="same", activation="relu")(h)
    return layers.Conv2D(filters[-1], 3, padding="same", activation="relu")(h)


def build_vq_encoder(image_shape, latent_dim, *, filters=(32, 64), codebook_size=CODEBOOK_SIZE, seed=None,
                     name="encoder"):
    """Builds the encoder and quantizer: images -> {"z_e", "z", "z_mean", "indices"}.

    ``z_e`` is the encoder's (h, w, D) grid, ``z`` (and ``z_mean``, the same: one code per image) the quantized
    grid with the straight-through gradient, ``indices`` the (h, w) codebook indices (int32).
    """
    networks.check_image_shape(image_shape, "conv", filters)
    image = keras.Input(image_shape, name="image")
    z_e = layers.Conv2D(latent_dim, 1, name="z_e", dtype="float32")(grid_features(image, filters))
    z, indices = VectorQuantizer(codebook_size, seed=seed, name="quantizer", dtype="float32")(z_e)
    z_mean = layers.Identity(name="z_mean", dtype="float32")(z)
    return keras.Model(image, {"z_e": z_e, "z": z, "z_mean": z_mean, "indices": indices}, name=name)


def build_vq_decoder(image_shape, latent_dim, *, filters=(32, 64), variance=False, output_channels=None,
                     name="decoder"):
    """Builds p(x | z_q): a (h, w, D) grid -> per-pixel logits (parameters) of shape (height, width,
    ``output_channels``; default the image's channels: ``tfvae.likelihoods.output_channels``)."""
    networks.check_image_shape(image_shape, "conv", filters)
    z = keras.Input(grid_shape(image_shape, filters, latent_dim), name="z")
    h = layers.Conv2D(filters[-1], 3, padding="same", activation="relu")(z)
    for f in reversed(filters):
        h = Conv2DTranspose(f, 3, strides=2, padding="same", activation="relu")(h)
    h = Conv2DTranspose(output_channels or image_shape[-1], 3, padding="same", name="logits")(h)
    logits = layers.Activation("linear", name="logits_float32", dtype="float32")(h)
    if variance:
        logits = DecoderVariance(name=networks.VARIANCE_LAYER, dtype="float32")(logits)
    return keras.Model(z, logits, name=name)


def quantizer(encoder):
    """The encoder's ``VectorQuantizer`` layer."""
    return next(layer for layer in encoder.layers if isinstance(layer, VectorQuantizer))


def perplexity(indices, num_codes):
    """exp(entropy) of the codes' usage in ``indices`` (any shape): between 1 and ``num_codes``."""
    one_hot = ops.one_hot(ops.reshape(indices, (-1,)), num_codes, dtype="float32")
    p = ops.mean(one_hot, axis=0)
    return ops.exp(-ops.sum(p * ops.log(p + 1e-10)))


@dataclasses.dataclass
class VQVAEHparams:
    """The codebook, the commitment weight and the PixelCNN prior's training length."""

    codebook_size: int = setting(CODEBOOK_SIZE, "vqvae: codebook vectors K.", lower=2, architecture=True)
    commitment: float = setting(COMMITMENT, "vqvae: weight of the commitment term (0.25, the paper's).", lower=0)
    prior_epochs: int = setting(10, "vqvae: epochs of the PixelCNN prior over the training codes, trained after the "
                                "last VQ-VAE epoch (resumed like the VQ-VAE).", lower=0)


class VQVAE(Autoencoder):
    """VQ-VAE: loss = reconstruction + commitment * sum_grid ||z_e - sg(z_q)||^2 (see the module docstring;
    van den Oord et al. 2017)."""

    title = "VQ-VAE"
    description = ("VQ-VAE (an EMA codebook of --codebook_size vectors of size --latent) with a PixelCNN prior over "
                   "its code grid, trained after it for --prior_epochs")
    Hparams = VQVAEHparams
    code_grid = True
    quantized = True
    has_learned_prior = True  # its PixelCNN (the "learned" sampler), trained after it: see ``learned_prior``
    trains_prior_after = True
    default_sampler = "learned"
    summary_terms = (("commitment", "commitment", ".2f"), ("perplexity", "codebook perplexity", ".1f"))

    @classmethod
    def check_config(cls, config):
        if config.arch != "conv":
            return f"--model=vqvae needs --arch=conv (its codes are a grid), got --arch={config.arch}"
        for name in ("adversarial", "feature_match"):
            if getattr(config, name):
                return f"--{name} is a sharpness term of the VAE family's decoders; a vqvae takes none"
        return None

    @classmethod
    def build(cls, image_shape, latent_dim, hparams, *, arch="conv", filters=(32, 64), reconstruction="bce",
              seed=None, adversarial=0.0, feature_match=0.0, name=None, **ignored):
        """``build_vqvae``'s model: ``latent_dim`` is the size D of the codebook vectors; ``hidden``,
        ``num_classes``, ``beta`` and ``recon_weight`` are not a vqvae's."""
        del ignored
        if adversarial or feature_match:
            raise ValueError("adversarial and feature_match are sharpness terms of the VAE family's decoders; a "
                             "vqvae takes neither")
        return build_vqvae(image_shape, latent_dim, arch=arch, filters=filters, codebook_size=hparams.codebook_size,
                           commitment=hparams.commitment, reconstruction=reconstruction, seed=seed,
                           name=name or "vqvae")

    def __init__(self, encoder, decoder, *, reconstruction="bce", commitment=COMMITMENT, **kwargs):
        super().__init__(encoder, decoder, reconstruction=reconstruction, beta=0.0, **kwargs)
        self.commitment = float(commitment)
        self.codebook_size = quantizer(encoder).num_codes
        self.commitment_tracker = keras.metrics.Mean(name="commitment")
        self.perplexity_tracker = keras.metrics.Mean(name="perplexity")

    @property
    def metrics(self):
        return super().metrics + [self.commitment_tracker, self.perplexity_tracker]

    def loss_terms(self, batch, out, training=False):
        """The parent's reconstruction terms plus ``commitment`` (unweighted), the constant ``kl`` h w log K and
        ``perplexity``; ``loss`` = reconstruction + commitment weight * commitment."""
        terms = super().loss_terms(batch, out, training=training)  # a plain autoencoder's: loss = reconstruction
        z_e = ops.cast(out["z_e"], "float32")
        per_image = ops.sum(ops.reshape(ops.square(z_e - ops.stop_gradient(out["z"])), (ops.shape(z_e)[0], -1)),
                            axis=-1)
        commitment = ops.mean(per_image)
        cells = math.prod(int(d) for d in out["indices"].shape[1:])
        terms.update(loss=terms["loss"] + self.commitment * commitment, commitment=commitment,
                     kl=ops.convert_to_tensor(cells * math.log(self.codebook_size), "float32"),
                     perplexity=perplexity(out["indices"], self.codebook_size))
        return terms

    @classmethod
    def learned_prior(cls, encoder, encode, sample_indices=None):
        """The run's learned prior (the ``learned`` sampler): index grids drawn by ``sample_indices`` (its PixelCNN,
        prior.keras, through the Run's one inference path), decoded into code grids by the codebook of its
        ``encoder``; see ``Autoencoder.learned_prior``."""
        del encode
        return pixelcnn.CodeGridPrior(sample_indices, quantizer(encoder).embeddings.numpy())

    def _update_trackers(self, terms, weight):
        track(self.commitment_tracker, terms["commitment"], weight)
        track(self.perplexity_tracker, terms["perplexity"], weight)
        return super()._update_trackers(terms, weight)


def build_vqvae(image_shape, latent_dim, *, arch="conv", filters=(32, 64), codebook_size=CODEBOOK_SIZE,
                commitment=COMMITMENT, reconstruction="bce", seed=None, name="vqvae"):
    """Builds a ``VQVAE`` (uncompiled).

    Args:
      image_shape: (height, width, channels); the sides must be divisible by ``2 ** len(filters)``.
      latent_dim: D, the size of each grid vector and codebook vector.
      arch: must be "conv" (the codes are a grid).
      filters: Conv2D filters per stride-2 layer.
      codebook_size: K, the number of codebook vectors.
      commitment: beta_commit, the weight of the commitment term.
      reconstruction: one of ``tfvae.losses.RECONSTRUCTION_LOSSES`` (as the VAE's); the decoder emits
        ``tfvae.likelihoods.output_channels`` values per pixel.
      seed: seed of the codebook's initial vectors.
    """
    if arch != "conv":
        raise ValueError(f"vqvae needs arch='conv' (its codes are a grid), got arch={arch!r}")
    if codebook_size < 2:
        raise ValueError(f"codebook_size must be at least 2, got {codebook_size}")
    encoder = build_vq_encoder(image_shape, latent_dim, filters=tuple(filters), codebook_size=codebook_size,
                               seed=seed)
    channels = likelihoods.output_channels(likelihoods.for_loss(reconstruction), image_shape[2])
    decoder = build_vq_decoder(image_shape, latent_dim, filters=tuple(filters), variance=reconstruction == "gaussian",
                               output_channels=channels)
    return VQVAE(encoder, decoder, reconstruction=reconstruction, commitment=commitment, name=name)
