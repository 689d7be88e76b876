"""Arrays for pictures of a latent space: latent grids, prior samples, interpolations, tiles, the scatter plot.

Pure functions from arrays to arrays (no model runs here: forward passes are ``tfvae.inference``'s);
``save_png``/``save_scatter`` write files. The 2-D latent manifold is
the documents' figure: z on ``scipy.stats.norm.ppf(linspace(0.01, 0.99, n))`` along both axes, so that
equal steps in the picture are equal steps in prior probability. ``check_temperature`` is the one check of a
sampler's temperature (``tfvae.samplers``), for the samplers and the models' learned priors alike.
"""

import math
from statistics import NormalDist

import numpy as np

from tfvae.errors import ArgumentError


def manifold_grid(n, lo=0.01, hi=0.99):
    """Latent points of an n x n grid over the 2-D prior, row-major, top row = largest z[1].

    Returns:
      float32 array of shape (n * n, 2).
    """
    # The standard library's normal quantile (scipy.stats.norm.ppf to 1e-15): importing scipy.stats would cost
    # sample.py's start-up more than the grid (docs/performance.md#start-up-costs-the-code-avoids).
    ticks = np.array([NormalDist().inv_cdf(p) for p in np.linspace(lo, hi, n)])
    z1, z0 = np.meshgrid(ticks[::-1], ticks, indexing="ij")
    return np.stack([z0.ravel(), z1.ravel()], axis=-1).astype("float32")


def prior_samples(count, latent_dim, seed=0):
    """``count`` draws from N(0, I) in ``latent_dim`` dimensions, reproducible from ``seed``."""
    return np.random.default_rng(seed).standard_normal((count, latent_dim)).astype("float32")


def is_number(value):
    """Whether ``value`` is a finite real number (an int or float of Python or numpy; a bool is not one)."""
    return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating)) and \
        math.isfinite(value)


def check_temperature(temperature):
    """``temperature`` as a float: a finite number above 0.

    Raises:
      ArgumentError: anything else (a bool, a string, 0, a negative number, inf, nan).
    """
    if not is_number(temperature) or temperature <= 0:
        raise ArgumentError("temperature", f"temperature={temperature!r}: the draws' spread is multiplied by it, so "
                                           "it must be a number above 0 (1: the density itself)")
    return float(temperature)


def one_hot(labels, num_classes):
    return np.eye(num_classes, dtype="float32")[np.asarray(labels)]


def interpolate(z_start, z_end, steps):
    """``steps`` points on the straight line from ``z_start`` to ``z_end`` (both included)."""
    z_start, z_end = np.asarray(z_start), np.asarray(z_end)
    t = np.linspace(0.0, 1.0, steps, dtype="float32").reshape((steps,) + (1,) * z_start.ndim)
    return (1.0 - t) * z_start[None] + t * z_end[None]


def interleave_rows(top, bottom, cols):
    """Stacks ``cols``-wide rows of ``top`` and ``bottom`` alternately (originals above reconstructions)."""
    rows = len(top) // cols
    pairs = [np.concatenate([top[r * cols:(r + 1) * cols], bottom[r * cols:(r + 1) * cols]]) for r in range(rows)]
    return np.concatenate(pairs)


def denoise_rows(clean, noisy, denoised, cols):
    """Groups of three rows ``cols`` images wide: clean images, their noisy copies, and the denoised images."""
    groups = len(clean) // cols
    parts = [a[g * cols:(g + 1) * cols] for g in range(groups) for a in (clean, noisy, denoised)]
    return tile(np.concatenate(parts), 3 * groups, cols)


