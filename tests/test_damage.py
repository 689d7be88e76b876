"""Damaged run directories (issue 12): each file of a finished run, damaged five ways, read by each script.

Every case copies one tiny trained run (made once per session), damages one file, runs a reader and checks
that it either recovers (and says so, naming the file) or stops with one line naming the file, without a
traceback, and that a stopped attempt changed nothing in the directory. The readers run in this process (the
library calls the scripts make) except where the command line itself is tested.
"""

import functools
import glob
import hashlib
import json
import os
import random
import re
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import REPO, TINY_MLP, event_steps, run_scripts, synthetic_dataset, tiny_run_config
from tfvae import evaluation, files, integrity, pictures, rundir, training
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


tiny_config = functools.partial(tiny_run_config, **TINY_MLP, epochs=EPOCHS)  # 2 epochs of 2 steps


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
    (workdir / rundir.SKIPPED_FILES).write_text("# 1 file(s) under x could not be used\na.png\tan empty file\n")
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
    "skipped_files.txt": lambda w: os.path.join(w, rundir.SKIPPED_FILES),
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
        return RECOVER  # the models are evaluated; the epochs trained are taken from history.csv
    return UNREAD


def read_train(mnist_dir, workdir, log):
    return training.train(tiny_config(mnist_dir, workdir), verbose=0, log=log)


def read_sample(mnist_dir, workdir, log, output):
    return pictures.sample_to_png(workdir, "reconstruct", 2, output=output)


def read_load_run(mnist_dir, workdir, log):
    return evaluation.load_run(workdir, log=log)


# A reader that doesn't open a file, or only overwrites it, is tried with two of its damages only.
CASES = [(name, kind, reader) for name in FILES for kind in DAMAGES for reader in ("train", "sample", "load_run")
         if expected(name, kind, reader) not in (UNREAD, REBUILT) or kind in ("random", "directory")]


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
    result = call()
    named = [m for m in messages if path in m]
    if reader == "load_run":
        assert result.epochs_trained == EPOCHS
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
        epochs = [int(r["epoch"]) for r in rundir.read_history(os.path.join(workdir, "history.csv"))]
        assert epochs == [1, 2] or (name == "history.csv" and epochs == sorted(set(epochs)))


def test_history_rows_are_rebuilt_from_tensorboard(run_copy, finished_run, mnist_dir):
    path = os.path.join(run_copy, "history.csv")
    damage(path, "zero")
    messages = []
    read_train(mnist_dir, run_copy, messages.append)
    assert f"{path} is empty (0 bytes): rebuilt the rows of epoch(s) 1-2 from the TensorBoard logs (without " \
           "their timings); rewrote it with 2 row(s)" in messages
    rebuilt = rundir.read_history(path)
    original = rundir.read_history(os.path.join(finished_run, "history.csv"))
    # examples_per_sec is computed in float64 and logged to TensorBoard in float32: its 6th digit may differ.
    rates = [[float(r.pop("examples_per_sec")) for r in rows] for rows in (rebuilt, original)]
    assert rates[0] == pytest.approx(rates[1], rel=1e-5)
    for row in (rebuilt, original):
        for r in row:
            for timing in ("seconds", "train_seconds"):
                r.pop(timing)
    assert rebuilt == original


# ---------------------------------------------------------------------------------------------------------
# Checkpoints: the fall-back, none good, --restart, how many are kept


def final_weights(workdir):
    return [w for name in ("encoder", "decoder")
            for w in keras.saving.load_model(os.path.join(workdir, f"{name}.keras"), safe_mode=True).get_weights()]


