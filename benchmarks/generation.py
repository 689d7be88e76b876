"""Can autoencoders generate? The family x its samplers on one data set: one table, one picture.

    python benchmarks/generation.py --dataset=fashion_mnist --output=/work/bench/gen_fashion   # latent 16, all 60k
    python benchmarks/make_picture_sets.py --output=/work/picture_sets
    python benchmarks/generation.py --dataset=folder --data_dir=/work/picture_sets/emoji --output=/work/bench/gen_emoji
    python benchmarks/generation.py ... --notrain --noevaluate        # the table and picture of runs already done
    python benchmarks/generation.py ... --models=ae,vae,vqvae         # add a model: the others are neither trained
                                                                      # nor evaluated again (--reevaluate)
    python benchmarks/generation.py ... --models=ae,gridvae --model_flags='gridvae:--latent=2 --kl_weight=1e-2' \
        --sampler_settings=diffusion:steps=16000,hidden=392 --sampler_settings=gmm:components=50,max_codes=60000

Every model of ``--models`` (those this tfvae has) is trained by ``training.train``, the function train.py calls,
from the data set's documented config (``--base``: configs/fashion_vae_z8.cfg with ``--latent=16``, or
configs/folder_vae_64.cfg) with only ``--model`` changed, in ``<output>/<model>`` (a rerun resumes). Then every
sampler of ``--samplers`` that applies to the model is fitted once (the time it takes is recorded; a sampler that
does not apply, e.g. ``learned`` for a model without a learned prior, is listed as such) and the run is measured
by ``evaluation.evaluate_run`` (evaluate.py's metrics): FCD, IS, precision and recall of each sampler's samples in
the features of a classifier trained on the data set's labels, against the real test images, with the real-vs-real
FCD floor; sharpness and colourfulness as ratios to the real images'; the IWAE NLL where the model defines a
likelihood. Training minutes and images/s come from the runs' history.csv.

Per model, per sampler. ``--model_flags`` adds train.py flags to one model's run: ``MODEL:FLAGS``, the flags
written as on train.py's command line and separated by spaces (so quote the value), repeatable (a model's entries
add up), e.g. ``--model_flags='gridvae:--latent=2 --kl_weight=1e-2'``. They are parsed by train.py's own flag
definitions (``tfvae.config_flags``) and applied after the base config and this benchmark's ``--latent``,
``--epochs`` and ``--max_examples``; ``--model``, ``--workdir`` and ``--dataset`` are the benchmark's (``--models``,
``--output``, ``--dataset``) and are refused there. ``--sampler_settings`` gives one fitted sampler settings of
its fit (``Run.sampler``'s keyword arguments, ``tfvae.samplers``): ``SAMPLER:NAME=VALUE,NAME=VALUE``, repeatable,
e.g. ``--sampler_settings=diffusion:steps=16000,hidden=392 --sampler_settings=gmm:components=50``; a value is an
integer, else a number, else text (``prediction=eps``). The settings are used to fit the sampler, to evaluate it
(``EvalOptions.sampler_settings``) and to draw the picture's row, so all three use the one saved fit. A bad entry (no
``:``, a model or sampler not measured, a flag train.py does not know or a bad value, a setting the sampler does
not take) is one line on stderr and exit status 2, before anything is trained. Both are kept in each run's
``generation.json`` and listed under the table.

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
flags.DEFINE_multi_string("model_flags", [], "train.py flags for one model's run, as MODEL:FLAGS with the flags "
                          "separated by spaces (quote the value), e.g. 'gridvae:--latent=2 --kl_weight=1e-2'; "
                          "repeatable. Applied after the base config and --latent, --epochs, --max_examples.")
flags.DEFINE_multi_string("sampler_settings", [], "Settings of one fitted sampler's fit (Run.sampler's keyword "
                          "arguments), as SAMPLER:NAME=VALUE,NAME=VALUE, e.g. diffusion:steps=16000,hidden=392 or "
                          "gmm:components=50,max_codes=60000; repeatable. Used to fit, evaluate and draw it.")
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


BENCHMARK_FLAGS = ("model", "workdir", "dataset")  # train.py flags this benchmark sets itself


class EntryError(ValueError):
    """A bad --model_flags or --sampler_settings entry: its message is the one line main prints."""


def parse_model_flags(entries, models):
    """{model: {Config field: value}} from ``--model_flags`` entries ``MODEL:--flag=value --flag=value``, the
    flags parsed by train.py's own definitions (``tfvae.config_flags``); a model's entries add up.

    Raises:
      EntryError: an entry without ``MODEL:`` and flags, of a model not in ``models``, with a flag train.py does
        not know, a bad value, an argument that is not a flag, or one of ``BENCHMARK_FLAGS``.
    """
    import shlex

    from tfvae import config_flags

    args = {}
    for entry in entries:
        model, colon, text = entry.partition(":")
        try:
            words = shlex.split(text)
        except ValueError as e:  # an unclosed quote
            raise EntryError(f"--model_flags={entry}: {e}") from None
        if not colon or not words:
            raise EntryError(f"--model_flags={entry}: write MODEL:FLAGS, train.py's flags separated by spaces, e.g. "
                             "'gridvae:--latent=2 --kl_weight=1e-2'")
        if model not in models:
            raise EntryError(f"--model_flags={entry}: {model or 'no model'} is not one of the models trained here "
                             f"({', '.join(models)})")
        args.setdefault(model, []).extend(words)
    parsed = {}
    for model, words in args.items():
        values = flags.FlagValues()
        config_flags.define_flags(values)
        try:
            rest = values(["train.py", *words])[1:]
        except flags.Error as e:
            raise EntryError(f"--model_flags for {model}: {str(e).splitlines()[0]}") from None
        if rest:
            raise EntryError(f"--model_flags for {model}: {' '.join(rest)} is not a flag; write --name=value")
        own = [name for name in BENCHMARK_FLAGS if values[name].present]
        if own:
            raise EntryError(f"--model_flags for {model}: --{own[0]} is set by this benchmark (--models, --output, "
                             "--dataset), not per model")
        parsed[model] = {f.name: values[f.name].value for f in config_flags.flag_fields() if values[f.name].present}
    return parsed


def _setting_value(text):
    """An integer if ``text`` is one, else a float if it is one, else ``text``."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_sampler_settings(entries, names):
    """{sampler: {setting: value}} from ``--sampler_settings`` entries ``SAMPLER:NAME=VALUE,NAME=VALUE``.

    Raises:
      EntryError: an entry without ``SAMPLER:`` and settings, a setting without ``=`` or a value, a sampler not in
        ``names``, or a setting the sampler does not take (its ``settable``).
    """
    from tfvae.samplers import CLASSES

    settings = {}
    for entry in entries:
        sampler, colon, text = entry.partition(":")
        pairs = [pair.partition("=") for pair in text.split(",")] if colon and text else []
        if not pairs or any(not name.strip() or not eq or not value.strip() for name, eq, value in pairs):
            raise EntryError(f"--sampler_settings={entry}: write SAMPLER:NAME=VALUE,NAME=VALUE, e.g. "
                             "diffusion:steps=16000,hidden=392")
        if sampler not in names:
            raise EntryError(f"--sampler_settings={entry}: {sampler or 'no sampler'} is not one of --samplers "
                             f"({', '.join(names)})")
        settable = CLASSES[sampler].settable if sampler in CLASSES else ()
        for name, _, value in pairs:
            if name.strip() not in settable:
                raise EntryError(f"--sampler_settings={entry}: {name.strip()} is not a setting of {sampler}; it "
                                 f"takes {', '.join(settable) or 'none'}")
            settings.setdefault(sampler, {})[name.strip()] = _setting_value(value.strip())
    return settings


