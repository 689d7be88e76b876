"""Crash-safe files of a run directory: atomic writes, the run lock, stale temporaries, TensorBoard truncation.

The rule that makes a killed run resumable: every file is written under a temporary name (``*.tmp*``), flushed
to disk and renamed into place, so each path holds either its previous complete content or its new complete
content, never half of one. Temporaries left by a killed process are deleted when the run is next opened.

``RunLock`` keeps two processes from writing the same run directory. It is an ``fcntl.flock`` on
``<workdir>/.lock``, which the kernel releases when its process ends, however it ends (``kill -9`` included):
a crashed run never leaves the directory locked.

``crash_point`` marks the moments between two of these steps; the tests kill the process there.
"""

import collections
import fcntl
import glob
import os
import re
import signal
import sys
import time

from tfvae.errors import TfvaeError

LOCK_NAME = ".lock"
# Temporaries are named <stem>.tmp.<suffix> (Keras insists on the .keras and .weights.h5 suffixes) or <name>.tmp.
_TEMPORARY = re.compile(r"\.tmp(\.|$)")
_SUFFIXES = (".weights.h5", ".keras")


# ---------------------------------------------------------------------------------------------------------
# Atomic writes


def temporary_path(path, unique=False):
    """The temporary name ``path`` is written under before the rename: ``a.tmp.keras``, ``state.json.tmp``.

    ``unique=True`` adds this process's id (``a.tmp.123.keras``), for files that processes holding no common lock
    may write at once (``runs/latest``, the shared caches): each renames only its own temporary.
    """
    tag = f".tmp.{os.getpid()}" if unique else ".tmp"
    for suffix in _SUFFIXES:
        if path.endswith(suffix):
            return f"{path[: -len(suffix)]}{tag}{suffix}"
    return f"{path}{tag}"


def atomic_save(path, save, label=None, tmp=None):
    """Writes ``path`` by calling ``save(tmp)``, syncing it to disk, and renaming it into place.

    Args:
      path: the destination.
      save: a function that writes a complete file at the path it is given.
      label: the name of this file in ``crash_point`` names (default: the file's base name).
      tmp: the temporary path (default ``temporary_path(path)``); it must match ``*.tmp*``.
    """
    label = label or os.path.basename(path)
    tmp = tmp or temporary_path(path)
    try:
        save(tmp)
        _fsync(tmp)
    except Exception:  # e.g. a full disk: free the space the partial file takes (a kill leaves it to the next run)
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    crash_point(f"{label}-tmp-written")
    os.replace(tmp, path)
    _fsync(os.path.dirname(os.path.abspath(path)))
    crash_point(f"{label}-renamed")


def atomic_write_text(path, text, unique=False):
    """Writes ``text`` to ``path`` atomically (see ``atomic_save``; ``unique``: see ``temporary_path``)."""

    def write(tmp):
        with open(tmp, "w", newline="") as f:
            f.write(text)

    atomic_save(path, write, tmp=temporary_path(path, unique))


