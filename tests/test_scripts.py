"""train.py and sample.py as a user runs them: one tiny run end to end, same-seed runs, and the CLI errors."""

import csv
import json
import os
import shutil

import keras
import numpy as np
import pytest
from PIL import Image

import tfvae.models  # noqa: F401  (registers the custom layers)
from tests.conftest import (
    REPO,
    SAMPLE,
    TRAIN,
    assert_one_line_error,
    event_tags,
    run_processes,
    run_script,
    run_scripts,
    shared_build,
)
from tfvae import pictures, training
from tfvae.config import Config

EVALUATE = os.path.join(REPO, "evaluate.py")
# evaluate.py kept to seconds: few samples, images and classifier epochs.
FAST_EVAL = ["--num_samples=4", "--num_images=32", "--sample_count=16", "--classifier_epochs=1", "--elbo_samples=2"]

@pytest.fixture(scope="module")
def cli_run(mnist_dir, offline_env, tmp_path_factory):
    """The quickstart as a user types it, run once: ``train.py`` in a fresh folder -> (folder, its output).

    Trained in this process (tests/script_runner.py), once for the xdist workers (``shared_build``): a new process
    would add only TensorFlow's start-up. ``python train.py`` as a new process is tested by
    test_same_seed_in_new_processes_gives_the_same_weights."""
    def build(cwd):
        return run_script([TRAIN, "--model=vae", "--latent=2", f"--data_dir={mnist_dir}", "--epochs=2",
                           "--batch_size=64", "--workdir=runs/vae-mnist-z2"], offline_env, cwd=cwd)

    return shared_build(tmp_path_factory, "cli", build)


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


def test_every_script_mode_reads_runs_latest(cli_run, mnist_dir, offline_env, tmp_path):
    """Every mode of sample.py and evaluate.py that reads a run, with its default --workdir=runs/latest."""
    quick = tmp_path / "quick"  # a copy of the quickstart's folder: the pictures and reports go there
    shutil.copytree(cli_run[0] / "runs", quick / "runs")
    run = quick / "runs" / "vae-mnist-z2"
    shutil.rmtree(run / "logs" / "latent")  # training's Projector files: sample.py writes them again
    # A --classes=0 run for --one_class, trained in this process (no start-up) on a shuffled split (the
    # mnist_dir fixture's digits are sorted by class: its test digits are all ones).
    digits = np.load(os.path.join(mnist_dir, "mnist.npz"))
    x = np.concatenate([digits["x_train"], digits["x_test"]])
    y = np.concatenate([digits["y_train"], digits["y_test"]])
    pick = np.random.default_rng(0).permutation(len(x))
    (tmp_path / "digits").mkdir()
    np.savez(tmp_path / "digits" / "mnist.npz", x_train=x[pick[:512]], y_train=y[pick[:512]], x_test=x[pick[512:]],
             y_test=y[pick[512:]])
    picked = tmp_path / "picked"
    training.train(Config(model="vae", data_dir=str(tmp_path / "digits"), classes=(0,), epochs=1, batch_size=64,
                          workdir=str(picked / "runs" / "vae-c0")), verbose=0, log=lambda message: None)
    folder = tmp_path / "to_score"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((28, 28), 80 * i, np.uint8)).save(folder / f"{i}.png")
    env = dict(offline_env, TFVAE_CACHE=str(tmp_path / "cache"))
    modes = ["grid", "random", "reconstruct", "interpolate", "scatter", "traverse", "projector", "denoise"]
    commands = [([SAMPLE, f"--mode={mode}", "--grid=4"] + (["--noise=gaussian:0.3"] if mode == "denoise" else []),
                 quick) for mode in modes]
    commands += [([EVALUATE, *FAST_EVAL], quick),
                 ([EVALUATE, "--mode=score", f"--data_dir={folder}", *FAST_EVAL], quick),
                 ([EVALUATE, "--one_class", *FAST_EVAL], picked)]
    # The library's errors name its arguments (label=3, noise); the scripts name their flags.
    wrong = [([SAMPLE, "--mode=random", "--label=3"], quick), ([SAMPLE, "--mode=denoise"], quick)]
    procs = []
    for batch in (commands[:7], commands[7:] + wrong):  # each process is mostly TensorFlow's start-up
        procs += run_scripts([args for args, _ in batch], env, cwd=[cwd for _, cwd in batch], check=False)
    for (args, _), proc in zip(commands, procs):
        failed = proc.returncode != 0 or "Traceback" in proc.stderr or "error:" in proc.stderr
        assert not failed, (args, proc.stderr[-2000:])
    assert_one_line_error(procs[-2], "--label=3 given", "holds a vae: only a cvae takes labels")
    assert_one_line_error(procs[-1], "no --noise given", "--noise=gaussian:0.3")
    for mode in modes:
        expected = run / ("logs/latent/projector_config.pbtxt" if mode == "projector" else f"{mode}.png")
        assert expected.is_file(), mode
    assert (run / "eval.json").is_file() and (run / "scores.csv").is_file()
    with open(run / "scores.csv") as f:
        assert len(list(csv.DictReader(f))) == 3
    one_class = json.loads((picked / "runs" / "vae-c0" / "one_class.json").read_text())
    y_test = y[pick[512:]]  # every test image is scored
    assert (one_class["num_normal"], one_class["num_anomalous"]) == ((y_test == 0).sum(), (y_test != 0).sum())


def _final_weights(workdir):
    return keras.saving.load_model(os.path.join(workdir, "encoder.keras"), safe_mode=True).get_weights()


def test_same_seed_in_new_processes_gives_the_same_weights(mnist_dir, offline_env, tmp_path):
    common = ["--model=vae", f"--data_dir={mnist_dir}", "--epochs=1", "--max_examples=256",
              "--binarize=dynamic", "--batch_size=64"]
    # --deterministic (op determinism, TensorFloat-32 off) on both: what a GPU needs for this; a CPU run is anyway.
    run_processes([[TRAIN, *common, "--seed=3", "--deterministic", f"--workdir={tmp_path / name}"] for name in "ab"],
                  offline_env)
    # Another seed gives other weights: that needs no fresh interpreter, so it trains in this one.
    run_script([TRAIN, *common, "--seed=4", f"--workdir={tmp_path / 'c'}"], offline_env)
    a, b, c = (_final_weights(str(tmp_path / n)) for n in "abc")
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a, c))
    assert json.loads((tmp_path / "a" / "config.json").read_text())["deterministic"] is True


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
