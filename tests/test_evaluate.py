"""evaluate.py and tfvae.evaluation: the classifier cache, one tiny evaluation end to end, --compare, OOD,
score mode, and the errors a user meets."""

import csv
import json
import os
import re
import shutil

import numpy as np
import pytest
from PIL import Image

import tfvae
from tests.conftest import (
    EVALUATE,
    REPO,
    assert_one_line_error,
    eagerly,
    event_tags,
    monte_carlo_elbo_terms,
    run_script,
    run_scripts,
    synthetic_dataset,
)
from tfvae import evaluation, training
from tfvae.config import Config
from tfvae.errors import TfvaeError

# Small enough to keep each evaluation to seconds.
FAST = ["--num_samples=4", "--num_images=32", "--sample_count=64", "--classifier_epochs=1", "--elbo_samples=2",
        "--batch_size=256"]


@pytest.fixture(scope="module")
def tiny_runs(mnist_dir, tmp_path_factory):
    """An ae and a vae trained (in this process, to save start-up time) for one epoch on 256 digits, and an
    environment for evaluate.py with its own classifier cache."""
    root = tmp_path_factory.mktemp("eval")
    env = dict(os.environ, KERAS_HOME=str(root / "keras_home"), TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO,
               CUDA_VISIBLE_DEVICES="", TFVAE_CACHE=str(root / "cache"))
    for model in ("ae", "vae"):
        config = Config(model=model, data_dir=mnist_dir, epochs=1, batch_size=64, max_examples=256,
                        workdir=str(root / "runs" / model))
        with eagerly():  # 4 steps
            training.train(config, verbose=0, log=lambda message: None)
    return root, env


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """Eight noise images of another size (they are resized), plus one file that is not an image."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8)).save(folder / f"noise{i}.png")
    (folder / "notes.png").write_text("not an image")
    return folder


def test_classifier_is_trained_once_then_loaded_from_the_cache(tmp_path):
    dataset = synthetic_dataset()
    messages = []
    first = evaluation.load_or_train_classifier(dataset, str(tmp_path), epochs=2, log=messages.append)
    path = first.info["path"]
    assert first.trained_now and os.path.isfile(path) and path.startswith(str(tmp_path))
    assert first.info["test_accuracy"] > 0.9
    assert any("training the feature classifier" in m for m in messages)
    mtime = os.stat(path).st_mtime_ns

    messages.clear()
    second = evaluation.load_or_train_classifier(dataset, str(tmp_path), epochs=2, log=messages.append)
    assert not second.trained_now and second.info["test_accuracy"] == first.info["test_accuracy"]
    assert os.stat(path).st_mtime_ns == mtime and not messages
    f1, p1 = first.features_and_probs(dataset.x_test / 255.0)
    f2, p2 = second.features_and_probs(dataset.x_test / 255.0)
    np.testing.assert_allclose(f1, f2, rtol=1e-5, atol=1e-6)
    assert f1.shape == (len(dataset.x_test), 128) and p1.shape == (len(dataset.x_test), 2)

    # Other data (here: fewer training images) gets its own classifier.
    other = synthetic_dataset(count=200)
    assert evaluation.classifier_path(other, str(tmp_path)) != path


def test_unlabelled_data_has_no_classifier(tmp_path):
    dataset = synthetic_dataset()
    dataset.y_train = dataset.y_test = dataset.class_names = None
    with pytest.raises(TfvaeError, match="no class labels"):
        evaluation.load_or_train_classifier(dataset, str(tmp_path), epochs=1)


def assert_shares_of(count, *shares):
    """k-NN precision and recall are shares of ``count`` images inside the other set's balls: k / count."""
    for share in shares:
        assert 0 <= round(share * count) <= count and share == pytest.approx(round(share * count) / count), share


