"""`load_dataset`: the registry of source names (`DATASETS`), argument checks, capping and resizing."""

import os

import numpy as np
import tensorflow as tf

from tfvae.data.arrays import load_arrays
from tfvae.data.base import DataError, Dataset
from tfvae.data.folder import _load_folder
from tfvae.data.mnist import FASHION_MNIST_CLASS_NAMES, _load_fashion_mnist, _load_mnist

DATASETS = ("mnist", "fashion_mnist", "folder", "arrays")


def load_dataset(name: str, data_dir: str | None = None, image_size: int | None = None,
                 channels: int | None = None, max_examples: int = 0, download: bool = True,
                 seed: int = 0, *, cache_dir: str = "", max_image_pixels: int | None = None, log=print) -> Dataset:
    """Loads a dataset as uint8 arrays.

    Args:
        name: one of `DATASETS`.
        data_dir: where the data lives ("" is the same as None). Optional for mnist/fashion_mnist (IDX
            files, optionally gzipped, or an .npz with keys x_train, y_train, x_test, y_test); required for
            folder; for arrays, the .npz file (x_train, x_test, and labelled y_train, y_test: ``tfvae.data.arrays``)
            or a folder holding data.npz.
        image_size: side of the square output images. None or 0: native size for mnist/fashion_mnist (28) and
            arrays, 64 for folder.
        channels: 1 (grayscale) or 3 (RGB). None or 0: native for mnist/fashion_mnist (1) and arrays, 3 for
            folder.
        max_examples: if > 0, keep only the first `max_examples` training examples (in the source's order)
            and the first min(len(test), max(max_examples // 6, 64)) test examples.
        download: whether mnist/fashion_mnist may be downloaded with keras.datasets when not found locally.
        seed: unused by the current sources (their splits are fixed); kept so callers can pass their seed.
        cache_dir: folder only: where the decode cache lives ("": $TFVAE_CACHE, else ~/.cache/tfvae; "none":
            no cache, every image is decoded each time it is served). See `tfvae.data.cache`.
        max_image_pixels: folder only: images of more pixels are skipped as possible decompression bombs
            (None: Pillow's limit, `DEFAULT_MAX_IMAGE_PIXELS`; 0: no limit).
        log: where the folder source's progress lines and notices go (None: nowhere).

    Returns:
        A `Dataset`; `source` says which source was actually used.

    Raises:
        DataError: unknown name, missing or malformed data, nothing decodable.
    """
    del seed  # Every source has a fixed, documented split.
    data_dir, image_size, channels = data_dir or None, image_size or None, channels or None
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if channels not in (None, 1, 3):
        raise DataError(f"--channels={channels} is not supported; use 1 (grayscale) or 3 (RGB)")
    if max_image_pixels is not None and max_image_pixels < 0:
        raise DataError(f"--max_image_pixels={max_image_pixels} must be 0 (no limit) or a positive number of pixels")
    if image_size is not None and image_size < 1:
        raise DataError(f"--image_size={image_size} must be a positive number of pixels")
    if data_dir is not None:
        data_dir = os.path.expanduser(data_dir)
        if not os.path.exists(data_dir) and name != "arrays":  # arrays: load_arrays names what is missing
            raise DataError(f"--data_dir {data_dir} does not exist; pass a directory that holds the data")
        if not os.path.isdir(data_dir) and name != "arrays":
            raise DataError(f"--data_dir {data_dir} is not a directory; pass the directory that holds it")

    if name == "arrays":
        if data_dir is None:
            raise DataError("--dataset=arrays needs --data_dir=FILE.npz (x_train, x_test and, labelled, y_train, "
                            "y_test), or the arrays themselves: tfvae.train(config, data=...)")
        dataset = _cap(load_arrays(data_dir), max_examples)
        dataset.x_train = _resize_and_convert(dataset.x_train, image_size, channels)
        dataset.x_test = _resize_and_convert(dataset.x_test, image_size, channels)
    elif name == "folder":
        dataset = _cap(_load_folder(data_dir, image_size or 64, channels or 3, max_image_pixels=max_image_pixels,
                                    cache_dir=cache_dir, log=log), max_examples)
    else:
        loader = _load_mnist if name == "mnist" else _load_fashion_mnist
        (x_train, y_train, x_test, y_test), source = loader(data_dir, download)
        class_names = FASHION_MNIST_CLASS_NAMES if name == "fashion_mnist" else [str(i) for i in range(10)]
        dataset = Dataset(name, source, x_train, y_train, x_test, y_test, list(class_names))
        dataset = _cap(dataset, max_examples)  # Before resizing, which is the slow part.
        dataset.x_train = _resize_and_convert(dataset.x_train, image_size, channels)
        dataset.x_test = _resize_and_convert(dataset.x_test, image_size, channels)
    return dataset


def _cap(dataset, max_examples):
    """Keeps the first max_examples training and min(len(test), max(max_examples // 6, 64)) test examples."""
    if max_examples > 0:
        num_test = min(len(dataset.x_test), max(max_examples // 6, 64))
        dataset.x_train, dataset.x_test = dataset.x_train[:max_examples], dataset.x_test[:num_test]
        if dataset.y_train is not None:
            dataset.y_train, dataset.y_test = dataset.y_train[:max_examples], dataset.y_test[:num_test]
    return dataset


def _resize_and_convert(x, image_size, channels, chunk=4096):
    """Resizes uint8 NHWC images to image_size x image_size and converts them to `channels` channels."""
    if image_size is not None and len(x) and x.shape[1:3] != (image_size, image_size):
        method = "area" if image_size < min(x.shape[1:3]) else "bilinear"
        x = np.concatenate([
            np.clip(np.rint(tf.image.resize(tf.cast(x[i:i + chunk], tf.float32), (image_size, image_size),
                                            method=method, antialias=True).numpy()), 0, 255).astype(np.uint8)
            for i in range(0, len(x), chunk)])
    if x.shape[-1] == 4:
        x = x[..., :3]
    if channels == 3 and x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    elif channels == 1 and x.shape[-1] == 3:
        luma = x.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        x = np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None]
    return x
