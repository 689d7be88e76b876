"""Which run directories a request may name: those found under the log directory, and nothing outside it.

A run is a directory holding ``config.json`` (train.py writes it first); it can be decoded once it also holds
``decoder.keras``. Its name is its path relative to the log directory, with ``/`` separators ("." when the log
directory is itself a run). A request's run name is checked in two steps: its form (no absolute path, no ``..``,
no odd characters), then membership in the runs found by walking the log directory. The walk follows symbolic
links only while they stay inside the log directory, and a run whose ``config.json``/``encoder.keras``/
``decoder.keras`` resolves outside it is left out, so no request can make the server read a file outside.
"""

import os
import posixpath
import threading
import time

CONFIG, ENCODER, DECODER = "config.json", "encoder.keras", "decoder.keras"
MAX_DEPTH = 4  # run directories at most this many levels below the log directory
MAX_DIRS = 5000  # directories visited per walk, so a huge log directory can't stall a request
MAX_NAME = 512  # characters in a run name
RESCAN_S = 2.0  # a listing is reused for this long (TensorBoard asks is_active on every page load)


class RunNotFound(LookupError):
    """The name has a valid form but names no run under the log directory (HTTP 404)."""


class BadRunName(ValueError):
    """The name can't be a run under the log directory: absolute, with ``..``, too long (HTTP 400)."""


def _inside(path, root):
    """Whether the real path of ``path`` lies in the real directory ``root``."""
    real = os.path.realpath(path)
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def find_runs(logdir):
    """The runs under ``logdir``: {name: {"path": directory, "decoder": whether decoder.keras is there}}."""
    root = os.path.realpath(logdir)
    if not os.path.isdir(root):
        return {}
    found, seen, stack, visited = {}, set(), [(logdir, "", 0)], 0
    while stack and visited < MAX_DIRS:
        path, name, depth = stack.pop()
        real = os.path.realpath(path)
        if real in seen or not _inside(real, root):
            continue
        seen.add(real)
        visited += 1
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name, reverse=True)
        except OSError:
            continue
        files = {e.name for e in entries if e.name in (CONFIG, ENCODER, DECODER)}
        if CONFIG in files and all(_inside(os.path.join(path, f), root) for f in files):
            has_decoder = DECODER in files and os.path.isfile(os.path.join(path, DECODER))
            found[name or "."] = {"path": path, "decoder": has_decoder}
        if depth < MAX_DEPTH:
            for entry in entries:
                try:
                    is_dir = entry.is_dir()  # follows a link; _inside above drops one that leaves root
                except OSError:
                    continue
                if is_dir and not entry.name.startswith("."):
                    stack.append((entry.path, posixpath.join(name, entry.name), depth + 1))
    return found


def check_name(name):
    """``name`` if it has the form of a run name, else BadRunName saying why."""
    if not name:
        raise BadRunName("pass run=<name>, a run directory's path relative to the log directory")
    if len(name) > MAX_NAME:
        raise BadRunName(f"run name of {len(name)} characters; run names have at most {MAX_NAME}")
    if any(ord(c) < 32 for c in name) or "\\" in name:
        raise BadRunName("run names contain no control characters or backslashes")
    if name == ".":
        return name
    if name.startswith("/") or posixpath.isabs(name) or (len(name) > 1 and name[1] == ":"):
        raise BadRunName(f"run {name!r} is an absolute path; name a run by its path relative to the log "
                         "directory")
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise BadRunName(f"run {name!r} is not a plain relative path (no '..', '.', or empty parts); runs are "
                         "named by their path under the log directory")
    return name


class RunDirectory:
    """The runs under one log directory, listed by a cached walk, and the lookup of a request's run name."""

    def __init__(self, logdir):
        self.logdir = logdir
        self._lock = threading.Lock()
        self._listed_at, self._runs = -float("inf"), {}

    def runs(self, fresh=False):
        """{name: {"path", "decoder"}} of the runs found (a listing at most RESCAN_S old unless ``fresh``)."""
        with self._lock:
            if fresh or time.monotonic() - self._listed_at > RESCAN_S:
                self._runs = find_runs(self.logdir) if self.logdir else {}
                self._listed_at = time.monotonic()
            return self._runs

    def lookup(self, name):
        """(path, has_decoder) of run ``name``.

        Raises:
          BadRunName: a name that can't be a run under the log directory.
          RunNotFound: no such run (looked up again freshly before saying so).
        """
        name = check_name(name)
        runs = self.runs()
        if name not in runs:
            runs = self.runs(fresh=True)  # a run trained since the last listing
        if name not in runs:
            names = sorted(runs)
            listed = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
            raise RunNotFound(f"no run {name!r} under the log directory (runs: {listed or 'none'})")
        return runs[name]["path"], runs[name]["decoder"]
