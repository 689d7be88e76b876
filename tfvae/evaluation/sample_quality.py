"""Sample quality of a run: FCD, Inception Score and k-NN precision/recall per sampler, the real-data floor and the
reconstructions' floor, and which of sampler and decoder limits the run; each sampler's sharpness and colourfulness
as ratios to the real test images' (``metrics.perception``)."""

import numpy as np

from tfvae import metrics, picture_arrays
from tfvae.errors import TfvaeError
from tfvae.evaluation.classifier import data_fingerprint, load_or_train_classifier
from tfvae.evaluation.options import FLOOR_TOLERANCE, GRID_SIDE, KNN_K
from tfvae.evaluation.report import sampler_label, save_picture
from tfvae.samplers.draws import generate, sample_latents


def _subset(rng, n, count):
    """Sorted indices of ``count`` of ``n`` images (all if fewer), drawn by ``rng``."""
    return np.sort(rng.permutation(n)[:count])


def _real_features(run, classifier, options, shared):
    """Features of real test and training images (grey levels), computed once per dataset and count."""
    key = ("real", classifier.info["path"], options.sample_count, options.seed)
    if key not in shared:
        rng = np.random.default_rng(options.seed)
        x_test, x_train = run.dataset.x_test, run.dataset.x_train
        test = x_test[_subset(rng, len(x_test), options.sample_count)]
        train = x_train[_subset(rng, len(x_train), options.sample_count)]
        shared[key] = (classifier.features_and_probs(test.astype("float32") / 255.0, options.batch_size),
                       classifier.features_and_probs(train.astype("float32") / 255.0, options.batch_size))
    return shared[key]


def _times(value):
    return "—" if value is None else f"{value:.2f}"


def _quality(real_feats, fake_feats, fake_probs):
    splits = 10 if len(fake_probs) >= 1000 else 1
    is_mean, is_std = metrics.inception_score(fake_probs, splits)
    precision, recall = metrics.precision_recall(real_feats, fake_feats, KNN_K)
    return {"fcd": metrics.frechet_distance_of_features(fake_feats, real_feats), "inception_score": is_mean,
            "inception_score_std": is_std, "precision": precision, "recall": recall}


def what_limits(sampler_fcds, recon_fcd, tolerance=FLOOR_TOLERANCE):
    """Which limits a run's samples: the decoder (the floor) or the sampler (its gap above the floor).

    A sampler's codes go through the same decoder as the test images' codes, so the reconstructions' FCD is the
    floor no sampler beats (up to noise). With g = best sampler's FCD - ``recon_fcd``: the floor limits when
    g <= ``tolerance`` * ``recon_fcd`` (a better decoder, not a better sampler, would help), else the sampler does.
    A sampler more than that share below its floor says the floor's own FCD is noisy, and the line says so.

    Args:
      sampler_fcds: {sampler's name in the tables: its FCD}, at least one.
      recon_fcd: the reconstructions' FCD (the floor).
      tolerance: the share of the floor that a gap may reach and still count as at the floor.

    Returns:
      {"limit": "floor" or "sampler", "best_sampler", "best_fcd", "reconstructions_fcd", "gap", "tolerance",
      "line": the report's sentence}.
    """
    best = min(sampler_fcds, key=sampler_fcds.get)
    best_fcd = float(sampler_fcds[best])
    gap = best_fcd - float(recon_fcd)
    limit = "floor" if gap <= tolerance * recon_fcd else "sampler"
    where = f"{gap:.2f} above" if gap >= 0 else f"{-gap:.2f} below"
    said = (f"the best sampler, {best}, has FCD {best_fcd:.2f}, {where} the reconstructions' {recon_fcd:.2f}")
    if limit == "floor" and gap < -tolerance * recon_fcd:  # no sampler beats its decoder: the floor is noisy
        line = (f"The floor limits, as far as it can be measured: {said} (more than {tolerance:.0%} of the floor "
                "below it, where no sampler can be: the floor's FCD is noisy here, from few test images or few "
                "training images drawn; compare it over --seed).")
    elif limit == "floor":
        line = (f"The floor limits: {said} (a gap within {tolerance:.0%} of the floor): a better decoder, not a "
                "better sampler, would help.")
    else:
        line = (f"The sampler limits: {said} (a gap above {tolerance:.0%} of the floor): a better sampler could "
                f"gain up to {gap:.2f} before the decoder limits.")
    return {"limit": limit, "best_sampler": best, "best_fcd": best_fcd, "reconstructions_fcd": float(recon_fcd),
            "gap": gap, "tolerance": tolerance, "line": line}


