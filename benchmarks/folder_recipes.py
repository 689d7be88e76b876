"""Recipes for a folder of real pictures, side by side: reconstruction quality per epoch and per minute.

    python benchmarks/make_picture_sets.py --output=/work/picture_sets
    python benchmarks/folder_recipes.py --data_dir=/work/picture_sets/emoji --output=/work/bench/emoji \
        --losses=bce,mse,gaussian --epochs=6                      # train (resumes), then evaluate and report
    python benchmarks/folder_recipes.py ... --name_suffix=-f16 --filters=16,32,64,128 --losses=gaussian
    python benchmarks/folder_recipes.py ... --notrain --noevaluate --figures=gaussian,mse,bce   # report, pictures

Every run is the folder config (configs/folder_vae_64.cfg: a conv VAE on 64x64 RGB) trained by
``training.train``, the function train.py calls, with only the flags given here changed. After every epoch a
probe measures the test images' reconstruction MSE at z = z_mean and divides it by the MSE of predicting the
training set's mean image (1.0: no better than the mean image). The probe's own time is not counted: an epoch's
time is the run's history.csv ``seconds`` (training, validation, checkpoint and export).

Then each run is evaluated by ``evaluation.evaluate_run`` (evaluate.py's metrics: -ELBO, IWAE NLL, MSE/PSNR,
FCD/IS/precision/recall of prior and GMM samples in a classifier trained on the folder's labels, and the
sharpness and colourfulness of the reconstructions and samples as ratios to the real test images') and pictured
(reconstructions, prior samples, interpolations). ``<output>/report.md`` and ``report.json`` hold the table and
the time each run takes to reach the reference run's final quality (``--reference``, default the mse run: the
folder config's old recipe).
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfvae import startup  # noqa: E402

startup.quiet_tensorflow_startup()  # TensorFlow without its C++ start-up notices and info logs

from absl import app, flags  # noqa: E402

from benchmarks.common import cell  # noqa: E402
from benchmarks.figures import grid_rows, labelled  # noqa: E402

flags.DEFINE_string("data_dir", None, "Folder of images (one subfolder per class).")
flags.DEFINE_string("output", None, "Where the runs and the report go.")
flags.DEFINE_list("losses", ["bce", "mse", "gaussian"], "Reconstruction losses to train, one run each.")
flags.DEFINE_integer("epochs", 6, "Epochs of every run.", lower_bound=1)
flags.DEFINE_integer("latent", 128, "Latent size.", lower_bound=1)
flags.DEFINE_list("filters", ["32", "64", "128", "256"], "Encoder filters (the decoder mirrors them).")
flags.DEFINE_integer("hidden", 256, "Dense units before z.", lower_bound=1)
flags.DEFINE_integer("batch_size", 64, "Batch size.", lower_bound=1)
flags.DEFINE_integer("image_size", 64, "Image side.", lower_bound=4)
flags.DEFINE_float("learning_rate", 5e-3, "Peak learning rate (cosine schedule).")
flags.DEFINE_string("name_suffix", "", "Appended to each run's name (the loss), e.g. -z64.")
flags.DEFINE_boolean("train", True, "Train (or resume) the runs.")
flags.DEFINE_boolean("evaluate", True, "Evaluate and picture the runs.")
flags.DEFINE_string("reference", "mse", "Name of the run whose final quality the others' time-to-quality is "
                    "measured against.")
flags.DEFINE_integer("sample_count", 1000, "Generated images per sampler for FCD/IS/precision/recall.")
flags.DEFINE_integer("num_samples", 100, "Importance samples of the IWAE NLL.")
flags.DEFINE_integer("seed", 0, "Seed of the runs and the evaluation.")
flags.DEFINE_list("figures", [], "Runs to lay side by side in <output>/figures/ (reconstructions, prior and GMM "
                  "samples, interpolations), from the pictures their evaluation wrote; empty: none.")
FLAGS = flags.FLAGS


class QualityProbe:
    """A Keras callback factory: test MSE at z_mean relative to the mean image's, after every epoch."""

    def __init__(self, x_test, mean_image):
        from tfvae.inference import Inference

        self.x_test = x_test
        self.inference = Inference(512)  # compiled once for the training model, measured after every epoch
        self.baseline = float(((x_test - mean_image[None]) ** 2).mean())
        self.epochs = []

    def callback(self):
        import keras

        probe = self

        class Callback(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                probe.epochs.append({"epoch": epoch + 1, **probe.measure(self.model)})

        return Callback()

    def measure(self, model):
        from tfvae import likelihoods

        z, _ = self.inference.encode(model.encoder, self.x_test)
        recon = self.inference.decode(model.decoder, z, likelihood=likelihoods.for_loss(model.reconstruction))
        mse = float(((self.x_test - recon) ** 2).mean())
        return {"test_mse": mse, "mse_ratio": mse / self.baseline}


def load_folder(config):
    """(test images in [0, 1], training-set mean image) of the folder, decoded as training decodes it."""
    import numpy as np

    from tfvae import data as data_lib

    dataset = data_lib.load_dataset("folder", config.data_dir, image_size=config.image_size,
                                    channels=config.channels)
    total = np.zeros(dataset.x_train.shape[1:], "float64")
    for start in range(0, len(dataset.x_train), 512):
        total += np.asarray(dataset.x_train[start:start + 512], "float64").sum(axis=0)
    mean_image = (total / len(dataset.x_train) / 255.0).astype("float32")
    return dataset.x_test.astype("float32") / 255.0, mean_image


def make_config(loss, workdir):
    from tfvae.config import Config

    return Config(model="vae", arch="conv", dataset="folder", data_dir=FLAGS.data_dir, image_size=FLAGS.image_size,
                  channels=3, filters=tuple(int(f) for f in FLAGS.filters), hidden=FLAGS.hidden,
                  latent=FLAGS.latent, loss=loss, epochs=FLAGS.epochs, batch_size=FLAGS.batch_size,
                  learning_rate=FLAGS.learning_rate, seed=FLAGS.seed, workdir=workdir)


def history_seconds(workdir):
    """Per-epoch wall seconds and training images/s from the run's history.csv."""
    from tfvae import rundir

    rows = rundir.read_history(os.path.join(workdir, "history.csv"))
    return [float(r["seconds"]) for r in rows], [float(r["examples_per_sec"]) for r in rows]


def train_one(loss, workdir, probe, log):
    from tfvae import training

    quality_path = os.path.join(workdir, "quality.json")
    config = make_config(loss, workdir)
    probe.epochs = []
    start = time.perf_counter()
    training.train(config, verbose=2, log=log, callbacks=[probe.callback()])
    log(f"{os.path.basename(workdir)}: trained in {time.perf_counter() - start:.0f} s")
    if probe.epochs:  # an already finished run keeps its earlier record
        previous = {}
        if os.path.isfile(quality_path):
            with open(quality_path) as f:
                previous = {e["epoch"]: e for e in json.load(f)["epochs"]}
        previous.update({e["epoch"]: e for e in probe.epochs})
        with open(quality_path, "w") as f:
            json.dump({"baseline_mse": probe.baseline, "epochs": [previous[k] for k in sorted(previous)]}, f,
                      indent=1)


def evaluate_one(workdir, log):
    from tfvae import evaluation, pictures

    options = evaluation.EvalOptions(num_samples=FLAGS.num_samples, sample_count=FLAGS.sample_count,
                                     samplers=("prior", "gmm"), seed=FLAGS.seed, batch_size=256)
    start = time.perf_counter()
    results = evaluation.evaluate_run(workdir, options, log=log)
    for mode, n in (("reconstruct", 8), ("random", 8), ("interpolate", 8)):
        pictures.sample_to_png(workdir, mode, n, output=os.path.join(workdir, f"{mode}.png"), seed=FLAGS.seed)
    log(f"{os.path.basename(workdir)}: evaluated in {time.perf_counter() - start:.0f} s")
    return results


def summarise(names, output):
    """report.json and report.md over the runs ``names`` under ``output``."""
    rows = []
    for name in names:
        workdir = os.path.join(output, name)
        with open(os.path.join(workdir, "quality.json")) as f:
            quality = json.load(f)
        seconds, speed = history_seconds(workdir)
        row = {"run": name, "epochs": len(seconds), "seconds_per_epoch": sum(seconds) / len(seconds),
               "images_per_sec": sum(speed) / len(speed), "train_minutes": sum(seconds) / 60.0,
               "mse_ratio": quality["epochs"][-1]["mse_ratio"], "curve": quality["epochs"], "seconds": seconds}
        eval_path = os.path.join(workdir, "eval.json")
        if os.path.isfile(eval_path):
            with open(eval_path) as f:
                results = json.load(f)
            m = results["metrics"]
            row.update({k: m.get(k) for k in ("mse", "psnr", "kl", "neg_elbo", "iwae_nll", "bits_per_dim",
                                              "decoder_variance", "recon_sharpness_ratio",
                                              "recon_colourfulness_ratio")})
            row["loss"] = results["run"]["loss"]
            for sampler, entry in results["samplers"].items():
                row.update({f"{sampler}_{k}": entry.get(k) for k in ("fcd", "inception_score", "precision",
                                                                      "recall", "sharpness_ratio",
                                                                      "colourfulness_ratio")})
            row["floor"] = results.get("floor")
        rows.append(row)
    reference = next((r for r in rows if r["run"] == FLAGS.reference), None)
    if reference is not None:
        target = reference["mse_ratio"]
        for row in rows:
            reached = next((e["epoch"] for e in row["curve"] if e["mse_ratio"] <= target), None)
            row["target_ratio"] = target
            row["epochs_to_target"] = reached
            row["seconds_to_target"] = None if reached is None else sum(row["seconds"][:reached])
    with open(os.path.join(output, "report.json"), "w") as f:
        json.dump(rows, f, indent=1)
    with open(os.path.join(output, "report.md"), "w") as f:
        f.write(markdown(rows))
    return rows


def make_figures(output, names, side):
    """Comparison pictures of the runs ``names`` in ``<output>/figures`` (8 images a row, 256-colour PNGs).

    Every run's reconstruct.png, random.png and interpolate.png were drawn with the same seed, so the rows show
    the same test images and the same prior draws z ~ N(0, I) decoded by each run.
    """
    folder = os.path.join(output, "figures")
    os.makedirs(folder, exist_ok=True)
    first = os.path.join(output, names[0])
    recon = [("test images", grid_rows(os.path.join(first, "reconstruct.png"), 0, 1, side))]
    recon += [(name, grid_rows(os.path.join(output, name, "reconstruct.png"), 1, 1, side)) for name in names]
    prior = [(name, grid_rows(os.path.join(output, name, "random.png"), 0, 2, side)) for name in names]
    gmm = [(name, grid_rows(os.path.join(output, name, "eval_samples_gmm.png"), 0, 2, side)) for name in names]
    pictures = {"reconstructions": recon, "prior_samples": prior, "gmm_samples": gmm}
    written = []
    for what, strips in pictures.items():
        path = os.path.join(folder, f"{what}.png")
        labelled(strips).quantize(256).save(path, optimize=True)
        written.append(path)
    for name in names:
        path = os.path.join(folder, f"interpolations_{name}.png")
        grid_rows(os.path.join(output, name, "interpolate.png"), 0, 4, side).quantize(256).save(path, optimize=True)
        written.append(path)
    return written


def markdown(rows):
    """The report's table, one row per run. "S/C" cells are the sharpness / colourfulness ratios to the real
    test images' (evaluate.py's ``recon_*_ratio`` and each sampler's ``*_ratio``; 1.0: as the real pictures)."""
    head = ("| run | epochs | s/epoch | test MSE | MSE / mean image's | PSNR dB | KL | -ELBO | bits/dim | "
            "recon. S/C | prior FCD | prior IS | prior P/R | prior S/C | GMM FCD | GMM IS | GMM P/R | GMM S/C | "
            "time to reference quality |\n"
            "|" + "---|" * 19 + "\n")
    lines = []
    for r in rows:
        likelihood = r.get("loss") in ("mse", "gaussian")  # bce on colour pixels is no normalised likelihood
        to_target = r.get("seconds_to_target")
        lines.append(
            f"| {r['run']} | {r['epochs']} | {r['seconds_per_epoch']:.0f} | {cell(r.get('mse'), '.4f')} | "
            f"{r['mse_ratio']:.3f} | {cell(r.get('psnr'), '.2f')} | {cell(r.get('kl'), '.1f')} | "
            f"{cell(r.get('neg_elbo') if likelihood else None, '.0f')} | "
            f"{cell(r.get('bits_per_dim') if likelihood else None, '.3f')} | "
            f"{cell(r.get('recon_sharpness_ratio'), '.2f')}/{cell(r.get('recon_colourfulness_ratio'), '.2f')} | "
            f"{cell(r.get('prior_fcd'), '.2f')} | {cell(r.get('prior_inception_score'), '.2f')} | "
            f"{cell(r.get('prior_precision'), '.2f')}/{cell(r.get('prior_recall'), '.2f')} | "
            f"{cell(r.get('prior_sharpness_ratio'), '.2f')}/{cell(r.get('prior_colourfulness_ratio'), '.2f')} | "
            f"{cell(r.get('gmm_fcd'), '.2f')} | {cell(r.get('gmm_inception_score'), '.2f')} | "
            f"{cell(r.get('gmm_precision'), '.2f')}/{cell(r.get('gmm_recall'), '.2f')} | "
            f"{cell(r.get('gmm_sharpness_ratio'), '.2f')}/{cell(r.get('gmm_colourfulness_ratio'), '.2f')} | "
            + ("not reached" if to_target is None and "target_ratio" in r else
               f"{cell(to_target, '.0f')} s ({r.get('epochs_to_target')} ep.)") + " |\n")
    return head + "".join(lines)


def main(argv):
    del argv
    if not FLAGS.data_dir or not FLAGS.output:
        raise app.UsageError("--data_dir and --output are required")
    log = print
    names = [loss + FLAGS.name_suffix for loss in FLAGS.losses]
    if FLAGS.train:
        config = make_config(FLAGS.losses[0], "")
        x_test, mean_image = load_folder(config)
        probe = QualityProbe(x_test, mean_image)
        log(f"{len(x_test)} test images; the mean image's test MSE is {probe.baseline:.5f}")
        for loss, name in zip(FLAGS.losses, names):
            train_one(loss, os.path.join(FLAGS.output, name), probe, log)
    if FLAGS.evaluate:
        for name in names:
            evaluate_one(os.path.join(FLAGS.output, name), log)
    existing = sorted(n for n in os.listdir(FLAGS.output)  # not the "latest" link train() makes
                      if not os.path.islink(os.path.join(FLAGS.output, n))
                      and os.path.isfile(os.path.join(FLAGS.output, n, "quality.json")))
    rows = summarise(existing, FLAGS.output)
    if FLAGS.figures:
        for path in make_figures(FLAGS.output, FLAGS.figures, FLAGS.image_size):
            print(f"wrote {path}")
    print(markdown(rows))
    print(f"wrote {os.path.join(FLAGS.output, 'report.md')}")
    return 0


if __name__ == "__main__":
    app.run(main)
