"""The one-class protocol on all ten Fashion-MNIST classes, beside published results.

    python benchmarks/one_class.py --model=ae --latent=16 --epochs=8 --budget_minutes=24  # docs/results_one_class.md
    python benchmarks/one_class.py --model=vae --latent=8 --epochs=10 --normal_classes=0,6 --budget_minutes=5

For each normal class c: ``training.train`` (the function train.py calls; every train.py flag applies) on the
training images of class c only (``--classes=c``, 6,000 images), then ``evaluation.evaluate_one_class``: every
one of the 10,000 test images is scored and the AUROC of the 9,000 images of the other classes against the 1,000
of class c is reported, for each of the run's scores (`tfvae.evaluation.one_class`: the reconstruction term
-log p(x|z_mean) and its excess over a perfect reconstruction, the squared error, for a VAE the -ELBO and its
excess, and the complexity-corrected -ELBO). The per-class table is printed beside the published numbers in
`PUBLISHED`, with their sources and conditions, and written to ``<root>/one_class.md`` and ``one_class.json``.

``--budget_minutes`` bounds the whole benchmark: a class is started only while the time spent so far plus the
slowest class so far fits in the budget; the classes left out are named (and the means then cover fewer classes).
Runs already finished in ``<root>`` are reused (train.py resumes; a finished run trains nothing).
"""

import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from tfvae import startup  # noqa: E402

startup.quiet_tensorflow_startup()  # TensorFlow without its C++ start-up notices and info logs

from absl import app, flags  # noqa: E402

import train  # noqa: E402  (defines train.py's flags: each class is trained exactly as train.py would)

flags.DEFINE_list("normal_classes", [str(c) for c in range(10)], "The normal classes, one run each.")
flags.DEFINE_float("budget_minutes", 25.0, "Time for the whole benchmark (training and scoring).", lower_bound=0.1)
flags.DEFINE_string("root", "runs/one_class", "Where the runs and the table go (<root>/<model>-c<class>).")
flags.DEFINE_integer("elbo_samples", 8, "Draws per image of the -ELBO's reconstruction term (VAE).", lower_bound=1)
FLAGS = flags.FLAGS

CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot")

# Published one-class AUROCs (%) on Fashion-MNIST, per normal class 0..9, with where they were read and how they
# were obtained. Only numbers found in a source are listed; where only a mean over the classes was found, the
# per-class entries are None.
PUBLISHED = (
    {"method": "GeoTrans (Golan & El-Yaniv 2018)",
     "auroc": (99.4, 97.6, 91.1, 89.9, 92.1, 93.4, 83.3, 98.9, 90.8, 99.2), "mean": 93.5,
     "source": "AGAD paper (Adversarial Generative Anomaly Detection), Table 1, numbers borrowed there from Cheng et "
               "al. 2020",
     "conditions": "not an autoencoder: a Wide-ResNet classifier of 72 geometric transformations of the normal "
                   "class's training images; score from its softmax on the transformed test image"},
    {"method": "ARNet (Ye et al. 2022, attribute restoration)",
     "auroc": (92.7, 99.3, 89.1, 93.6, 90.8, 93.1, 85.0, 98.4, 97.8, 98.4), "mean": 93.9,
     "source": "AGAD paper, Table 1 (from Ye et al. 2022)",
     "conditions": "a restoration autoencoder: attributes (grey levels, orientation) are erased from the input and "
                   "restored; score = restoration error; a U-Net-like network"},
    {"method": "Deep SVDD / Deep SAD without labels (Ruff et al. 2020)",
     "auroc": (None,) * 10, "mean": 89.2, "std": 6.2,
     "source": "AGAD paper, Table 2 (gamma = 0 row, from Ruff et al. 2020, ICLR, Table 2)",
     "conditions": "LeNet-type CNN pretrained as an autoencoder, then mapped into a small hypersphere; mean +- std "
                   "over the ten classes"},
    {"method": "SSAD Hybrid (Goernitz et al. 2013, features of an autoencoder)",
     "auroc": (None,) * 10, "mean": 91.2, "std": 4.7,
     "source": "AGAD paper, Table 2 (gamma = 0 row, from Ruff et al. 2020, Table 2)",
     "conditions": "a one-class kernel machine on the encoder features of a convolutional autoencoder; mean +- std "
                   "over the ten classes"},
)
SCORE_COLUMNS = (("reconstruction", "recon."), ("reconstruction_excess", "recon. excess"),
                 ("squared_error", "sq. err."), ("neg_elbo", "-ELBO"), ("neg_elbo_excess", "-ELBO excess"),
                 ("complexity", "corrected"))


