"""tf.data pipelines that serve uint8 images as float batches, and static binarization."""

import dataclasses

import numpy as np
import tensorflow as tf

from tfvae.data import noise as noise_lib
from tfvae.data.images import ImageFiles

BINARIZE_MODES = ("none", "static", "dynamic")
_EPOCH_SEED_STRIDE = 1_000_003  # a prime: (seed, epoch) -> one int64 seed, distinct for epochs below it


def make_pipeline(x, y: np.ndarray | None, num_classes: int, batch_size: int, *, shuffle: bool,
                  binarize: str = "none", seed: int = 0, drop_remainder: bool = False, min_last_batch: int = 1,
                  epoch: int = 0,
                  repeat: bool = False, skip_batches: int = 0, noise=None, flip: bool = False,
                  constants: dict | None = None) -> tf.data.Dataset:
    """Builds a tf.data pipeline of batches of float images in [0, 1] and one-hot labels.

    Epoch ``e`` is a function of ``(seed, e)`` alone: its order (a shuffle seeded by both) and its batches' random
    draws (dynamic binarization, noise, flips: stateless, seeded by ``(seed, e)`` and the batch's index). So epoch
    ``e`` can be built on its own, finite, with its length known (training fits one epoch's pipeline at a time, so
    that Keras ends each epoch with a short call however many steps a call runs), and a resumed run serves exactly
    the batches an uninterrupted one would.

    Args:
        x: uint8 images (N, H, W, C), or `ImageFiles`, decoded batch by batch as they are served.
        y: int class ids (N,), or None for unlabeled data.
        num_classes: depth of the one-hot labels (ignored when y is None).
        batch_size: images per batch.
        shuffle: shuffle the whole dataset, in a new order every epoch (seeded by `seed` and the epoch).
        binarize: "none" serves grey levels x / 255. "static" also serves x / 255: the caller passes data
            already binarized once with `binarize_static`, so values are exactly 0 or 1. "dynamic" serves a
            fresh Bernoulli(x / 255) sample every time an image is served, i.e. a new one every epoch;
            the draws depend only on `seed` and the epoch, so runs are reproducible.
        seed: seed for shuffling and the random draws.
        drop_remainder: drop the last incomplete batch.
        min_last_batch: a last batch smaller than this joins the one before it (unshuffled data only): evaluation
            over several replicas gives each replica at least one image (a short last batch of fewer images than
            replicas would leave one with none, and TensorFlow's convolutions mis-shape an empty batch).
        epoch: the (0-based) epoch served.
        repeat: serve the epochs `epoch`, `epoch` + 1, ... one after the other as one endless stream (each epoch
            ends with its own incomplete batch, if any).
        skip_batches: start this many batches in, without decoding or preparing them.
        noise: a `tfvae.data.noise.Noise`, or None: each batch then also carries "input", the images corrupted
            with fresh noise drawn from the batch's seed (after dynamic binarization), while "image" stays clean.
        flip: mirror each image left-right with probability 1/2 (data augmentation), a fresh draw every time it
            is served, from the batch's seed: the same stream for the same `seed`, and a resumed stream
            (`skip_batches`) flips what an uninterrupted one would. Applied before binarization and noise, so a
            denoising run's input and target are the same mirror image.
        constants: a dict the caller keeps while `x` and `y` stay unchanged (a training's epochs): the arrays'
            copies in TensorFlow, made by the first call and reused by the next (a large array's copy costs about
            as much as a short epoch's steps).

    Returns:
        A dataset of dicts {"image": float32 (B, H, W, C)} plus "label": float32 (B, num_classes) when y is
        given, and "input" (the corrupted images) when noise is given.

    Raises:
        ValueError: unknown `binarize`, or labels without a positive `num_classes`.
    """
    if binarize not in BINARIZE_MODES:
        raise ValueError(f"binarize must be one of {', '.join(BINARIZE_MODES)}, got {binarize!r}")
    if y is not None and num_classes < 1:
        raise ValueError(f"num_classes must be positive for labeled data, got {num_classes}")
    files = x if isinstance(x, ImageFiles) else None
    count = len(x)
    # The pipeline serves batches of indices; the images (and labels) are gathered, or decoded, batch by batch
    # after batching and skipping. The arrays are copied into TensorFlow once, here.
    constants = {} if constants is None else constants

    def constant(array, dtype=None):
        key = (id(array), dtype)
        if key not in constants:  # the array stays referenced beside its copy: its id is not reused meanwhile
            constants[key] = (array, tf.constant(np.asarray(array, dtype)))
        return constants[key][1]

    images = None if files is not None else constant(x)
    labels = None if y is None else constant(y, np.int64)

    @tf.autograph.experimental.do_not_convert  # plain Python: its branches are on Python values
    def one_epoch(e):
        # The epoch's order and each batch's draws are stateless, seeded by (seed, epoch) and the batch's index:
        # nothing carries from one epoch or iterator to the next, and no global seed enters.
        epoch_seed = tf.cast(seed, tf.int64) * _EPOCH_SEED_STRIDE + tf.cast(e, tf.int64)
        order = tf.range(count, dtype=tf.int64)
        if shuffle:
            order = tf.random.experimental.stateless_shuffle(order, seed=tf.stack([epoch_seed, 0]))
        ds = tf.data.Dataset.from_tensor_slices(order)
        short = count % batch_size
        if 0 < short < min_last_batch and count > batch_size and not (shuffle or drop_remainder):
            head = count - batch_size - short  # the last whole batch and the short one are served as one
            ds = ds.take(head).batch(batch_size).concatenate(ds.skip(head).batch(batch_size + short))
        else:
            ds = ds.batch(batch_size, drop_remainder=drop_remainder)
        batch_seeds = tf.data.Dataset.range(tf.int64.max).map(lambda i: tf.stack([epoch_seed, i]))
        return tf.data.Dataset.zip(ds, batch_seeds)

    if repeat:
        ds = tf.data.Dataset.range(epoch, tf.int64.max).flat_map(one_epoch)
    else:
        ds = one_epoch(epoch)
    if skip_batches:
        ds = ds.skip(skip_batches)

    corruption = noise  # ("noise" is a local name in prepare)

    def prepare(index, noise_seed):
        if files is not None:
            pixels = tf.ensure_shape(tf.numpy_function(files.decode_batch, [index], tf.uint8, stateful=False),
                                     (None, *files.shape[1:]))
        else:
            pixels = tf.gather(images, index)
        image = tf.cast(pixels, tf.float32) / 255.0
        if flip:  # a seed of its own, so that the binarization and noise draws stay those of a plain run
            mirror = tf.random.stateless_uniform(tf.shape(image)[:1], seed=tf.random.experimental.stateless_fold_in(
                noise_seed, 2)) < 0.5
            image = tf.where(mirror[:, None, None, None], tf.reverse(image, axis=[2]), image)
        if binarize == "dynamic":
            noise = tf.random.stateless_uniform(tf.shape(image), seed=noise_seed)
            image = tf.cast(noise < image, tf.float32)
        out = {"image": image}
        if corruption is not None:  # a seed of its own, so that the binarization draws stay those of a plain run
            out["input"] = noise_lib.corrupt(image, corruption,
                                             tf.random.experimental.stateless_fold_in(noise_seed, 1))
        if labels is not None:
            out["label"] = tf.one_hot(tf.gather(labels, index), num_classes, dtype=tf.float32)
        return out

    return ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def binarize_static(x_uint8, seed: int = 0):
    """Draws one fixed binary copy of the data: pixel ~ Bernoulli(x / 255), as uint8 0 or 255.

    Args:
        x_uint8: uint8 images, any shape, or `ImageFiles` (then drawn as each image is decoded).
        seed: seed of the single draw.

    Returns:
        uint8 array of the same shape holding 0 or 255 (or `ImageFiles` that decode to it).
    """
    if isinstance(x_uint8, ImageFiles):
        return dataclasses.replace(x_uint8, binarize_seed=seed)
    # integers in [0, 255) < x has probability exactly x / 255 for x in 0..255, without float copies.
    noise = np.random.default_rng(seed).integers(0, 255, size=x_uint8.shape, dtype=np.uint8)
    return np.where(noise < x_uint8, 255, 0).astype(np.uint8)
