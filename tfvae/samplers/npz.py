"""Fitted samplers in the run directory: ``samplers/<name>.npz``, written and read here and nowhere else.

One file per fitted sampler (the prior has none), an uncompressed ``.npz`` of plain arrays read with
``allow_pickle=False`` (so it can't run code), written atomically (``tfvae.files``)::

    samplers/gmm.npz         meta, weights (m,), means (m, d), covariances (m, d, d)
    samplers/two_stage.npz   meta, shift (d,), scale (d,), log_gamma (), enc_kernel_<i>, enc_bias_<i>,
                             dec_kernel_<i>, dec_bias_<i> (the second VAE's dense layers, in order)
    samplers/diffusion.npz   meta, shift and scale (a code's shape: (d,), or a grid's (h, w, c)), the
                             denoiser's EMA weights: in_kernel, in_bias, time_kernel_<i>, time_bias_<i>,
                             block<i>_kernel_<j>, block<i>_bias_<j>, block<i>_time_kernel, block<i>_time_bias,
                             out_kernel, out_bias (the MLP); or the U-Net's named kernels and biases
                             (``tfvae.samplers.unet.shapes``)

``meta`` is a 0-d string array holding JSON: ``format`` (1), ``sampler`` (its name), ``latent`` (d), ``codes``
(how many training codes it was fitted to), ``training_codes`` (how many the run had: more than ``codes`` where a
cap on the codes, the gmm's ``max_codes``, fitted it to a random subset; files written before the cap lack it, and
were fitted to all of them), ``encoder_sha256`` (the sha256 of the encoder.keras whose codes
it was fitted to: a run trained further has other codes, and its samplers are then fitted again),
``settings`` (what the fit was asked for, e.g. the number of components and the cap), ``seconds`` (the fit's time).
Both counts are kept, so that a file says what it was fitted to and whether a cap left codes out.
What the arrays mean is ``tfvae.samplers.densities``'; ``tfvae.samplers.store`` decides when to read or fit.
"""

import json
import os

import numpy as np

from tfvae import files, integrity
from tfvae.errors import TfvaeError

SAMPLER_DIR = "samplers"
SAMPLER_FORMAT = 1


def sampler_path(workdir, name):
    """``<workdir>/samplers/<name>.npz``."""
    return os.path.join(workdir, SAMPLER_DIR, f"{name}.npz")


def encoder_fingerprint(workdir):
    """The sha256 of ``<workdir>/encoder.keras`` (None when it is not a file): what a sampler is fitted to."""
    path = os.path.join(workdir, "encoder.keras")
    return integrity.sha256(path) if os.path.isfile(path) else None


def save_sampler(workdir, name, arrays, meta):
    """Writes ``samplers/<name>.npz`` atomically from ``arrays`` (name -> numpy array) and ``meta`` (JSON-able).

    Returns:
      the file's path.

    Raises:
      TfvaeError: the folder can't be written.
    """
    path = sampler_path(workdir, name)
    meta = dict(meta, format=SAMPLER_FORMAT, sampler=name)
    if "meta" in arrays:
        raise ValueError("an array may not be called 'meta'")
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)

        def write(tmp):
            with open(tmp, "wb") as f:  # a file object: np.savez would add ".npz" to a path
                np.savez(f, meta=np.array(json.dumps(meta, sort_keys=True)),
                         **{k: np.asarray(v) for k, v in arrays.items()})

        files.atomic_save(path, write, tmp=files.temporary_path(path, unique=True))
    except OSError as e:  # a read-only directory or file system, a file where the folder goes, a full disk
        raise TfvaeError(f"cannot write {path} ({files.describe_os_error(e)}); make {os.path.dirname(path)} a "
                         "writable folder, or move what is there away") from None
    return path


def load_sampler(workdir, name, latent, required=()):
    """The arrays and meta of ``samplers/<name>.npz``, checked; None when the file is missing.

    Args:
      workdir: the run directory.
      name: the sampler's name.
      latent: the run's latent size; the file must say the same.
      required: the arrays the sampler needs.

    Returns:
      (dict of arrays, meta dict), or None when there is no such file (the sampler was never fitted).

    Raises:
      TfvaeError: one line naming the file, what is wrong with it, and the fix (delete it: it is fitted again).
    """
    path = sampler_path(workdir, name)
    if not os.path.lexists(path):
        return None
    fix = f"delete it and it is fitted again on its next use (e.g. python sample.py --sampler={name})"
    problem = integrity.npz_problem(path, ("meta", *required))
    if problem:
        raise TfvaeError(f"{path} {problem}; {fix}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
        meta = json.loads(str(arrays.pop("meta")))
    except (ValueError, OSError, EOFError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise TfvaeError(f"{path} cannot be read ({reason}); {fix}") from None
    if not isinstance(meta, dict) or meta.get("format") != SAMPLER_FORMAT or meta.get("sampler") != name:
        raise TfvaeError(f"{path} is not a tfvae {name} sampler of format {SAMPLER_FORMAT}; {fix}")
    if meta.get("latent") != latent:
        raise TfvaeError(f"{path} was fitted to codes of size {meta.get('latent')}, but the run's latent is "
                         f"{latent}: it comes from another run; {fix}")
    return arrays, meta
