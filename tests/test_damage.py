"""Damaged run directories (issue 12): each file of a finished run, damaged five ways, read by each script.

Every case copies one tiny trained run (made once per session), damages one file, runs a reader and checks
that it either recovers (and says so, naming the file) or stops with one line naming the file, without a
traceback, and that a stopped attempt changed nothing in the directory. The readers run in this process (the
library calls the scripts make) except where the command line itself is tested.
"""

import glob
import hashlib
import os
import random
import shutil

import pytest
import tensorflow as tf

from tfvae import evaluation, files, integrity, runs, training
from tfvae.config import Config
from tfvae.errors import TfvaeError

pytestmark = pytest.mark.filterwarnings("ignore:Even though the `tf.config.experimental_run_functions_eagerly`")

DAMAGES = ("truncate", "zero", "random", "delete", "directory")
EPOCHS = 2


def damage(path, kind):
    """Damages ``path`` as a bad copy, a full disk, bit rot or a sync tool would."""
    if kind == "truncate":
        data = open(path, "rb").read()
        open(path, "wb").write(data[: len(data) // 2])
    elif kind == "zero":
        open(path, "wb").close()
    elif kind == "random":
        size = os.path.getsize(path)
        open(path, "wb").write(random.Random(size).randbytes(max(size, 64)))
    elif kind == "delete":
        os.remove(path)
    elif kind == "directory":
        os.remove(path)
        os.makedirs(os.path.join(path, "inside"))
    else:
        raise ValueError(kind)


def tree(workdir):
    """{relative path: sha256 (files) or "dir"} of everything in ``workdir`` but the lock file."""
    found = {}
    for root, dirs, names in os.walk(workdir):
        for name in dirs:
            found[os.path.relpath(os.path.join(root, name), workdir)] = "dir"
        for name in names:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, workdir)
            if rel != files.LOCK_NAME:
                found[rel] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    return found


def tiny_config(mnist_dir, workdir, **overrides):
    """An MLP VAE on 64 digits, 2 steps of 32 per epoch."""
    fields = dict(model="vae", arch="mlp", hidden=16, dataset="mnist", data_dir=mnist_dir, download=False,
                  epochs=EPOCHS, batch_size=32, max_examples=64, steps_per_execution=1, workdir=str(workdir),
                  strategy="default")
    fields.update(overrides)
    return Config(**fields)


@pytest.fixture(scope="module")
def eager_mode():
    """Train steps run eagerly here (each case trains at most an epoch of 2 steps: no tracing is faster)."""
    tf.config.run_functions_eagerly(True)
    yield
    tf.config.run_functions_eagerly(False)


@pytest.fixture(scope="module")
def finished_run(mnist_dir, tmp_path_factory, eager_mode):
    """A finished 2-epoch run, trained once: it keeps checkpoints ckpt-1 and ckpt-2."""
    workdir = tmp_path_factory.mktemp("damage") / "run"
    training.train(tiny_config(mnist_dir, workdir), verbose=0, log=lambda *_: None)
    # A folder run's list of skipped files (this MNIST run has none; train.py removes a stale one).
    (workdir / training.SKIPPED_FILES).write_text("# 1 file(s) under x could not be used\na.png\tan empty file\n")
    assert sorted(os.listdir(workdir / "checkpoints")) == ["ckpt-1.weights.h5", "ckpt-2.weights.h5", "state.json"]
    return str(workdir)


@pytest.fixture
def run_copy(finished_run, tmp_path):
    workdir = str(tmp_path / "run")
    shutil.copytree(finished_run, workdir, symlinks=True)
    return workdir


def event_file(workdir, split="train"):
    return glob.glob(os.path.join(workdir, "logs", split, "events.out.tfevents.*"))[0]


FILES = {  # name -> how to find it in a run directory
    "config.json": lambda w: os.path.join(w, "config.json"),
    "state.json": lambda w: os.path.join(w, "checkpoints", "state.json"),
    "ckpt-2.weights.h5": lambda w: os.path.join(w, "checkpoints", "ckpt-2.weights.h5"),
    "ckpt-1.weights.h5": lambda w: os.path.join(w, "checkpoints", "ckpt-1.weights.h5"),
    "encoder.keras": lambda w: os.path.join(w, "encoder.keras"),
    "decoder.keras": lambda w: os.path.join(w, "decoder.keras"),
    "history.csv": lambda w: os.path.join(w, "history.csv"),
    "events": event_file,
    "skipped_files.txt": lambda w: os.path.join(w, training.SKIPPED_FILES),
}

# What each reader does with each damaged file: "error" (one line naming the file, nothing changed),
# "recover" (goes on, one line naming the file), "rebuilt" (goes on and rewrites the file, maybe silently),
# "unread" (the reader doesn't use the file: it succeeds and leaves everything as it was).
ERROR, RECOVER, REBUILT, UNREAD = "error", "recover", "rebuilt", "unread"


def expected(name, kind, reader):
    if reader == "train":
        if kind == "directory" and name not in ("ckpt-2.weights.h5", "ckpt-1.weights.h5", "events"):
            return ERROR  # a folder where train.py writes a file: refused before anything is written
        if name == "state.json":
            return ERROR  # the noise state and checksums are lost: restore it or --restart
        if name == "skipped_files.txt":
            return REBUILT  # removed (this run skipped nothing) or rewritten
        if name == "events" and kind == "delete":
            return UNREAD  # nothing left to tell
        return RECOVER
    if name in ("config.json", "encoder.keras", "decoder.keras"):
        return ERROR
    if name == "state.json" and reader == "load_run":
        return RECOVER  # the models are evaluated; the epochs trained are unknown
    return UNREAD


def read_train(mnist_dir, workdir, log):
    return training.train(tiny_config(mnist_dir, workdir), verbose=0, log=log)


def read_sample(mnist_dir, workdir, log, output):
    return runs.sample_to_png(workdir, "reconstruct", 2, output=output)


def read_load_run(mnist_dir, workdir, log):
    return evaluation.load_run(workdir, log=log)


CASES = [(name, kind, reader) for name in FILES for kind in DAMAGES for reader in ("train", "sample", "load_run")]


@pytest.mark.parametrize("name,kind,reader", CASES, ids=["-".join(c) for c in CASES])
def test_a_damaged_file(name, kind, reader, run_copy, mnist_dir, tmp_path):
    workdir = run_copy
    path = FILES[name](workdir)
    damage(path, kind)
    before = tree(workdir)
    messages = []
    outcome = expected(name, kind, reader)

    def call():
        if reader == "train":
            return read_train(mnist_dir, workdir, messages.append)
        if reader == "sample":
            return read_sample(mnist_dir, workdir, messages.append, str(tmp_path / "picture.png"))
        return read_load_run(mnist_dir, workdir, messages.append)

    if outcome == ERROR:
        with pytest.raises(TfvaeError) as raised:
            call()
        message = str(raised.value)
        assert "\n" not in message and "Traceback" not in message
        assert path in message, message
        assert tree(workdir) == before  # the failed attempt changed nothing
        return
    call()
    named = [m for m in messages if path in m]
    if outcome == RECOVER:
        assert len(named) == 1 and "\n" not in named[0], messages
    if outcome == UNREAD:
        assert named == [], messages
        if reader != "train":
            assert tree(workdir) == before
    if reader == "train":  # the run is whole again
        for model in ("encoder", "decoder"):
            assert integrity.keras_archive_problem(os.path.join(workdir, f"{model}.keras")) is None
        assert Config.load(workdir).latent == 2
        checkpointer = training.Checkpointer(workdir)
        assert [(e["epoch"], checkpointer.problem(e)) for e in checkpointer.entries()] == [(2, None), (1, None)] \
            or name == "ckpt-1.weights.h5"
        epochs = [int(r["epoch"]) for r in training.read_history(os.path.join(workdir, "history.csv"))]
        assert epochs == [1, 2] or (name == "history.csv" and epochs == sorted(set(epochs)))
