"""sample.py's pictures of a trained run: grids, samples, reconstructions, interpolations, traversals, the
latent scatter plot, denoising rows, and the Projector's files.

Everything here takes a ``tfvae.api.Run`` and goes through its methods (its one inference path); the array
helpers are ``tfvae.picture_arrays``'s. Errors name this module's arguments (``label=3``, ``noise=None``); sample.py
writes them as its flags.
"""

import os

import numpy as np

from tfvae import api, picture_arrays, projector
from tfvae import data as data_lib
from tfvae.errors import ArgumentError

MODES = ("grid", "random", "reconstruct", "interpolate", "scatter", "traverse", "projector", "denoise")


def check_label(run, label):
    """Raises ArgumentError unless ``label`` is None or a class this (cvae) run can draw."""
    if label is not None and not run.conditional:
        raise ArgumentError("label", f"label={label} given, but {run.workdir} holds a {run.config.model}: only a "
                                     "cvae takes labels")
    if label is not None and not 0 <= label < run.num_classes:
        raise ArgumentError("label", f"label={label}, but the run has {run.num_classes} classes "
                                     f"(0..{run.num_classes - 1})")


def draws_samples(run, mode):
    """Whether ``mode`` draws codes from a sampler: "random", and "grid" of a latent other than 2-D (a grid model's
    too: its codes are grids, whatever their channels)."""
    return mode == "random" or (mode == "grid" and (run.latent_dim != 2 or run.code_grids.gridded))


