"""A VQ-VAE's PixelCNN prior in the run directory: written and read here and nowhere else.

    prior.keras                the trained PixelCNN (index grids -> logits), uncompiled, loaded with safe_mode=True
    prior/prior.weights.h5     its training checkpoint: weights and Adam's state, after the last finished epoch
    prior/state.json           {"epoch": finished epochs, "codes_sha256": the sha256 of the training index grids
                               it was trained on, "loss", "val_loss", "bits_per_code": of the last epoch}

A rerun resumes the prior from its checkpoint when the VQ-VAE's training codes are still those it was trained
on (a VQ-VAE trained further has other codes: its prior is trained again from the start). What the files hold is
``tfvae.models.pixelcnn``'s; ``tfvae.training.prior`` writes them.
"""

import json
import os

import keras

from tfvae import files, integrity
from tfvae.errors import TfvaeError
from tfvae.models import pixelcnn as _pixelcnn  # noqa: F401  (registers MaskedConv2D, which prior.keras holds)

PRIOR_FILE = "prior.keras"
PRIOR_DIR = "prior"


def prior_path(workdir):
    """``<workdir>/prior.keras``."""
    return os.path.join(workdir, PRIOR_FILE)


def prior_checkpoint_path(workdir):
    """``<workdir>/prior/prior.weights.h5``."""
    return os.path.join(workdir, PRIOR_DIR, "prior.weights.h5")


def read_prior_state(workdir):
    """The prior's state.json as a dict; {} when it is missing or damaged (the prior is then trained afresh)."""
    try:
        state = integrity.read_json(os.path.join(workdir, PRIOR_DIR, "state.json"))
    except integrity.Unreadable:
        return {}
    if not isinstance(state, dict) or not os.path.isfile(prior_checkpoint_path(workdir)):
        return {}
    return state


def save_prior_checkpoint(model, workdir, state):
    """Writes the prior's weights and optimizer state, then state.json naming the epoch (the commit point)."""
    os.makedirs(os.path.join(workdir, PRIOR_DIR), exist_ok=True)
    files.atomic_save(prior_checkpoint_path(workdir), model.save_weights, label="prior-checkpoint")
    files.atomic_write_text(os.path.join(workdir, PRIOR_DIR, "state.json"), _json(state))


def save_prior(model, workdir):
    """Writes prior.keras (atomically) from ``model``, without its optimizer."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    files.atomic_save(prior_path(workdir), copy.save)


def load_prior(workdir):
    """prior.keras, loaded with safe_mode=True.

    Raises:
      TfvaeError: it is missing or can't be loaded (one line: how to train it).
    """
    path = prior_path(workdir)
    train = (f"run train.py on {workdir} with the flags it was trained with and --prior_epochs of at least 1, "
             "which trains (or resumes) the PixelCNN prior")
    if not os.path.lexists(path):
        raise TfvaeError(f"{path} is missing: the run has no PixelCNN prior yet; {train}")
    problem = integrity.keras_archive_problem(path)
    if problem:
        raise TfvaeError(f"{path} {problem}; delete it and {train}")
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as e:  # noqa: BLE001  (a file we cannot trust or read: say so in one line)
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise TfvaeError(f"cannot load {path}: {reason}; delete it and {train}") from None


def _json(value):
    return json.dumps(value, indent=2, sort_keys=True) + "\n"
