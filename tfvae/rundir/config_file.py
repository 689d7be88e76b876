"""config.json and the checks of a run directory's layout: its config, skipped_files.txt, files in their places."""

import dataclasses
import os

from tfvae import files, integrity
from tfvae.config import Config
from tfvae.data import ARRAYS_FILE
from tfvae.errors import TfvaeError

SKIPPED_FILES = "skipped_files.txt"
# The files train.py writes at the top of a run directory (and in checkpoints/; data.npz: the arrays a run was
# given, tfvae.data.arrays): a directory in their place is refused before anything is written.
RUN_FILES = ("config.json", "history.csv", "encoder.keras", "decoder.keras", SKIPPED_FILES, ARRAYS_FILE,
             os.path.join("checkpoints", "state.json"))
RUN_FOLDERS = ("checkpoints", "logs")


def load_config(workdir):
    """The run's Config, its ``workdir`` the directory it was read from (a run moved or named from elsewhere still
    finds what it keeps, such as the arrays it was given); a clear error if ``workdir`` holds no run."""
    if not os.path.isdir(workdir):
        raise TfvaeError(f"no trained run at {workdir}; train one first: python train.py --model=vae --latent=2")
    return dataclasses.replace(Config.load(workdir), workdir=workdir)


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
    """Refuses a run directory that already holds a run of another architecture.

    Returns:
      None, or what is wrong with the directory's config.json ("is missing", "is cut short (...)", ...):
      train() then rewrites it from the flags, once the checkpoint has shown that it fits them.
    """
    path = os.path.join(config.workdir, "config.json")
    try:
        previous = Config.read_file(path)
    except integrity.Unreadable as e:
        return str(e)
    mine, theirs = config.architecture(), previous.architecture()
    # image_shape and num_classes are known only after the data is loaded; compare them once both are.
    diffs = [k for k in mine if mine[k] != theirs[k] and mine[k] not in ((), [], 0)]
    if diffs:
        described = ", ".join(f"{k}={theirs[k]} (asked {mine[k]})" for k in diffs)
        raise TfvaeError(f"{config.workdir} holds a different run ({described}); pass another --workdir, "
                         "or the same flags to resume it")
    return None


def check_run_files(workdir):
    """Refuses a run directory where a folder stands in place of a file train.py writes, or the reverse.

    Raises:
      TfvaeError: one line naming the path and what to do.
    """
    for rel in RUN_FILES:
        path = os.path.join(workdir, rel)
        if os.path.isdir(path):
            raise TfvaeError(f"{path} is a directory, not a file; move it out of {workdir} (train.py writes this "
                             "file there) and run again")
    for rel in RUN_FOLDERS:
        path = os.path.join(workdir, rel)
        if os.path.lexists(path) and not os.path.isdir(path):
            raise TfvaeError(f"{path} is a file, not a directory; move it out of {workdir} (train.py writes this "
                             "folder there) and run again")


def write_config(workdir, config):
    """Writes ``<workdir>/config.json`` (atomically) from ``config``."""
    files.atomic_write_text(os.path.join(workdir, "config.json"), config.to_json())