def assert_elbo_is_the_runs(workdir, m, elbo_samples, likelihood="bernoulli", variance=0.5, draws=256):
    """eval.json's mean -ELBO terms are those of the run's test images, computed here by plain Monte Carlo and
    the closed-form KL (evaluate.py drew ``elbo_samples`` per image: both standard errors set the tolerance)."""
    run = tfvae.load(str(workdir))
    x, _ = run.test_data()
    z_mean, z_log_var = run.encode(x)
    recon, spread, kl = monte_carlo_elbo_terms(z_mean, z_log_var, run.decoder, x, likelihood, variance, draws)
    assert m["kl"] == pytest.approx(float(np.mean(kl)), rel=1e-4, abs=1e-4)
    se = float(np.sqrt(np.sum(spread ** 2 * (1 / elbo_samples + 1 / draws)))) / len(x)
    assert abs(m["reconstruction"] - np.mean(recon)) < 4 * se + 1e-3, (m["reconstruction"], np.mean(recon), se)
    assert abs(m["neg_elbo"] - np.mean(recon + kl)) < 4 * se + 1e-3


def figures_in(report):
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)


def test_evaluate_end_to_end_with_ood_and_score(tiny_runs, image_folder):
    root, env = tiny_runs
    workdir = root / "runs" / "vae"
    proc = run_script([EVALUATE, f"--workdir={workdir}", *FAST, "--sampler=prior,gmm", "--ood_dataset=folder",
                       f"--ood_data_dir={image_folder}", "--iwae_precision=mixed_bfloat16", "--iwae_batch=16"], env)
    assert "| vae | vae | prior |" in proc.stdout and "real test vs real train" in proc.stdout
    assert "| vae | vae | reconstructions (the floor) |" in proc.stdout
    assert "wrote" in proc.stdout.splitlines()[-1]

    results = json.loads((workdir / "eval.json").read_text())
    m = results["metrics"]
    for key in ("neg_elbo", "reconstruction", "kl", "iwae_nll", "iwae_neg_elbo", "elbo_gap", "mse", "psnr",
                "classifier_test_accuracy", "floor_fcd", "floor_precision", "ood_auroc", "ood_auroc_complexity"):
        assert isinstance(m[key], float), key
    assert_elbo_is_the_runs(workdir, m, elbo_samples=2)
    assert m["iwae_num_images"] == 32 and m["iwae_num_samples"] == 4 and results["run"]["num_test_images"] == 64
    assert m["iwae_precision"] == "mixed_bfloat16"
    assert m["elbo_gap"] > -1.0  # never negative beyond noise
    assert results["samplers"]["gmm"]["components"] == 10  # a vae's default mixture, as fitted, and said
    assert "gmm sampler of 10 components: FCD " in proc.stderr
    for sampler in ("prior", "gmm"):
        entry = results["samplers"][sampler]
        assert set(entry) >= {"fcd", "inception_score", "precision", "recall", "grid"}
        assert_shares_of(64, entry["precision"], entry["recall"])  # 64 generated vs 64 real test images
        assert entry["fcd"] >= -1e-6
    # The reconstructions' floor: 64 reconstructed test images against 64 training images, beside the samplers'.
    recon = results["reconstructions"]
    assert recon["count"] == 64 and np.isfinite(recon["fcd"]) and recon["fcd"] >= -1e-6
    assert_shares_of(64, recon["precision"], recon["recall"], recon["near_copies"])
    assert recon["training_distance_ratio"] > 0  # the novelty of a sampler at the floor, in its table row:
    floor_row = next(line for line in proc.stdout.splitlines() if "| reconstructions (the floor) |" in line)
    assert f"| {recon['training_distance_ratio']:.2f} | {recon['near_copies']:.3f} |" in floor_row
    assert m["recon_fcd"] == recon["fcd"] and recon["sharpness_ratio"] == m["recon_sharpness_ratio"]
    limit = results["limit"]
    assert limit == evaluation.what_limits({s: results["samplers"][s]["fcd"] for s in ("prior", "gmm")},
                                           recon["fcd"])
    assert "reconstructions (the floor)" in (workdir / "report.md").read_text()
    assert limit["line"] in (workdir / "report.md").read_text() and limit["line"] in proc.stderr
    # What a person sees: grey digits have no colour, so no colourfulness ratio (None, never a division by 0).
    assert m["real_colourfulness"] == 0.0 and m["recon_colourfulness"] == 0.0
    assert m["recon_colourfulness_ratio"] is None
    assert m["real_sharpness"] > 0 and m["recon_sharpness_ratio"] == pytest.approx(
        m["recon_sharpness"] / m["real_sharpness"])
    for sampler in ("prior", "gmm"):
        entry = results["samplers"][sampler]
        assert entry["colourfulness"] == 0.0 and entry["colourfulness_ratio"] is None
        assert entry["sharpness_ratio"] == pytest.approx(entry["sharpness"] / m["real_sharpness"])
    # Uniform noise is far stranger than digits: every noise image scores above (almost) every test digit.
    assert results["ood"]["num_out"] == 8 and m["ood_auroc"] > 0.9
    assert results["classifier"]["path"].startswith(str(root / "cache"))

    report = (workdir / "report.md").read_text()
    figures = figures_in(report)
    assert {"eval_worst_reconstructions.png", "eval_samples_prior.png", "eval_samples_gmm.png",
            "eval_ood_scores.png"} <= set(figures)
    for name in figures:
        assert Image.open(workdir / name).size[0] > 0
    assert Image.open(workdir / "eval_samples_prior.png").size == (10 * 28, 10 * 28)
    section = report.split("## What a person sees")[1].split("\n## ")[0]
    their = next(line for line in section.splitlines() if line.startswith("| their reconstructions |"))
    assert their.rstrip().endswith("| — |")  # the colourfulness ratio of grey images: undefined
    tags = event_tags(str(workdir / "logs" / "eval"))
    assert "prior/eval/iwae_nll" in tags and "gmm/eval/fcd" in tags
    assert "prior/eval/recon_sharpness_ratio" in tags and "gmm/eval/sharpness_ratio" in tags
    assert "prior/eval/colourfulness_ratio" not in tags  # None is no scalar
    assert any(t.endswith("_hparams_/session_start_info") for t in tags), sorted(tags)

    # Score mode (through the API: the CLI is the same few lines): one CSV row per decodable image.
    out = root / "scores.csv"
    options = evaluation.EvalOptions(num_samples=4, num_images=32, elbo_samples=2, output=str(out))
    path, count = evaluation.score_folder(str(workdir), str(image_folder), options, log=lambda m: None)
    assert path == str(out) and count == 8
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["file"] for r in rows] == [f"noise{i}.png" for i in range(8)]
    assert set(rows[0]) == set(evaluation.SCORE_FIELDS)
    for row in rows:
        assert float(row["neg_elbo"]) > 0 and 0 <= float(row["test_percentile"]) <= 100
        assert float(row["complexity_score"]) == pytest.approx(float(row["neg_elbo"]) - float(row["png_nats"]),
                                                               rel=1e-4)


