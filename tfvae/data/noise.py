r"""Corrupted inputs for denoising autoencoders: a small grammar and the seeded corruption itself.

A denoising autoencoder (Vincent et al. 2008, 2010) encodes a corrupted copy x~ of an image and is scored on
the clean image x: the loss is that of the clean image under the decoder of q(z|x~). ``--noise`` names the
corruption as ``KIND:AMOUNT``:

==================  =========================================================================================
``none``            no corruption (the default)
``gaussian:S``      additive Gaussian noise: x~ = clip(x + S * N(0, 1), 0, 1), drawn per pixel and channel
``saltpepper:P``    each pixel, with probability P, is set to black (0) or white (1), each equally likely
                    (all channels of the pixel together)
``mask:P``          masking noise: each pixel, with probability P, is set to 0 (all channels together)
==================  =========================================================================================

S is a standard deviation in units of the [0, 1] pixel range (S > 0); P is a probability (0 < P <= 1).

`corrupt` draws the noise with stateless random ops from an explicit seed, so a corruption is a pure function of
(images, noise, seed). The training pipeline (`make_pipeline`) derives that seed from the stream's
per-batch seed: every time an image is served it gets fresh noise, the draws depend only on ``--seed``, and a
resumed run (which skips the batches already trained on) draws exactly the noise an uninterrupted one would.
`corrupt_array` corrupts a numpy array reproducibly (the test images of sample.py and evaluate.py).
"""

import dataclasses
import math

import numpy as np
import tensorflow as tf

from tfvae.errors import TfvaeError

NOISE_KINDS = ("gaussian", "saltpepper", "mask")
NOISE_GRAMMAR = "none, gaussian:STDDEV (e.g. gaussian:0.3), saltpepper:PROB (e.g. saltpepper:0.1) or mask:PROB " \
                "(e.g. mask:0.25)"


class NoiseError(TfvaeError):
    """A ``--noise`` value that does not parse; str(e) is one line with the grammar."""


@dataclasses.dataclass(frozen=True)
class Noise:
    """A corruption: ``kind`` in NOISE_KINDS and its ``amount`` (a standard deviation or a probability)."""

    kind: str
    amount: float

    def __str__(self):
        return f"{self.kind}:{self.amount:g}"


def parse_noise(text):
    """Parses ``--noise``.

    Args:
      text: "none" or "" (no corruption), or ``KIND:AMOUNT`` (see the module docstring); a `Noise` passes through.

    Returns:
      A `Noise`, or None for no corruption.

    Raises:
      NoiseError: the text does not follow the grammar, or the amount is out of range.
    """
    if text is None or isinstance(text, Noise):
        return text
    text = str(text).strip().lower()
    if text in ("", "none"):
        return None
    kind, sep, amount = text.partition(":")
    if kind not in NOISE_KINDS or not sep:
        raise NoiseError(f"--noise={text!r} is not a corruption; use {NOISE_GRAMMAR}")
    try:
        value = float(amount)
    except ValueError:
        raise NoiseError(f"--noise={text!r}: {amount!r} is not a number; use {NOISE_GRAMMAR}") from None
    if kind == "gaussian" and not (math.isfinite(value) and value > 0):
        raise NoiseError(f"--noise={text!r}: the standard deviation must be a positive number")
    if kind != "gaussian" and not 0 < value <= 1:
        raise NoiseError(f"--noise={text!r}: the probability must be in (0, 1]")
    return Noise(kind, value)


def corrupt(images, noise, seed):
    """Corrupts a batch of images with stateless noise.

    Args:
      images: float (B, H, W, C) in [0, 1].
      noise: a `Noise` (None returns ``images`` unchanged).
      seed: int tensor of shape (2,), the stateless seed; the same seed gives the same noise.

    Returns:
      float32 images of the same shape, in [0, 1].
    """
    images = tf.convert_to_tensor(images, tf.float32)
    if noise is None:
        return images
    seed = tf.cast(seed, tf.int64)
    if noise.kind == "gaussian":
        eps = tf.random.stateless_normal(tf.shape(images), seed=seed)
        return tf.clip_by_value(images + noise.amount * eps, 0.0, 1.0)
    shape = tf.shape(images)
    pixels = tf.concat([shape[:-1], [1]], axis=0)  # one draw per pixel, shared by its channels
    hit = tf.random.stateless_uniform(pixels, seed=seed) < noise.amount
    if noise.kind == "mask":
        return tf.where(hit, tf.zeros_like(images), images)
    white = tf.random.stateless_uniform(pixels, seed=tf.random.experimental.stateless_fold_in(seed, 1)) < 0.5
    value = tf.broadcast_to(tf.cast(white, tf.float32), shape)
    return tf.where(hit, value, images)


def corrupt_array(images, noise, seed=0, batch_size=4096):
    """`corrupt` for a numpy array, reproducible from ``seed`` (batch ``i`` uses the stateless seed (seed, i)).

    Returns:
      float32 numpy array of the same shape.
    """
    images = np.asarray(images, np.float32)
    if noise is None:
        return images
    out = [corrupt(images[i:i + batch_size], noise, tf.constant([seed, i // batch_size], tf.int64)).numpy()
           for i in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else images.copy()
