"""The ``folder`` source: every decodable image under a directory, with labels from its subfolders.

Scanning (hidden files skipped, symlinked folders not followed), the one pass that decodes every file (into
the decode cache, `cache.py`; the undecodable ones are skipped with a reason), the CRC32 test split, and
`load_image_files` for evaluate.py's score mode. Decoding one file lives in `images.py`.
"""

import os
import zlib

import numpy as np

from tfvae.data.base import DataError, Dataset
from tfvae.data.cache import decode_folder
from tfvae.data.images import ImageFiles, _decode_image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def load_image_files(data_dir: str, image_size: int, channels: int, max_image_pixels: int | None = None,
                     log=None) -> tuple[list[str], np.ndarray, list[str]]:
    """Decodes every image under ``data_dir`` (as the folder source does, without its cache), in sorted order.

    Args:
        data_dir: a directory; hidden files and folders are skipped, symlinked folders are not followed.
        image_size: side of the square output images.
        channels: 1 (grayscale) or 3 (RGB).
        max_image_pixels: larger images are skipped (None: Pillow's limit; 0: no limit).
        log: where progress lines go (None: nowhere).

    Returns:
        (relative paths of the decoded images, uint8 array (N, image_size, image_size, channels), relative
        paths of the files that could not be decoded).

    Raises:
        DataError: ``data_dir`` is missing, or nothing under it decodes.
    """
    if data_dir is None or not os.path.isdir(data_dir):
        raise DataError(f"--data_dir {data_dir} is not a directory of images; pass one")
    paths, skipped = _image_paths(data_dir)
    decoded = decode_folder(data_dir, paths, image_size, channels, max_image_pixels=max_image_pixels,
                            cache_dir="none", keep=lambda i: True, log=log)
    skipped.update(decoded.failed)
    _check_some_decoded(data_dir, decoded.kept, skipped)
    return [paths[i] for i in decoded.kept], np.stack([decoded.images[i] for i in decoded.kept]), sorted(skipped)


def _image_paths(data_dir):
    """Relative paths (sorted) of the image files under data_dir, and {path: reason} of unreadable folders."""
    paths, skipped = [], {}

    def walk_error(error):
        skipped[os.path.relpath(error.filename, data_dir)] = f"folder not readable ({error.strerror})"

    for root, dirs, files in os.walk(data_dir, followlinks=False, onerror=walk_error):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in files:
            if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS):
                paths.append(os.path.relpath(os.path.join(root, f), data_dir).replace(os.sep, "/"))
    return sorted(paths), skipped


def _check_some_decoded(data_dir, kept, skipped):
    if not kept:
        raise DataError(f"no decodable images found under {data_dir} ({len(skipped)} files skipped); "
                        f"add {', '.join(IMAGE_EXTENSIONS)} files")


def _load_folder(data_dir, image_size, channels, max_image_pixels=None, cache_dir="", log=None):
    """Checks every image under data_dir; labels come from immediate subfolders when there are >= 2.

    Every file with an image extension is decoded once here, in parallel (`cache.decode_folder`), into the
    folder's decode cache unless ``cache_dir="none"``; the ones that can't be are skipped and reported with the
    reason. Hidden files and folders are ignored, and symlinked folders are not followed (so symlink loops
    can't trap the walk).

    The data is labeled when every decodable image lies inside an immediate subfolder of data_dir and there
    are at least two such subfolders (label = index of the sorted subfolder name). About one image in ten
    goes to the test split (CRC32 of the relative path = 0 mod 10), so adding files does not move others; at
    least one image is held out (with a single image, it is both the train and the test set). The test images
    are held in memory; the training images stay on disk (`ImageFiles`), in the cache or as files.
    """
    if data_dir is None:
        raise DataError("--dataset=folder needs --data_dir=PATH, a directory of images")
    paths, skipped = _image_paths(data_dir)
    held_out = [zlib.crc32(rel.encode("utf-8", "surrogateescape")) % 10 == 0 for rel in paths]
    decoded = decode_folder(data_dir, paths, image_size, channels, max_image_pixels=max_image_pixels,
                            cache_dir=cache_dir, keep=held_out.__getitem__, log=log)
    skipped.update(decoded.failed)
    kept = decoded.kept
    _check_some_decoded(data_dir, kept, skipped)

    rels = [paths[i] for i in kept]
    folders = [rel.split("/")[0] if "/" in rel else None for rel in rels]
    class_names = sorted(set(folders)) if None not in folders and len(set(folders)) >= 2 else None
    y = None if class_names is None else np.array([class_names.index(f) for f in folders], np.int64)

    is_test = np.array([held_out[i] for i in kept])
    if not is_test.any():
        is_test[-1] = True
    if is_test.all() and len(kept) > 1:
        is_test[0] = False
    train = ~is_test if len(kept) > 1 else is_test
    x_test = decoded.take(np.asarray(kept)[is_test], lambda i: _decode_image(
        os.path.join(data_dir, paths[i]), image_size, channels, max_image_pixels))  # Held out by the rules above.
    train_rows = np.asarray(kept, np.int64)[train]
    x_train = ImageFiles(tuple(os.path.join(data_dir, paths[i]) for i in train_rows), image_size, channels,
                         max_image_pixels=max_image_pixels, cache=decoded.cache,
                         rows=None if decoded.cache is None else train_rows)
    source = (f"folder {data_dir} ({len(kept)} images"
              f"{f' in {len(class_names)} classes' if class_names else ''}, {len(skipped)} skipped)")
    return Dataset("folder", source, x_train, None if y is None else y[train], x_test,
                   None if y is None else y[is_test], class_names, sorted(skipped), dict(sorted(skipped.items())))