def picture(run, mode, n, label=None, seed=0, sampler=None, sampler_settings=None, temperature=1.0):
    """The (H', W', C) float picture of one of the image modes.

    Args:
      run: a ``tfvae.api.Run``.
      mode: "grid" (the 2-D manifold over norm.ppf(linspace(0.01, 0.99, n)), else samples), "random"
        (samples), "reconstruct" (test images in odd rows, their reconstructions below),
        "interpolate" (each row walks from one test image's code to another's), "traverse" (see
        ``Run.traverse``).
      n: the picture is n x n images.
      label: the class a cvae draws (grid, random); None: one class per row (grid of a 2-D latent: 0).
      seed: seed of the samples and of the choice of test images.
      sampler: what draws the samples' codes (``Run.sampler``: "prior", "gmm", "two_stage"); default the
        run's own (``Run.default_sampler``: the prior for a vae, cvae or wae, gmm for an ae or rae, fitted and
        saved in the run directory on first use).
      sampler_settings: the fitted sampler's settings (``Run.sampler``), e.g. ``{"components": 50}`` for gmm.
      temperature: the samples' temperature (``Run.sample``; 1: the sampler's density itself).

    Raises:
      ArgumentError: a label the run can't draw, a sampler, its settings or a temperature other than 1 for a
        mode that draws no samples, a setting the sampler does not take, a temperature not above 0, or an
        unknown mode.
    """
    check_label(run, label)
    picture_arrays.check_temperature(temperature)
    if not draws_samples(run, mode):
        _refuse_sampler(mode, sampler, sampler_settings, temperature)
    rng = np.random.default_rng(seed)
    if mode in ("grid", "random"):
        if not draws_samples(run, mode):
            z = picture_arrays.manifold_grid(n)
            if run.conditional and label is None:
                label = 0  # one class per manifold
        else:
            run.decoder  # noqa: B018  (a damaged decoder.keras fails before a sampler is fitted)
            z = run.sampler(sampler, **(sampler_settings or {})).sample(n * n, seed, temperature)
        labels = None
        if run.conditional:
            labels = label if label is not None else (np.arange(n * n) // n) % run.num_classes
        return picture_arrays.tile(run.decode(z, labels), n, n)
    if mode == "traverse":
        return run.traverse(n, seed=seed)[0]
    x, y = run.test_data()
    if mode == "reconstruct":
        if len(x) < n:  # a row of originals above their reconstructions is n test images wide
            raise ArgumentError("n", f"n={n}: a row of reconstructions is {n} test images, but the run's test set "
                                f"has {len(x)}; ask for n={len(x)} or fewer" if len(x) else
                                "the run's test set has no images to reconstruct")
        rows = max(n // 2, 1)
        pick = rng.choice(len(x), size=min(rows * n, len(x)), replace=False)
        labels = y[pick] if run.conditional else None
        pairs = picture_arrays.interleave_rows(x[pick], run.reconstruct(x[pick], labels), n)
        return picture_arrays.tile(pairs, 2 * rows, n)
    if mode == "interpolate":
        ends = rng.choice(len(x), size=(n, 2), replace=True)
        # A cvae keeps the start image's class along each row.
        rows = [run.interpolate(x[a], x[b], n, label=int(y[a]) if run.conditional else None) for a, b in ends]
        return picture_arrays.tile(np.concatenate(rows), n, n)
    raise ArgumentError("mode", f"mode={mode!r} is not a picture; choose one of {', '.join(MODES)}")


def denoise_picture(run, n, seed=0, noise=None):
    """Groups of three rows ``n`` images wide: ``max(n // 3, 1)`` groups of clean test images, their copies
    corrupted by ``noise`` (a spec such as ``"gaussian:0.3"``; default the run's own) seeded by ``seed``, and the
    run's reconstructions of the noisy copies.

    Raises:
      ArgumentError: no noise given, and the run was trained without one.
    """
    spec = data_lib.parse_noise(noise or run.config.noise)
    if spec is None:
        raise ArgumentError("noise", f"no noise given, and {run.workdir} was trained without noise: pass a "
                                     "corruption such as noise='gaussian:0.3'")
    x, y = run.test_data()
    count = min(max(n // 3, 1) * n, len(x))
    pick = np.sort(np.random.default_rng(seed).choice(len(x), size=count, replace=False))
    clean = x[pick]
    noisy = data_lib.corrupt_array(clean, spec, seed)
    denoised = run.reconstruct(noisy, y[pick] if run.conditional else None)
    return picture_arrays.denoise_rows(clean, noisy, denoised, min(n, count))


def _refuse_sampler(mode, sampler, settings, temperature=1.0):
    """An ArgumentError when a sampler, a sampler's setting or a temperature other than 1 is given for a picture
    that draws no samples."""
    if temperature != 1.0:
        raise ArgumentError("temperature", f"temperature={temperature!r} given, but the {mode} picture draws no "
                                           "samples: a temperature is for the random picture, and the grid of a "
                                           "latent other than 2-D")
    if sampler:
        raise ArgumentError("sampler", f"sampler={sampler} given, but the {mode} picture draws no samples: a "
                                       "sampler is for the random picture, and the grid of a latent other than 2-D")
    if settings:
        setting, value = next(iter(settings.items()))
        raise ArgumentError(setting, f"{setting}={value!r} given, but the {mode} picture draws no samples: a "
                                     "sampler's setting is for the random picture, and the grid of a latent other "
                                     "than 2-D")


def sample_to_png(workdir, mode, n, output="", seed=0, label=None, noise="", sampler=None, sampler_settings=None,
                  temperature=1.0, log=print):
    """Writes the picture of ``mode`` (see ``picture``, plus "scatter" and "denoise") and returns its path.

    ``mode="projector"`` writes the Projector's files instead (``tfvae.projector``) and returns their directory.

    Args:
      workdir: the run directory, or a ``latest`` file naming one.
      mode: one of ``MODES``.
      n: the picture is n x n images (denoise: n wide, see ``denoise_picture``).
      output: the PNG to write; default ``<run>/<mode>.png``.
      seed: seed of prior samples, of the choice of test images, and of the noise.
      label: the class a cvae draws.
      noise: denoise's corruption (default the run's own).
      sampler: the sampler of "random" and "grid" (see ``picture``).
      sampler_settings: its settings, e.g. ``{"components": 50}`` for gmm (see ``picture``).
      temperature: the samples' temperature (see ``picture``).
      log: where the line about fitting a sampler goes.
    """
    if mode not in MODES:
        raise ArgumentError("mode", f"mode={mode!r} is not a picture; choose one of {', '.join(MODES)}")
    picture_arrays.check_temperature(temperature)
    run = api.load(workdir, log=log)
    if mode in ("projector", "denoise", "scatter"):
        _refuse_sampler(mode, sampler, sampler_settings, temperature)
    if mode in ("projector", "scatter", "traverse"):
        run.code_grids.vector_latent(mode)  # a vqvae's or gridvae's codes are grids: one line saying so
    if mode == "projector":
        return projector.write_projector(run)
    output = output or os.path.join(run.workdir, f"{mode}.png")
    if os.path.isdir(output):
        raise ArgumentError("output", f"output={output!r} is a directory, not a picture; pass another output "
                                      "or move it away")
    if mode == "denoise":
        return picture_arrays.save_png(output, denoise_picture(run, n, seed, noise))
    if mode == "scatter":
        check_label(run, label)
        z, _, labels = run.test_codes()
        title = f"{run.config.model} z{run.latent_dim} on {run.config.dataset}: test-set latent means"
        return picture_arrays.save_scatter(output, z, labels, list(run.config.class_names) or None, title)
    return picture_arrays.save_png(output, picture(run, mode, n, label=label, seed=seed, sampler=sampler,
                                             sampler_settings=sampler_settings, temperature=temperature))

