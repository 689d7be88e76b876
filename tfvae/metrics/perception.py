r"""What a person sees: the sharpness and colourfulness of images, per image, and as ratios to real images'.

A low squared error can hide what a person sees first: on pictures with white backgrounds the error is
dominated by the background, and a decoder that draws the background right and the object as a grey, blurred
smear scores well. These two measures look at the pictures alone, with no reference image, so they apply to
samples as well as to reconstructions; evaluation compares them as ratios to the real test images' (1.0: as
sharp, or as colourful, as the real pictures on average).

Both work on float images in [0, 1] of shape (n, H, W, C), C = 1 (grey) or 3 (RGB), and report on the
0..255 scale of 8-bit pixels (the pixel values are multiplied by 255 first), as Hasler & Suesstrunk did, so
colourfulness values read against their table.

Sharpness
---------
The mean absolute response of the 4-neighbour Laplacian of the grey image,

    sharpness = mean over interior pixels (i, j) of |g[i-1, j] + g[i+1, j] + g[i, j-1] + g[i, j+1] - 4 g[i, j]|,

where the grey image g is the channel itself for C = 1, and ITU-R BT.601 luma
g = 0.299 R + 0.587 G + 0.114 B for C = 3. Border choice: only interior pixels (1 <= i <= H-2, 1 <= j <= W-2)
are used, no padding, so a border adds no edge of its own; images need H, W >= 3. A flat image scores 0; a
checkerboard of black and white pixels scores 4 x 255 = 1020, the largest possible value.

Colourfulness (Hasler & Suesstrunk 2003)
----------------------------------------
With rg = R - G and yb = (R + G) / 2 - B per pixel (0..255),

    M = sqrt(std(rg)^2 + std(yb)^2) + 0.3 sqrt(mean(rg)^2 + mean(yb)^2),

means and (population, ddof = 0) standard deviations over the image's pixels, on the paper's 0..255 scale
(0: not colourful; the paper maps its seven rated categories onto this scale). A pure red
image scores 0.3 x 255 x sqrt(1.25) = 85.5. Grey images (C = 1) have colourfulness 0 by definition (R = G = B
gives rg = yb = 0), so a ratio of grey images' colourfulness is undefined (``ratio`` returns None).
"""

import numpy as np

SCALE = 255.0  # both measures on the 0..255 scale of 8-bit pixels
LUMA_BT601 = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma weights of R, G, B
_CHUNK = 256  # images per vectorised step (bounds the float64 temporaries)


def _check(images):
    x = np.asarray(images)
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"need images of shape (n, H, W, C) with C = 1 or 3, got shape {x.shape}")
    return x


def grey(images):
    """Grey images (n, H, W) on the 0..255 scale: the channel itself for C = 1, BT.601 luma for C = 3."""
    x = _check(images).astype("float64") * SCALE
    if x.shape[-1] == 1:
        return x[..., 0]
    return x @ np.asarray(LUMA_BT601)


def sharpness(images):
    """Per-image mean absolute 4-neighbour Laplacian of the grey image, on interior pixels (0..255 scale).

    Args:
      images: float (n, H, W, C) in [0, 1], C = 1 or 3, H and W at least 3.

    Returns:
      float64 array (n,); 0 for a flat image, at most 1020.
    """
    x = _check(images)
    if x.shape[1] < 3 or x.shape[2] < 3:
        raise ValueError(f"sharpness needs images of at least 3x3 pixels (interior pixels only), got "
                         f"{x.shape[1]}x{x.shape[2]}")
    out = np.empty(len(x))
    for start in range(0, len(x), _CHUNK):
        g = grey(x[start:start + _CHUNK])
        laplacian = (g[:, :-2, 1:-1] + g[:, 2:, 1:-1] + g[:, 1:-1, :-2] + g[:, 1:-1, 2:]
                     - 4.0 * g[:, 1:-1, 1:-1])
        out[start:start + _CHUNK] = np.abs(laplacian).mean(axis=(1, 2))
    return out


def colourfulness(images):
    """Per-image colourfulness M of Hasler & Suesstrunk 2003 (0..255 scale); 0 for grey images (C = 1).

    Args:
      images: float (n, H, W, C) in [0, 1], C = 1 or 3.

    Returns:
      float64 array (n,), >= 0.
    """
    x = _check(images)
    if x.shape[-1] == 1:
        return np.zeros(len(x))
    out = np.empty(len(x))
    for start in range(0, len(x), _CHUNK):
        part = x[start:start + _CHUNK].astype("float64") * SCALE
        r, g, b = part[..., 0], part[..., 1], part[..., 2]
        rg = (r - g).reshape(len(part), -1)
        yb = (0.5 * (r + g) - b).reshape(len(part), -1)
        spread = np.sqrt(rg.var(axis=1) + yb.var(axis=1))
        centre = np.sqrt(rg.mean(axis=1) ** 2 + yb.mean(axis=1) ** 2)
        out[start:start + _CHUNK] = spread + 0.3 * centre
    return out


def ratio(value, reference):
    """``value / reference``, or None where the reference is 0 (e.g. the colourfulness of grey images)."""
    if reference is None or value is None or not np.isfinite(reference) or reference <= 0.0:
        return None
    return float(value) / float(reference)


def perception(images, real=None):
    """Mean sharpness and colourfulness of ``images``, and their ratios to ``real``'s (a dict this returned).

    Args:
      images: float (n, H, W, C) in [0, 1].
      real: the result of ``perception(real_images)``, or None for no ratios.

    Returns:
      {"sharpness": float, "colourfulness": float} and, given ``real``, "sharpness_ratio" and
      "colourfulness_ratio" (each None where the real images' mean is 0).
    """
    out = {"sharpness": float(np.mean(sharpness(images))), "colourfulness": float(np.mean(colourfulness(images)))}
    if real is not None:
        out["sharpness_ratio"] = ratio(out["sharpness"], real["sharpness"])
        out["colourfulness_ratio"] = ratio(out["colourfulness"], real["colourfulness"])
    return out
