"""tf.data pipelines that serve uint8 images as float batches, and static binarization."""

import dataclasses

import numpy as np
import tensorflow as tf

from tfvae.data import noise as noise_lib
from tfvae.data.images import ImageFiles

BINARIZE_MODES = ("none", "static", "dynamic")


def make_pipeline(x, y: np.ndarray | None, num_classes: int, batch_size: int, *, shuffle: bool,
                  binarize: str = "none", seed: int = 0, drop_remainder: bool = False, repeat: bool = False,
                  skip_batches: int = 0, noise=None, flip: bool = False) -> tf.data.Dataset:
    """Builds a tf.data pipeline of batches of float images in [0, 1] and one-hot labels.

    Args:
        x: uint8 images (N, H, W, C), or `ImageFiles`, decoded batch by batch as they are served.
        y: int class ids (N,), or None for unlabeled data.
        num_classes: depth of the one-hot labels (ignored when y is None).
        batch_size: images per batch.
        shuffle: reshuffle the whole dataset every epoch (seeded by `seed`).
        binarize: "none" serves grey levels x / 255. "static" also serves x / 255: the caller passes data
            already binarized once with `binarize_static`, so values are exactly 0 or 1. "dynamic" serves a
            fresh Bernoulli(x / 255) sample every time an image is served, i.e. a new one every epoch;
            the draws depend only on `seed`, so runs are reproducible.
        seed: seed for shuffling and dynamic binarization.
        drop_remainder: drop the last incomplete batch.
        repeat: serve the epochs one after the other as one endless stream (each epoch ends with its own
            incomplete batch, if any); its order depends only on `seed`.
        skip_batches: start the stream this many batches in, without decoding or preparing them.
        noise: a `tfvae.data.noise.Noise`, or None: each batch then also carries "input", the images corrupted
            with fresh noise drawn from the batch's seed (after dynamic binarization), while "image" stays clean.
        flip: mirror each image left-right with probability 1/2 (data augmentation), a fresh draw every time it
            is served, from the batch's seed: the same stream for the same `seed`, and a resumed stream
            (`skip_batches`) flips what an uninterrupted one would. Applied before binarization and noise, so a
            denoising run's input and target are the same mirror image.

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
    if files is not None:  # File indices here; the images are decoded after batching (and skipping).
        tensors = {"index": np.arange(len(files), dtype=np.int64)}
    else:
        tensors = {"image": x}
    if y is not None:
        tensors["label"] = np.asarray(y, np.int64)
    ds = tf.data.Dataset.from_tensor_slices(tensors)
    if files is None:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if repeat:
        ds = ds.repeat()
    # One stateless seed per batch, from a stream that is re-drawn every epoch but fixed by `seed`. (A plain
    # tf.random.uniform in the map would repeat the same noise every epoch once a global seed is set.)
    noise_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    ds = tf.data.Dataset.zip(ds, noise_seeds)
    if skip_batches:
        ds = ds.skip(skip_batches)

    corruption = noise  # ("noise" is a local name in prepare)

    def prepare(batch, noise_seed):
        if files is not None:
            pixels = tf.numpy_function(files.decode_batch, [batch["index"]], tf.uint8, stateful=False)
            batch = {**batch, "image": tf.ensure_shape(pixels, (None, *files.shape[1:]))}
        image = tf.cast(batch["image"], tf.float32) / 255.0
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
        if "label" in batch:
            out["label"] = tf.one_hot(batch["label"], num_classes, dtype=tf.float32)
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
