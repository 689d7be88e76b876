"""Which digits a run's latent grid shows: classify each cell of ``sample.py --grid N`` and count them.

A small conv net (``tfvae.evaluation.classifier.build_classifier``, the evaluation's feature classifier, cached
under ``$TFVAE_CACHE``/``~/.cache/tfvae``) is trained on the run's dataset's training digits; its accuracy on the
test digits is printed. Each of the N x N cells (the decoder's Bernoulli means on the documents' grid,
``norm.ppf(linspace(0.01, 0.99, N))`` along both axes) is given its most probable class. Printed: cells per
class, how many of them the classifier is sure of (probability >= 0.9), the classes present, and the test codes'
mean and standard deviation per latent dimension with the share of them inside the grid's range.

    python benchmarks/grid_digits.py runs/vae-mnist-z2            # the quickstart's run
    python benchmarks/grid_digits.py runs/vae-mnist-z2 --grid=15 --json=out.json
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfvae import startup  # noqa: E402

startup.quiet_tensorflow_startup()  # TensorFlow without its C++ start-up notices and info logs

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

flags.DEFINE_integer("grid", 15, "The grid is grid x grid cells (as sample.py --grid).", lower_bound=2)
flags.DEFINE_float("sure", 0.9, "A cell counts as sure when the classifier gives its class at least this.")
flags.DEFINE_string("json", "", "Also write the counts to this JSON file.")
FLAGS = flags.FLAGS


def grid_counts(run, classifier, n, sure=0.9):
    """Classifies the n x n manifold of a 2-D run.

    Returns:
      dict: ``cells`` (per class), ``sure_cells`` (per class, probability >= sure), ``present`` (classes with a
      cell), ``mean_confidence`` and the grid's class ids (row-major, top row first) as ``labels``.
    """
    from tfvae import picture_arrays

    if run.latent_dim != 2:
        raise app.UsageError(f"{run.workdir} has a {run.latent_dim}-D latent; the manifold grid needs 2")
    images = run.decode(picture_arrays.manifold_grid(n))
    _, probs = classifier.features_and_probs(images)
    labels, confidence = probs.argmax(1), probs.max(1)
    k = probs.shape[1]
    cells = np.bincount(labels, minlength=k)
    sure_cells = np.bincount(labels[confidence >= sure], minlength=k)
    return {"cells": cells.tolist(), "sure_cells": sure_cells.tolist(),
            "present": [int(c) for c in np.flatnonzero(cells)], "mean_confidence": float(confidence.mean()),
            "labels": labels.reshape(n, n).tolist()}


def code_stats(run, n):
    """The test codes' mean and std per dimension, and the share of codes inside the grid's square."""
    from tfvae import picture_arrays

    z, _, _ = run.test_codes()
    edge = float(np.abs(picture_arrays.manifold_grid(n)).max())
    inside = float(np.mean(np.all(np.abs(z) <= edge, axis=1)))
    return {"mean": [round(float(m), 3) for m in z.mean(0)], "std": [round(float(s), 3) for s in z.std(0)],
            "grid_edge": round(edge, 3), "inside_grid": round(inside, 3)}


def main(argv):
    if len(argv) != 2:
        raise app.UsageError("usage: python benchmarks/grid_digits.py WORKDIR [--grid=15]")
    import tfvae
    from tfvae.data import load_dataset
    from tfvae.evaluation.classifier import load_or_train_classifier

    run = tfvae.load(argv[1])
    config = run.config
    dataset = load_dataset(config.dataset, config.data_dir, config.image_size, config.channels,
                           download=config.download, log=None)
    classifier = load_or_train_classifier(dataset)
    accuracy = classifier.info["test_accuracy"]
    counts = grid_counts(run, classifier, FLAGS.grid, FLAGS.sure)
    stats = code_stats(run, FLAGS.grid)
    names = [str(i) for i in range(len(counts["cells"]))]
    print(f"run {run.workdir}: {run.epochs_trained} epoch(s), data {dataset.source.split(':')[0]}")
    print(f"classifier: test accuracy {accuracy:.4f} on {len(dataset.x_test)} test images "
          f"(trained on {len(dataset.x_train)})")
    print(f"{FLAGS.grid}x{FLAGS.grid} grid, cells per class (sure: p >= {FLAGS.sure}), mean confidence "
          f"{counts['mean_confidence']:.3f}:")
    print("  class " + " ".join(f"{name:>4}" for name in names))
    print("  cells " + " ".join(f"{c:>4}" for c in counts["cells"]))
    print("  sure  " + " ".join(f"{c:>4}" for c in counts["sure_cells"]))
    present = counts["present"]
    sure_present = [i for i, c in enumerate(counts["sure_cells"]) if c]
    print(f"present: {len(present)} of {len(names)} ({', '.join(names[i] for i in present)}); "
          f"with a sure cell: {len(sure_present)}; in 5 cells or more: {sum(c >= 5 for c in counts['cells'])}")
    print(f"test codes: mean {stats['mean']}, std {stats['std']}, {stats['inside_grid']:.1%} inside the grid's "
          f"square |z| <= {stats['grid_edge']}")
    print("grid (row-major, top row = largest z[1]):")
    for row in counts["labels"]:
        print("  " + " ".join(str(c) for c in row))
    if FLAGS.json:
        with open(FLAGS.json, "w") as f:
            json.dump({"workdir": run.workdir, "classifier_test_accuracy": accuracy, **counts, "codes": stats}, f,
                      indent=1)
    return 0


if __name__ == "__main__":
    app.run(main)
