"""Checkpoints with resume (model, optimizer and sampling-noise state), and the finiteness probes run before one."""

import errno
import json
import math
import os
import re
import shutil
import tempfile

import keras
import numpy as np

from tfvae import files, integrity
from tfvae.errors import TfvaeError


class Checkpointer:
    """Checkpoints (model, optimizer and noise state) in ``<workdir>/checkpoints``, the last few kept and verified.

    ``ckpt-<epoch>.weights.h5`` holds the state after ``epoch`` finished epochs; ``ckpt-<epoch>-<step>`` the state
    ``step`` batches into the next one (``--checkpoint_every_steps``), with the epoch's running loss sums in
    state.json so its history row still covers the whole epoch. state.json also holds the sampling layers'
    noise state, which ``save_weights`` leaves out, so that a resumed run draws the noise an uninterrupted one
    would. The weights are written under a temporary name and renamed, then ``state.json`` names them, then
    checkpoints no longer kept are removed: at every moment state.json names complete checkpoints.

    state.json lists the kept checkpoints, newest first (``"checkpoints"``), each with its state, size and
    sha256; its top-level keys are the newest one's. Kept are the newest checkpoint and the last ``keep``
    end-of-epoch ones. On resume each is checked against its size and sha256, newest first: a damaged newest
    one (cut short, emptied, overwritten, deleted, replaced by a directory) is named in one line and set aside
    as ``<name>.damaged``, and the run resumes from the newest good one.
    """

    NAME = re.compile(r"ckpt-\d+(-\d+)?\.weights\.h5")
    STATE_KEYS = ("epoch", "checkpoint", "step_in_epoch", "metrics", "noise", "size", "sha256")

    def __init__(self, workdir, keep=2):
        self.workdir = workdir
        self.directory = os.path.join(workdir, "checkpoints")
        self.state_path = os.path.join(self.directory, "state.json")
        self.keep = keep

    def read_state(self):
        """The newest checkpoint's state ({} if there is none): epoch, checkpoint, step_in_epoch, metrics, ....

        Raises:
          TfvaeError: state.json is damaged (one line naming it and the two ways forward).
        """
        entries = self.entries()
        return entries[0] if entries else {}

    def entries(self):
        """The kept checkpoints' states, newest first ([] if there is no state.json)."""
        if not os.path.lexists(self.state_path):
            return []
        try:
            state = integrity.read_json(self.state_path)
            if not isinstance(state, dict):
                raise integrity.Unreadable("is not a JSON object")
            listed = state.get("checkpoints", [{k: state[k] for k in self.STATE_KEYS if k in state}])
            if not isinstance(listed, list) or not listed:
                raise integrity.Unreadable("has no list of checkpoints")
            entries = [self._entry(e) for e in listed]
        except integrity.Unreadable as e:
            raise TfvaeError(f"{self.state_path} {e}; {self._ways_forward()}") from None
        return entries

    def _entry(self, entry):
        try:
            entry = {**entry, "epoch": int(entry["epoch"]), "step_in_epoch": int(entry.get("step_in_epoch", 0))}
            name = entry["checkpoint"]
        except (KeyError, TypeError, ValueError) as e:
            raise integrity.Unreadable(f"is damaged (a checkpoint entry without a valid {e})") from None
        if not isinstance(name, str) or not self.NAME.fullmatch(name):
            # Only a file of this folder is ever read: state.json can't point anywhere else.
            raise TfvaeError(f"{self.state_path} names {name!r}, not a checkpoint file of this folder; "
                             f"{self._ways_forward()}")
        if not entry["step_in_epoch"]:
            entry.pop("step_in_epoch")
        return entry

    def _ways_forward(self):
        return restart_advice(self.workdir)

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
        entry = {"epoch": epoch, "checkpoint": name,
                 "noise": [keras.ops.convert_to_numpy(v).tolist() for v in _noise_states(model)],
                 **integrity.fingerprint(path)}
        if step_in_epoch:
            entry.update(step_in_epoch=step_in_epoch, metrics=metrics or {})
        kept = [entry] + self._older_to_keep(entry)
        state = {**entry, "checkpoints": kept}
        files.atomic_write_text(self.state_path, json.dumps(state) + "\n")
        names = {e["checkpoint"] for e in kept}
        for old in os.listdir(self.directory):
            if self.NAME.fullmatch(old) and old not in names:
                os.remove(os.path.join(self.directory, old))

    def _older_to_keep(self, entry):
        """The end-of-epoch checkpoints before ``entry`` kept with it: ``keep`` in all, counting ``entry``."""
        try:
            previous = self.entries()
        except TfvaeError:  # a state.json damaged since the resume: keep only the new checkpoint
            previous = []

        def order(e):
            return e["epoch"], e.get("step_in_epoch", 0)

        older = [e for e in previous if order(e) < order(entry) and not e.get("step_in_epoch")
                 and "sha256" in e and os.path.isfile(os.path.join(self.directory, e["checkpoint"]))]
        return older[: self.keep - (0 if entry.get("step_in_epoch") else 1)]

    def problem(self, entry):
        """None if ``entry``'s weights file is as it was written, else what is wrong with it."""
        path = os.path.join(self.directory, entry["checkpoint"])
        if "sha256" in entry and "size" in entry:
            return integrity.fingerprint_problem(path, entry)
        return integrity.h5_problem(path)  # written before checksums were recorded

    def restore(self, model, log=print, repair=True):
        """Loads the newest good checkpoint into ``model``; returns its state (see ``read_state``), {} if none.

        Args:
          model: the compiled model, with its optimizer built.
          log: where the line about damaged checkpoints goes.
          repair: set damaged checkpoint files aside as ``<name>.damaged`` (False: leave the directory as it is).

        Raises:
          TfvaeError: state.json is damaged, no checkpoint is good, or the checkpoint holds another model's
            weights (each one line naming the file).
        """
        entries = self.entries()
        if not entries:
            stray = sorted(n for n in os.listdir(self.directory) if self.NAME.fullmatch(n)) \
                if os.path.isdir(self.directory) else []
            if stray:
                raise TfvaeError(f"{self.state_path} is missing, so the checkpoints {', '.join(stray)} can't be "
                                 f"resumed from; {self._ways_forward()}")
            return {}
        problems = [(entry, self.problem(entry)) for entry in entries]
        damaged = [(entry["checkpoint"], problem) for entry, problem in problems if problem]
        described = "; ".join(f"{os.path.join(self.directory, name)} {problem}" for name, problem in damaged)
        good = next((entry for entry, problem in problems if not problem), None)
        if good is None:
            advice = restart_advice(self.workdir)
            if len(damaged) > 1:
                advice = advice.replace("restore it", "restore them", 1)
            raise TfvaeError(f"no good checkpoint to resume from: {described}; {advice}")
        path = os.path.join(self.directory, good["checkpoint"])
        misfit = weights_misfit(model, path)
        if misfit:
            raise TfvaeError(f"{path} holds the weights of another model ({misfit}), not of the model these flags "
                             "build; pass the flags this run was trained with (see its config.json), or another "
                             "--workdir")
        try:
            model.load_weights(path)
        except (OSError, ValueError) as e:  # checked above: a file changed since, or one Keras can't read
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise TfvaeError(f"{path} cannot be loaded ({reason}); {restart_advice(self.workdir)}") from None
        noise = _noise_states(model)
        if len(good.get("noise", ())) == len(noise):
            for variable, value in zip(noise, good["noise"]):
                variable.assign(np.asarray(value, variable.dtype))
        if damaged:
            moved = {name for name, _ in damaged if repair and self._set_aside(name)}
            described = "; ".join(f"{os.path.join(self.directory, name)} {problem}"
                                  + (f" (moved aside to {name}.damaged)" if name in moved else "")
                                  for name, problem in damaged)
            if good is not entries[0]:
                log(f"{described}: resuming from the newest good checkpoint, {good['checkpoint']} "
                    f"({describe_checkpoint(good)}), instead")
            else:
                log(f"{described}: an older checkpoint, not needed to resume from {good['checkpoint']}")
        return good

    def _set_aside(self, name):
        """Renames a damaged checkpoint file (or folder) to ``<name>.damaged``; returns whether there was one."""
        path = os.path.join(self.directory, name)
        if not os.path.lexists(path):
            return False
        target = f"{path}.damaged"
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target)
        elif os.path.lexists(target):
            os.remove(target)
        os.rename(path, target)
        return True


