"""Parsing MNIST-format files: IDX files (optionally gzipped) and keras-style ``.npz``, checked into uint8 arrays."""

import gzip
import math
import os

import numpy as np

from tfvae.data.base import DataError

_IDX_IMAGES_MAGIC = 2051  # 0x00000803: uint8 data, 3 dimensions.
_IDX_LABELS_MAGIC = 2049  # 0x00000801: uint8 data, 1 dimension.
_IDX_FILES = {  # Role -> file stem, as published by LeCun and Zalando.
    "x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte",
}
_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


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