def _fsync(path):
    """Flushes a file's (or a directory's entries') data to the disk, so a rename never points at nothing."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems can't fsync directories; the rename is still atomic
        pass
    finally:
        os.close(fd)


def remove_stale_temporaries(*directories):
    """Deletes ``*.tmp*`` files that a killed process left in ``directories`` and the folders directly in them.

    Returns:
      the deleted paths.

    Call it only while holding the run's ``RunLock``: a live writer's temporaries look the same.
    """
    directories = [d for directory in directories for d in (directory, *_subdirectories(directory))]
    removed = []
    for directory in directories:
        if not os.path.isdir(directory):
            continue
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name)
            if _TEMPORARY.search(name) and os.path.isfile(path):
                os.remove(path)
                removed.append(path)
    return removed


def _subdirectories(directory):
    """The folders directly under ``directory`` (TensorBoard's train/, validation/, images/ under logs/)."""
    if not os.path.isdir(directory):
        return []
    return [os.path.join(directory, d) for d in sorted(os.listdir(directory))
            if os.path.isdir(os.path.join(directory, d)) and not os.path.islink(os.path.join(directory, d))]


def describe_os_error(error):
    """``"Read-only file system"``-style text of an OSError (h5py's carry pages of detail after the errno)."""
    if error.errno:
        return os.strerror(error.errno)
    return (str(error).splitlines() or [type(error).__name__])[0]


# ---------------------------------------------------------------------------------------------------------
# The run lock


class RunLock:
    """An exclusive lock on a run directory for as long as the ``with`` block runs.

    Entering creates the directory if needed; a directory this lock created and nothing else wrote into is
    removed again on exit, so a run that fails before writing anything leaves nothing behind.

    Raises (on entering):
      TfvaeError: the directory can't be created or written, or another process holds the lock.
    """

    def __init__(self, workdir):
        self.workdir = workdir
        self.path = os.path.join(workdir, LOCK_NAME)
        self.fd = None
        self.created = False

    def __enter__(self):
        if os.path.exists(self.workdir) and not os.path.isdir(self.workdir):
            raise TfvaeError(f"--workdir {self.workdir} is a file, not a directory; pass another --workdir")
        try:
            self.created = not os.path.isdir(self.workdir)
            os.makedirs(self.workdir, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise TfvaeError(f"cannot write the run directory {self.workdir} ({describe_os_error(e)}); pass a "
                             "writable --workdir") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise TfvaeError(f"{self.workdir} is in use by another train.py (pid {owner}); wait for it to finish "
                             "or pass another --workdir") from None
        except OSError as e:  # e.g. a file system without locks
            os.close(fd)
            raise TfvaeError(f"cannot lock the run directory {self.workdir} ({describe_os_error(e)}); pass a "
                             "--workdir on a local disk") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as e:
            os.close(fd)
            raise TfvaeError(f"cannot write the run directory {self.workdir} ({describe_os_error(e)}); pass a "
                             "writable --workdir") from None
        self.fd = fd
        return self

    def __exit__(self, *exc_info):
        try:
            if self.created and os.listdir(self.workdir) == [LOCK_NAME]:
                os.remove(self.path)
                os.rmdir(self.workdir)
        except OSError:
            pass
        os.close(self.fd)  # releases the lock
        self.fd = None


# ---------------------------------------------------------------------------------------------------------
# TensorBoard


def truncate_event_files(logdir, last_step, log=None):
    """Drops TensorBoard summaries with a step above ``last_step`` from the event files under ``logdir``.

    A killed run may have written the curves of an epoch it never checkpointed; the resumed run writes that
    epoch again, so its old points go first (and a record cut short by the kill with them). Files that need
    no change are left untouched. A damaged file (cut short, overwritten) keeps the records before the damage;
    an empty one or a directory in a file's place is left as it is; ``log`` gets one line for each.

    Returns:
      the number of summaries dropped.
    """
    import tensorflow as tf
    from google.protobuf.message import DecodeError
    from tensorflow.core.util import event_pb2

    dropped = 0
    for path in sorted(glob.glob(os.path.join(logdir, "**", "events.out.tfevents.*"), recursive=True)):
        if _TEMPORARY.search(os.path.basename(path)):
            continue
        if not os.path.isfile(path) or os.path.getsize(path) == 0:
            what = "is empty (0 bytes): its points are lost" if os.path.isfile(path) else \
                "is a directory, not a TensorBoard event file; left as it is"
            if log:
                log(f"{path} {what}")
            continue
        records, changed, read = [], False, 0
        try:
            for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
                event = event_pb2.Event.FromString(record)
                read += 1
                if event.HasField("summary") and event.step > last_step:
                    dropped += len(event.summary.value)
                    changed = True
                else:
                    records.append(record)
        except (tf.errors.DataLossError, DecodeError):  # cut short by a kill, or damaged
            changed = True
            if log:
                log(f"{path} is cut short or damaged after {read} complete record(s) (a kill, or a bad copy): "
                    "kept those, dropped the rest")
        if changed:

            def write(tmp, records=records):
                with tf.io.TFRecordWriter(tmp) as writer:
                    for record in records:
                        writer.write(record)

            # TensorBoard reads every file with "tfevents" in its name: the temporary must not have it.
            atomic_save(path, write, label="events", tmp=os.path.join(os.path.dirname(path), "rewrite.tmp"))
    return dropped


# ---------------------------------------------------------------------------------------------------------
# Fault injection

_hits = collections.Counter()


def crash_point(name):
    """A named moment between two writes; a no-op unless the environment variable TFVAE_TEST_FAULT names it.

    ``TFVAE_TEST_FAULT=kill@NAME`` (or ``kill@NAME#N``: the N-th time) makes the process kill itself with SIGKILL
    there, as the out-of-memory killer or ``kill -9`` would; ``pause@NAME[#N]`` prints
    ``tfvae: paused at NAME`` to stderr and sleeps, so that a test can act while the run holds its lock.
    The tests use these to check that a run killed at any of these moments resumes correctly.
    """
    spec = os.environ.get("TFVAE_TEST_FAULT")
    if not spec:
        return
    action, _, target = spec.partition("@")
    target, _, nth = target.partition("#")
    if target != name:
        return
    _hits[name] += 1
    if _hits[name] != int(nth or 1):
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "pause":
        print(f"tfvae: paused at {name}", file=sys.stderr, flush=True)
        time.sleep(3600)