def run_class(config, root, normal, options, log):
    """Trains (or resumes) the run of one normal class and scores it; returns (one-class results, seconds)."""
    from tfvae import evaluation, training

    started = time.perf_counter()
    config.classes = (normal,)
    config.workdir = os.path.join(root, f"{config.model}-c{normal}")
    training.train(config, verbose=0, log=log)
    results = evaluation.evaluate_one_class(config.workdir, options, log=log)
    return results, time.perf_counter() - started


def table(rows, scores):
    """The per-class Markdown table: our AUROCs (%) per score, then the published per-class numbers."""
    published = [p for p in PUBLISHED if any(a is not None for a in p["auroc"])]
    header = ["class"] + [f"ours: {title}" for key, title in SCORE_COLUMNS if key in scores] + \
        [p["method"].split(" (")[0] for p in published]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [f"{r['class']} {CLASS_NAMES[r['class']]}"]
        cells += [f"{100 * r['auroc'][k]:.1f}" for k, _ in SCORE_COLUMNS if k in scores]
        cells += [f"{p['auroc'][r['class']]:.1f}" for p in published]
        lines.append("| " + " | ".join(cells) + " |")
    means = [f"**mean of {len(rows)}**"]
    means += [f"**{100 * sum(r['auroc'][k] for r in rows) / len(rows):.1f}**" for k, _ in SCORE_COLUMNS if k in scores]
    means += [f"{sum(p['auroc'][r['class']] for r in rows) / len(rows):.1f}" for p in published]
    lines.append("| " + " | ".join(means) + " |")
    return "\n".join(lines) + "\n"


def published_notes():
    lines = []
    for p in PUBLISHED:
        spread = f" +- {p['std']}" if "std" in p else ""
        lines.append(f"- {p['method']}: mean {p['mean']}{spread} over the ten classes. Source: {p['source']}. "
                     f"Conditions: {p['conditions']}.")
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    from tfvae import evaluation

    config = train.config_from_flags()
    config.dataset = "fashion_mnist"
    classes = [int(c) for c in FLAGS.normal_classes]
    root = FLAGS.root
    os.makedirs(root, exist_ok=True)
    options = evaluation.EvalOptions(elbo_samples=FLAGS.elbo_samples, seed=config.seed)
    budget = 60.0 * FLAGS.budget_minutes
    started = time.perf_counter()
    print(f"one-class protocol on Fashion-MNIST: {config.model} ({config.arch}, latent {config.latent}, filters "
          f"{list(config.filters)}, hidden {config.hidden or 'default'}), {config.epochs} epochs per class, batch "
          f"{config.batch_size}, lr {config.learning_rate:g} {config.lr_schedule}; classes {classes}; budget "
          f"{FLAGS.budget_minutes:g} min; load average at start {os.getloadavg()[0]:.2f}", flush=True)
    rows, left_out, slowest = [], [], 0.0
    for c in classes:
        spent = time.perf_counter() - started
        if rows and spent + slowest > budget:
            left_out.append(c)
            continue
        one = train.config_from_flags()
        one.dataset = "fashion_mnist"
        results, seconds = run_class(one, root, c, options, log=lambda *a: None)
        slowest = max(slowest, seconds)
        rows.append({"class": c, "name": CLASS_NAMES[c], "auroc": results["auroc"], "seconds": round(seconds, 1),
                     "workdir": results["workdir"], "epochs": results["epochs_trained"]})
        best = max(results["auroc"], key=results["auroc"].get)
        print(f"class {c} ({CLASS_NAMES[c]}): " + ", ".join(f"{k} {100 * v:.1f}" for k, v in results["auroc"].items())
              + f" (best: {best}); {seconds:.0f} s", flush=True)
    total = time.perf_counter() - started
    if not rows:
        print("no class fitted in the budget")
        return 1
    scores = set(rows[0]["auroc"])
    text = table(rows, scores)
    summary = (f"{len(rows)} classes in {total / 60:.1f} min ({total / len(rows):.0f} s per class, training and "
               f"scoring) on a shared machine (load average now {os.getloadavg()[0]:.2f})"
               + (f"; left out for the budget: {left_out}" if left_out else ""))
    print("\n" + text + "\n" + summary + "\n\nPublished (AUROC %, one class normal, the other nine anomalous):\n"
          + published_notes())
    with open(os.path.join(root, "one_class.md"), "w") as f:
        f.write(f"{summary}\n\n{text}\n{published_notes()}")
    with open(os.path.join(root, "one_class.json"), "w") as f:
        json.dump({"config": json.loads(config.to_json()), "rows": rows, "left_out": left_out,
                   "seconds": round(total, 1), "published": PUBLISHED}, f, indent=2)
    return 0


if __name__ == "__main__":
    app.run(main)
