"""Writing results: Markdown tables and report.md, TensorBoard hparams and metrics, pictures, JSON."""

import json
import math
import os
import shutil

import numpy as np

from tfvae import files, metrics, picture_arrays

# Metrics that don't depend on the sampler, then those that do; (key, table header, format).
RUN_COLUMNS = (
    ("neg_elbo", "-ELBO", ".2f"), ("reconstruction", "recon.", ".2f"), ("kl", "KL", ".2f"),
    ("iwae_nll", "IWAE NLL", ".2f"), ("elbo_gap", "gap", ".2f"),
    ("bits_per_dim", "bits/dim", ".4f"), ("mse", "MSE", ".4f"), ("psnr", "PSNR dB", ".2f"),
    ("psnr_noisy", "noisy PSNR", ".2f"), ("psnr_denoised", "denoised PSNR", ".2f"),
    ("recon_sharpness_ratio", "recon. sharpness / real", ".2f"),
    ("recon_colourfulness_ratio", "recon. colourfulness / real", ".2f"),
)
SAMPLER_COLUMNS = (
    ("fcd", "FCD", ".2f"), ("inception_score", "IS", ".2f"), ("precision", "precision", ".3f"),
    ("recall", "recall", ".3f"), ("training_distance_ratio", "train distance / real", ".2f"),
    ("near_copies", "near copies (real: 0.05)", ".3f"),
    ("sharpness_ratio", "sharpness / real", ".2f"), ("colourfulness_ratio", "colourfulness / real", ".2f"),
)
OOD_COLUMNS = (("ood_auroc", "OOD AUROC", ".3f"), ("ood_auroc_complexity", "OOD AUROC corrected", ".3f"))


def sampler_label(results, sampler):
    """``sampler``'s name in the tables, with the samples' temperature when it is not 1 ("gmm at temperature 0.7")."""
    temperature = results["settings"].get("temperature", 1.0)
    return sampler if temperature == 1.0 else f"{sampler} at temperature {temperature:g}"


def table_row(results, sampler, grid=""):
    """One table row (a dict) of a run's results with ``sampler``'s sample-quality metrics."""
    m = results["metrics"]
    row = {"run": results["name"], "model": results["run"]["model"], "sampler": sampler_label(results, sampler),
           "grid": grid}
    row.update({k: m.get(k) for k, _, _ in RUN_COLUMNS + OOD_COLUMNS})
    row.update({k: results["samplers"][sampler].get(k) for k, _, _ in SAMPLER_COLUMNS})
    return row


def _fmt(value, spec):
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return format(value, spec)