def test_a_damaged_newest_checkpoint_resumes_exactly_from_the_one_before(run_copy, finished_run, mnist_dir):
    # The finished run went on from ckpt-1 to ckpt-2 uninterrupted; with ckpt-2 cut short, the same command
    # goes on from ckpt-1 again and must end where it did.
    ckpt = os.path.join(run_copy, "checkpoints", "ckpt-2.weights.h5")
    written = os.path.getsize(ckpt)  # whatever this Keras's HDF5 writer makes of it
    damage(ckpt, "truncate")
    messages = []
    read_train(mnist_dir, run_copy, messages.append)
    assert f"{ckpt} is {written // 2:,} bytes, not the {written:,} written (cut short) (moved aside to " \
           "ckpt-2.weights.h5.damaged): resuming from the newest good checkpoint, ckpt-1.weights.h5 (epoch 1), " \
           "instead" in messages, messages
    assert f"resuming {run_copy} after epoch 1" in messages
    for a, b in zip(final_weights(run_copy), final_weights(finished_run), strict=True):
        np.testing.assert_array_equal(a, b)
    # Epoch 2 was written again: history.csv and TensorBoard hold each epoch once, with the same losses.
    losses = [[r[k] for k in ("epoch", "loss", "val_loss")] for r in rundir.read_history(
        os.path.join(run_copy, "history.csv"))]
    assert losses == [[r[k] for k in ("epoch", "loss", "val_loss")] for r in rundir.read_history(
        os.path.join(finished_run, "history.csv"))]
    assert event_steps(run_copy)["train/epoch_loss"] == [1, 2]
    assert event_steps(run_copy) == event_steps(finished_run)
    assert sorted(os.listdir(os.path.join(run_copy, "checkpoints"))) == [
        "ckpt-1.weights.h5", "ckpt-2.weights.h5", "ckpt-2.weights.h5.damaged", "state.json"]


def test_no_good_checkpoint_names_them_and_restart_sets_the_run_aside(run_copy, mnist_dir):
    newest, older = (os.path.join(run_copy, "checkpoints", f"ckpt-{e}.weights.h5") for e in (2, 1))
    written = os.path.getsize(older)
    damage(newest, "random")
    damage(older, "truncate")
    before = tree(run_copy)
    with pytest.raises(TfvaeError) as raised:
        read_train(mnist_dir, run_copy, lambda *_: None)
    assert str(raised.value) == (
        f"no good checkpoint to resume from: {newest} has other bytes than were written (its sha256 differs); "
        f"{older} is {written // 2:,} bytes, not the {written:,} written (cut short); restore them from a copy, or run "
        f"train.py again with --restart to move this run to {run_copy}.old-<UTC time> and start over")
    assert tree(run_copy) == before
    messages = []
    training.train(tiny_config(mnist_dir, run_copy), verbose=0, log=messages.append, restart=True)
    aside = glob.glob(f"{run_copy}.old-*")
    assert len(aside) == 1 and f"--restart: moved what {run_copy} held to {aside[0]}; starting over" in messages
    assert tree(aside[0]) == before  # nothing deleted, nothing changed
    assert not any(m.startswith("resuming") for m in messages)  # started over
    checkpointer = training.Checkpointer(run_copy)
    assert [(e["epoch"], checkpointer.problem(e)) for e in checkpointer.entries()] == [(2, None), (1, None)]


def test_the_newest_and_the_last_k_end_of_epoch_checkpoints_are_kept(tmp_path):
    config = tiny_config("", tmp_path, image_shape=(28, 28, 1), num_classes=10, num_examples=64)
    model = training.create_model(config)
    kept = {}
    for keep in (1, 2):
        checkpointer = training.Checkpointer(str(tmp_path / f"keep{keep}"), keep=keep)
        listed = []
        for epoch, step in ((1, 0), (1, 1), (2, 0), (2, 1), (3, 0)):
            checkpointer.save(model, epoch, step)
            listed.append([e["checkpoint"] for e in checkpointer.entries()])
            names = sorted(n for n in os.listdir(checkpointer.directory) if n != "state.json")
            assert names == sorted(listed[-1])
        kept[keep] = listed
    assert kept[1] == [["ckpt-1.weights.h5"], ["ckpt-1-1.weights.h5", "ckpt-1.weights.h5"], ["ckpt-2.weights.h5"],
                       ["ckpt-2-1.weights.h5", "ckpt-2.weights.h5"], ["ckpt-3.weights.h5"]]
    assert kept[2][-2:] == [["ckpt-2-1.weights.h5", "ckpt-2.weights.h5", "ckpt-1.weights.h5"],
                            ["ckpt-3.weights.h5", "ckpt-2.weights.h5"]]
    state = json.load(open(tmp_path / "keep2" / "checkpoints" / "state.json"))
    path = str(tmp_path / "keep2" / "checkpoints" / "ckpt-3.weights.h5")
    assert (state["checkpoint"], state["size"], state["sha256"]) == (
        "ckpt-3.weights.h5", os.path.getsize(path), integrity.sha256(path))
    with pytest.raises(TfvaeError, match="--keep_checkpoints must be at least 1"):
        tiny_config("", tmp_path, keep_checkpoints=0).validate()
    # A state.json written before checksums were recorded (one checkpoint, no list) still resumes; its file is
    # then checked by opening it.
    checkpointer = training.Checkpointer(str(tmp_path / "keep2"))
    newest = checkpointer.entries()[0]
    legacy = {k: newest[k] for k in ("epoch", "checkpoint", "noise")}
    open(checkpointer.state_path, "w").write(json.dumps(legacy))
    assert checkpointer.restore(model, log=pytest.fail) == legacy
    damage(os.path.join(checkpointer.directory, "ckpt-3.weights.h5"), "truncate")
    with pytest.raises(TfvaeError, match=r"ckpt-3.weights.h5 is cut short \(HDF5: truncated file\); restore it"):
        checkpointer.restore(model)