def tile(images, rows, cols, pad=0):
    """Tiles (rows * cols, H, W, C) images into one (rows * H, cols * W, C) picture."""
    images = np.asarray(images)[: rows * cols]
    count, height, width, channels = images.shape
    if count < rows * cols:
        images = np.concatenate([images, np.zeros((rows * cols - count, height, width, channels), images.dtype)])
    if pad:
        images = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), constant_values=1)
        height, width = height + 2 * pad, width + 2 * pad
    grid = images.reshape(rows, cols, height, width, channels).transpose(0, 2, 1, 3, 4)
    return grid.reshape(rows * height, cols * width, channels)


def save_png(path, picture):
    """Writes a (H, W, C) float picture in [0, 1] as PNG (grey for one channel)."""
    from matplotlib import image as mpimage  # imported here: sampling a grid never needs pyplot

    picture = np.clip(picture, 0.0, 1.0)
    if picture.shape[-1] == 1:
        mpimage.imsave(path, picture[..., 0], cmap="gray", vmin=0.0, vmax=1.0)
    else:
        mpimage.imsave(path, picture)
    return path


def principal_plane(z):
    """The codes' mean and their first two principal axes, (latent,) and (2, latent) unit vectors (the identity's
    first two rows, zero-padded, when fewer than two codes or a 1-D latent give no plane)."""
    z = np.asarray(z, dtype="float64")
    mean = z.mean(axis=0)
    if len(z) < 2 or z.shape[1] < 2:
        return mean, np.eye(2, z.shape[1])
    _, _, vt = np.linalg.svd(z - mean, full_matrices=False)
    return mean, vt[:2]


def project_2d(z):
    """z itself when 2-D, else its projection on the first two principal components."""
    z = np.asarray(z, dtype="float64")
    if z.shape[1] <= 2:
        return np.pad(z, ((0, 0), (0, 2 - z.shape[1]))), ("z[0]", "z[1]")
    mean, axes = principal_plane(z)
    return (z - mean) @ axes.T, ("PC 1", "PC 2")


def save_scatter(path, z, labels=None, class_names=None, title=""):
    """Scatter plot of latent means coloured by class (the documents' latent-space figure)."""
    from matplotlib.figure import Figure  # no pyplot: no backend is chosen or switched

    points, (xlabel, ylabel) = project_2d(z)
    fig = Figure(figsize=(8, 7))
    ax = fig.subplots()
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.5)
    else:
        sc = ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", s=2, alpha=0.7)
        ticks = np.unique(labels)
        cbar = fig.colorbar(sc, ax=ax, ticks=ticks)
        if class_names:
            cbar.ax.set_yticklabels([class_names[i] for i in ticks])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def traversal_codes(z, dims, n, lo=0.05, hi=0.95):
    """Codes of a latent traversal: row r is ``z`` with dimension ``dims[r]`` swept over n prior quantiles.

    The sweep is ``norm.ppf(linspace(lo, hi, n))``, as in the documents' manifold; the other coordinates keep
    their values in ``z``.

    Returns:
      float32 array (len(dims) * n, len(z)), row-major.
    """
    ticks = np.array([NormalDist().inv_cdf(p) for p in np.linspace(lo, hi, n)], dtype="float32")
    codes = np.tile(np.asarray(z, dtype="float32"), (len(dims) * n, 1))
    for row, dim in enumerate(dims):
        codes[row * n:(row + 1) * n, dim] = ticks
    return codes


def label_rows(picture, labels, row_height, font_size=None):
    """``picture`` with a left margin holding one text label per ``row_height`` pixels (white on black)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=font_size or max(10, min(row_height // 2, 16)))
    draw = ImageDraw.Draw(Image.new("L", (1, 1)))
    width = max(int(draw.textlength(text, font=font)) for text in labels) + 8
    height, _, channels = picture.shape
    margin = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(margin)
    for row, text in enumerate(labels):
        draw.text((4, row * row_height + row_height / 2), text, fill=255, font=font, anchor="lm")
    margin = np.repeat(np.asarray(margin, dtype="float32")[..., None] / 255.0, channels, axis=-1)
    return np.concatenate([margin, np.asarray(picture, dtype="float32")], axis=1)
