"""Decoding one image file: `ImageFiles` (files on disk that stand for a uint8 array), the decoder, skip reasons.

A decoded image is center-cropped to a square, resized with Lanczos to ``image_size`` and converted to 1 or 3
channels (16/32-bit grayscale scaled to 8 bits, transparent pixels made white). `folder.py` scans a folder and
checks its files with these functions.
"""

import dataclasses
import errno
import os
import re
import zlib

import numpy as np
from PIL import Image

from tfvae.data.base import DataError

# Pillow's guard against decompression bombs (images of more pixels are refused), as it was when tfvae was
# imported: the default of --max_image_pixels.
DEFAULT_MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS


@dataclasses.dataclass(frozen=True)
class ImageFiles:
    """Image files that stand for the uint8 array (N, H, W, C) they decode to.

    ``len()``, ``shape``, ``dtype`` and slicing ``x[a:b]`` (still on disk) work as on that array;
    ``np.asarray(x)``, ``x[i]`` and ``x.astype(...)`` decode (meant for small subsets). `make_pipeline` decodes
    batches while it serves them. With a ``cache`` (see `cache.py`), image i is row ``rows[i]`` of the folder's
    decode cache, read instead of decoded; without one it is decoded from ``paths[i]`` every time.
    """

    paths: tuple
    image_size: int
    channels: int
    binarize_seed: int | None = None  # Set by `binarize_static`: pixels ~ Bernoulli(x / 255), fixed per image.
    max_image_pixels: int | None = None  # See `_decode_image`.
    cache: object = dataclasses.field(default=None, compare=False, repr=False)  # a cache.CacheFile
    rows: np.ndarray | None = dataclasses.field(default=None, compare=False, repr=False)

    shape = property(lambda self: (len(self.paths), self.image_size, self.image_size, self.channels))
    dtype = np.dtype(np.uint8)
    ndim = 4

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, key):
        if isinstance(key, slice):
            return dataclasses.replace(self, paths=self.paths[key], rows=None if self.rows is None else self.rows[key])
        indices = np.arange(len(self.paths))[key]
        return self.decode(int(indices)) if np.ndim(indices) == 0 else self.decode_batch(indices)

    def __array__(self, dtype=None, copy=None):
        x = self.decode_batch(range(len(self.paths)))
        return x if dtype is None else x.astype(dtype)

    def astype(self, dtype):
        return np.asarray(self).astype(dtype)

    def decode(self, index):
        """Decodes image ``index``; DataError if it can't be decoded any more (changed since it was checked)."""
        return self.decode_batch([index])[0]

    def decode_batch(self, indices):
        """Decodes the images at ``indices`` into a uint8 array (len(indices), H, W, C)."""
        indices = np.asarray(indices, np.int64).reshape(-1)
        if self.cache is not None:
            images = self.cache.read(self.rows[indices])
        else:
            images = np.empty((len(indices), *self.shape[1:]), np.uint8)
            for k, i in enumerate(indices):
                images[k] = self._decode_file(self.paths[i])
        if self.binarize_seed is not None:  # One fixed draw per file, whatever its position.
            for k, i in enumerate(indices):
                crc = zlib.crc32(self.paths[i].encode("utf-8", "surrogateescape"))
                noise = np.random.default_rng([self.binarize_seed, crc]).integers(0, 255, images[k].shape, np.uint8)
                images[k] = np.where(noise < images[k], 255, 0)
        return images

    def _decode_file(self, path):
        try:
            return _decode_image(path, self.image_size, self.channels, self.max_image_pixels)
        except Exception as e:  # noqa: BLE001 - reported as a DataError naming the file
            raise DataError(f"{path} could not be decoded any more ({_skip_reason(path, e, self.max_image_pixels)});"
                            " was it changed or removed after training started? Fix or remove it and run the same "
                            "command again") from None


def _skip_reason(path, error, max_image_pixels=None):
    """Why ``path`` can't be used, in a few words (``max_image_pixels``: the limit `_decode_image` applied)."""
    from PIL import UnidentifiedImageError

    if isinstance(error, OSError) and error.errno == errno.ELOOP:
        return "a symlink loop"
    if isinstance(error, FileNotFoundError) and os.path.islink(path):
        return "a broken symlink"
    if isinstance(error, OSError) and error.errno is not None:
        return f"not readable ({error.strerror})"
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        return "an empty file"
    if isinstance(error, UnidentifiedImageError):
        return "not an image PIL can read"
    if isinstance(error, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        size = re.search(r"\((\d+) pixels\)", str(error))
        pixels = size.group(1) if size else "too many"
        limit = DEFAULT_MAX_IMAGE_PIXELS if max_image_pixels is None else max_image_pixels
        admit = f"; --max_image_pixels={pixels} admits it" if size else ""
        if limit == DEFAULT_MAX_IMAGE_PIXELS:
            return f"too large ({pixels} pixels; Pillow's limit is {limit}, a guard against decompression bombs{admit})"
        return f"too large ({pixels} pixels; the limit is --max_image_pixels={limit}{admit})"
    text = str(error).splitlines()[0] if str(error) else ""
    return f"corrupt or truncated ({type(error).__name__}{': ' + text if text else ''})"


def _decode_image(path, image_size, channels, max_image_pixels=None):
    """Decodes one image file to uint8 (image_size, image_size, channels), center-cropped to a square.

    Images of more than ``max_image_pixels`` pixels (None: `DEFAULT_MAX_IMAGE_PIXELS`; 0: no limit) raise
    ``PIL.Image.DecompressionBombError``. A limit above Pillow's raises Pillow's process-wide guard
    (``Image.MAX_IMAGE_PIXELS``) to it, since ``Image.open`` itself refuses images of twice that guard.
    """
    from PIL import ImageOps

    limit = DEFAULT_MAX_IMAGE_PIXELS if max_image_pixels is None else max_image_pixels
    if not limit:
        Image.MAX_IMAGE_PIXELS = None
    elif Image.MAX_IMAGE_PIXELS is not None and limit > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = limit
    with Image.open(path) as img:  # Raises DecompressionBombError above 2 * Image.MAX_IMAGE_PIXELS pixels.
        if limit and img.width * img.height > limit:  # Pillow only warns between 1x and 2x its guard.
            raise Image.DecompressionBombError(f"Image size ({img.width * img.height} pixels) exceeds limit")
        img.draft(None, (image_size, image_size))  # JPEG only: decode at a reduced scale, much faster.
        img = ImageOps.exif_transpose(img)
        if img.mode.startswith("I") or img.mode == "F":
            # 16/32-bit grayscale: scale to 8 bits rather than clipping everything above 255 to white.
            a = np.asarray(img, np.float64)
            if img.mode == "F" and a.max(initial=0) <= 1.0:
                a = a * 255.0
            elif img.mode.startswith("I;16") or a.max(initial=0) > 255:
                a = a / 257.0
            img = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")
        elif img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")  # Transparent pixels become white.
            img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
        img = img.convert("L" if channels == 1 else "RGB")
        side = min(img.size)
        left, top = (img.width - side) // 2, (img.height - side) // 2
        img = img.resize((image_size, image_size), Image.Resampling.LANCZOS,
                         box=(left, top, left + side, top + side))
        a = np.asarray(img, np.uint8)
    return a[..., None] if a.ndim == 2 else a