def test_what_limits_the_floor_or_the_sampler():
    """The rule on numbers: the floor limits when the best sampler is within 10% of the reconstructions' FCD."""
    at_floor = evaluation.what_limits({"prior": 97.1, "gmm": 58.7}, 58.4)
    assert at_floor["limit"] == "floor" and at_floor["best_sampler"] == "gmm"
    assert at_floor["gap"] == pytest.approx(0.3)
    assert at_floor["line"].startswith("The floor limits: the best sampler, gmm, has FCD 58.70, 0.30 above the "
                                       "reconstructions' 58.40") and "a better decoder" in at_floor["line"]
    gap = evaluation.what_limits({"learned": 29.5}, 24.3)  # 5.2 > 2.43
    assert gap["limit"] == "sampler" and gap["gap"] == pytest.approx(5.2)
    assert gap["line"].startswith("The sampler limits: the best sampler, learned, has FCD 29.50, 5.20 above")
    assert evaluation.what_limits({"gmm": 11.0}, 10.0)["limit"] == "floor"  # the bound itself: at the floor
    assert evaluation.what_limits({"gmm": 11.01}, 10.0)["limit"] == "sampler"
    below = evaluation.what_limits({"gmm": 9.0}, 10.0)  # beating the floor is noise: still the floor
    assert below["limit"] == "floor" and "1.00 below" in below["line"] and "a better decoder" in below["line"]
    far_below = evaluation.what_limits({"gmm": 2.57}, 4.84)  # the emoji's 399 test images, evaluate.py's seed 1
    assert far_below["limit"] == "floor" and "2.27 below" in far_below["line"]
    line = far_below["line"]
    assert "noisy" in line and "--seed" in line and "a better decoder" not in line
    assert evaluation.what_limits({"gmm": 12.0}, 10.0, tolerance=0.25)["limit"] == "floor"