def make_config(model, workdir, extra=None):
    """The base config's settings as a Config, with this benchmark's overrides, then ``extra`` ({field: value},
    the model's ``--model_flags``)."""
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
    return Config(**{**settings, **(extra or {})})


def fit_samplers(workdir, names, settings, log):
    """Fits (or reads) each sampler of ``names`` on the run, with its ``settings`` ({name: {setting: value}});
    returns {name: seconds} and {name: why not}.

    Raises:
      EntryError: a value of ``settings`` that the sampler's fit refuses.
    """
    import tfvae
    from tfvae.errors import ArgumentError, TfvaeError

    run = tfvae.load(workdir)
    seconds, skipped = {}, {}
    for name in names:
        start = time.perf_counter()
        try:
            run.sampler(name, **settings.get(name, {}))
        except ArgumentError as e:
            if e.argument in settings.get(name, {}):
                raise EntryError(f"--sampler_settings for {name}: {e}") from None
            skipped[name] = str(e)
            log(f"{os.path.basename(workdir)}: sampler {name} does not apply: {e}")
            continue
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


def evaluate(workdir, sampler_settings, model_flags, log):
    """Fits the samplers (with ``sampler_settings``), runs evaluate.py's measures; writes and returns the run's
    generation entry (which keeps ``model_flags``, the run's --model_flags, and the sampler settings)."""
    from tfvae import evaluation

    fit_seconds, skipped = fit_samplers(workdir, FLAGS.samplers, sampler_settings, log)
    options = evaluation.EvalOptions(num_samples=FLAGS.num_samples, num_images=FLAGS.num_images,
                                     sample_count=FLAGS.sample_count,
                                     samplers=tuple(fit_seconds), seed=FLAGS.seed, batch_size=256,
                                     classifier_epochs=FLAGS.classifier_epochs, sampler_settings=sampler_settings)
    results = evaluation.evaluate_run(workdir, options, log=log)
    entry = {"fit_seconds": fit_seconds, "skipped": skipped, "results": results, "model_flags": model_flags,
             "sampler_settings": sampler_settings}
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
            rows.append({"model": model, "sampler": sampler, **facts, "model_flags": entry.get("model_flags") or {},
                         "sampler_settings": (entry.get("sampler_settings") or {}).get(sampler) or {},
                         "fit_seconds": entry["fit_seconds"].get(sampler),
                         "floor_fcd": (results.get("floor") or {}).get("fcd"), "recon_fcd": metrics.get("recon_fcd"),
                         "iwae_nll": metrics.get("iwae_nll"),
                         "bits_per_dim": metrics.get("bits_per_dim"),
                         **{k: quality.get(k) for k in ("fcd", "inception_score", "precision", "recall",
                                                        "training_distance_ratio", "near_copies",
                                                        "sharpness_ratio", "colourfulness_ratio")}})
    return rows