# ---------------------------------------------------------------------------------------------------------
# Valid files of another run, told apart from damaged ones


def test_a_config_of_another_run(run_copy, mnist_dir, tmp_path):
    path = os.path.join(run_copy, "config.json")
    other = json.load(open(path))
    other["latent"] = 3
    open(path, "w").write(json.dumps(other))
    before = tree(run_copy)
    for call in (lambda: pictures.sample_to_png(run_copy, "reconstruct", 2, output=str(tmp_path / "p.png")),
                 lambda: evaluation.load_run(run_copy)):
        with pytest.raises(TfvaeError) as raised:
            call()
        assert re.match(rf"{run_copy}/(encoder.keras does not fit the run's config.json \(it gives|decoder.keras "
                        r"does not fit the run's config.json \(it takes) codes of shape \(2,\), config.json says "
                        r"latent=3\): the two come from different runs; restore the run's own config.json, or run "
                        "train.py", str(raised.value)), str(raised.value)
    with pytest.raises(TfvaeError, match=r"holds a different run \(latent=3 \(asked 2\)\)"):
        read_train(mnist_dir, run_copy, lambda *_: None)
    assert tree(run_copy) == before


def test_weights_of_another_model(run_copy, mnist_dir, tmp_path):
    # Without config.json to compare the flags with, the checkpoint itself shows they are another model's.
    os.remove(os.path.join(run_copy, "config.json"))
    before = tree(run_copy)
    ckpt = os.path.join(run_copy, "checkpoints", "ckpt-2.weights.h5")
    with pytest.raises(TfvaeError) as raised:
        training.train(tiny_config(mnist_dir, run_copy, hidden=8), verbose=0, log=lambda *_: None)
    # The array's path holds a layer name that Keras makes up ("dense", "dense_2", ...): only its place is pinned.
    assert re.match(rf"{re.escape(ckpt)} holds the weights of another model \(its decoder/layers/\w+/vars/0 has shape "
                    r"\(2, 16\), this model's \(2, 8\)\), not of the model these flags build", str(raised.value))
    assert "pass the flags this run was trained with" in str(raised.value)
    assert tree(run_copy) == before
    # Keras itself would load an ae's weights into a vae with a mere warning.
    shapes = dict(image_shape=(28, 28, 1), num_classes=10, num_examples=64)
    ae = training.create_model(tiny_config(mnist_dir, tmp_path, model="ae", **shapes))
    ae.save_weights(str(tmp_path / "ae.weights.h5"))
    vae = training.create_model(tiny_config(mnist_dir, tmp_path, **shapes))
    # The vae's z_log_var kernel (hidden 16 -> latent 2), under whatever name Keras gives its layer.
    assert re.fullmatch(r"it lacks encoder/layers/\w+/vars/0, of shape \(16, 2\)",
                        training.checkpoints.weights_misfit(vae, str(tmp_path / "ae.weights.h5")))
    assert training.checkpoints.weights_misfit(ae, str(tmp_path / "ae.weights.h5")) is None


# ---------------------------------------------------------------------------------------------------------
# Evaluation outputs and caches


