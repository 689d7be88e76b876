"""The checks a finished run puts its arguments through: images, class labels and latent codes.

Each function returns its argument in the form the networks take, or raises ``ArgumentError`` naming the
argument (the scripts translate the name into their flag).
"""

import numpy as np

from tfvae import picture_arrays
from tfvae.errors import ArgumentError


def images(x, image_shape):
    """``x`` as float32 (n, H, W, C) in [0, 1], for a run whose images are ``image_shape``.

    uint8 pixels are divided by 255; float pixels must already lie in [0, 1]; (n, H, W) is taken for one channel.
    """
    x = np.asarray(x)
    if x.ndim == 3 and image_shape[-1] == 1:
        x = x[..., None]
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(image_shape):
        shape = ", ".join(map(str, image_shape))
        raise ArgumentError("images", f"images of shape {x.shape}, but the run's are (n, {shape})"
                                      f"{' or (n, H, W)' if image_shape[-1] == 1 else ''}")
    if x.dtype == np.uint8:
        return x.astype("float32") / 255.0
    if not np.issubdtype(x.dtype, np.floating):
        raise ArgumentError("images", f"images of dtype {x.dtype}: pass uint8 (0..255) or float in [0, 1]")
    x = x.astype("float32")
    if x.size and (not np.isfinite(x).all() or x.min() < 0.0 or x.max() > 1.0):
        raise ArgumentError("images", f"float images must lie in [0, 1] (these span {np.nanmin(x):g} to "
                                      f"{np.nanmax(x):g}); divide uint8 pixels by 255, or pass them as uint8")
    return x


def condition(labels, count, num_classes, holder):
    """The networks' label input for ``count`` items: one-hot (count, K) for a cvae, else None.

    Args:
      labels: class ids (one per item, or one int for all), or None.
      count: how many items they label.
      num_classes: K for a cvae, None for a model that takes no labels.
      holder: what the run is, for the messages (e.g. "runs/x holds a vae").
    """
    if num_classes is None:
        if labels is not None:
            raise ArgumentError("labels", f"labels given, but {holder}: only a cvae takes labels")
        return None
    if labels is None:
        raise ArgumentError("labels", f"labels=None, but {holder}: pass labels (class ids 0..{num_classes - 1})")
    ids = np.asarray(labels)
    if ids.ndim == 0:
        ids = np.full(count, ids)
    if ids.shape != (count,) or not np.issubdtype(ids.dtype, np.integer):
        raise ArgumentError("labels", f"labels must be {count} integer class ids (or one int for all); got "
                                      f"shape {ids.shape}, dtype {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
        bad = ids.max() if ids.max() >= num_classes else ids.min()
        raise ArgumentError("labels", f"label {bad} is not a class of this run (0..{num_classes - 1})")
    return picture_arrays.one_hot(ids, num_classes)


def codes(z, latent_dim):
    """``z`` as float32 (n, latent_dim); ``latent_dim`` may be a shape, e.g. a vqvae's (h, w, D) grid."""
    shape = tuple(latent_dim) if isinstance(latent_dim, (tuple, list)) else (latent_dim,)
    z = np.asarray(z, dtype="float32")
    if z.shape[1:] != shape:
        wanted = ", ".join(map(str, shape))
        raise ArgumentError("z", f"latent codes of shape {z.shape}, but the run's are (n, {wanted})")
    return z
