"""The ``folder`` source: every decodable image under a directory, with labels from its subfolders.

Scanning (hidden files skipped, symlinked folders not followed), checking every file once in a few threads
(the undecodable ones are skipped with a reason), the CRC32 test split, and `load_image_files` for
evaluate.py's score mode. Decoding one file lives in `images.py`.
"""

import concurrent.futures
import os
import zlib

import numpy as np

from tfvae.data.base import DataError, Dataset
from tfvae.data.images import ImageFiles, _decode_image, _skip_reason

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def load_image_files(data_dir: str, image_size: int, channels: int) -> tuple[list[str], np.ndarray, list[str]]:
    """Decodes every image under ``data_dir`` (as the folder source does), in sorted path order.

    Args:
        data_dir: a directory; hidden files and folders are skipped, symlinked folders are not followed.
        image_size: side of the square output images.
        channels: 1 (grayscale) or 3 (RGB).

    Returns:
        (relative paths of the decoded images, uint8 array (N, image_size, image_size, channels), relative
        paths of the files that could not be decoded).

    Raises:
        DataError: ``data_dir`` is missing, or nothing under it decodes.
    """
    if data_dir is None or not os.path.isdir(data_dir):
        raise DataError(f"--data_dir {data_dir} is not a directory of images; pass one")
    paths, skipped = _image_paths(data_dir)
    kept, images = _check_images(data_dir, paths, skipped, image_size, channels, keep=lambda i: True)
    return [paths[i] for i in kept], np.stack([images[i] for i in kept]), sorted(skipped)


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


def _check_images(data_dir, paths, skipped, image_size, channels, keep):
    """Decodes every file once (in a few threads); records failures in ``skipped`` with their reason.

    Files reached through a symlink that leads outside data_dir are skipped too (nothing outside it is read).

    Returns:
        (indices of the decodable files, {index: image} for those where ``keep(index)``).
    """
    real_root = os.path.realpath(data_dir)

    def check(i):  # -> (the image if it is to be kept, else None; None or why it failed)
        path = os.path.join(data_dir, paths[i])
        try:
            if os.path.commonpath([real_root, os.path.realpath(path)]) != real_root:
                return None, f"a symlink to {os.path.realpath(path)}, outside --data_dir"
            image = _decode_image(path, image_size, channels)
            return (image if keep(i) else None), None
        except Exception as e:  # noqa: BLE001 - any undecodable file is skipped and reported.
            return None, _skip_reason(path, e)

    kept, images = [], {}
    with concurrent.futures.ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        for start in range(0, len(paths), 1024):  # In slices: a future per file costs ~2 KB until it is read.
            indices = range(start, min(start + 1024, len(paths)))
            for i, (image, problem) in zip(indices, pool.map(check, indices)):
                if problem:
                    skipped[paths[i]] = problem
                else:
                    kept.append(i)
                    if image is not None:
                        images[i] = image
    if not kept:
        raise DataError(f"no decodable images found under {data_dir} ({len(skipped)} files skipped); "
                        f"add {', '.join(IMAGE_EXTENSIONS)} files")
    return kept, images


def _load_folder(data_dir, image_size, channels):
    """Checks every image under data_dir; labels come from immediate subfolders when there are >= 2.

    Every file with an image extension is decoded once here (`_check_images`); the ones that can't be are
    skipped and reported with the reason. Hidden files and folders are ignored, and symlinked folders are not
    followed (so symlink loops can't trap the walk).

    The data is labeled when every decodable image lies inside an immediate subfolder of data_dir and there
    are at least two such subfolders (label = index of the sorted subfolder name). About 10% of the images
    go to the test split, chosen by a CRC32 of the relative path, so adding files does not move others; at
    least one image is held out (with a single image, it is both the train and the test set). The test images
    are kept decoded; the training images stay on disk (`ImageFiles`).
    """
    if data_dir is None:
        raise DataError("--dataset=folder needs --data_dir=PATH, a directory of images")
    paths, skipped = _image_paths(data_dir)
    held_out = [zlib.crc32(rel.encode("utf-8", "surrogateescape")) % 10 == 0 for rel in paths]
    kept, test_images = _check_images(data_dir, paths, skipped, image_size, channels, keep=held_out.__getitem__)

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
    for i in np.asarray(kept)[is_test]:
        if i not in test_images:  # Held out by the rules above rather than by its CRC.
            test_images[i] = _decode_image(os.path.join(data_dir, paths[i]), image_size, channels)
    x_test = np.stack([test_images[i] for i in np.asarray(kept)[is_test]])
    x_train = ImageFiles(tuple(os.path.join(data_dir, rels[j]) for j in np.flatnonzero(train)), image_size,
                         channels)
    source = (f"folder {data_dir} ({len(kept)} images"
              f"{f' in {len(class_names)} classes' if class_names else ''}, {len(skipped)} skipped)")
    return Dataset("folder", source, x_train, None if y is None else y[train], x_test,
                   None if y is None else y[is_test], class_names, sorted(skipped), dict(sorted(skipped.items())))