def _reconstruction_quality(reconstructions, classifier, options, train_feats, test_feats, results, log):
    """The reconstructions' FCD, IS, precision/recall and novelty (the floor a sampler cannot beat), into
    ``results``.

    The same seeded subset of test images as the real features', reconstructed, against as many real
    *training* images: a sampler's samples are independent of the images they are measured against, and so are
    these (reconstructions measured against their own originals would share their sampling noise and score
    below any independent set: a perfect autoencoder would score 0 where a perfect sampler scores the real-data
    floor; here it scores that floor too). Their distance to the training images and their share of near copies
    are what a sampler that drew the decoder's versions of new images would score: the novelty of a sampler at
    the floor, though no reconstruction of a held-out image copies a training image.
    """
    m = results["metrics"]
    recon = reconstructions[_subset(np.random.default_rng(options.seed), len(reconstructions), options.sample_count)]
    feats, probs = classifier.features_and_probs(recon, options.batch_size)
    entry = _quality(train_feats, feats, probs)
    entry.update(metrics.novelty(train_feats, test_feats, feats))
    entry.update({"count": len(recon), "sharpness": m["recon_sharpness"], "colourfulness": m["recon_colourfulness"],
                  "sharpness_ratio": m["recon_sharpness_ratio"],
                  "colourfulness_ratio": m["recon_colourfulness_ratio"]})
    results["reconstructions"] = entry
    m.update({f"recon_{k}": entry[k] for k in ("fcd", "inception_score", "precision", "recall")})
    log(f"reconstructions of {len(recon)} test images (the floor): FCD {entry['fcd']:.2f}, IS "
        f"{entry['inception_score']:.2f}, precision {entry['precision']:.3f}, recall {entry['recall']:.3f} "
        f"against as many training images, distance to the training images x{entry['training_distance_ratio']:.2f} "
        f"the test images', near copies {entry['near_copies']:.3f}")