def test_compare_ae_and_vae(tiny_runs):
    root, env = tiny_runs
    runs_dir = root / "runs"
    # Space-separated as in docs/evaluation.md; the classifier cached by another evaluation is reused, or trained once.
    proc = run_script([EVALUATE, "--compare", str(runs_dir / "ae"), str(runs_dir / "vae"), *FAST,
                       "--sampler=prior,gmm"], env)
    assert proc.stderr.count("training the feature classifier") <= 1
    table = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    cells = [[c.strip() for c in line.split("|")[1:4]] for line in table[1:5]]
    assert cells == [["ae", "ae", "prior"], ["ae", "ae", "gmm"], ["vae", "vae", "prior"], ["vae", "vae", "gmm"]]
    compare = runs_dir / "compare"
    report = (compare / "compare.md").read_text()
    grids = figures_in(report)
    assert len(grids) == 4 and all((compare / g).is_file() for g in grids)
    rows = json.loads((compare / "compare.json").read_text())["rows"]
    ae_row = next(r for r in rows if r["model"] == "ae")
    assert ae_row["neg_elbo"] is None  # a plain autoencoder has no ELBO
    # Each row holds its run's own evaluation, written beside it.
    for row in rows[:4]:
        own = json.loads((runs_dir / row["model"] / "eval.json").read_text())
        assert row["mse"] == own["metrics"]["mse"] and 0.0 < row["mse"] < 0.25
        assert row["fcd"] == own["samplers"][row["sampler"]]["fcd"] and row["fcd"] >= -1e-6
        assert row["sharpness_ratio"] == own["samplers"][row["sampler"]]["sharpness_ratio"] > 0
        assert row["recon_sharpness_ratio"] == own["metrics"]["recon_sharpness_ratio"] > 0
        assert row["colourfulness_ratio"] is None and row["recon_colourfulness_ratio"] is None  # grey digits
    assert "sharpness / real" in report and "colourfulness / real" not in report  # no column of only None
    floors = [r for r in rows if r["sampler"] == "reconstructions (the floor)"]  # one per run, after the samplers
    assert [r["model"] for r in floors] == ["ae", "vae"] and rows.index(floors[0]) == 4
    for row in floors:
        assert row["fcd"] == json.loads((runs_dir / row["model"] / "eval.json").read_text())["reconstructions"]["fcd"]
    assert report.count("The floor limits") + report.count("The sampler limits") == 2


