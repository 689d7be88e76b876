"""checkpoints/state.json: which checkpoints a run keeps, with their state, size and sha256.

The weights files themselves are written and loaded by ``tfvae.training.Checkpointer``, which builds on
``CheckpointState``; this module owns their names, state.json's format and the checks of what it lists.
"""

import csv
import json
import os
import re
import shutil

from tfvae import files, integrity
from tfvae.errors import TfvaeError
from tfvae.rundir.history import read_history


class CheckpointState:
    """The checkpoints listed in ``<workdir>/checkpoints/state.json``, newest first, and their checks.

    ``ckpt-<epoch>.weights.h5`` holds the state after ``epoch`` finished epochs; ``ckpt-<epoch>-<step>`` the state
    ``step`` batches into the next one. state.json lists the kept checkpoints, newest first (``"checkpoints"``),
    each with its state, size and sha256; its top-level keys are the newest one's. Kept are the newest checkpoint
    and the last ``keep`` end-of-epoch ones.
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

    @staticmethod
    def checkpoint_name(epoch, step_in_epoch=0):
        """``ckpt-<epoch>.weights.h5``, or ``ckpt-<epoch>-<step>.weights.h5`` inside an epoch."""
        return f"ckpt-{epoch}-{step_in_epoch}.weights.h5" if step_in_epoch else f"ckpt-{epoch}.weights.h5"

    def record(self, name, epoch, step_in_epoch=0, metrics=None, noise=()):
        """Lists the just-written weights file ``name`` as the newest checkpoint, then removes those no longer kept.

        Args:
          name: the weights file in ``checkpoints/`` (``checkpoint_name``), complete on disk.
          epoch, step_in_epoch: where training stands in it.
          metrics: the epoch's running loss sums (a checkpoint inside an epoch).
          noise: the sampling layers' noise state, as lists.
        """
        entry = {"epoch": epoch, "checkpoint": name, "noise": list(noise),
                 **integrity.fingerprint(os.path.join(self.directory, name))}
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

    def stray_checkpoints(self):
        """Weights files in ``checkpoints/`` (sorted), whether state.json lists them or not."""
        if not os.path.isdir(self.directory):
            return []
        return sorted(n for n in os.listdir(self.directory) if self.NAME.fullmatch(n))

    def set_aside(self, name):
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


def describe_checkpoint(state):
    """"epoch 3" or "epoch 3 + 40 step(s)" for a checkpoint's state ("" for none)."""
    if not state:
        return ""
    return f"epoch {state['epoch']}" + (f" + {state['step_in_epoch']} step(s)" if state.get("step_in_epoch") else "")


def epochs_trained(workdir, log=None):
    """Epochs the run's newest checkpoint finished (checkpoints/state.json); 0 when it has none.

    When state.json is damaged, the epochs come from history.csv's last row instead, and ``log`` (if given)
    gets one line saying so: the exported models can still be used, though train.py can't resume the run. A run
    with no checkpoints/ folder at all (written by ``tfvae.save_run`` from a model fitted by hand, or shared without
    its checkpoints) has its epochs in history.csv, read without a word (0 without one).
    """
    state = CheckpointState(workdir)
    if not os.path.lexists(state.state_path) and not os.path.lexists(os.path.join(workdir, "decoder.keras")):
        return 0  # no checkpoint yet
    if not os.path.lexists(state.directory):
        return _history_epochs(workdir)
    try:
        if os.path.lexists(state.state_path):
            return state.read_state()["epoch"]
        problem = "is missing"
    except TfvaeError:
        problem = integrity.read_json_problem(state.state_path) or "is damaged"
    epochs = _history_epochs(workdir)
    if log:
        source = f"history.csv's last row ({epochs})" if epochs else "nowhere: reported as 0"
        log(f"{state.state_path} {problem}: the epochs trained are taken from {source}; the models are "
            "used as they are (train.py needs state.json to resume this run)")
    return epochs


def _history_epochs(workdir):
    """The epoch of history.csv's last row; 0 without a readable one."""
    try:
        return max((int(row["epoch"]) for row in read_history(os.path.join(workdir, "history.csv"))), default=0)
    except (OSError, ValueError, TypeError, KeyError, UnicodeDecodeError, csv.Error):
        return 0