def test_a_directory_in_place_of_eval_json_is_refused_before_computing(run_copy, tmp_path):
    os.makedirs(os.path.join(run_copy, "eval.json"))
    before = tree(run_copy)
    options = evaluation.EvalOptions(num_samples=2, num_images=8, sample_count=16, classifier_epochs=1,
                                     cache_dir=str(tmp_path / "cache"))
    with pytest.raises(TfvaeError, match=rf"^{run_copy}/eval.json is a directory, not a file; move it out of "):
        evaluation.evaluate_run(run_copy, options, log=lambda *_: None)
    assert tree(run_copy) == before
    assert not (tmp_path / "cache").exists()  # nothing was computed


def test_a_damaged_classifier_cache_entry_is_named_and_trained_again(tmp_path):

    dataset = synthetic_dataset(count=64)
    cache = str(tmp_path / "cache")
    evaluation.load_or_train_classifier(dataset, cache, epochs=1, log=lambda *_: None)
    model_path = evaluation.classifier_path(dataset, cache)
    info_path = model_path[: -len(".keras")] + ".json"
    for path, kind, what in ((model_path, "truncate", "is cut short (a zip archive without its end)"),
                             (info_path, "random", "is not text (overwritten with other bytes?)")):
        damage(path, kind)
        messages = []
        assert evaluation.load_or_train_classifier(dataset, cache, epochs=1, log=messages.append).trained_now
        assert messages[0] == f"the cached classifier {path} {what}; training it again"
        assert integrity.keras_archive_problem(model_path) is None and integrity.read_json(info_path)
    damage(model_path, "directory")
    with pytest.raises(TfvaeError, match=rf"^{model_path} is a directory, not a cached classifier file; move it "):
        evaluation.load_or_train_classifier(dataset, cache, epochs=1, log=lambda *_: None)


# ---------------------------------------------------------------------------------------------------------
# The command lines


def test_the_scripts_print_one_line_and_exit_non_zero(finished_run, mnist_dir, offline_env, tmp_path):
    sample_run, train_run = str(tmp_path / "sample"), str(tmp_path / "train")
    for workdir in (sample_run, train_run):
        shutil.copytree(finished_run, workdir, symlinks=True)
    decoder = os.path.join(sample_run, "decoder.keras")
    damage(decoder, "truncate")  # Keras would say "File not found"
    newest, older = (os.path.join(train_run, "checkpoints", f"ckpt-{e}.weights.h5") for e in (2, 1))
    damage(newest, "zero")
    damage(older, "directory")
    befores = [tree(sample_run), tree(train_run)]
    train_flags = [f"--data_dir={mnist_dir}", "--arch=mlp", "--hidden=16", "--max_examples=64", "--batch_size=32",
                   f"--epochs={EPOCHS}", "--strategy=default"]
    procs = run_scripts([
        [os.path.join(REPO, "sample.py"), f"--workdir={sample_run}", "--mode=random", "--grid=2",
         f"--output={tmp_path / 'p.png'}"],
        [os.path.join(REPO, "train.py"), f"--workdir={train_run}", *train_flags],
    ], offline_env, check=False)
    for proc, workdir, before, path in zip(procs, (sample_run, train_run), befores, (decoder, newest)):
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and path in errors[0], proc.stderr
        assert tree(workdir) == before
    assert f"error: {decoder} is cut short (a zip archive without its end); restore it from a copy, or run " \
           f"train.py on {sample_run}" in procs[0].stderr
    assert f"error: no good checkpoint to resume from: {newest} is empty (0 bytes); {older} is a directory, not a " \
           f"file; restore them from a copy, or run train.py again with --restart to move this run to " \
           f"{train_run}.old-<UTC time> and start over" in procs[1].stderr


def test_the_flags_reach_the_config_and_train():
    from tests import script_runner

    train = script_runner.load(os.path.join(REPO, "train.py"))  # the script's flag definitions
    try:
        script_runner.FLAGS(["train.py", "--keep_checkpoints=3", "--restart"])
        assert train["config_from_flags"]().keep_checkpoints == 3 and script_runner.FLAGS.restart
    finally:
        script_runner.FLAGS.unparse_flags()