def markdown_table(rows, columns, grid_dir=None):
    """A Markdown table of ``rows`` (dicts) with ``columns`` ((key, header, format) triples)."""
    used = [c for c in columns if any(r.get(c[0]) is not None for r in rows)]
    header = ["run", "model", "sampler"] + [h for _, h, _ in used] + (["samples"] if grid_dir is not None else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [str(r["run"]), str(r["model"]), str(r["sampler"])] + [_fmt(r.get(k), f) for k, _, f in used]
        if grid_dir is not None:
            cells.append(f"![{r['run']} {r['sampler']}]({r['grid']})" if r.get("grid") else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def compare_markdown(rows, all_results, options):
    """compare.md: the table of ``rows`` and one line per run of ``all_results``."""
    columns = RUN_COLUMNS + SAMPLER_COLUMNS + OOD_COLUMNS
    text = ["# Comparison\n\n",
            f"{len(all_results)} run(s); {options.sample_count} generated images per sampler, IWAE with "
            f"k={options.num_samples} on {options.num_images or 'all'} test images; nats per image (lower is "
            "better) for -ELBO and NLL. FCD, IS and precision/recall use a classifier trained here, not "
            "Inception: not comparable with published FID. Sharpness and colourfulness are ratios to the real test "
            "images' (1.0: as sharp, as colourful; — where the real images' value is 0).\n\n",
            markdown_table(rows, columns, grid_dir=""), "\n## Runs\n\n"]
    for r in all_results:
        run = r["run"]
        acc = r.get("classifier", {}).get("test_accuracy")
        text.append(f"- **{r['name']}** ({r['workdir']}): {run['model']} {run['arch']} z{run['latent']}, loss "
                    f"{run['loss']}, {run['epochs_trained']} epochs on {run['dataset']} ({run['data_source']}); "
                    f"classifier test accuracy {_fmt(acc, '.4f')}; evaluated in {r['seconds']['total']:.0f} s. "
                    + " ".join(r["notes"] + ([r["limit"]["line"]] if "limit" in r else [])) + "\n")
    return "".join(text)


RECONSTRUCTIONS = "reconstructions (the floor)"  # the sampler cell of the reconstructions' row


def reconstruction_row(results):
    """The table row of a run's test-image reconstructions (the floor a sampler cannot beat), or None."""
    recon = results.get("reconstructions")
    if not recon:
        return None
    return {"run": results["name"], "model": results["run"]["model"], "sampler": RECONSTRUCTIONS,
            **{k: recon.get(k) for k, _, _ in SAMPLER_COLUMNS}, "grid": ""}


def result_rows(results):
    """Table rows of one run's results: one per sampler, then its reconstructions, then the real-data floor."""
    rows = [table_row(results, s, os.path.basename(results["samplers"][s]["grid"])) for s in results["samplers"]]
    if reconstruction_row(results):
        rows.append(reconstruction_row(results))
    if results["floor"]:
        rows.append({"run": "real test vs real train", "model": "-", "sampler": "-",
                     **{k: results["floor"].get(k) for k, _, _ in SAMPLER_COLUMNS}, "grid": ""})
    return rows


def write_report(results, path):
    """Writes report.md for one run's results; returns its path."""
    run, m = results["run"], results["metrics"]
    lines = [f"# Evaluation of `{results['workdir']}`\n\n",
             f"{run['model']} ({run['arch']}, latent {run['latent']}, loss {run['loss']}, beta {run['beta']}) "
             f"on {run['dataset']} from {run['data_source']}; binarize={run['binarize']}; "
             f"{run['epochs_trained']} of {run['epochs']} epochs trained; "
             f"{run.get('test_images', str(run['num_test_images']) + ' test images')}. "
             f"Evaluated in {results['seconds']['total']:.0f} s.\n", "\n## Likelihood and reconstruction\n\n",
             "Nats per image, lower is better.\n\n| metric | value |\n|---|---|\n"]
    s = results["settings"]
    entries = [
        (f"-ELBO (all test images, {s['elbo_samples']} draws each)", m.get("neg_elbo"), ".2f"),
        ("  reconstruction term", m.get("reconstruction"), ".2f"), ("  KL term", m.get("kl"), ".2f"),
        (f"IWAE NLL (k={m.get('iwae_num_samples')}, {m.get('iwae_num_images')} images)", m.get("iwae_nll"), ".2f"),
        ("  its standard error over images", m.get("iwae_nll_sem"), ".2f"),
        ("  -ELBO of the same images", m.get("iwae_neg_elbo"), ".2f"),
        ("  gap -ELBO - NLL (>= 0 up to noise)", m.get("elbo_gap"), ".2f"),
        ("bits/dim (IWAE NLL)", m.get("bits_per_dim"), ".4f"),
        ("MSE per pixel (posterior-mean reconstructions)", m.get("mse"), ".5f"),
        ("PSNR dB", m.get("psnr"), ".2f"),
    ]
    if "denoising" in results:
        d = results["denoising"]
        entries += [(f"PSNR dB of the test images with {d['noise']} noise (seed {d['seed']})", d["psnr_noisy"], ".2f"),
                    ("PSNR dB of the run's reconstructions of those noisy images", d["psnr_denoised"], ".2f")]
    lines += [f"| {name} | {_fmt(v, f)} |\n" for name, v, f in entries if v is not None]
    lines.append("\n" + "\n".join(f"- {n}" for n in results["notes"]) + "\n")
    worst = os.path.basename(results["figures"]["worst_reconstructions"])
    lines.append(f"\nWorst-reconstructed test images (odd rows) above their reconstructions:\n\n![]({worst})\n")
    lines.append(perception_markdown(results))
    lines.append("\n## Sample quality\n\n")
    if "classifier" in results:
        c = results["classifier"]
        lines.append(f"Features of a small classifier trained on the training split ({c['num_train']} images, "
                     f"{c['epochs']} epochs; test accuracy {c['test_accuracy']:.4f}; `{c['path']}`). "
                     f"{s['sample_count']} generated images against as many real test images; the last row is "
                     "real test against real train images, the floor. FCD is a Fréchet distance in these "
                     "features: not comparable with Inception FID.\n\n")
    if results.get("reconstructions"):
        lines.append(f"The row \"{RECONSTRUCTIONS}\": the posterior-mean reconstructions of "
                     f"{results['reconstructions']['count']} of those test images against as many real training "
                     "images, what the decoder draws from codes it knows, which no sampler's samples beat.\n\n")
    lines.append(markdown_table(result_rows(results), SAMPLER_COLUMNS, grid_dir=""))
    if "limit" in results:
        lines.append("\n" + results["limit"]["line"] + "\n")
    if "ood" in results:
        o = results["ood"]
        lines += ["\n## Anomaly detection\n\n",
                  f"{o['num_in']} {run['dataset']} test images (inliers) against {o['num_out']} {o['dataset']} "
                  f"images from {o['source']}. AUROC of telling them apart by a higher score (0.5 is chance):\n\n"
                  "| score | AUROC | mean in | mean out |\n|---|---|---|---|\n",
                  f"| {o['score']} | {m['ood_auroc']:.3f} | {o['mean_score_in']:.1f} | {o['mean_score_out']:.1f} |\n",
                  f"| {o['corrected_score']} (Serrà et al. 2020) | {m['ood_auroc_complexity']:.3f} | | |\n",
                  f"| PNG length alone | {m['ood_auroc_png_length']:.3f} | {o['mean_png_nats_in']:.1f} | "
                  f"{o['mean_png_nats_out']:.1f} |\n",
                  "\n![](" + os.path.basename(results["figures"]["ood_scores"]) + ")\n"]
    lines.append("\n## Settings and timings\n\n```\n" + json.dumps(s, indent=1) + "\nseconds: "
                 + json.dumps(results["seconds"]) + "\n```\n")
    with open(path, "w") as f:
        f.write("".join(lines))
    return path


def perception_markdown(results):
    """report.md's section on what a person sees: sharpness and colourfulness of the real test images, of
    their reconstructions and of each sampler's samples, with the ratios to the real images'."""
    m, s = results["metrics"], results["settings"]
    rows = [(f"real test images ({results['run']['num_test_images']})", m["real_sharpness"],
             m["real_colourfulness"], metrics.ratio(m["real_sharpness"], m["real_sharpness"]),
             metrics.ratio(m["real_colourfulness"], m["real_colourfulness"])),
            ("their reconstructions", m["recon_sharpness"], m["recon_colourfulness"], m["recon_sharpness_ratio"],
             m["recon_colourfulness_ratio"])]
    rows += [(f"{sampler_label(results, sampler)} samples ({s['sample_count']})", e["sharpness"], e["colourfulness"],
              e["sharpness_ratio"], e["colourfulness_ratio"]) for sampler, e in results["samplers"].items()]
    lines = ["\n## What a person sees\n\n",
             "Mean sharpness (absolute 4-neighbour Laplacian of the BT.601 grey image, interior pixels) and "
             "colourfulness (Hasler & Suesstrunk 2003: about 0 not colourful, 33 moderately, 59 quite, 109 "
             "extremely), both on the 0..255 scale, and their ratios to the real test images' (1.0: as sharp, as "
             "colourful; — where the real images' value is 0, e.g. the colourfulness of grey images).\n\n",
             "| images | sharpness | colourfulness | sharpness / real | colourfulness / real |\n"
             "|---|---|---|---|---|\n"]
    lines += [f"| {name} | {_fmt(a, '.2f')} | {_fmt(b, '.2f')} | {_fmt(c, '.2f')} | {_fmt(d, '.2f')} |\n"
              for name, a, b, c, d in rows]
    return "".join(lines)


def scalar_metrics(results, sampler):
    """Flat {name: float} of one run's metrics with ``sampler``'s sample-quality metrics."""
    flat = {k: v for k, v in results["metrics"].items() if isinstance(v, (int, float))}
    flat.update({k: v for k, v in results["samplers"].get(sampler, {}).items() if isinstance(v, (int, float))})
    return flat


def write_tensorboard(results, logdir):
    """HParams (the run's config and the sampler) and the metrics, one TensorBoard run per sampler."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    if os.path.isdir(logdir):
        shutil.rmtree(logdir)  # the latest evaluation replaces the previous one
    run = results["run"]
    hparams = {"model": run["model"], "arch": run["arch"], "latent": int(run["latent"]), "loss": run["loss"],
               "beta": float(run["beta"]), "dataset": run["dataset"], "binarize": run["binarize"],
               "epochs": int(run["epochs_trained"])}
    names = sorted({k for s in results["samplers"] for k in scalar_metrics(results, s)})
    with tf.summary.create_file_writer(logdir).as_default():
        hp.hparams_config(hparams=[hp.HParam(k) for k in [*hparams, "sampler"]],
                          metrics=[hp.Metric(f"eval/{k}") for k in names])
    for sampler in results["samplers"]:
        writer = tf.summary.create_file_writer(os.path.join(logdir, sampler))
        with writer.as_default():
            hp.hparams({**hparams, "sampler": sampler}, trial_id=f"{results['name']}-{sampler}")
            for name, value in scalar_metrics(results, sampler).items():
                tf.summary.scalar(f"eval/{name}", value, step=max(run["epochs_trained"], 0))
        writer.close()


def save_picture(out_dir, name, picture):
    """Saves ``picture`` (floats in [0, 1]) as ``out_dir/name``; returns the path."""
    return picture_arrays.save_png(os.path.join(out_dir, name), picture)


def save_histograms(path, panels, in_name, out_name):
    """One histogram panel per (title, inlier scores, outlier scores, AUROC) of ``panels``, saved as ``path``."""
    from matplotlib.figure import Figure  # no pyplot: no backend is chosen or switched

    fig = Figure(figsize=(5 * len(panels), 3.5))
    axes = fig.subplots(1, len(panels))
    for ax, (title, inliers, outliers, auc) in zip(np.atleast_1d(axes), panels):
        bins = np.histogram_bin_edges(np.concatenate([inliers, outliers]), bins=60)
        ax.hist(inliers, bins=bins, alpha=0.6, density=True, label=f"{in_name} (test)")
        ax.hist(outliers, bins=bins, alpha=0.6, density=True, label=out_name)
        ax.set_title(f"{title}: AUROC {auc:.3f}")
        ax.set_xlabel("score (nats; higher = more anomalous)")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def write_json(path, obj):
    """Writes ``obj`` as JSON atomically (numpy numbers as Python ones, non-finite floats as null)."""
    files.atomic_write_text(path, json.dumps(_jsonable(obj), indent=2) + "\n")
