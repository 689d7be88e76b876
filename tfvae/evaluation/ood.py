"""Anomaly detection: AUROC of telling out-of-distribution images from the test set, raw and complexity-corrected."""

import os

import numpy as np

from tfvae import data as data_lib
from tfvae import metrics
from tfvae.errors import TfvaeError
from tfvae.evaluation.likelihood_steps import per_image_scores
from tfvae.evaluation.report import save_histograms


def load_ood_images(run, options, count):
    """Up to ``count`` OOD images (uint8, the run's image shape): the OOD test split, then its training split."""
    height, _, channels = run.config.image_shape
    dataset = data_lib.load_dataset(options.ood_dataset, options.ood_data_dir or None, image_size=height,
                                    channels=channels, download=run.config.download,
                                    cache_dir=run.config.cache_dir, max_image_pixels=run.config.max_image_pixels)
    x = np.concatenate([dataset.x_test, dataset.x_train])[:count]
    if x.shape[1:] != tuple(run.config.image_shape):
        raise TfvaeError(f"OOD images have shape {x.shape[1:]}, the run's are {tuple(run.config.image_shape)}; "
                         "use square images")
    return x, dataset.source


def ood_detection(run, x_test_uint8, in_scores, options, results, shared, out_dir, log):
    """AUROCs of telling ``options.ood_dataset`` from the test set; fills ``results`` and draws the histograms.

    Args:
      run: the loaded Run.
      x_test_uint8: the test images (uint8), the inliers.
      in_scores: their per-image scores (-ELBO, or the reconstruction term of an AE).
      options: EvalOptions.
      results: the results dict, updated in place (metrics, ``ood``, figures).
      shared: a dict kept across the runs of a --compare (the OOD images are loaded once).
      out_dir: where the histogram PNG goes.
      log: where progress lines go.
    """
    key = ("ood", options.ood_dataset, options.ood_data_dir, tuple(run.config.image_shape), len(x_test_uint8))
    if key not in shared:  # loaded once for all runs of a --compare
        shared[key] = load_ood_images(run, options, len(x_test_uint8))
    x_ood_uint8, source = shared[key]
    log(f"OOD: {len(x_test_uint8)} {run.config.dataset} test images vs {len(x_ood_uint8)} {options.ood_dataset} "
        "images")
    scores, _ = per_image_scores(run, run.data.model_view(x_ood_uint8, "test"), None, options)
    out_scores = scores["score"]
    binary = run.config.binarize != "none"
    in_png = metrics.png_length_nats(run.data.model_view_uint8(x_test_uint8, "test"), binary=binary)
    out_png = metrics.png_length_nats(run.data.model_view_uint8(x_ood_uint8, "test"), binary=binary)
    in_corrected = metrics.complexity_corrected_score(in_scores, in_png)
    out_corrected = metrics.complexity_corrected_score(out_scores, out_png)
    score_name = "-ELBO" if run.variational else "reconstruction -log p(x|z_mean)"
    m = results["metrics"]
    m["ood_auroc"] = metrics.auroc(in_scores, out_scores)
    m["ood_auroc_complexity"] = metrics.auroc(in_corrected, out_corrected)
    m["ood_auroc_png_length"] = metrics.auroc(in_png, out_png)
    results["ood"] = {
        "dataset": options.ood_dataset, "source": source, "num_in": len(x_test_uint8), "num_out": len(x_ood_uint8),
        "score": score_name, "corrected_score": f"{score_name} - PNG length (nats)",
        "mean_score_in": float(np.mean(in_scores)), "mean_score_out": float(np.mean(out_scores)),
        "mean_png_nats_in": float(np.mean(in_png)), "mean_png_nats_out": float(np.mean(out_png)),
    }
    results["figures"]["ood_scores"] = save_histograms(
        os.path.join(out_dir, "eval_ood_scores.png"),
        [(score_name, in_scores, out_scores, m["ood_auroc"]),
         ("complexity-corrected", in_corrected, out_corrected, m["ood_auroc_complexity"])],
        run.config.dataset, options.ood_dataset)
    log(f"OOD AUROC: {score_name} {m['ood_auroc']:.3f}, complexity-corrected {m['ood_auroc_complexity']:.3f}")