def test_evaluate_errors(tiny_runs, tmp_path):
    root, env = tiny_runs
    proc = run_script([EVALUATE], env, cwd=tmp_path, check=False)  # default runs/latest: none here
    assert_one_line_error(proc, "no trained run at runs/latest", "python train.py")
    assert proc.returncode == 2

    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text(json.dumps({"model": "vae"}))
    options = evaluation.EvalOptions(sample_count=64, num_samples=2)
    with pytest.raises(TfvaeError, match="half has no encoder.keras yet"):
        evaluation.evaluate_run(str(tmp_path / "half"), options)
    with pytest.raises(TfvaeError, match="no trained run"):
        evaluation.compare_runs([str(root / "runs" / "vae"), str(tmp_path / "nope")], options)
    with pytest.raises(TfvaeError, match="--sampler=flow"):
        evaluation.EvalOptions(samplers=("flow",)).validate()
    for temperature in (0.0, -1.0, float("nan"), True):
        with pytest.raises(TfvaeError, match=f"--temperature={temperature}: the samples' spread is multiplied by it"):
            evaluation.EvalOptions(temperature=temperature).validate()
    with pytest.raises(TfvaeError, match="--ood_dataset=folder needs --ood_data_dir"):
        evaluation.EvalOptions(ood_dataset="folder").validate()
    with pytest.raises(TfvaeError, match="unknown --ood_dataset='cifar'"):
        evaluation.EvalOptions(ood_dataset="cifar").validate()
    with pytest.raises(TfvaeError, match="no data_dir given"):
        evaluation.score_folder(str(root / "runs" / "vae"), "", options)


