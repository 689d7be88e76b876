"""The run directory's files: history.csv, skipped_files.txt, the ``latest`` file, saved models, and the check
that a directory holds a run of this architecture (the layout is in the ``tfvae.training`` docstring)."""

import csv
import os

from tfvae import files
from tfvae.config import Config
from tfvae.errors import TfvaeError

SKIPPED_FILES = "skipped_files.txt"
HISTORY_FIELDS = ("epoch", "loss", "reconstruction", "kl", "val_loss", "val_reconstruction", "val_kl",
                  "learning_rate", "seconds", "train_seconds", "examples_per_sec")


def atomic_save_model(model, path):
    """Saves a ``.keras`` file through a temporary name so a kill never leaves a half-written file."""
    files.atomic_save(path, model.save)


def point_latest(workdir):
    """Writes ``<parent of workdir>/latest``: one line naming ``workdir`` (``tfvae.runs.resolve_workdir`` reads it).

    A file, not a symlink: TensorBoard walks into symlinked directories, so a ``latest`` link listed the newest
    run twice under ``tensorboard --logdir runs``. A ``latest`` symlink from an older tfvae is replaced; a run
    directory that is itself called ``latest`` is left alone.
    """
    workdir = os.path.abspath(workdir)
    pointer = os.path.join(os.path.dirname(workdir), "latest")
    if os.path.basename(workdir) == "latest" or (os.path.isdir(pointer) and not os.path.islink(pointer)):
        return
    files.atomic_write_text(pointer, os.path.basename(workdir) + "\n")


def read_history(path):
    if not os.path.isfile(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_history(path, rows):
    def write(tmp):
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=HISTORY_FIELDS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    files.atomic_save(path, write)


def write_skipped_files(workdir, data_dir, dataset):
    """Lists the data files that could not be used in ``<workdir>/skipped_files.txt`` (removes it if none).

    Returns:
      the file's path, or None when nothing was skipped.
    """
    path = os.path.join(workdir, SKIPPED_FILES)
    if not dataset.skipped:
        if os.path.exists(path):
            os.remove(path)
        return None
    lines = [f"# {len(dataset.skipped)} file(s) under {data_dir} could not be used (path<TAB>reason); fix or "
             "delete them and run again to include them"]
    lines += [f"{rel}\t{dataset.skip_reasons.get(rel, 'could not be decoded')}" for rel in dataset.skipped]
    files.atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def check_workdir(config):
    """Refuses a run directory that already holds a run of another architecture."""
    path = os.path.join(config.workdir, "config.json")
    if not os.path.isfile(path):
        return
    with open(path) as f:
        previous = Config.from_json(f.read())
    mine, theirs = config.architecture(), previous.architecture()
    # image_shape and num_classes are known only after the data is loaded; compare them once both are.
    diffs = [k for k in mine if mine[k] != theirs[k] and mine[k] not in ((), [], 0)]
    if diffs:
        described = ", ".join(f"{k}={theirs[k]} (asked {mine[k]})" for k in diffs)
        raise TfvaeError(f"{config.workdir} holds a different run ({described}); pass another --workdir, "
                         "or the same flags to resume it")
