"""tfvae.files and tfvae.cluster: atomic writes, the run lock, stale temporaries, TensorBoard truncation, TF_CONFIG."""

import glob
import json
import os

import pytest
import tensorflow as tf

from tfvae import files
from tfvae.cluster import parse_tf_config
from tfvae.errors import TfvaeError


def test_temporary_names_keep_the_suffixes_keras_insists_on():
    assert files.temporary_path("/r/encoder.keras") == "/r/encoder.tmp.keras"
    assert files.temporary_path("/r/ckpt-3.weights.h5") == "/r/ckpt-3.tmp.weights.h5"
    assert files.temporary_path("/r/state.json") == "/r/state.json.tmp"


def test_a_failed_write_leaves_the_previous_copy(tmp_path):
    path = tmp_path / "history.csv"
    files.atomic_write_text(str(path), "old\n")

    def half_write(tmp):
        with open(tmp, "w") as f:
            f.write("half of the new")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        files.atomic_save(str(path), half_write)
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["history.csv"]  # the partial file is gone, and the space it took


def test_stale_temporaries_are_recognised_by_name(tmp_path):
    names = ["encoder.tmp.keras", "ckpt-2.tmp.weights.h5", "state.json.tmp", "encoder.keras", "ckpt-2.weights.h5",
             "history.csv", "notes.tmpl", "template.txt"]
    for name in names:
        (tmp_path / name).write_text("x")
    removed = files.remove_stale_temporaries(str(tmp_path), str(tmp_path / "absent"))
    assert sorted(os.path.basename(p) for p in removed) == ["ckpt-2.tmp.weights.h5", "encoder.tmp.keras",
                                                             "state.json.tmp"]
    assert sorted(os.listdir(tmp_path)) == sorted(names[3:])


def test_the_run_lock_refuses_a_second_holder_and_frees_on_exit(tmp_path):
    workdir = str(tmp_path / "run")
    with files.RunLock(workdir):
        assert open(os.path.join(workdir, ".lock")).read().strip() == str(os.getpid())
        # flock locks belong to an open file: a second open, even in this process, is refused like another
        # process would be.
        with pytest.raises(TfvaeError, match=rf"^{workdir} is in use by another train.py \(pid {os.getpid()}\); "):
            with files.RunLock(workdir):
                pass
        (tmp_path / "run" / "config.json").write_text("{}")
    with files.RunLock(workdir):  # released: the next run gets it
        pass
    assert sorted(os.listdir(workdir)) == [".lock", "config.json"]


def test_a_run_that_wrote_nothing_leaves_no_directory(tmp_path):
    with pytest.raises(ValueError):
        with files.RunLock(str(tmp_path / "new" / "run")):
            raise ValueError("bad data")
    assert os.listdir(tmp_path / "new") == []


def test_unwritable_workdirs_are_one_line_errors(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(TfvaeError, match="is a file, not a directory"):
        files.RunLock(str(tmp_path / "file")).__enter__()
    with pytest.raises(TfvaeError, match=r"cannot write the run directory .*file/run \(Not a directory\)"):
        files.RunLock(str(tmp_path / "file" / "run")).__enter__()
    # /sys refuses new directories even to root (chmod would not stop root).
    with pytest.raises(TfvaeError, match=r"cannot write the run directory /sys/tfvae-run \(.*\); pass a writable"):
        files.RunLock("/sys/tfvae-run").__enter__()


def _write_epochs(logdir, steps, truncate_last_record=False):
    writer = tf.summary.create_file_writer(logdir)
    with writer.as_default():
        for step in steps:
            tf.summary.scalar("epoch_loss", float(step), step=step)
    writer.close()
    if truncate_last_record:
        path = max(glob.glob(os.path.join(logdir, "events.out.tfevents.*")), key=os.path.getmtime)
        with open(path, "rb+") as f:
            f.truncate(os.path.getsize(path) - 5)


def _steps(logdir):
    steps = []
    for path in sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            steps += [event.step for value in event.summary.value if value.tag == "epoch_loss"]
    return steps


def test_truncating_event_files_drops_uncommitted_epochs(tmp_path):
    logdir = str(tmp_path / "logs" / "train")
    _write_epochs(logdir, [1, 2, 3])
    assert files.truncate_event_files(str(tmp_path / "logs"), 3) == 0  # nothing after the checkpoint
    assert files.truncate_event_files(str(tmp_path / "logs"), 1) == 2
    assert _steps(logdir) == [1]
    _write_epochs(logdir, [2, 3, 4], truncate_last_record=True)  # a kill cut the last record short
    assert files.truncate_event_files(str(tmp_path / "logs"), 3) == 0
    assert _steps(logdir) == [1, 2, 3]
    assert not glob.glob(os.path.join(logdir, "*tmp*"))


@pytest.mark.parametrize("text,message", [
    ("{'cluster': 1}", "is not valid JSON (Expecting property name enclosed in double quotes at line 1 column 2)"),
    ("[1, 2]", "must be a JSON object, not list"),
    ('{"task": {"type": "worker", "index": 0}}', 'needs "cluster"'),
    ('{"cluster": {"worker": []}, "task": {"type": "worker"}}', '"cluster"."worker" must be a non-empty list'),
    ('{"cluster": {"worker": ["host0"]}, "task": {"type": "worker"}}', "holds 'host0', not a \"host:port\""),
    ('{"cluster": {"worker": ["a:1"]}}', 'needs "task"'),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}', "'ps', which \"cluster\" does not"),
    ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}',
     'has only 2 address(es) (indices 0..1)'),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": "0"}}', "non-negative integer, not '0'"),
    ('{"cluster": {"chief": ["a:1", "b:2"]}, "task": {"type": "chief"}}', "a cluster has one chief"),
])
def test_malformed_tf_config_is_a_one_line_error(text, message):
    with pytest.raises(TfvaeError) as raised:
        parse_tf_config(text)
    assert str(raised.value).startswith("TF_CONFIG ") and message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_tf_config_parses(monkeypatch):
    config = {"cluster": {"chief": ["h0:2222"], "worker": ["h1:2222", "h2:2222"]}, "task": {"type": "worker",
                                                                                            "index": 1}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    assert parse_tf_config() == config
    assert parse_tf_config('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker"}}')["task"]["index"] == 0
    monkeypatch.setenv("TF_CONFIG", " ")
    assert parse_tf_config() is None
    monkeypatch.delenv("TF_CONFIG")
    assert parse_tf_config() is None
