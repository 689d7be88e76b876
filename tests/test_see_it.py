"""The see-it benchmarks end to end on 512 digits: the three latent spaces, then the digit count of a grid."""

import json
import os
import re

from PIL import Image

from tests.conftest import REPO, run_script


def test_three_latent_spaces_then_grid_digits(mnist_dir, offline_env, tmp_path):
    out = tmp_path / "three"
    proc = run_script([os.path.join(REPO, "benchmarks", "three_latent_spaces.py"), f"--data_dir={mnist_dir}",
                       "--epochs=1", f"--outdir={out}", f"--output={tmp_path / 'three.png'}"], offline_env)
    assert proc.stdout.count("== ") == 3
    kl_only = proc.stdout.split("== KL only")[1].split("==")[0]
    assert float(re.search(r"KL ([0-9.]+);", kl_only).group(1)) < 0.5  # already near the prior after an epoch
    width, height = Image.open(tmp_path / "three.png").size
    assert width > 2 * height  # three panels side by side
    assert {p.name for p in out.iterdir()} >= {"reconstruction", "kl", "both"}

    proc = run_script([os.path.join(REPO, "benchmarks", "grid_digits.py"), str(out / "both"), "--grid=4",
                       f"--json={tmp_path / 'counts.json'}"], offline_env)
    counts = json.loads((tmp_path / "counts.json").read_text())
    assert sum(counts["cells"]) == 16 and len(counts["cells"]) == 10
    assert counts["classifier_test_accuracy"] > 0.8  # it reads digits (0.95 here, chance 0.1)
    assert "present:" in proc.stdout and "test codes: mean" in proc.stdout


def test_side_by_side_shows_the_same_test_images_for_every_run(trained, offline_env, tmp_path):
    run = str(trained / "runs" / "vae")
    proc = run_script([os.path.join(REPO, "benchmarks", "side_by_side.py"), run, run, "--labels=one,two",
                       "--count=5", f"--output={tmp_path / 'side.png'}"], offline_env)
    width, height = Image.open(tmp_path / "side.png").size
    assert height == (1 + 2 * 2) * 28 and width > 5 * 28  # test images, then reconstructions and samples per run
    one, two = [line for line in proc.stdout.splitlines() if line.startswith(("one:", "two:"))]
    assert one.split(":", 1)[1] == two.split(":", 1)[1]  # the same run measured on the same images
    assert "x the sharpness" in one
    assert run_script([os.path.join(REPO, "benchmarks", "side_by_side.py"), run, "--labels=a,b",
                       f"--output={tmp_path / 'x.png'}"], offline_env, check=False).returncode == 1
