"""train.py and sample.py as a user runs them: one tiny run end to end, same-seed runs, and the CLI errors."""

import csv
import glob
import json
import os
import shutil

import keras
import numpy as np
import pytest
from PIL import Image

import tfvae  # noqa: F401  (registers the custom layers)
from tests.conftest import REPO, run_script, run_scripts
from tfvae import pictures

TRAIN = os.path.join(REPO, "train.py")
SAMPLE = os.path.join(REPO, "sample.py")


def event_tags(logdir):
    """Scalar and image tags written to TensorBoard event files under ``logdir``."""
    import tensorflow as tf

    tags = set()
    for path in glob.glob(os.path.join(logdir, "**", "events.out.tfevents.*"), recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                tags.add(f"{os.path.basename(os.path.dirname(path))}/{value.tag}")
    return tags


@pytest.fixture(scope="module")
def cli_run(mnist_dir, offline_env, tmp_path_factory):
    """The quickstart as a user types it, run once: ``train.py`` in a fresh folder -> (folder, its output)."""
    cwd = tmp_path_factory.mktemp("cli")
    proc = run_script([TRAIN, "--model=vae", "--latent=2", f"--data_dir={mnist_dir}", "--epochs=2",
                       "--batch_size=64", "--workdir=runs/vae-mnist-z2"], offline_env, cwd=cwd)
    return cwd, proc


def test_train_then_sample_end_to_end(cli_run, mnist_dir, offline_env, tmp_path):
    cwd, proc = cli_run
    out = proc.stdout.strip().splitlines()
    assert out[-3].startswith("final test loss ")
    assert "runs/vae-mnist-z2" in out[-2]
    workdir = cwd / "runs" / "vae-mnist-z2"
    assert (cwd / "runs" / "latest").read_text() == "vae-mnist-z2\n"  # a file naming the newest run

    config = json.loads((workdir / "config.json").read_text())
    assert config["model"] == "vae" and config["image_shape"] == [28, 28, 1] and config["num_classes"] == 10
    assert mnist_dir in config["data_source"]
    with open(workdir / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    for key in ("loss", "reconstruction", "kl", "val_loss", "val_reconstruction", "val_kl", "seconds",
                "examples_per_sec", "learning_rate"):
        assert float(rows[-1][key]) == float(rows[-1][key])  # present and a number, not NaN
    assert float(rows[-1]["val_loss"]) == pytest.approx(float(rows[-1]["val_reconstruction"])
                                                        + float(rows[-1]["val_kl"]), rel=1e-4)

    tags = event_tags(str(workdir / "logs"))
    for tag in ("train/epoch_loss", "train/epoch_reconstruction", "train/epoch_kl", "train/epoch_learning_rate",
                "train/epoch_examples_per_sec", "validation/epoch_loss", "images/reconstructions",
                "images/samples", "latent/projector", "latent/traversal"):
        assert tag in tags, (tag, sorted(tags))

    encoder = keras.saving.load_model(workdir / "encoder.keras", safe_mode=True)
    decoder = keras.saving.load_model(workdir / "decoder.keras", safe_mode=True)
    images = np.random.default_rng(0).uniform(size=(3, 28, 28, 1)).astype("float32")
    assert set(encoder(images)) == {"z_mean", "z_log_var", "z"}
    assert tuple(decoder(encoder(images)["z_mean"]).shape) == (3, 28, 28, 1)

    # sample.py with no flag but --grid uses runs/latest.
    proc = run_script([SAMPLE, "--grid", "15"], offline_env, cwd=cwd)
    grid_path = cwd / proc.stdout.strip().splitlines()[-1].removeprefix("wrote ")
    assert os.path.samefile(grid_path, workdir / "grid.png")
    assert Image.open(grid_path).size == (15 * 28, 15 * 28)

    for mode, size in [("random", (4 * 28, 4 * 28)), ("reconstruct", (4 * 28, 4 * 28)),
                       ("interpolate", (4 * 28, 4 * 28)), ("scatter", None)]:
        path = pictures.sample_to_png(str(workdir), mode, 4, output=str(tmp_path / f"{mode}.png"))
        if size:
            assert Image.open(path).size == size
        else:
            assert Image.open(path).size[0] > 100


def _final_weights(workdir):
    return keras.saving.load_model(os.path.join(workdir, "encoder.keras"), safe_mode=True).get_weights()


def test_same_seed_in_new_processes_gives_the_same_weights(mnist_dir, offline_env, tmp_path):
    common = ["--model=vae", f"--data_dir={mnist_dir}", "--epochs=1", "--max_examples=256",
              "--binarize=dynamic", "--batch_size=64"]
    run_scripts([[TRAIN, *common, f"--seed={seed}", f"--workdir={tmp_path / name}"]
                 for name, seed in (("a", 3), ("b", 3), ("c", 4))], offline_env)
    a, b, c = (_final_weights(str(tmp_path / n)) for n in "abc")
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a, c))


