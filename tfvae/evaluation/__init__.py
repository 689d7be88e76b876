"""Evaluating trained runs: likelihood, reconstruction, sample quality, samplers, anomaly scores, reports.

``evaluate_run(workdir, options)`` measures one run directory and writes, next to it (or to
``options.output``)::

    eval.json                        every number below, the settings, notes and timings
    report.md                        the same as tables, with the pictures it refers to:
    eval_samples_<sampler>.png       generated images, one grid per sampler
    eval_worst_reconstructions.png   the worst-reconstructed test images above their reconstructions
    eval_ood_scores.png              score histograms, in-distribution vs out-of-distribution (with an OOD set)
    logs/eval/<sampler>/             TensorBoard hparams and metrics (always under the run directory)

``compare_runs(workdirs, options)`` evaluates several runs and lays them side by side, one row per run and
sampler, with one image grid per row; ``score_folder(workdir, data_dir, options)`` writes per-image scores of a
folder of the user's images to CSV. The maths of every metric is in ``tfvae.metrics``; every forward pass is
the run's own (``tfvae.api.Run``, through its one ``tfvae.inference.Inference``), and the test images are
``Run.test_data()``'s.

What is measured, and on which images:

* Likelihood (``vae``/``cvae`` only): -ELBO on every test image (closed-form KL, reconstruction averaged over
  ``elbo_samples`` draws), and the IWAE NLL with ``num_samples`` importance samples on ``num_images`` test
  images (a fixed random subset; all by default), with the -ELBO of the same images and their gap. Binarized
  runs are scored on a fixed binary copy of the test set (the one training used for ``binarize=static``,
  one Bernoulli draw seeded by the run's seed + 1 for ``dynamic``); then bits/dim are reported too. Every
  other decoder (``mse``: variance 1/2; ``gaussian``: the variance stored in its decoder, the one it was
  trained with; ``gaussian_pixel``; ``logistic_mixture``) is scored by the probability of the 8-bit test
  images (``tfvae.likelihoods.log_prob_8bit``: a Gaussian's mass over each pixel's bin), in nats and bits/dim
  comparable across decoders. A ``bce`` run on grey levels has no bits/dim (its cross-entropy is no
  probability of 8-bit pixels).
* Reconstruction: per-image MSE and PSNR of the decoded posterior means, on the same images.
* What a person sees (``metrics.perception``): the mean sharpness (4-neighbour Laplacian) and colourfulness
  (Hasler & Suesstrunk 2003) of the reconstructions and of each sampler's samples, and their ratios to the real
  test images' (in grey levels, whatever the binarization); a ratio is None where the real images' mean is 0
  (the colourfulness of grey images).
* Sample quality: ``sample_count`` images from each sampler (``prior``: z ~ N(0, I), for a plain autoencoder
  the documents' "random vector into the decoder"; ``gmm``: a 10-component Gaussian mixture fitted to the
  training set's posterior means, Ghosh et al. 2020; ``two_stage``: a second small VAE fitted to them, Dai &
  Wipf 2019; the fitted ones are the run's own, saved in ``samplers/`` and shared with sample.py, see
  ``tfvae.samplers``), decoded to Bernoulli means (grey levels), against as
  many real grey-level test images, in the features of a small classifier trained here once per dataset
  (Inception weights can't be downloaded offline). FCD (Fréchet distance in those features), a classifier
  Inception Score, k-NN precision/recall (k = 3) and the samples' median distance to their nearest training
  image over the test images' (``metrics.training_distance_ratio``; below 1 the sampler copies) and the share of
  near copies, samples nearer a training image than all but a twentieth of the test images are
  (``metrics.novelty``; about 0.05 for a sampler as new as real images). The floor is the same metrics for real
  test images against real training images. FCD is not comparable with Inception FID, nor across datasets.
* The reconstructions' floor: FCD, IS and precision/recall of the posterior-mean reconstructions of the same
  test images against as many real training images (a sampler's codes go through the same decoder, so its
  samples cannot beat them), and which of sampler and decoder limits the run (``what_limits``: the floor when
  the best sampler's FCD is within ``FLOOR_TOLERANCE`` of the reconstructions' FCD above it, else the sampler).
* Anomaly detection (``ood_dataset``): AUROC of telling OOD images from the test set by -ELBO (the
  reconstruction term for a plain autoencoder), and by Serrà et al.'s complexity-corrected score
  -ELBO - L(x), with L(x) the image's PNG length in nats.
* Denoising (a run trained with ``--noise``, or ``options.noise``): PSNR of seeded noisy copies of the test
  images, and of the run's reconstructions of them (``denoising.py``).
* The one-class protocol (`evaluate_one_class`, a run trained with ``--classes``): every test image of every
  class scored, AUROC of the run's classes against the rest (``one_class.py``; written to one_class.json).

The classifier is cached as ``<cache>/classifiers/<dataset>-<H>x<W>x<C>-<data hash>.keras`` (with a ``.json``
holding its test accuracy), ``<cache>`` being ``options.cache_dir``, else ``$TFVAE_CACHE``, else
``~/.cache/tfvae``. The hash of the training images keeps classifiers of different data apart (e.g. the
5,000-digit MNIST fallback and full MNIST, or a ``max_examples`` subset).

One job per file:

    options.py           EvalOptions and the constants it checks against
    run.py               load_run: a ``tfvae.api.Run`` with its models, data and epochs loaded up front
    classifier.py        the feature classifier, its cache and the data fingerprint
    likelihood_steps.py  per-image -ELBO terms, the IWAE NLL, what the numbers are comparable with
    sample_quality.py    FCD, IS and k-NN precision/recall per sampler, the real-data and reconstructions' floors
    ood.py               OOD images and the AUROCs against them
    evaluate.py          evaluate_run: the steps above for one run, then its reports
    score_folder.py      score_folder: per-image scores of a folder to CSV
    compare.py           compare_runs: several runs side by side
    report.py            Markdown tables, report.md, TensorBoard, histograms, JSON
    denoising.py         denoising_psnr: PSNR of seeded noisy test images and of their reconstructions
    one_class.py         evaluate_one_class: the one-class protocol (evaluate.py --one_class)

The samples every step scores are drawn by ``tfvae.samplers.draws`` (``generate``, ``sample_latents``).
"""

