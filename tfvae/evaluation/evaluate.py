"""``evaluate_run``: one run's likelihood, reconstruction, sample quality and OOD steps, and its reports."""

import contextlib
import dataclasses
import math
import os
import time

import numpy as np

from tfvae import data as data_lib
from tfvae import metrics, picture_arrays
from tfvae.errors import ArgumentError, TfvaeError
from tfvae.evaluation.denoising import denoising_psnr
from tfvae.evaluation.likelihood_steps import iwae_estimate, likelihood_note, per_image_scores
from tfvae.evaluation.ood import ood_detection
from tfvae.evaluation.options import WORST_COUNT
from tfvae.evaluation.report import save_picture, write_json, write_report, write_tensorboard
from tfvae.evaluation.run import load_run
from tfvae.evaluation.sample_quality import sample_quality


@contextlib.contextmanager
def _timer(seconds, name):
    """Records the wall time of the ``with`` block as ``seconds[name]``."""
    start = time.perf_counter()
    yield
    seconds[name] = round(time.perf_counter() - start, 2)


def check_outputs(out_dir, workdir):
    """Refuses, before any long computation, a report directory where a folder stands in place of a file
    evaluate.py writes (eval.json, report.md) or a file in place of a folder."""
    for name in ("eval.json", "report.md"):
        path = os.path.join(out_dir, name)
        if os.path.isdir(path):
            raise TfvaeError(f"{path} is a directory, not a file; move it out of {out_dir} (evaluate.py writes this "
                             "file there) and run again")
    for path in (out_dir, os.path.join(workdir, "logs")):
        if os.path.lexists(path) and not os.path.isdir(path):
            raise TfvaeError(f"{path} is a file, not a directory; move it away (evaluate.py writes there) and "
                             "run again")


