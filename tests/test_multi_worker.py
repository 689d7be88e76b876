"""--strategy=multi_worker: two worker processes on 127.0.0.1, chief-only writing, the decode cache built by the
chief alone, resume, TF_CONFIG errors."""

import csv
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO, TRAIN, run_script
from tfvae import training
from tfvae.errors import TfvaeError

JOB = os.path.join(REPO, "tests", "multi_worker_job.py")


def free_ports(count):
    socks = [socket.socket() for _ in range(count)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def run_cluster(tmp_path, env, data_dir, workdir, epochs, tag):
    """Runs both workers to the end; returns their reports (index 0 is the chief)."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(2)]}
    procs, reports = [], []
    for index in range(2):
        temp = tmp_path / f"tmp-{tag}-{index}"
        temp.mkdir()
        report = tmp_path / f"report-{tag}-{index}.json"
        worker_env = dict(env, TMPDIR=str(temp),
                          TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        procs.append(subprocess.Popen([sys.executable, JOB, data_dir, str(workdir), str(epochs), str(report)],
                                      env=worker_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        reports.append((report, temp))
    outputs = [p.communicate(timeout=240)[0] for p in procs]
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out
    result = []
    for report, temp in reports:
        info = json.loads(report.read_text())
        info["tmpdir_left"] = os.listdir(temp)
        result.append(info)
    return result


def weights(info):
    with np.load(info["weights"]) as f:
        return [f[k] for k in sorted(f.files, key=lambda k: int(k.split("_")[1]))]


@pytest.fixture
def picture_folder(tmp_path):
    """80 random 28x28 grey pictures in a folder."""
    from PIL import Image

    folder = tmp_path / "pictures"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(80):
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    return str(folder)


def test_two_workers_train_identically_only_the_chief_writes_and_resume_works(picture_folder, offline_env, tmp_path):
    workdir = tmp_path / "run"
    env = dict(offline_env, TFVAE_CACHE=str(tmp_path / "cache"))  # one decode cache for both, as on a shared disk
    chief, worker = run_cluster(tmp_path, env, picture_folder, workdir, epochs=1, tag="a")
    # The chief decoded the folder into the cache; the other worker waited for it and read it.
    assert any(m.startswith("decode cache: decoding 80 images") for m in chief["messages"]), chief["messages"]
    assert not any(m.startswith("decode cache: decoding") for m in worker["messages"]), worker["messages"]
    assert any(m.startswith("decode cache: reading 80 images") for m in worker["messages"]), worker["messages"]
    for a, b in zip(weights(chief), weights(worker)):
        np.testing.assert_array_equal(a, b)
    # The chief wrote the run directory; the other worker wrote the same files to a temporary directory,
    # which is gone once it finished.
    assert chief["temp_runs"] == [] and len(worker["temp_runs"]) == 1
    assert {"config.json", "checkpoints/ckpt-1.weights.h5", "history.csv"} <= set(worker["temp_files"])
    assert worker["tmpdir_left"] == [] and chief["tmpdir_left"] == []
    assert sorted(os.listdir(workdir / "checkpoints")) == ["ckpt-1.weights.h5", "state.json"]
    assert (workdir / "encoder.keras").is_file() and (workdir / "decoder.keras").is_file()
    assert (tmp_path / "latest").read_text() == "run\n"

    # The cluster restarts (as after the chief was lost) with more epochs: both workers resume from epoch 1.
    chief2, worker2 = run_cluster(tmp_path, env, picture_folder, workdir, epochs=2, tag="b")
    for info in (chief2, worker2):
        assert any("resuming" in m and "after epoch 1" in m for m in info["messages"]), info["messages"]
    for a, b in zip(weights(chief2), weights(worker2)):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(weights(chief), weights(chief2)))
    with open(workdir / "history.csv") as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["1", "2"]
    assert json.loads((workdir / "checkpoints" / "state.json").read_text())["epoch"] == 2
    assert chief2["loss"] == pytest.approx(worker2["loss"])


@pytest.mark.parametrize("value,fragment", [
    ("", "needs the TF_CONFIG environment variable"),
    ("{'cluster': 1}", "TF_CONFIG is not valid JSON"),
    ('{"cluster": {"worker": "localhost:1"}, "task": {"type": "worker", "index": 0}}', 'must be a non-empty list'),
    ('{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 1}}', '"task"."index" is 1'),
    ('{"cluster": {"worker": ["localhost:1"]}}', 'needs "task"'),
])
def test_malformed_tf_config_is_a_one_line_error(value, fragment, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", value)
    with pytest.raises(TfvaeError, match=fragment) as e:
        training.make_strategy("multi_worker")
    assert "\n" not in str(e.value)


def test_train_py_reports_a_malformed_tf_config_in_one_line(offline_env, tmp_path):
    env = dict(offline_env, TF_CONFIG="{not json")
    proc = run_script([TRAIN, "--strategy=multi_worker", f"--workdir={tmp_path / 'run'}"], env, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip().splitlines()[-1]]
    assert proc.stderr.startswith("error: TF_CONFIG is not valid JSON"), proc.stderr
    assert not (tmp_path / "run").exists()


def test_chief_is_the_chief_job_or_else_worker_0():
    class Resolver:
        def __init__(self, task_type, task_id, cluster):
            self.task_type, self.task_id, self._cluster = task_type, task_id, cluster

        def cluster_spec(self):
            class Spec:
                def as_dict(_):
                    return self._cluster
            return Spec()

    class Strategy:
        def __init__(self, *args):
            self.cluster_resolver = Resolver(*args)

    workers = {"worker": ["a:1", "b:1"]}
    with_chief = {"chief": ["c:1"], **workers}
    assert training.is_chief(Strategy("worker", 0, workers))
    assert not training.is_chief(Strategy("worker", 1, workers))
    assert training.is_chief(Strategy("chief", 0, with_chief))
    assert not training.is_chief(Strategy("worker", 0, with_chief))
    assert training.is_chief(object())  # single-process strategies have no resolver