from tfvae.evaluation.classifier import (
    FeatureClassifier,
    build_classifier,
    cache_root,
    classifier_path,
    data_fingerprint,
    load_or_train_classifier,
    train_classifier,
)
from tfvae.evaluation.compare import compare_runs
from tfvae.evaluation.denoising import denoising_psnr
from tfvae.evaluation.evaluate import evaluate_run
from tfvae.evaluation.likelihood_steps import iwae_decoder, iwae_estimate, likelihood_note, per_image_scores
from tfvae.evaluation.one_class import (
    ONE_CLASS_SCORES,
    evaluate_one_class,
    one_class_aurocs,
    one_class_markdown,
    one_class_scores,
)
from tfvae.evaluation.ood import load_ood_images, ood_detection
from tfvae.evaluation.options import (
    CLASSIFIER_BATCH,
    FLOOR_TOLERANCE,
    GRID_SIDE,
    IWAE_PRECISIONS,
    KNN_K,
    MODES,
    SAMPLERS,
    WORST_COUNT,
    EvalOptions,
)
from tfvae.evaluation.report import (
    OOD_COLUMNS,
    RECONSTRUCTIONS,
    RUN_COLUMNS,
    SAMPLER_COLUMNS,
    compare_markdown,
    markdown_table,
    perception_markdown,
    reconstruction_row,
    result_rows,
    save_histograms,
    save_picture,
    scalar_metrics,
    table_row,
    write_json,
    write_report,
    write_tensorboard,
)
from tfvae.evaluation.run import load_run
from tfvae.evaluation.sample_quality import sample_quality, what_limits
from tfvae.evaluation.score_folder import SCORE_FIELDS, score_folder
from tfvae.samplers.draws import generate, sample_latents

__all__ = [
    "CLASSIFIER_BATCH", "FLOOR_TOLERANCE", "GRID_SIDE", "IWAE_PRECISIONS", "KNN_K", "MODES", "ONE_CLASS_SCORES",
    "OOD_COLUMNS", "RECONSTRUCTIONS", "RUN_COLUMNS", "denoising_psnr", "evaluate_one_class", "one_class_aurocs",
    "one_class_markdown", "one_class_scores", "SAMPLERS", "SAMPLER_COLUMNS", "SCORE_FIELDS", "WORST_COUNT",
    "EvalOptions", "FeatureClassifier", "build_classifier", "cache_root", "classifier_path", "compare_markdown",
    "compare_runs", "data_fingerprint", "evaluate_run", "generate", "iwae_decoder", "iwae_estimate",
    "likelihood_note", "load_ood_images", "load_or_train_classifier", "load_run", "markdown_table", "ood_detection",
    "per_image_scores", "perception_markdown", "reconstruction_row", "result_rows", "sample_latents",
    "sample_quality", "save_histograms", "save_picture", "scalar_metrics", "score_folder", "table_row",
    "train_classifier", "what_limits", "write_json", "write_report", "write_tensorboard",
]
