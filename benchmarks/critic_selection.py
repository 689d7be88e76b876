"""Does a run's own critic pick its recognisable samples, and what does picking cost?

    python benchmarks/critic_selection.py /work/bench/emoji_z32_adv/wae --sampler=gmm --gmm_components=200 \
        --keep=1,0.5,0.25 --output=/work/bench/critic

For a run trained with ``--adversarial`` or ``--feature_match`` (it has ``discriminator.keras``): for each
fraction k of ``--keep``, the first ``count / k`` codes that ``--sampler`` draws with ``--seed`` are decoded,
each picture is scored by the critic's mean patch logit, and the ``--count`` best scored are kept (a ranked
form of Azadi et al. 2019's discriminator rejection sampling; k = 1 keeps the sampler's own first ``count``).
Each kept set is measured as evaluate.py measures samples: FCD, Inception Score, precision and recall in the
features of its classifier (trained on the run's data, or read from its cache) against the test images, and the
distance to the training images as a ratio to the test images' (below 1: nearer the training set than new real
pictures are). Prints one line per k and writes ``<output>/keep<k>.png``, the first 100 kept pictures.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfvae import startup  # noqa: E402

startup.quiet_tensorflow_startup()  # TensorFlow without its C++ start-up notices and info logs

from absl import app, flags  # noqa: E402

flags.DEFINE_enum("sampler", "gmm", ["prior", "gmm", "two_stage", "learned"], "The sampler whose draws are ranked.")
flags.DEFINE_integer("gmm_components", 10, "Components of the gmm sampler.", lower_bound=1)
flags.DEFINE_list("keep", ["1", "0.5", "0.25"], "Fractions of the draws kept, each in (0, 1].")
flags.DEFINE_integer("count", 1000, "Pictures kept per fraction (and measured).", lower_bound=4)
flags.DEFINE_integer("seed", 0, "Seed of the draws and of the subset of training images.")
flags.DEFINE_integer("classifier_epochs", 8, "Epochs of the feature classifier when it has to be trained.",
                     lower_bound=1)
flags.DEFINE_string("cache_dir", "", "The classifier cache (default $TFVAE_CACHE, else ~/.cache/tfvae).")
flags.DEFINE_string("output", None, "Folder for the grids.")
FLAGS = flags.FLAGS
BATCH = 256


def critic_scores(discriminator, images):
    """Each picture's mean patch logit under the critic: float64 (n,); higher is judged more real."""
    import numpy as np

    out = [np.asarray(discriminator(images[i:i + BATCH], training=False)["logits"], "float64")
           for i in range(0, len(images), BATCH)]
    return np.concatenate([o.reshape(len(o), -1).mean(1) for o in out])


def main(argv):
    if len(argv) != 2 or not FLAGS.output:
        raise app.UsageError("give one run directory and --output")
    try:
        keeps = [float(k) for k in FLAGS.keep]
    except ValueError:
        keeps = []
    if not keeps or not all(0 < k <= 1 for k in keeps):
        raise app.UsageError(f"--keep={','.join(FLAGS.keep)}: each fraction must lie in (0, 1]")
    import keras
    import numpy as np

    import tfvae
    from tfvae import metrics, picture_arrays
    from tfvae.errors import TfvaeError
    from tfvae.evaluation.classifier import load_or_train_classifier

    try:
        run = tfvae.load(argv[1])
        path = os.path.join(run.workdir, "discriminator.keras")
        if not os.path.isfile(path):
            raise TfvaeError(f"{run.workdir} has no discriminator.keras: train it with --adversarial or "
                             "--feature_match")
        discriminator = keras.saving.load_model(path, safe_mode=True)
        settings = {"components": FLAGS.gmm_components} if FLAGS.sampler == "gmm" else {}
        sampler = run.sampler(FLAGS.sampler, **settings)
        classifier = load_or_train_classifier(run.dataset, FLAGS.cache_dir, FLAGS.classifier_epochs, FLAGS.seed,
                                              print)
    except TfvaeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    x_test = run.dataset.x_test.astype("float32") / 255.0
    x_train = run.dataset.x_train[np.sort(np.random.default_rng(FLAGS.seed).permutation(len(run.dataset.x_train))
                                          [:FLAGS.count])].astype("float32") / 255.0
    test_features, _ = classifier.features_and_probs(x_test)
    train_features, _ = classifier.features_and_probs(x_train)
    draws = int(np.ceil(FLAGS.count / min(keeps)))
    images = run.decode(sampler.sample(draws, FLAGS.seed))
    scores = critic_scores(discriminator, images)
    os.makedirs(FLAGS.output, exist_ok=True)
    print(f"{run.workdir}: {FLAGS.sampler} sampler{' of ' + str(FLAGS.gmm_components) if settings else ''}, "
          f"{draws} draws (seed {FLAGS.seed}); {len(x_test)} test images; classifier test accuracy "
          f"{classifier.info['test_accuracy']:.3f}")
    for keep in keeps:
        pool = int(np.ceil(FLAGS.count / keep))
        kept = np.sort(np.argsort(-scores[:pool], kind="stable")[:FLAGS.count])
        features, probs = classifier.features_and_probs(images[kept])
        precision, recall = metrics.precision_recall(test_features, features, 3)
        fcd = metrics.frechet_distance_of_features(features, test_features)
        inception, _ = metrics.inception_score(probs, 10 if len(probs) >= 1000 else 1)
        distance = metrics.training_distance_ratio(train_features, test_features, features)
        grid = picture_arrays.save_png(os.path.join(FLAGS.output, f"keep{keep:g}.png"),
                                       picture_arrays.tile(images[kept[:100]], 10, 10) if len(kept) >= 100 else
                                       picture_arrays.tile(images[kept], 1, len(kept)))
        print(f"keep {keep:g} of {pool}: critic score {scores[kept].mean():.6g} (all {pool}: "
              f"{scores[:pool].mean():.6g}); FCD {fcd:.2f}, IS {inception:.2f}, precision {precision:.3f}, recall "
              f"{recall:.3f}, distance to the training images x{distance:.2f} the test images'; {grid}")
    return 0


if __name__ == "__main__":
    app.run(main)