def evaluate_run(workdir, options, log=print, shared=None, output=None):
    """Measures one run and writes eval.json, report.md, its PNGs and TensorBoard logs.

    Args:
      workdir: the run directory, or a ``latest`` file naming one.
      options: EvalOptions.
      log: where progress lines go.
      shared: a dict kept across calls (classifiers and real-image features per dataset, for --compare).
      output: the report directory; default ``options.output`` or ``workdir``.

    Returns:
      The results dict written to eval.json.
    """
    options.validate()
    shared = {} if shared is None else shared
    started = time.perf_counter()
    seconds = {}
    with _timer(seconds, "load"):
        run = load_run(workdir, log=log)
    workdir = run.workdir  # "runs/latest" resolved: the results go to the run it names
    if run.code_grids.quantized and options.samplers == ("prior",):  # the default: a vqvae's own is its PixelCNN prior
        options = dataclasses.replace(options, samplers=("learned",))
    out_dir = output or options.output or workdir
    check_outputs(out_dir, workdir)
    os.makedirs(out_dir, exist_ok=True)
    config = run.config
    if run.conditional and options.ood_dataset:
        raise ArgumentError("ood_dataset", f"ood_dataset={options.ood_dataset!r} given, but {workdir} holds a "
                                           "cvae: OOD detection needs an ae or vae run (a cvae's likelihood needs "
                                           "the label, which out-of-distribution images don't have)")
    x_test_uint8 = run.dataset.x_test
    x_test, y_test = run.test_data()
    labels = run.one_hot(y_test)
    num_pixels = math.prod(config.image_shape)
    results = {
        "workdir": os.path.abspath(workdir), "name": run.name,
        "run": {"model": config.model, "arch": config.arch, "latent": config.latent, "loss": config.loss,
                "beta": config.beta, "dataset": config.dataset, "data_source": config.data_source,
                "binarize": config.binarize, "image_shape": list(config.image_shape),
                "epochs": config.epochs, "epochs_trained": run.epochs_trained, "num_test_images": len(x_test),
                "test_images": data_lib.describe_test_set(len(x_test), config.classes, config.class_names)},
        "settings": dataclasses.asdict(options), "metrics": {}, "samplers": {}, "floor": {}, "reconstructions": {},
        "notes": [], "figures": {}, "seconds": seconds,
    }
    m, notes = results["metrics"], results["notes"]
    if run.epochs_trained < config.epochs:
        notes.append(f"The run has finished {run.epochs_trained} of its {config.epochs} epochs.")
    log(f"evaluating {workdir}: {config.model} z{config.latent} on {config.dataset} ({len(x_test)} test images)")

    # Reconstruction, and the per-image -ELBO of every test image.
    with _timer(seconds, "elbo_and_reconstruction"):
        scores, recon = per_image_scores(run, x_test, labels, options)
    mse, psnr = metrics.mse_psnr(x_test, recon)
    m["mse"], m["psnr"] = float(np.mean(mse)), float(np.mean(psnr))
    # What a person sees: sharpness and colourfulness of the reconstructions, as ratios to the real test images'
    # (in their grey levels, also for a binarized run: the pictures, not the copy the model scored).
    real = metrics.perception(x_test if config.binarize == "none" else run.test_data(grey=True)[0])
    m["real_sharpness"], m["real_colourfulness"] = real["sharpness"], real["colourfulness"]
    m.update({f"recon_{k}": v for k, v in metrics.perception(recon, real).items()})
    worst = np.argsort(-mse, kind="stable")[:WORST_COUNT]
    cols = min(8, len(worst))
    picture = picture_arrays.tile(picture_arrays.interleave_rows(x_test[worst], recon[worst], cols),
                            2 * math.ceil(len(worst) / cols), cols)
    results["figures"]["worst_reconstructions"] = save_picture(out_dir, "eval_worst_reconstructions.png", picture)
    notes.append(likelihood_note(run))
    if run.variational:
        m["neg_elbo"] = float(np.mean(scores["neg_elbo"]))
        m["reconstruction"] = float(np.mean(scores["reconstruction"]))
        m["kl"] = float(np.mean(scores["kl"]))
        with _timer(seconds, "iwae"):
            iwae_estimate(run, x_test, labels, scores, options, m, log)
        if metrics.reports_bits_per_dim(run.likelihood, config.binarize != "none"):
            m["bits_per_dim"] = float(metrics.bits_per_dim(m["iwae_nll"], num_pixels))
        if run.variance is not None:
            m["decoder_variance"] = run.variance
    else:
        m["reconstruction"] = float(np.mean(scores["reconstruction_at_mean"]))
    if run.code_grids.quantized:  # the PixelCNN prior's fit to the test images' code grids, and how many codes they use
        with _timer(seconds, "prior"):
            indices = run.code_indices(x_test)
            nll = run.inference.indices_nll(run.code_grids.prior, indices)
            m["prior_bits_per_code"] = float(np.mean(nll) / (indices[0].size * math.log(2)))
        usage = np.bincount(indices.ravel(), minlength=config.codebook_size) / indices.size
        m["codes_used"] = int(np.count_nonzero(usage))
        m["code_perplexity"] = float(np.exp(-np.sum(usage[usage > 0] * np.log(usage[usage > 0]))))
        log(f"PixelCNN prior: {m['prior_bits_per_code']:.3f} bits per code on the test codes (uniform: "
            f"{math.log2(config.codebook_size):.3f}); {m['codes_used']} of {config.codebook_size} codes used")

    noise = data_lib.parse_noise(options.noise or config.noise)
    if noise is not None:  # how well the run denoises (the same noisy test images for every run)
        results["denoising"] = d = denoising_psnr(run, x_test, noise, options.seed, labels, options.batch_size)
        m["psnr_noisy"], m["psnr_denoised"] = d["psnr_noisy"], d["psnr_denoised"]
        log(f"denoising {noise}: PSNR {d['psnr_noisy']:.2f} dB noisy, {d['psnr_denoised']:.2f} dB denoised")

    # Sample quality, per sampler.
    with _timer(seconds, "sample_quality"):
        sample_quality(run, options, results, shared, out_dir, log, reconstructions=recon)

    if options.ood_dataset:
        with _timer(seconds, "ood"):
            ood_detection(run, x_test_uint8, scores["score"], options, results, shared, out_dir, log)

    seconds["total"] = round(time.perf_counter() - started, 2)
    write_json(os.path.join(out_dir, "eval.json"), results)
    results["figures"]["report"] = write_report(results, os.path.join(out_dir, "report.md"))
    write_tensorboard(results, os.path.join(workdir, "logs", "eval"))
    log(f"evaluated {workdir} in {seconds['total']:.0f} s")
    return results