def sample_quality(run, options, results, shared, out_dir, log, reconstructions=None):
    """Per sampler: a sample grid, the samples' sharpness and colourfulness (means, and ratios to the real test
    images' from ``results["metrics"]``, which ``evaluate_run`` measured first) and, when the data has labels,
    FCD, IS, precision/recall and how near the samples come to the training images against the test images
    (``metrics.novelty``: the distance ratio, below 1 they copy; the share of near copies, about 0.05 for new
    real images); plus the real-data floor, the reconstructions' floor (``results["reconstructions"]``) and
    which of the two limits the run (``what_limits``, ``results["limit"]``).

    Args:
      run: the loaded Run.
      options: EvalOptions.
      results: the results dict, updated in place (samplers, floor, reconstructions, limit, classifier, metrics,
        notes).
      shared: a dict kept across the runs of a --compare (classifiers and real-image features).
      out_dir: where the sample grids go.
      log: where progress lines go.
      reconstructions: the decoded posterior means of the run's test images (``Scores.score_terms``'), in
        the order of ``run.test_data()``; None: no reconstructions' floor.
    """
    m = results["metrics"]
    real = {"sharpness": m["real_sharpness"], "colourfulness": m["real_colourfulness"]}  # evaluate_run's
    classifier = None
    if run.dataset.num_classes and run.dataset.y_train is not None:
        real_count = min(len(run.dataset.x_test), options.sample_count)
        if real_count <= KNN_K:  # precision/recall need each image's k-th nearest other image
            raise TfvaeError(f"sample quality (FCD, precision/recall with k={KNN_K}) needs at least {KNN_K + 1} real "
                             f"images, got {real_count} ({run.workdir}'s test set has {len(run.dataset.x_test)}, "
                             f"--sample_count={options.sample_count})")
        key = ("classifier", data_fingerprint(run.dataset), options.cache_dir)
        if key not in shared:
            shared[key] = load_or_train_classifier(run.dataset, options.cache_dir, options.classifier_epochs,
                                                   options.seed, log)
        classifier = shared[key]
        info = classifier.info
        results["classifier"] = {k: info.get(k) for k in ("path", "test_accuracy", "epochs", "num_train",
                                                          "num_test", "data_source")}
        results["metrics"]["classifier_test_accuracy"] = info["test_accuracy"]
        (test_feats, test_probs), (train_feats, _) = _real_features(run, classifier, options, shared)
        if len(test_feats) < options.sample_count:
            results["notes"].append(f"The test set has {len(test_feats)} images: sample-quality metrics use "
                                    f"{len(test_feats)} real images against {options.sample_count} generated.")
        floor = _quality(train_feats, test_feats, test_probs)
        results["floor"] = floor
        for k, v in floor.items():
            results["metrics"][f"floor_{k}"] = v
        if reconstructions is not None:
            _reconstruction_quality(reconstructions, classifier, options, train_feats, test_feats, results, log)
    else:
        results["notes"].append("The data has no class labels: no feature classifier, so no FCD, IS or "
                                "precision/recall; sample grids only.")
    for sampler in options.samplers:
        z, fitted = sample_latents(run, sampler, options.sample_count, options.seed, options.batch_size,
                                   options.gmm_components, options.temperature, options.diffusion_steps,
                                   gmm_max_codes=options.gmm_max_codes, settings=options.sampler_settings,
                                   diffusion_solver=options.diffusion_solver)
        images = generate(run, z, options.batch_size)
        entry = {}
        if classifier is not None:
            fake_feats, fake_probs = classifier.features_and_probs(images, options.batch_size)
            entry = _quality(test_feats, fake_feats, fake_probs)
            entry.update(metrics.novelty(train_feats, test_feats, fake_feats))  # distance ratio, near copies
        entry.update(metrics.perception(images, real))
        if sampler == "gmm":  # its size: the one asked for, or the model's default (tfvae.samplers.run_samplers)
            entry["components"] = fitted.settings()["components"]
        grid = picture_arrays.tile(images[: GRID_SIDE * GRID_SIDE], GRID_SIDE, GRID_SIDE)
        entry["grid"] = save_picture(out_dir, f"eval_samples_{sampler}.png", grid)
        results["samplers"][sampler] = entry
        name = sampler_label(results, sampler) + " sampler" + (
            f" of {entry['components']} components" if sampler == "gmm" else "")
        if classifier is not None:
            log(f"{name}: FCD {entry['fcd']:.2f}, IS {entry['inception_score']:.2f}, "
                f"precision {entry['precision']:.3f}, recall {entry['recall']:.3f}, distance to the training "
                f"images x{entry['training_distance_ratio']:.2f} the test images', near copies "
                f"{entry['near_copies']:.3f} (new real images: {metrics.NEAR_COPY_QUANTILE})")
        log(f"{name}: sharpness x{_times(entry['sharpness_ratio'])}, colourfulness "
            f"x{_times(entry['colourfulness_ratio'])} the real images'")
    if results.get("reconstructions") and results["samplers"]:
        results["limit"] = what_limits({sampler_label(results, s): e["fcd"] for s, e in results["samplers"].items()},
                                       results["reconstructions"]["fcd"])
        log(results["limit"]["line"])
