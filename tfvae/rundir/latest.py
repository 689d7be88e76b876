"""The ``latest`` file beside the runs, and the one place a workdir argument is resolved to a run directory."""

import os

from tfvae import files
from tfvae.errors import ArgumentError, TfvaeError

LATEST = "latest"


def resolve_workdir(workdir):
    """The run directory ``workdir`` names: itself, or the run that a ``latest`` file names.

    train.py writes ``<runs>/latest``, a one-line file holding the newest run's directory name (a file, not a
    symlink: TensorBoard follows symlinks, so ``tensorboard --logdir runs`` listed the newest run twice). An
    older ``latest`` symlink still works: it is a directory to this function.
    """
    if not os.path.isfile(workdir):
        return workdir
    try:
        with open(workdir, encoding="utf-8") as f:
            text = f.read(4096)
    except (OSError, UnicodeDecodeError) as e:
        raise TfvaeError(f"cannot read {workdir}, which should name a run directory: {e}") from None
    name = text.strip()
    if not name or "\n" in name or os.sep in name or name in (".", ".."):
        raise ArgumentError("workdir", f"{workdir} should hold the name of a run directory beside it (train.py "
                                       f"writes it), but holds {text[:60]!r}; pass workdir='runs/<run>' instead")
    return os.path.join(os.path.dirname(workdir), name)


def point_latest(workdir):
    """Writes ``<parent of workdir>/latest``: one line naming ``workdir`` (``resolve_workdir`` reads it).

    A file, not a symlink: TensorBoard walks into symlinked directories, so a ``latest`` link listed the newest
    run twice under ``tensorboard --logdir runs``. A ``latest`` symlink from an older tfvae is replaced; a run
    directory that is itself called ``latest`` is left alone.
    """
    workdir = os.path.abspath(workdir)
    pointer = os.path.join(os.path.dirname(workdir), "latest")
    if os.path.basename(workdir) == "latest" or (os.path.isdir(pointer) and not os.path.islink(pointer)):
        return
    # Runs finishing at once in one folder (a sweep) each write it: a temporary of each process's own.
    files.atomic_write_text(pointer, os.path.basename(workdir) + "\n", unique=True)
