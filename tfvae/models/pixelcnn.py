r"""A PixelCNN (van den Oord et al. 2016) over a VQ-VAE's grids of codebook indices: the VQ-VAE's learned prior.

The prior factorises the (h, w) grid k of indices in raster order (row by row, left to right):

    p(k) = prod_{t=1}^{h w} p(k_t | k_<t),       -log p(k) = sum_t CE(k_t, logits_t(k_<t)),

each factor a categorical over the K codes whose logits come from a stack of masked convolutions: the first
(mask "A") sees only positions strictly before its centre, the others (mask "B") their centre too, so the
logits at position t see k_<t and nothing at or after t (the property tests/test_vqvae.py checks by
perturbation). The loss is the negative log-likelihood above, summed over the grid and averaged over the batch
(``GridCrossEntropy``); divided by h w ln 2 it is the prior's bits per code (log2 K for a uniform prior).

Sampling is ancestral: h w passes, each drawing k_t from the logits at t given the codes drawn so far
(``autoregressive_sampler``, one compiled loop over the positions for a whole batch); a temperature tau divides
the logits (softmax(logits / tau): tau < 1 draws the likelier codes more often). The network is small:
an embedding of the indices, a 5x5 mask-A convolution, ``blocks`` residual 3x3 mask-B convolutions and two
1x1 convolutions to the K logits (the plain, not the gated, PixelCNN: its blind spot above-right of each
position costs some likelihood, not correctness: for some (earlier, later) pairs of positions the later one
never sees the earlier. How many on an 8x8 grid, and a blind-spot-free prior tried on the emoji, which learned
faster but drew no better best samples: docs/results_generation.md#emoji-a-vq-vae-with-a-finer-code-grid).
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from tfvae import picture_arrays

FILTERS = 64
BLOCKS = 4


def causal_mask(kernel_size, mask_type):
    """(kh, kw) float32 mask: 1 at positions before the centre in raster order, and at the centre for "B"."""
    kh, kw = kernel_size
    mask = np.zeros((kh, kw), "float32")
    mask[:kh // 2] = 1.0
    mask[kh // 2, :kw // 2 + (mask_type == "B")] = 1.0
    return mask


@keras.saving.register_keras_serializable(package="tfvae")
class MaskedConv2D(layers.Conv2D):
    """A Conv2D whose kernel is multiplied by a raster-order causal mask (``causal_mask``): "A" or "B"."""

    def __init__(self, filters, kernel_size, mask_type="B", **kwargs):
        super().__init__(filters, kernel_size, padding="same", **{k: v for k, v in kwargs.items() if k != "padding"})
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
        self.mask_type = mask_type

    def build(self, input_shape):
        super().build(input_shape)
        self.mask = ops.convert_to_tensor(causal_mask(self.kernel_size, self.mask_type)[:, :, None, None])

    def convolution_op(self, inputs, kernel):
        return super().convolution_op(inputs, kernel * ops.cast(self.mask, kernel.dtype))

    def get_config(self):
        return {**super().get_config(), "mask_type": self.mask_type}


@keras.saving.register_keras_serializable(package="tfvae")
class GridCrossEntropy(keras.losses.Loss):
    """-log p(k) per grid: the categorical cross-entropy from logits, summed over the grid (mean over the batch)."""

    def __init__(self, name="grid_cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return grid_nll(y_true, y_pred)


def grid_nll(indices, logits):
    """-log p(k) of each grid in nats: (n,) from int indices (n, h, w) and logits (n, h, w, K)."""
    indices = ops.cast(indices, "int32")
    per_code = keras.losses.sparse_categorical_crossentropy(indices, ops.cast(logits, "float32"), from_logits=True)
    return ops.sum(ops.reshape(per_code, (ops.shape(indices)[0], -1)), axis=-1)


def build_pixelcnn(grid, num_codes, *, filters=FILTERS, blocks=BLOCKS, seed=0, name="prior"):
    """Builds the PixelCNN: int32 index grids (n, h, w) -> logits (n, h, w, K).

    Args:
      grid: (h, w), the code grid's sides.
      num_codes: K, the codebook's size.
      filters: channels of the hidden layers.
      blocks: residual mask-B blocks.
      seed: seed of the initial weights (each layer's initializer gets its own, from it).
    """
    seeds = iter(range(seed * 100, seed * 100 + 100))

    def init():
        return keras.initializers.GlorotUniform(seed=next(seeds))

    codes = keras.Input(tuple(grid), dtype="int32", name="codes")
    h = layers.Embedding(num_codes, filters, embeddings_initializer=keras.initializers.RandomUniform(
        -0.05, 0.05, seed=next(seeds)))(codes)
    h = MaskedConv2D(filters, 5, mask_type="A", activation="relu", kernel_initializer=init())(h)
    for _ in range(blocks):
        h = layers.Add()([h, MaskedConv2D(filters, 3, mask_type="B", activation="relu", kernel_initializer=init())(h)])
    h = layers.Conv2D(filters, 1, activation="relu", kernel_initializer=init())(h)
    logits = layers.Conv2D(num_codes, 1, name="logits", dtype="float32", kernel_initializer=init())(h)
    return keras.Model(codes, logits, name=name)


class CodeGridPrior:
    """A VQ-VAE's learned prior as a sampler of codes: index grids drawn from its PixelCNN
    (``draw_indices(n, seed, temperature)`` -> int (n, h, w)), turned into code grids (n, h, w, D) through its
    codebook (K, D)."""

    name = "learned"

    def __init__(self, draw_indices, codebook):
        self.draw_indices, self.codebook = draw_indices, np.asarray(codebook, "float32")

    def sample(self, n, seed=0, temperature=1.0):
        """``n`` code grids, float32 (n, h, w, D), reproducible from ``seed``; each index drawn from the softmax of
        the PixelCNN's logits / ``temperature`` (1: the prior itself; below 1 sharper, above 1 flatter)."""
        temperature = picture_arrays.check_temperature(temperature)
        return self.codebook[np.asarray(self.draw_indices(n, seed, temperature))]


def autoregressive_sampler(model):
    """A compiled ``draw(n, seed, temperature)`` -> int32 (n, h, w): ancestral samples of the PixelCNN ``model``,
    each position's index drawn from the softmax of its logits / ``temperature`` (a float32 scalar tensor, so a
    new temperature does not retrace).

    ``seed`` is an int64 (2,) tensor; each position's draw uses it folded with the position (stateless), so a
    batch's draws depend on ``seed``, ``n`` and ``temperature`` only.
    """
    height, width = (int(d) for d in model.inputs[0].shape[1:3])
    cells = height * width

    def step(t, grid, seed, temperature):
        logits = model(grid, training=False)[:, t // width, t % width, :]
        step_seed = tf.random.experimental.stateless_fold_in(seed, tf.cast(t, tf.int64))
        code = tf.random.stateless_categorical(tf.cast(logits, tf.float32) / temperature, 1, step_seed,
                                               dtype=tf.int32)
        return t + 1, grid + tf.reshape(tf.one_hot(t, cells, dtype=tf.int32), (1, height, width)) * code[:, :, None]

    @tf.function(reduce_retracing=True, autograph=False)
    def draw(n, seed, temperature):
        grid = tf.zeros(tf.stack([n, height, width]), tf.int32)
        _, grid = tf.while_loop(lambda t, _: t < cells, lambda t, g: step(t, g, seed, temperature),
                                (tf.constant(0), grid),
                                shape_invariants=(tf.TensorShape([]), tf.TensorShape([None, height, width])))
        return grid

    return draw