def markdown(rows):
    head = ("| model | sampler | FCD | recon. FCD (the floor) | IS | precision | recall | train distance / real | "
            "near copies (real: 0.05) | sharpness / real | colourfulness / real | IWAE NLL | bits/dim | epochs | "
            "train min | img/s | sampler fit s |\n|" + "---|" * 17 + "\n")
    lines = [f"| {r['model']} | {r['sampler']} | {cell(r['fcd'], '.2f')} | {cell(r.get('recon_fcd'), '.2f')} | "
             f"{cell(r['inception_score'], '.2f')} | "
             f"{cell(r['precision'], '.2f')} | {cell(r['recall'], '.2f')} | "
             f"{cell(r.get('training_distance_ratio'), '.2f')} | {cell(r.get('near_copies'), '.3f')} | "
             f"{cell(r['sharpness_ratio'], '.2f')} | "
             f"{cell(r['colourfulness_ratio'], '.2f')} | {cell(r['iwae_nll'], '.1f')} | "
             f"{cell(r['bits_per_dim'], '.3f')} | {r['epochs']} | {r['train_minutes']:.1f} | "
             f"{r['images_per_sec']:.0f} | {cell(r['fit_seconds'], '.1f')} |\n" for r in rows]
    floor = next((r["floor_fcd"] for r in rows if r.get("floor_fcd") is not None), None)
    note = f"\nReal-vs-real FCD floor: {cell(floor, '.2f')}.\n" if floor is not None else ""
    return head + "".join(lines) + note + settings_note(rows)


def settings_note(rows):
    """A line per model run with --model_flags or sampler settings: what they were."""
    lines = []
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        said = [" ".join(f"--{k}={','.join(map(str, v)) if isinstance(v, list) else v}"
                         for k, v in mine[0]["model_flags"].items())]
        said += [f"{r['sampler']} " + ", ".join(f"{k}={v}" for k, v in r["sampler_settings"].items())
                 for r in mine if r["sampler_settings"]]
        if any(said):
            lines.append(f"- {model}: {'; '.join(part for part in said if part)}\n")
    return "\nSettings beyond the base config and the samplers' defaults:\n\n" + "".join(lines) if lines else ""


def picture(rows, path):
    """A row of samples per model x sampler, every row drawn with --seed from the sampler fitted with the row's
    settings."""
    import numpy as np

    import tfvae
    from tfvae import picture_arrays

    strips, labels = [], []
    for model in dict.fromkeys(r["model"] for r in rows):
        run = tfvae.load(os.path.join(FLAGS.output, model))
        for row in [r for r in rows if r["model"] == model]:
            sampler = row["sampler"]
            draws = run.sample(FLAGS.picture_count, seed=FLAGS.seed, sampler=sampler, **row["sampler_settings"])
            strips.append(picture_arrays.tile(draws, 1, FLAGS.picture_count))
            labels.append(f"{model} {sampler}")
    sheet = picture_arrays.label_rows(np.concatenate(strips), labels, strips[0].shape[0])
    return picture_arrays.save_png(path, sheet)


def main(argv):
    del argv
    if not FLAGS.output:
        raise app.UsageError("--output is required")
    from tfvae import training
    from tfvae.errors import TfvaeError
    from tfvae.models import MODELS

    log = print
    models = [m for m in FLAGS.models if m in MODELS]
    for missing in sorted(set(FLAGS.models) - set(models)):
        log(f"note: this tfvae has no --model={missing}; skipped")
    try:
        model_flags = parse_model_flags(FLAGS.model_flags, models)
        sampler_settings = parse_sampler_settings(FLAGS.sampler_settings, FLAGS.samplers)
        configs = {}
        for model in models:
            try:
                configs[model] = make_config(model, os.path.join(FLAGS.output, model), model_flags.get(model))
            except (TypeError, ValueError) as e:  # e.g. --filters=a,b: not integers
                raise EntryError(f"--model_flags for {model}: {e}") from None
        if FLAGS.train:
            for model, config in configs.items():  # every run's settings checked before the first trains
                try:
                    config.validate()
                except TfvaeError as e:
                    raise EntryError(f"{model}'s run: {e}") from None
        for model, config in configs.items():
            workdir = config.workdir
            if FLAGS.train:
                start = time.perf_counter()
                training.train(config, verbose=2, log=log)
                log(f"{model}: trained in {time.perf_counter() - start:.0f} s")
            done = os.path.isfile(os.path.join(workdir, "generation.json"))
            if FLAGS.evaluate and (FLAGS.reevaluate or not done):
                evaluate(workdir, sampler_settings, model_flags.get(model, {}), log)
    except EntryError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
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
