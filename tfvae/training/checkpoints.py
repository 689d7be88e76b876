"""Checkpoints with resume (model, optimizer and sampling-noise state), and the finiteness probes run before one.

The files' names, state.json and their checks are the run directory's (``tfvae.rundir.CheckpointState``);
this module writes the weights into them and loads them back into a model.
"""

import errno
import math
import os
import tempfile

import keras
import numpy as np

from tfvae import files
from tfvae.errors import TfvaeError
from tfvae.rundir import CheckpointState, describe_checkpoint, restart_advice

__all__ = ["Checkpointer", "describe_checkpoint", "probe_loss", "weights_are_finite", "weights_misfit"]


class Checkpointer(CheckpointState):
    """Checkpoints (model, optimizer and noise state) in ``<workdir>/checkpoints``, the last few kept and verified.

    ``ckpt-<epoch>-<step>`` checkpoints (``--checkpoint_every_steps``) carry the epoch's running loss sums in
    state.json so its history row still covers the whole epoch. state.json also holds the sampling layers'
    noise state, which ``save_weights`` leaves out, so that a resumed run draws the noise an uninterrupted one
    would. The weights are written under a temporary name and renamed, then ``state.json`` names them, then
    checkpoints no longer kept are removed: at every moment state.json names complete checkpoints.

    On resume each kept checkpoint is checked against its size and sha256, newest first: a damaged newest
    one (cut short, emptied, overwritten, deleted, replaced by a directory) is named in one line and set aside
    as ``<name>.damaged``, and the run resumes from the newest good one.
    """

    def save(self, model, epoch, step_in_epoch=0, metrics=None):
        """Writes the checkpoint of ``epoch`` finished epochs (plus ``step_in_epoch`` batches of the next)."""
        os.makedirs(self.directory, exist_ok=True)
        name = self.checkpoint_name(epoch, step_in_epoch)
        path = os.path.join(self.directory, name)
        # HDF5 cannot recover from a disk that fills up under it (the process crashes when it exits): look first.
        variables = model.weights + model.optimizer.variables
        need = 1.1 * sum(math.prod(v.shape) * np.dtype(v.dtype).itemsize for v in variables) + 2**18
        disk = os.statvfs(self.directory)
        if disk.f_bavail * disk.f_frsize < need:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), files.temporary_path(path))
        files.atomic_save(path, model.save_weights, label="checkpoint")
        self.record(name, epoch, step_in_epoch, metrics,
                    noise=[keras.ops.convert_to_numpy(v).tolist() for v in _noise_states(model)])

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
            stray = self.stray_checkpoints()
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
            moved = {name for name, _ in damaged if repair and self.set_aside(name)}
            described = "; ".join(f"{os.path.join(self.directory, name)} {problem}"
                                  + (f" (moved aside to {name}.damaged)" if name in moved else "")
                                  for name, problem in damaged)
            if good is not entries[0]:
                log(f"{described}: resuming from the newest good checkpoint, {good['checkpoint']} "
                    f"({describe_checkpoint(good)}), instead")
            else:
                log(f"{described}: an older checkpoint, not needed to resume from {good['checkpoint']}")
        return good

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


SEED_STATE = "seed_generator_state"  # the name of a keras.random.SeedGenerator's state variable


def _noise_states(model):
    """The state variables of the random-number generators in ``model``'s layers (the sampling noise).

    ``model.non_trainable_variables`` lists them (Keras: "including state for ... SeedGenerators"), each named
    ``seed_generator_state``, in the order of the layers.
    """
    return [v for v in model.non_trainable_variables if v.name == SEED_STATE]


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