def restart_advice(workdir):
    """The two ways forward from a run that can't resume."""
    return (f"restore it from a copy, or run train.py again with --restart to move this run to "
            f"{os.path.normpath(workdir)}.old-<UTC time> and start over")


def weights_misfit(model, path):
    """None if the weights file ``path`` holds the arrays ``model.save_weights`` would write (same names, same
    shapes), else the first difference. Keras itself loads some mismatches with a mere warning (an ae's weights
    into a vae)."""
    with tempfile.TemporaryDirectory() as tmp:
        mine = os.path.join(tmp, "model.weights.h5")
        model.save_weights(mine)
        wanted = _array_shapes(mine)
    found = _array_shapes(path)
    for name in sorted(set(wanted) | set(found)):
        if name not in found:
            return f"it lacks {name}, of shape {wanted[name]}"
        if name not in wanted:
            return f"it has {name}, of shape {found[name]}, which this model lacks"
        if found[name] != wanted[name]:
            return f"its {name} has shape {found[name]}, this model's {wanted[name]}"
    return None


def _array_shapes(path):
    """{name: shape} of the arrays in an HDF5 weights file."""
    import h5py

    shapes = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, item: shapes.update({name: tuple(item.shape)})
                     if isinstance(item, h5py.Dataset) else None)
    return shapes


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
