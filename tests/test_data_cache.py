"""The folder source's decode cache (issue 9): decoded once, rebuilt when the folder changes, never a crash."""

import errno
import glob
import os
import re

import keras
import numpy as np
import pytest
from PIL import Image

from tests.conftest import Killed, kill_at
from tfvae import data, training
from tfvae.config import Config
from tfvae.data import cache as cache_lib
from tfvae.data import decode as decode_lib

pytestmark = pytest.mark.filterwarnings("ignore:Even though the `tf.config.experimental_run_functions_eagerly`")


def write_folder(root, n=36, seed=0):
    """``n`` small images of mixed sizes and modes in two class subfolders, and one broken file."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        folder = root / ("cats" if i % 2 else "dogs")
        folder.mkdir(parents=True, exist_ok=True)
        height, width = rng.integers(6, 20, 2)
        mode = ("RGB", "L", "RGBA")[i % 3]
        pixels = rng.integers(0, 256, (height, width, len(mode)), dtype=np.uint8)
        Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode).save(folder / f"{i:03d}.png")
    (root / "cats" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return root


def load(root, cache_dir, messages=None, **kwargs):
    kwargs = {"image_size": 8, "channels": 3, **kwargs}
    return data.load_dataset("folder", data_dir=str(root), cache_dir=str(cache_dir),
                             log=messages.append if messages is not None else None, **kwargs)


def decoded(messages):
    """How many files the load decoded (its 'decode cache: decoding N images took' line), 0 if none."""
    found = [int(m.group(1).replace(",", "")) for m in map(re.compile(r"decoding ([\d,]+) images took").search,
                                                           messages) if m]
    return sum(found)


def assert_same_data(a, b):
    assert a.x_train.paths == b.x_train.paths and a.class_names == b.class_names
    np.testing.assert_array_equal(np.asarray(a.x_train), np.asarray(b.x_train))
    np.testing.assert_array_equal(a.x_test, b.x_test)
    np.testing.assert_array_equal(a.y_train, b.y_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert a.skip_reasons == b.skip_reasons and a.skipped == b.skipped


def entry_files(cache_dir):
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(cache_dir, "folders", "*")))


def test_a_folder_is_decoded_once_then_read_from_the_cache(tmp_path, monkeypatch):
    root, cache_dir = write_folder(tmp_path / "images"), tmp_path / "cache"
    streamed = load(root, "none")
    first_log = []
    monkeypatch.setattr(decode_lib, "PROGRESS_SECONDS", 0.0)  # a progress line after every chunk of files
    first = load(root, cache_dir, first_log)
    assert decoded(first_log) == 37  # every file once, the broken one included
    progress = [m for m in first_log if re.fullmatch(r"decode cache: \d+/37 images \(\d+ images/s, ETA \d+\.\ds\)", m)]
    assert len(progress) >= 2, first_log
    assert isinstance(first.x_train.cache, cache_lib.CacheFile) and streamed.x_train.cache is None
    assert_same_data(first, streamed)
    assert first.skip_reasons == {"cats/broken.png": "not an image PIL can read"}
    names = entry_files(cache_dir)
    assert [os.path.splitext(n)[1] for n in names] == [".npy", ".json"], names
    assert np.load(os.path.join(cache_dir, "folders", names[0]), mmap_mode="r").shape == (37, 8, 8, 3)
    other_log = []  # Another size is another entry.
    assert load(root, cache_dir, other_log, image_size=16).image_shape == (16, 16, 3) and decoded(other_log) == 37
    assert len(entry_files(cache_dir)) == 4

    def no_decoding(*args):
        raise AssertionError("decoded a file that is in the cache")

    monkeypatch.setattr(decode_lib, "_decode_image", no_decoding)  # in the decode workers too (forked)
    second_log = []
    second = load(root, cache_dir, second_log)
    assert decoded(second_log) == 0
    assert second_log == [f"decode cache: reading 36 images of {root} from {first.x_train.cache.path}"]
    assert_same_data(second, streamed)


@pytest.mark.parametrize("change", ["added", "changed", "removed"])
def test_a_changed_folder_is_decoded_again_reusing_the_unchanged_files(tmp_path, change):
    root, cache_dir = write_folder(tmp_path / "images"), tmp_path / "cache"
    before = load(root, cache_dir)
    if change == "added":
        Image.new("RGB", (9, 7), (250, 10, 10)).save(root / "dogs" / "new.png")
    elif change == "changed":
        Image.new("RGB", (9, 7), (10, 250, 10)).save(root / "dogs" / "004.png")
    else:
        os.remove(root / "dogs" / "004.png")
    messages = []
    after = load(root, cache_dir, messages)
    # The new or changed file, and the broken one again (failures are never taken from the cache).
    assert decoded(messages) == (1 if change == "removed" else 2)
    assert any("(36 unchanged images reused)" in m or "(35 unchanged images reused)" in m for m in messages)
    assert_same_data(after, load(root, "none"))
    assert len(after.x_train) + len(after.x_test) == len(before.x_train) + len(before.x_test) + (
        {"added": 1, "changed": 0, "removed": -1}[change])
    assert len(entry_files(cache_dir)) == 2  # the array of the old listing is gone


def test_an_unwritable_cache_location_streams_with_one_notice(tmp_path, monkeypatch):
    root = write_folder(tmp_path / "images")
    streamed = load(root, "none")
    (tmp_path / "a_file").write_text("not a directory")
    messages = []
    ds = load(root, tmp_path / "a_file" / "cache", messages)  # what a read-only location looks like to root too
    notices = [m for m in messages if "cannot write" in m]
    assert notices == [f"decode cache: cannot write {tmp_path / 'a_file' / 'cache' / 'folders'} (Not a directory); "
                       "the images will be decoded again every epoch (pass --cache_dir=DIR to cache them elsewhere)"]
    assert ds.x_train.cache is None
    assert_same_data(ds, streamed)

    # A disk that fills up half-way: the same, and no temporary file is left.
    real_pwrite, written = os.pwrite, []

    def pwrite(fd, buffer, offset):
        written.append(offset)
        if len(written) > 5:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_pwrite(fd, buffer, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    messages = []
    ds = load(root, tmp_path / "cache", messages)
    assert [m for m in messages if "cannot write" in m] == [
        f"decode cache: cannot write {tmp_path / 'cache' / 'folders'} (No space left on device); the images will be "
        "decoded again every epoch (pass --cache_dir=DIR to cache them elsewhere)"]
    assert ds.x_train.cache is None and entry_files(tmp_path / "cache") == []
    assert_same_data(ds, streamed)

    # Too little free space to start with: not even tried.
    monkeypatch.setattr(cache_lib.shutil, "disk_usage", lambda path: type("Usage", (), {"free": 1000}))
    messages = []
    ds = load(root, tmp_path / "cache", messages)
    assert any("(0.00 GB needed, 0.00 GB free)" in m for m in messages) and entry_files(tmp_path / "cache") == []
    assert_same_data(ds, streamed)


@pytest.mark.parametrize("point", ["decode-cache-array-written", "decode-cache-array-renamed"])
def test_a_killed_build_leaves_no_half_cache(tmp_path, monkeypatch, point):
    root, cache_dir = write_folder(tmp_path / "images"), tmp_path / "cache"
    folders = cache_dir / "folders"
    folders.mkdir(parents=True)
    stem = "images-8x8x3-0123456789ab-0123456789ab.npy.tmp"
    (folders / f"{stem}.4194305").write_bytes(b"left by a dead build")  # an older build's name: this host's
    (folders / f"{stem}.{cache_lib._host()}.4194306").write_bytes(b"left by a dead build of this host")
    elsewhere = folders / f"{stem}.another-host.{os.getpid()}"  # a pid of another host means nothing here
    elsewhere.write_bytes(b"another host's build, maybe alive")
    kill_at(monkeypatch, point)
    with pytest.raises(Killed):
        load(root, cache_dir)
    assert not any(name.endswith(".json") for name in entry_files(cache_dir))  # nothing committed
    monkeypatch.undo()
    messages = []
    ds = load(root, cache_dir, messages)
    assert decoded(messages) == 37  # decoded again: a half-written entry is never read
    names = entry_files(cache_dir)
    assert len(names) == 3 and [name for name in names if ".tmp" in name] == [elsewhere.name], names
    assert_same_data(ds, load(root, "none"))


def test_cached_and_streamed_folders_serve_the_same_batches(tmp_path):
    root = write_folder(tmp_path / "images")
    cached, streamed = load(root, tmp_path / "cache"), load(root, "none")
    kwargs = dict(num_classes=2, batch_size=5, shuffle=True, seed=3, repeat=True)
    for binarize, transform in [("dynamic", lambda x: x), ("static", lambda x: data.binarize_static(x, seed=1))]:
        a = data.make_pipeline(transform(cached.x_train), cached.y_train, binarize=binarize, **kwargs)
        b = data.make_pipeline(transform(streamed.x_train), streamed.y_train, binarize=binarize, **kwargs)
        steps = 2 * -(-len(cached.x_train) // 5) + 1  # two epochs and a bit
        for x, y in zip(a.take(steps).as_numpy_iterator(), b.take(steps).as_numpy_iterator()):
            np.testing.assert_array_equal(x["image"], y["image"])
            np.testing.assert_array_equal(x["label"], y["label"])
    # Slices (max_examples) keep the rows of the files they keep.
    np.testing.assert_array_equal(np.asarray(cached.x_train[3:9]), np.asarray(streamed.x_train[3:9]))
    np.testing.assert_array_equal(cached.x_train[[4, 1]], streamed.x_train[[4, 1]])


def test_a_killed_cached_run_resumes_to_the_weights_of_a_streamed_run(tmp_path, monkeypatch, eager):
    root = write_folder(tmp_path / "images", n=26)

    def config(workdir, cache_dir):
        return Config(model="vae", arch="conv", filters=(8,), hidden=8, dataset="folder", data_dir=str(root),
                      image_size=8, channels=3, epochs=1, batch_size=8, checkpoint_every_steps=1,
                      steps_per_execution=1, strategy="default", workdir=str(workdir), cache_dir=str(cache_dir))

    training.train(config(tmp_path / "streamed", "none"), verbose=0, log=lambda *_: None)
    kill_at(monkeypatch, "step-end", 2)  # step 2 of 3, after the checkpoint of step 1
    with pytest.raises(Killed):
        training.train(config(tmp_path / "cached", tmp_path / "cache"), verbose=0, log=lambda *_: None)
    monkeypatch.undo()
    messages = []
    training.train(config(tmp_path / "cached", tmp_path / "cache"), verbose=0, log=messages.append)
    assert f"resuming {tmp_path / 'cached'} after epoch 0 + 1 of its 3 steps" in messages
    assert any(m.startswith("decode cache: reading 26 images") for m in messages)
    for name in ("encoder", "decoder"):
        mine = keras.saving.load_model(tmp_path / "cached" / f"{name}.keras", safe_mode=True)
        theirs = keras.saving.load_model(tmp_path / "streamed" / f"{name}.keras", safe_mode=True)
        for a, b in zip(mine.get_weights(), theirs.get_weights()):
            np.testing.assert_array_equal(a, b)
    assert (tmp_path / "cached" / "skipped_files.txt").read_text() == \
        (tmp_path / "streamed" / "skipped_files.txt").read_text()


def test_max_image_pixels_admits_an_image_the_default_skips(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # restored afterwards
    root = tmp_path / "images"
    root.mkdir()
    for i in range(3):
        Image.new("RGB", (8, 8), (80 * i, 0, 0)).save(root / f"{i}.png")
    # 9,500 x 9,500 = 90,250,000 pixels, just over Pillow's 89,478,485; a JPEG is decoded at 1/8 scale (draft).
    Image.new("L", (9500, 9500), 200).save(root / "poster.jpg", quality=50)
    assert data.DEFAULT_MAX_IMAGE_PIXELS == 89478485
    for cache_dir in (tmp_path / "cache", "none"):
        default = load(root, cache_dir)
        assert default.skip_reasons == {"poster.jpg": "too large (90250000 pixels; Pillow's limit is 89478485, a "
                                                      "guard against decompression bombs; --max_image_pixels=90250000 "
                                                      "admits it)"}
        admitted = load(root, cache_dir, max_image_pixels=100_000_000)
        assert admitted.skipped == []
        images = np.concatenate([np.asarray(admitted.x_train), admitted.x_test])
        assert len(images) == 4 and (images == 200).all(axis=(1, 2, 3)).sum() == 1  # the poster, grey 200
        lowered = load(root, cache_dir, max_image_pixels=100)  # 8 x 8 = 64 pixels still pass
        assert lowered.skip_reasons == {"poster.jpg": "too large (90250000 pixels; the limit is "
                                                      "--max_image_pixels=100; --max_image_pixels=90250000 admits it)"}
    with pytest.raises(data.DataError, match="--max_image_pixels=-1 must be 0"):
        load(root, "none", max_image_pixels=-1)
    # The limit is part of the run's Config, and reaches the streamed decoding too.
    files = data.ImageFiles((str(root / "poster.jpg"),), 8, 1, max_image_pixels=0)
    assert files[0].shape == (8, 8, 1)
    with pytest.raises(data.DataError, match=r"poster.jpg could not be decoded any more \(too large"):
        data.ImageFiles((str(root / "poster.jpg"),), 8, 1)[0]
