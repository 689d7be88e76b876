"""The sharpness terms' cost and effect: the folder config with and without --adversarial / --feature_match.

    python benchmarks/make_picture_sets.py --sets=emoji --noskin_tones --output=/tmp/sets
    python benchmarks/sharpness.py --data_dir=/tmp/sets/emoji --output=/tmp/bench_sharp --epochs=15 \
        --variants=off,adversarial=0.1,feature_match=0.1

Every run is configs/folder_vae_64.cfg's recipe (a conv VAE on 64x64 RGB, calibrated Gaussian decoder), trained by
``training.train`` (train.py's function) with one variant's flags and the same seed. Per run it prints the mean
training seconds per epoch (history.csv's ``train_seconds``, the first epoch left out: it traces the step), the
test set's -ELBO terms and MSE, and the sharpness and colourfulness of the test reconstructions (at z = z_mean)
as ratios to the real test images' (``tfvae.metrics.perception``; 1.0: as sharp / as colourful as the real
pictures). The CPU flags and the load average are printed beside them: timings on a shared machine are noisy.
"""

import csv
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfvae import startup  # noqa: E402

startup.quiet_tensorflow_startup()  # TensorFlow without its C++ start-up notices and info logs

from absl import app, flags  # noqa: E402

from benchmarks.common import cpu_info  # noqa: E402

flags.DEFINE_string("data_dir", None, "Folder of images (one subfolder per class).")
flags.DEFINE_string("output", None, "Where the runs and report.json go.")
flags.DEFINE_list("variants", ["off", "adversarial=0.1", "feature_match=0.1"], "Runs: off, or NAME=WEIGHT[+NAME=W].")
flags.DEFINE_integer("epochs", 15, "Epochs of every run.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seed of every run.")
FLAGS = flags.FLAGS


def _variant(text):
    if text == "off":
        return {}
    return {name: float(weight) for name, weight in (part.split("=") for part in text.split("+"))}


def _cpu_flags():
    _, present = cpu_info()
    if present is None:
        return "?"
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return " ".join(flag for flag in wanted if flag in present)


def main(argv):
    del argv
    import numpy as np

    import tfvae
    from tfvae import training
    from tfvae.config import Config
    from tfvae.metrics.perception import perception

    report = {"cpu_flags": _cpu_flags(), "cpus": os.cpu_count(), "runs": {}}
    for text in FLAGS.variants:
        workdir = os.path.join(FLAGS.output, text.replace("=", "").replace("+", "_"))
        config = Config(model="vae", arch="conv", dataset="folder", data_dir=FLAGS.data_dir, image_size=64,
                        channels=3, filters=(16, 32, 64, 128), hidden=256, latent=128, loss="gaussian",
                        epochs=FLAGS.epochs, batch_size=64, seed=FLAGS.seed, workdir=workdir, **_variant(text))
        load_before = os.getloadavg()
        result = training.train(config, verbose=0, log=lambda *a: None)
        load_after = os.getloadavg()
        with open(os.path.join(workdir, "history.csv")) as f:
            rows = list(csv.DictReader(f))
        seconds = [float(r["train_seconds"]) for r in rows[1:]] or [float(rows[0]["train_seconds"])]
        run = tfvae.load(workdir)
        dataset = training.load_data(Config.load(workdir), log=lambda *a: None)
        real = dataset.x_test.astype("float32") / 255.0
        recon = run.reconstruct(real)
        measured = perception(recon, perception(real))
        report["runs"][text] = {
            "train_seconds_per_epoch": float(np.median(seconds)),
            "first_epoch_seconds": float(rows[0]["train_seconds"]),
            "test_loss": result["loss"], "test_reconstruction": result["reconstruction"], "test_kl": result["kl"],
            "test_mse": float(np.mean((recon - real) ** 2)), **measured,
            "load_1min_before_after": [round(load_before[0], 2), round(load_after[0], 2)]}
        print(text, json.dumps(report["runs"][text]), flush=True)
    os.makedirs(FLAGS.output, exist_ok=True)
    with open(os.path.join(FLAGS.output, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    flags.mark_flags_as_required(["data_dir", "output"])
    app.run(main)
