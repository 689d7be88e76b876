"""Can autoencoders generate? The family x its samplers on one data set: one table, one picture.

    python benchmarks/generation.py --dataset=fashion_mnist --output=/work/bench/gen_fashion   # latent 16, all 60k
    python benchmarks/make_picture_sets.py --output=/work/picture_sets
    python benchmarks/generation.py --dataset=folder --data_dir=/work/picture_sets/emoji --output=/work/bench/gen_emoji
    python benchmarks/generation.py ... --notrain --noevaluate        # the table and picture of runs already done
    python benchmarks/generation.py ... --models=ae,vae,vqvae         # add a model: the others are neither trained
                                                                      # nor evaluated again (--reevaluate)

Every model of ``--models`` (those this tfvae has) is trained by ``training.train``, the function train.py calls,
from the data set's documented config (``--base``: configs/fashion_vae_z8.cfg with ``--latent=16``, or
configs/folder_vae_64.cfg) with only ``--model`` changed, in ``<output>/<model>`` (a rerun resumes). Then every
sampler of ``--samplers`` that applies to the model is fitted once (the time it takes is recorded; a sampler that
does not apply, e.g. ``learned`` for a model without a learned prior, is listed as such) and the run is measured
by ``evaluation.evaluate_run`` (evaluate.py's metrics): FCD, IS, precision and recall of each sampler's samples in
the features of a classifier trained on the data set's labels, against the real test images, with the real-vs-real
FCD floor; sharpness and colourfulness as ratios to the real images'; the IWAE NLL where the model defines a
likelihood. Training minutes and images/s come from the runs' history.csv.

Writes ``<output>/generation.md`` and ``generation.json`` (one row per model x sampler) and
``<output>/generation.png``: a row of ``--picture_count`` samples per model x sampler, all drawn with ``--seed``.
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

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASES = {"mnist": os.path.join(REPO, "configs", "mnist_vae_z2.cfg"),
         "fashion_mnist": os.path.join(REPO, "configs", "fashion_vae_z8.cfg"),
         "folder": os.path.join(REPO, "configs", "folder_vae_64.cfg")}

flags.DEFINE_enum("dataset", "fashion_mnist", sorted(BASES), "The data set (its config is --base).")
flags.DEFINE_string("data_dir", "", "Where the data lives (a folder of pictures for --dataset=folder).")
flags.DEFINE_string("output", None, "Where the runs, the table and the picture go.")
flags.DEFINE_string("base", "", "The flagfile every run starts from (default: the data set's documented config).")
flags.DEFINE_list("models", ["ae", "vae", "rae", "wae", "vamp", "vqvae"], "Models to train (those this tfvae "
                  "lacks are skipped with a notice).")
flags.DEFINE_list("samplers", ["prior", "gmm", "two_stage", "diffusion", "learned"],
                  "Samplers to measure where they apply.")
flags.DEFINE_integer("latent", 0, "Latent size (0: 16, or the config's for folders).", lower_bound=0)
flags.DEFINE_integer("epochs", 0, "Epochs of every run (0: the config's).", lower_bound=0)
flags.DEFINE_integer("max_examples", 0, "Training images (0: all).", lower_bound=0)
flags.DEFINE_integer("sample_count", 10000, "Generated (and real) images per sampler for FCD/IS/P/R.", lower_bound=4)
flags.DEFINE_integer("num_samples", 100, "Importance samples of the IWAE NLL.", lower_bound=1)
flags.DEFINE_integer("num_images", 1000, "Test images of the IWAE NLL (0: all).", lower_bound=0)
flags.DEFINE_integer("picture_count", 8, "Samples per row of the picture.", lower_bound=1)
flags.DEFINE_integer("classifier_epochs", 8, "Epochs of the feature classifier (when it has to be trained).",
                     lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seed of the runs, the samplers and the evaluation.")
flags.DEFINE_boolean("train", True, "Train (or resume) the runs.")
flags.DEFINE_boolean("evaluate", True, "Fit the samplers and evaluate the runs not evaluated yet.")
flags.DEFINE_boolean("reevaluate", False, "Evaluate the runs again even where <run>/generation.json exists.")
FLAGS = flags.FLAGS


def read_flagfile(path):
    """``--name=value`` lines of a flagfile -> {name: value string} (comments and blank lines skipped)."""
    settings = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("--") and "=" in line:
                name, value = line[2:].split("=", 1)
                settings[name] = value
    return settings


def make_config(model, workdir):
    """The base config's settings as a Config, with this benchmark's overrides."""
    import dataclasses

    from tfvae.config import Config

    fields = {f.name: f for f in dataclasses.fields(Config)}
    defaults = Config()
    settings = {}
    for name, text in read_flagfile(FLAGS.base or BASES[FLAGS.dataset]).items():
        if name not in fields or name == "workdir":
            continue
        default = getattr(defaults, name)
        if isinstance(default, bool):
            settings[name] = text.lower() in ("1", "true")
        elif isinstance(default, tuple):
            settings[name] = tuple(int(v) for v in text.split(","))
        elif isinstance(default, (int, float)):
            settings[name] = type(default)(text)
        else:
            settings[name] = text
    settings.update(model=model, dataset=FLAGS.dataset, workdir=workdir, seed=FLAGS.seed)
    if FLAGS.data_dir:
        settings["data_dir"] = FLAGS.data_dir
    latent = FLAGS.latent or (16 if FLAGS.dataset != "folder" else 0)
    if latent:
        settings["latent"] = latent
    if FLAGS.epochs:
        settings["epochs"] = FLAGS.epochs
    if FLAGS.max_examples:
        settings["max_examples"] = FLAGS.max_examples
    return Config(**settings)


def fit_samplers(workdir, names, log):
    """Fits (or reads) each sampler of ``names`` on the run; returns {name: seconds} and {name: why not}."""
    import tfvae
    from tfvae.errors import TfvaeError

    run = tfvae.load(workdir)
    seconds, skipped = {}, {}
    for name in names:
        start = time.perf_counter()
        try:
            run.sampler(name)
        except (TfvaeError, ValueError) as e:
            skipped[name] = str(e)
            log(f"{os.path.basename(workdir)}: sampler {name} does not apply: {e}")
            continue
        seconds[name] = round(time.perf_counter() - start, 2)
    return seconds, skipped


def history(workdir):
    from tfvae import rundir

    rows = rundir.read_history(os.path.join(workdir, "history.csv"))
    seconds = [float(r["seconds"]) for r in rows]
    speed = [float(r["examples_per_sec"]) for r in rows]
    return {"epochs": len(rows), "train_minutes": sum(seconds) / 60.0, "images_per_sec": sum(speed) / len(speed)}


def evaluate(workdir, log):
    """Fits the samplers, runs evaluate.py's measures; writes and returns the run's generation entry."""
    from tfvae import evaluation

    fit_seconds, skipped = fit_samplers(workdir, FLAGS.samplers, log)
    options = evaluation.EvalOptions(num_samples=FLAGS.num_samples, num_images=FLAGS.num_images,
                                     sample_count=FLAGS.sample_count,
                                     samplers=tuple(fit_seconds), seed=FLAGS.seed, batch_size=256,
                                     classifier_epochs=FLAGS.classifier_epochs)
    results = evaluation.evaluate_run(workdir, options, log=log)
    entry = {"fit_seconds": fit_seconds, "skipped": skipped, "results": results}
    with open(os.path.join(workdir, "generation.json"), "w") as f:
        json.dump(entry, f, indent=1, default=str)
    return entry


def table_rows(models):
    """One row per model x sampler of the runs that have been evaluated."""
    rows = []
    for model in models:
        workdir = os.path.join(FLAGS.output, model)
        path = os.path.join(workdir, "generation.json")
        if not os.path.isfile(path):
            continue
        with open(path) as f:
            entry = json.load(f)
        results, facts = entry["results"], history(workdir)
        metrics = results["metrics"]
        for sampler, quality in results["samplers"].items():
            rows.append({"model": model, "sampler": sampler, **facts,
                         "fit_seconds": entry["fit_seconds"].get(sampler),
                         "floor_fcd": (results.get("floor") or {}).get("fcd"), "recon_fcd": metrics.get("recon_fcd"),
                         "iwae_nll": metrics.get("iwae_nll"),
                         "bits_per_dim": metrics.get("bits_per_dim"),
                         **{k: quality.get(k) for k in ("fcd", "inception_score", "precision", "recall",
                                                        "sharpness_ratio", "colourfulness_ratio")}})
    return rows


def markdown(rows):
    head = ("| model | sampler | FCD | recon. FCD (the floor) | IS | precision | recall | sharpness / real | "
            "colourfulness / real | IWAE NLL | bits/dim | epochs | train min | img/s | sampler fit s |\n|"
            + "---|" * 15 + "\n")
    lines = [f"| {r['model']} | {r['sampler']} | {cell(r['fcd'], '.2f')} | {cell(r.get('recon_fcd'), '.2f')} | "
             f"{cell(r['inception_score'], '.2f')} | "
             f"{cell(r['precision'], '.2f')} | {cell(r['recall'], '.2f')} | {cell(r['sharpness_ratio'], '.2f')} | "
             f"{cell(r['colourfulness_ratio'], '.2f')} | {cell(r['iwae_nll'], '.1f')} | "
             f"{cell(r['bits_per_dim'], '.3f')} | {r['epochs']} | {r['train_minutes']:.1f} | "
             f"{r['images_per_sec']:.0f} | {cell(r['fit_seconds'], '.1f')} |\n" for r in rows]
    floor = next((r["floor_fcd"] for r in rows if r.get("floor_fcd") is not None), None)
    note = f"\nReal-vs-real FCD floor: {cell(floor, '.2f')}.\n" if floor is not None else ""
    return head + "".join(lines) + note


def picture(rows, path):
    """A row of samples per model x sampler, every row drawn with --seed."""
    import numpy as np

    import tfvae
    from tfvae import picture_arrays

    strips, labels = [], []
    for model in dict.fromkeys(r["model"] for r in rows):
        run = tfvae.load(os.path.join(FLAGS.output, model))
        for sampler in [r["sampler"] for r in rows if r["model"] == model]:
            strips.append(picture_arrays.tile(run.sample(FLAGS.picture_count, seed=FLAGS.seed, sampler=sampler), 1,
                                        FLAGS.picture_count))
            labels.append(f"{model} {sampler}")
    sheet = picture_arrays.label_rows(np.concatenate(strips), labels, strips[0].shape[0])
    return picture_arrays.save_png(path, sheet)


def main(argv):
    del argv
    if not FLAGS.output:
        raise app.UsageError("--output is required")
    from tfvae import training
    from tfvae.models import MODELS

    log = print
    models = [m for m in FLAGS.models if m in MODELS]
    for missing in sorted(set(FLAGS.models) - set(models)):
        log(f"note: this tfvae has no --model={missing}; skipped")
    for model in models:
        workdir = os.path.join(FLAGS.output, model)
        if FLAGS.train:
            start = time.perf_counter()
            training.train(make_config(model, workdir), verbose=2, log=log)
            log(f"{model}: trained in {time.perf_counter() - start:.0f} s")
        done = os.path.isfile(os.path.join(workdir, "generation.json"))
        if FLAGS.evaluate and (FLAGS.reevaluate or not done):
            evaluate(workdir, log)
    rows = table_rows(models)
    if not rows:
        raise app.UsageError(f"no evaluated run under {FLAGS.output}; run without --noevaluate first")
    with open(os.path.join(FLAGS.output, "generation.json"), "w") as f:
        json.dump(rows, f, indent=1)
    with open(os.path.join(FLAGS.output, "generation.md"), "w") as f:
        f.write(markdown(rows))
    print(markdown(rows))
    sheet = picture(rows, os.path.join(FLAGS.output, "generation.png"))
    print(f"wrote {os.path.join(FLAGS.output, 'generation.md')} and {sheet}")
    return 0


if __name__ == "__main__":
    app.run(main)