def assert_one_line_error(proc, *fragments):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "error" in ln.lower() and "cuInit" not in ln]
    assert len(lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], proc.stderr


FLAG_ERRORS = [
    (["--model=gan"], ["--model=gan", "ae|vae|cvae"]),
    (["--dataset=cifar"], ["--dataset=cifar", "mnist|fashion_mnist|folder"]),
    (["--latent=0"], ["--latent=0"]),
    (["--data_dir=/nonexistent/tfvae"], ["/nonexistent/tfvae does not exist"]),
]


@pytest.fixture(scope="module")
def flag_error_runs(offline_env, tmp_path_factory):
    """train.py with each of FLAG_ERRORS' flags, all started at once -> [(process, its --workdir)]."""
    workdirs = [tmp_path_factory.mktemp("flags") / "run" for _ in FLAG_ERRORS]
    procs = run_scripts([[TRAIN, *args, f"--workdir={workdir}"] for (args, _), workdir in zip(FLAG_ERRORS, workdirs)],
                        offline_env, check=False)
    return list(zip(procs, workdirs))


@pytest.mark.parametrize("case", range(len(FLAG_ERRORS)), ids=[" ".join(a) for a, _ in FLAG_ERRORS])
def test_train_flag_errors(case, flag_error_runs):
    proc, workdir = flag_error_runs[case]
    assert_one_line_error(proc, *FLAG_ERRORS[case][1])
    assert not workdir.exists()


def test_train_errors_for_another_architecture_and_unlabelled_cvae(cli_run, mnist_dir, offline_env, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(cli_run[0] / "runs" / "vae-mnist-z2", workdir)
    before = (workdir / "history.csv").read_text()
    folder = tmp_path / "flat"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), 60 * i, np.uint8)).save(folder / f"{i}.png")
    other, cvae = run_scripts([
        [TRAIN, "--arch=mlp", f"--data_dir={mnist_dir}", f"--workdir={workdir}"],
        [TRAIN, "--model=cvae", "--dataset=folder", f"--data_dir={folder}", "--image_size=8",
         f"--workdir={tmp_path / 'cvae'}"]], offline_env, check=False)
    assert_one_line_error(other, f"{workdir} holds a different run", "arch=conv (asked mlp)", "--workdir")
    assert (workdir / "history.csv").read_text() == before  # nothing already written is lost
    assert_one_line_error(cvae, "cvae needs class labels", "subfolder per class")


def test_sample_errors(offline_env, tmp_path):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text(json.dumps({"model": "vae"}))
    none, half = run_scripts([[SAMPLE, "--grid", "15"], [SAMPLE, "--workdir=half"]], offline_env, cwd=tmp_path,
                             check=False)
    assert_one_line_error(none, "no trained run at runs/latest", "python train.py")
    assert_one_line_error(half, "half has no decoder.keras yet")
