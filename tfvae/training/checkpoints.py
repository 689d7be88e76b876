"""Checkpoints with resume (model, optimizer and sampling-noise state), and the finiteness probes run before one."""

import errno
import json
import math
import os
import re

import keras
import numpy as np

from tfvae import files
from tfvae.errors import TfvaeError


class Checkpointer:
    """Checkpoints (model, optimizer and noise state) in ``<workdir>/checkpoints``.

    ``ckpt-<epoch>.weights.h5`` holds the state after ``epoch`` finished epochs; ``ckpt-<epoch>-<step>`` the state
    ``step`` batches into the next one (``--checkpoint_every_steps``), with the epoch's running loss sums in
    state.json so its history row still covers the whole epoch. state.json also holds the sampling layers'
    noise state, which ``save_weights`` leaves out, so that a resumed run draws the noise an uninterrupted one
    would. The weights are written under a temporary name and renamed, then ``state.json`` names them, then
    older checkpoints are removed: at every moment state.json names a complete checkpoint.
    """

    NAME = re.compile(r"ckpt-\d+(-\d+)?\.weights\.h5")

    def __init__(self, workdir):
        self.directory = os.path.join(workdir, "checkpoints")
        self.state_path = os.path.join(self.directory, "state.json")

    def read_state(self):
        """The last checkpoint's state.json ({} if there is none): epoch, checkpoint, step_in_epoch, metrics."""
        if not os.path.isfile(self.state_path):
            return {}
        try:
            with open(self.state_path) as f:
                state = json.load(f)
            epoch, name = int(state["epoch"]), state["checkpoint"]
        except (ValueError, KeyError, TypeError) as e:
            raise TfvaeError(f"{self.state_path} is unreadable ({type(e).__name__}: {e}); delete the checkpoints "
                             "folder to start this run over") from None
        if not isinstance(name, str) or not self.NAME.fullmatch(name):
            # Only a file of this folder is ever read: state.json can't point anywhere else.
            raise TfvaeError(f"{self.state_path} names {name!r}, not a checkpoint file of this folder; delete "
                             "the checkpoints folder to start this run over")
        return {**state, "epoch": epoch}

    def last_epoch(self):
        return self.read_state().get("epoch", 0)

    def save(self, model, epoch, step_in_epoch=0, metrics=None):
        """Writes the checkpoint of ``epoch`` finished epochs (plus ``step_in_epoch`` batches of the next)."""
        os.makedirs(self.directory, exist_ok=True)
        name = f"ckpt-{epoch}-{step_in_epoch}.weights.h5" if step_in_epoch else f"ckpt-{epoch}.weights.h5"
        path = os.path.join(self.directory, name)
        # HDF5 cannot recover from a disk that fills up under it (the process crashes when it exits): look first.
        variables = model.weights + model.optimizer.variables
        need = 1.1 * sum(math.prod(v.shape) * np.dtype(v.dtype).itemsize for v in variables) + 2**18
        disk = os.statvfs(self.directory)
        if disk.f_bavail * disk.f_frsize < need:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), files.temporary_path(path))
        files.atomic_save(path, model.save_weights, label="checkpoint")
        state = {"epoch": epoch, "checkpoint": name,
                 "noise": [keras.ops.convert_to_numpy(v).tolist() for v in _noise_states(model)]}
        if step_in_epoch:
            state.update(step_in_epoch=step_in_epoch, metrics=metrics or {})
        files.atomic_write_text(self.state_path, json.dumps(state) + "\n")
        for old in os.listdir(self.directory):
            if self.NAME.fullmatch(old) and old != name:
                os.remove(os.path.join(self.directory, old))

    def restore(self, model):
        """Loads the last checkpoint into ``model``; returns its state (see ``read_state``), {} if none."""
        state = self.read_state()
        if not state:
            return {}
        path = os.path.join(self.directory, state["checkpoint"])
        if not os.path.isfile(path):
            raise TfvaeError(f"{self.state_path} names {state['checkpoint']}, which is missing; delete the "
                             "checkpoints folder to start this run over")
        model.load_weights(path)
        noise = _noise_states(model)
        if len(state.get("noise", ())) == len(noise):
            for variable, value in zip(noise, state["noise"]):
                variable.assign(np.asarray(value, variable.dtype))
        return state


def _noise_states(model):
    """The state variables of the random-number generators in ``model``'s layers (the sampling noise)."""
    return [generator.state for layer in model._flatten_layers() for generator in layer._seed_generators]


def weights_are_finite(model):
    return all(np.isfinite(w).all() for w in model.get_weights())


def probe_loss(model, batch):
    """The loss of ``batch`` under the current weights; the sampling noise state is left as it was."""
    noise = _noise_states(model)
    saved = [keras.ops.convert_to_numpy(v) for v in noise]
    try:
        return float(keras.ops.convert_to_numpy(model.compute_terms(batch)["loss"]))
    finally:
        for variable, value in zip(noise, saved):
            variable.assign(value)


def describe_checkpoint(state):
    """"epoch 3" or "epoch 3 + 40 step(s)" for a checkpoint's state ("" for none)."""
    if not state:
        return ""
    return f"epoch {state['epoch']}" + (f" + {state['step_in_epoch']} step(s)" if state.get("step_in_epoch") else "")