def blob_folder(root, per_class=30, side=20, seed=0):
    """A labelled folder: red, green and blue discs of random size and place on white, one subfolder each."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:side, :side]
    for channel, name in enumerate(("red", "green", "blue")):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            image = np.full((side, side, 3), 255, np.uint8)
            cy, cx, r = rng.uniform(5, side - 5), rng.uniform(5, side - 5), rng.uniform(3, 6)
            disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
            colour = np.full(3, 40, np.uint8)
            colour[channel] = 220
            image[disc] = colour
            Image.fromarray(image).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory, image_folder):
    """A gaussian-decoder VAE trained for 4 epochs on 90 generated 16x16 colour images in 3 class folders."""
    root = tmp_path_factory.mktemp("folder_eval")
    images = blob_folder(root / "images")
    config = Config(model="vae", dataset="folder", data_dir=str(images), image_size=16, channels=3, filters=(8, 16),
                    hidden=16, latent=4, loss="gaussian", epochs=4, batch_size=4, workdir=str(root / "run"))
    training.train(config, verbose=0, log=lambda message: None)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO, CUDA_VISIBLE_DEVICES="",
               TFVAE_CACHE=str(root / "cache"))
    return root, env


def test_evaluate_a_folder_run_with_a_gaussian_decoder(folder_run, image_folder):
    import keras

    from tfvae import metrics

    root, env = folder_run
    workdir = root / "run"
    proc = run_script([EVALUATE, f"--workdir={workdir}", "--num_samples=8", "--sample_count=32", "--elbo_samples=2",
                       "--classifier_epochs=4", "--sampler=prior,gmm", "--ood_dataset=folder",
                       f"--ood_data_dir={image_folder}"], env)
    assert "| run | model | sampler |" in proc.stdout and "real test vs real train" in proc.stdout
    results = json.loads((workdir / "eval.json").read_text())
    m = results["metrics"]
    num_pixels = 16 * 16 * 3
    # The likelihood uses the variance the decoder was trained with, stored in decoder.keras.
    decoder = keras.saving.load_model(workdir / "decoder.keras", safe_mode=True)
    stored = metrics.decoder_variance(decoder, "gaussian")
    assert m["decoder_variance"] == pytest.approx(stored) and 1e-4 < stored < 0.25
    assert any("loss=gaussian" in note and f"{stored:.4g}" in note for note in results["notes"])
    # -ELBO and NLL are -log P of the 8-bit images: the Gaussian's mass over each pixel's bin (conftest's scipy).
    assert_elbo_is_the_runs(workdir, m, elbo_samples=2, likelihood="gaussian", variance=stored)
    assert m["bits_per_dim"] == pytest.approx(m["iwae_nll"] / (num_pixels * np.log(2))) and m["iwae_nll"] > 0
    assert m["elbo_gap"] > -1.0 and m["iwae_num_samples"] == 8
    assert 0.0 < m["mse"] < 0.25 and m["psnr"] == pytest.approx(np.mean(10 * np.log10(1 / m["mse"])), abs=3.0)
    # Sample quality in the features of a classifier trained on the folder's three classes.
    assert results["classifier"]["test_accuracy"] > 0.5
    for sampler in ("prior", "gmm"):
        entry = results["samplers"][sampler]
        assert entry["fcd"] >= -1e-6 and 1.0 <= entry["inception_score"] <= 3.0 + 1e-6
        assert_shares_of(32, entry["precision"], entry["recall"])  # 32 generated vs 32 real test images
        grid = np.asarray(Image.open(workdir / f"eval_samples_{sampler}.png").convert("RGB"), "float64")
        assert grid.shape == (10 * 16, 10 * 16, 3)
        assert np.abs(grid[..., 0] - grid[..., 2]).mean() > 1.0  # colour, not grey levels
    # What a person sees: the ratios are the run's own reconstructions' mean sharpness and colourfulness over
    # the real test images', recomputed here through the API.
    run = tfvae.load(str(workdir))
    x, _ = run.test_data()
    recon = run.reconstruct(x)
    for measure in ("sharpness", "colourfulness"):
        real = float(np.mean(getattr(metrics, measure)(x)))
        ours = float(np.mean(getattr(metrics, measure)(recon)))
        assert m[f"real_{measure}"] == pytest.approx(real) and real > 0
        assert m[f"recon_{measure}"] == pytest.approx(ours, rel=1e-4)
        assert m[f"recon_{measure}_ratio"] == pytest.approx(ours / real, rel=1e-4)
        for sampler in ("prior", "gmm"):
            entry = results["samplers"][sampler]
            assert entry[f"{measure}_ratio"] == pytest.approx(entry[measure] / real) and entry[measure] > 0
    # Four epochs on 90 pictures: blurred discs, duller than the saturated originals.
    assert m["recon_sharpness_ratio"] < 1.0 and m["recon_colourfulness_ratio"] < 1.0
    report = (workdir / "report.md").read_text()
    assert "## What a person sees" in report and "| their reconstructions |" in report
    assert "recon. sharpness / real" in proc.stdout and "colourfulness / real" in proc.stdout
    # Noise images are out of distribution for discs on white: their -ELBO is far above the test images'.
    assert results["ood"]["num_out"] == min(8, results["ood"]["num_in"]) and m["ood_auroc"] > 0.9
    shown = min(8, results["run"]["num_test_images"])  # the worst test images above their reconstructions
    assert Image.open(workdir / "eval_worst_reconstructions.png").size == (shown * 16, 2 * 16)

    # Score mode on new images (through the API; the CLI is the same few lines).
    options = evaluation.EvalOptions(num_samples=4, elbo_samples=2, output=str(root / "scores.csv"))
    path, count = evaluation.score_folder(str(workdir), str(image_folder), options, log=lambda m: None)
    assert count == 8
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["file"] for r in rows] == [f"noise{i}.png" for i in range(8)]
    for row in rows:
        assert float(row["test_percentile"]) == 100.0  # above every test image's -ELBO
        assert np.isfinite(float(row["iwae_nll"])) and float(row["mse"]) > m["mse"]

    # benchmarks/folder_recipes.py's table (--notrain --noevaluate: the report of runs already evaluated) shows
    # the ratios of this run's eval.json as sharpness/colourfulness cells.
    bench = root / "bench"
    shutil.copytree(workdir, bench / "gaussian", symlinks=True)
    (bench / "gaussian" / "quality.json").write_text(json.dumps({"epochs": [{"epoch": 4, "mse_ratio": 0.5}]}))
    proc = run_script([os.path.join(REPO, "benchmarks", "folder_recipes.py"), f"--data_dir={root / 'images'}",
                       f"--output={bench}", "--notrain", "--noevaluate", "--reference=gaussian"], env)
    table = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    cells = dict(zip([c.strip() for c in table[0].split("|")[1:-1]], [c.strip() for c in table[1].split("|")[1:-1]]))
    samplers = results["samplers"]
    assert cells["recon. S/C"] == f"{m['recon_sharpness_ratio']:.2f}/{m['recon_colourfulness_ratio']:.2f}"
    assert cells["prior S/C"] == (f"{samplers['prior']['sharpness_ratio']:.2f}/"
                                  f"{samplers['prior']['colourfulness_ratio']:.2f}")
    assert cells["GMM S/C"] == f"{samplers['gmm']['sharpness_ratio']:.2f}/{samplers['gmm']['colourfulness_ratio']:.2f}"
    row = json.loads((bench / "report.json").read_text())[0]
    assert row["recon_colourfulness_ratio"] == m["recon_colourfulness_ratio"]


@pytest.fixture(scope="module")
def likelihood_runs(folder_run):
    """A gaussian_pixel and a logistic_mixture VAE on folder_run's colour discs: one epoch, then resumed for a
    second."""
    root, env = folder_run
    for loss in ("gaussian_pixel", "logistic_mixture"):
        fields = dict(model="vae", dataset="folder", data_dir=str(root / "images"), image_size=16, channels=3,
                      filters=(8, 16), hidden=16, latent=4, loss=loss, batch_size=8, workdir=str(root / loss))
        messages = []
        with eagerly():  # 12 steps an epoch
            training.train(Config(epochs=1, **fields), verbose=0, log=lambda message: None)
            training.train(Config(epochs=2, **fields), verbose=0, log=messages.append)
        assert any("resuming" in m and "after epoch 1" in m for m in messages), messages
    return root, env


def test_the_new_decoders_train_resume_export_and_report_8bit_likelihoods(likelihood_runs):
    import keras

    root, env = likelihood_runs
    losses_ = ("gaussian_pixel", "logistic_mixture")
    procs = run_scripts([[EVALUATE, f"--workdir={root / loss}", "--num_samples=4", "--num_images=16",
                          "--sample_count=16", "--elbo_samples=1", "--classifier_epochs=4", "--sampler=prior"]
                         for loss in losses_], env)
    num_pixels = 16 * 16 * 3
    for loss, proc in zip(losses_, procs):
        workdir = root / loss
        decoder = keras.saving.load_model(workdir / "decoder.keras", safe_mode=True)
        assert decoder.output.shape[1:] == (16, 16, 6 if loss == "gaussian_pixel" else 50)
        m = json.loads((workdir / "eval.json").read_text())["metrics"]
        # -log P of 8-bit images: a probability, so never below 0 nats, and bits/dim = nats / (D ln 2) <= 8 here.
        assert 0 < m["iwae_nll"] <= m["neg_elbo"] + 50 and "decoder_variance" not in m
        assert m["bits_per_dim"] == pytest.approx(m["iwae_nll"] / (num_pixels * np.log(2))) and m["bits_per_dim"] < 8
        assert f"{m['bits_per_dim']:.4f}" in proc.stdout and f"{m['iwae_nll']:.2f}" in proc.stdout
        assert f"| {loss} | vae | prior |" in proc.stdout and "| IWAE NLL |" in proc.stdout
        # Pictures are the distribution's mean, in [0, 1] with the images' three channels.
        run = tfvae.load(str(workdir))
        x, _ = run.test_data()
        recon = run.reconstruct(x[:4])
        assert recon.shape == x[:4].shape and 0 <= recon.min() and recon.max() <= 1
        assert 0 < m["mse"] < 0.25


GENERATION = os.path.join(REPO, "benchmarks", "generation.py")


def test_the_generation_benchmark_parses_per_model_flags_and_sampler_settings(tmp_path, offline_env):
    """benchmarks/generation.py's --model_flags (train.py's flag definitions) and --sampler_settings (the samplers'
    settable names); a bad entry is one line and exit status 2 before anything is trained. Nothing is trained or
    fitted: the parsing, one Config and one in-process run of the script that stops at its bad entry (about a
    second)."""
    from absl import flags

    from tests import script_runner

    bench = script_runner.load(GENERATION)
    parse_flags, parse_settings, bad = bench["parse_model_flags"], bench["parse_sampler_settings"], bench["EntryError"]
    parsed = parse_flags(["gridvae:--latent=2 --kl_weight=1e-2", "gridvae:--filters=8,16", "ae:--noflip"],
                         ["ae", "gridvae"])
    assert parsed == {"gridvae": {"latent": 2, "kl_weight": 0.01, "filters": ["8", "16"]}, "ae": {"flip": False}}
    flags.FLAGS([GENERATION, f"--output={tmp_path}"])
    config = bench["make_config"]("gridvae", str(tmp_path / "gridvae"), parsed["gridvae"])
    assert (config.model, config.latent, config.kl_weight, config.filters) == ("gridvae", 2, 0.01, (8, 16))
    assert bench["make_config"]("ae", str(tmp_path / "ae")).latent == 16  # the benchmark's own --latent
    flags.FLAGS.unparse_flags()
    for entry, message in [
            ("gridvae", "--model_flags=gridvae: write MODEL:FLAGS, train.py's flags separated by spaces"),
            ("gridvae:", "--model_flags=gridvae:: write MODEL:FLAGS"),
            ("vqvae:--latent=2", "--model_flags=vqvae:--latent=2: vqvae is not one of the models trained here "
                                 "(ae, gridvae)"),
            ("gridvae:--bogus=1", "--model_flags for gridvae: Unknown command line flag 'bogus'"),
            ("gridvae:--latent=two", "--model_flags for gridvae: flag --latent=two: "),
            ("gridvae:latent=2", "--model_flags for gridvae: latent=2 is not a flag; write --name=value"),
            ("gridvae:--model=vae", "--model_flags for gridvae: --model is set by this benchmark")]:
        with pytest.raises(bad) as error:
            parse_flags([entry], ["ae", "gridvae"])
        assert str(error.value).startswith(message) and "\n" not in str(error.value), str(error.value)

    settings = parse_settings(["diffusion:steps=16000,hidden=392", "gmm:components=50",
                               "diffusion:prediction=eps,learning_rate=1e-3"], ["prior", "gmm", "diffusion"])
    assert settings == {"diffusion": {"steps": 16000, "hidden": 392, "prediction": "eps", "learning_rate": 1e-3},
                        "gmm": {"components": 50}}
    for entry, message in [
            ("gmm", "--sampler_settings=gmm: write SAMPLER:NAME=VALUE,NAME=VALUE"),
            ("gmm:components", "--sampler_settings=gmm:components: write SAMPLER:NAME=VALUE"),
            ("gmm:components=", "--sampler_settings=gmm:components=: write SAMPLER:NAME=VALUE"),
            ("two_stage:steps=5", "--sampler_settings=two_stage:steps=5: two_stage is not one of --samplers "
                                  "(prior, gmm, diffusion)"),
            ("gmm:steps=5", "--sampler_settings=gmm:steps=5: steps is not a setting of gmm; it takes components, "
                            "max_codes"),
            ("prior:x=1", "--sampler_settings=prior:x=1: x is not a setting of prior; it takes none")]:
        with pytest.raises(bad) as error:
            parse_settings([entry], ["prior", "gmm", "diffusion"])
        assert str(error.value).startswith(message) and "\n" not in str(error.value), str(error.value)

    proc = run_script([GENERATION, f"--output={tmp_path}", "--models=ae", "--model_flags=ae:--bogus=1"],
                      offline_env, check=False)
    assert proc.returncode == 2 and not list(tmp_path.iterdir()), proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and proc.stderr.startswith(
        "error: --model_flags for ae: Unknown command line flag 'bogus'"), proc.stderr
