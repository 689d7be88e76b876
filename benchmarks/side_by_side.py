"""Runs side by side in one picture: the same test images, each run's reconstructions, each run's samples.

    python benchmarks/side_by_side.py runs/off runs/adversarial --labels=off,adversarial --output=side.png

Row 1 holds ``--count`` test images of the first run (every run must be trained on the same data); then, for
each run, a row of its reconstructions of those images (z = the posterior mean, the decoder distribution's
mean) and a row of ``--count`` samples drawn by its default sampler (``Run.sample``) with ``--seed``, so that runs
with the same sampler decode the same draws. Prints each run's reconstruction sharpness and colourfulness as
ratios to the shown test images' (tfvae.metrics.perception), which a person sees in the picture.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfvae import startup  # noqa: E402

startup.quiet_tensorflow_startup()  # TensorFlow without its C++ start-up notices and info logs

from absl import app, flags  # noqa: E402

flags.DEFINE_list("labels", [], "A label per run (default: the run directories' names).")
flags.DEFINE_integer("count", 8, "Images per row.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seed of the choice of test images and of the samples.")
flags.DEFINE_string("output", None, "The PNG to write.")
FLAGS = flags.FLAGS


def _fmt(value):
    return "—" if value is None else f"{value:.2f}"


def main(argv):
    workdirs = argv[1:]
    if not workdirs or not FLAGS.output:
        raise app.UsageError("give one or more run directories and --output")
    if FLAGS.labels and len(FLAGS.labels) != len(workdirs):
        raise app.UsageError(f"{len(FLAGS.labels)} labels for {len(workdirs)} runs")
    import numpy as np

    import tfvae
    from tfvae import picture_arrays
    from tfvae.metrics.perception import perception

    labels = FLAGS.labels or [os.path.basename(os.path.normpath(w)) for w in workdirs]
    runs = [tfvae.load(w) for w in workdirs]
    real = perception(runs[0].test_data()[0])
    x, y = runs[0].test_data()
    pick = np.random.default_rng(FLAGS.seed).choice(len(x), FLAGS.count, replace=False)
    images = x[pick]
    rows, names = [picture_arrays.tile(images, 1, FLAGS.count)], ["test images"]
    for label, run in zip(labels, runs):
        recon = run.reconstruct(images, y[pick] if run.conditional else None)
        rows += [picture_arrays.tile(recon, 1, FLAGS.count),
                 picture_arrays.tile(run.sample(FLAGS.count, seed=FLAGS.seed), 1, FLAGS.count)]
        names += [f"{label} recon.", f"{label} {run.default_sampler}"]
        shown = perception(recon, perception(images))
        test = perception(run.reconstruct(x, y if run.conditional else None), real)
        print(f"{label}: reconstructions keep {_fmt(shown['sharpness_ratio'])}x the sharpness and "
              f"{_fmt(shown['colourfulness_ratio'])}x the colourfulness of the images shown "
              f"({_fmt(test['sharpness_ratio'])}x and {_fmt(test['colourfulness_ratio'])}x over all {len(x)} test "
              "images)")
    sheet = picture_arrays.label_rows(np.concatenate(rows), names, rows[0].shape[0])
    print(f"wrote {picture_arrays.save_png(FLAGS.output, sheet)}")
    return 0


if __name__ == "__main__":
    app.run(main)
