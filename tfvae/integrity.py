"""Damaged files: what is wrong with a file of a run directory, in a few words, before anything parses it.

A file written completely can still be damaged later: a partial copy between machines, a full network share,
a sync tool, bit rot, a hand edit. It is then cut short, emptied, overwritten with other bytes, deleted, or
replaced by a directory. Libraries report these badly (Keras says "File not found" for a cut-short ``.keras``
zip, h5py gives a page of HDF5 errors), so each reader here looks first and names the damage:

* ``file_problem``: missing, a directory, not a regular file, empty;
* ``keras_archive_problem``: a ``.keras`` file that is not a complete zip archive holding a model;
* ``h5_problem``: a ``.weights.h5`` file that is not a complete HDF5 file;
* ``npz_problem``: an ``.npz`` file that is not a complete zip archive of ``.npy`` arrays;
* ``fingerprint`` / ``fingerprint_problem``: the size and sha256 recorded when a checkpoint was committed;
* ``read_json``: JSON text that is cut short, not text, or not JSON.

Each ``*_problem`` returns None for a good file, else a phrase that follows the path in a message:
``f"{path} {problem}; <what to do>"``, e.g. ``runs/vae/decoder.keras is cut short (not a complete zip
archive); ...``. A file that reads fine but belongs to another run (valid but wrong) is not found here: the
readers compare it with the rest of the run and say so in other words.
"""

import hashlib
import json
import os
import stat
import time
import zipfile

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURE = b"PK\x03\x04"


class Unreadable(ValueError):
    """A file that can't be parsed; ``str()`` is a phrase for after its path: "is empty", "is not valid JSON ..."."""


def file_problem(path):
    """None if ``path`` is a non-empty regular file, else "is missing", "is a directory, not a file", ...."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return "is missing"
    except OSError as e:
        return f"cannot be read ({os.strerror(e.errno) if e.errno else e})"
    if stat.S_ISDIR(info.st_mode):
        return "is a directory, not a file"
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file"
    if info.st_size == 0:
        return "is empty (0 bytes)"
    return None


def _head(path, size):
    with open(path, "rb") as f:
        return f.read(size)


def _zip_members(path, kind):
    """(problem, None) if ``path`` is not a complete zip archive (every member's CRC checked), else (None, its
    member names); ``kind`` names what the file should be ("a .keras zip archive", "an .npz archive")."""
    problem = file_problem(path)
    if problem:
        return problem, None
    try:
        if not zipfile.is_zipfile(path):
            if _head(path, 4) == ZIP_SIGNATURE:
                return "is cut short (a zip archive without its end)", None
            return f"is not {kind} (overwritten with other bytes?)", None
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            names = set(archive.namelist())
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as e:
        return f"is a damaged zip archive ({e})", None
    except OSError as e:
        return f"cannot be read ({os.strerror(e.errno) if e.errno else e})", None
    if bad:
        return f"is damaged (its member {bad} fails its checksum)", None
    return None, names


def keras_archive_problem(path):
    """None if ``path`` is a complete ``.keras`` zip archive (every member's CRC checked), else what is wrong."""
    problem, names = _zip_members(path, "a .keras zip archive")
    if problem:
        return problem
    missing = sorted({"config.json", "model.weights.h5"} - names)
    if missing:
        return f"is a zip archive but not a Keras model (no {' or '.join(missing)} in it)"
    return None


def npz_problem(path, required=()):
    """None if ``path`` is a complete ``.npz`` archive (every member's CRC checked) holding ``required`` arrays."""
    problem, names = _zip_members(path, "an .npz archive")
    if problem:
        return problem
    missing = sorted(set(required) - {name[:-4] for name in names if name.endswith(".npy")})
    if missing:
        return f"is a zip archive but lacks the arrays {', '.join(missing)}"
    return None


def h5_problem(path):
    """None if ``path`` opens as an HDF5 file (h5py), else what is wrong (signature, cut short, ...)."""
    problem = file_problem(path)
    if problem:
        return problem
    if _head(path, len(HDF5_SIGNATURE)) != HDF5_SIGNATURE:
        return "is not an HDF5 weights file (overwritten with other bytes?)"
    import h5py

    try:
        with h5py.File(path, "r"):
            pass
    except OSError as e:
        text = str(e)
        if "truncated" in text:
            return "is cut short (HDF5: truncated file)"
        return f"is damaged (HDF5: {text.splitlines()[0] if text else type(e).__name__})"
    return None


def sha256(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(path):
    """``{"size": bytes, "sha256": hex}`` of a file, recorded when it is committed and checked before use."""
    return {"size": os.path.getsize(path), "sha256": sha256(path)}


def fingerprint_problem(path, expected):
    """None if ``path`` still has the size and sha256 in ``expected`` (see ``fingerprint``), else what differs."""
    problem = file_problem(path)
    if problem:
        return problem
    size = os.path.getsize(path)
    if size != expected["size"]:
        cut = " (cut short)" if size < expected["size"] else ""
        return f"is {size:,} bytes, not the {expected['size']:,} written{cut}"
    if sha256(path) != expected["sha256"]:
        return "has other bytes than were written (its sha256 differs)"
    return None


def read_json(path):
    """The JSON value in ``path``.

    Raises:
      Unreadable: with a phrase for after the path ("is missing", "is cut short (...)", "is not text", ...).
    """
    problem = file_problem(path)
    if problem:
        raise Unreadable(problem)
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Unreadable("is not text (overwritten with other bytes?)") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        if e.pos >= len(text.rstrip()) or e.msg.startswith("Unterminated"):
            raise Unreadable(f"is cut short (its JSON ends at line {e.lineno} column {e.colno})") from None
        raise Unreadable(f"is not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None


def read_json_problem(path):
    """None if ``path`` holds JSON, else what is wrong with it (see ``read_json``)."""
    try:
        read_json(path)
    except Unreadable as e:
        return str(e)
    return None


def set_aside_name(path, when=None):
    """``<path>.old-<UTC time>``: where ``--restart`` moves a run directory's previous contents."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(when))
    return f"{os.path.normpath(path)}.old-{stamp}"


def set_aside(workdir, keep=(), when=None):
    """Moves everything in ``workdir`` except the names in ``keep`` into a new sibling ``set_aside_name``.

    Returns:
      the new directory, or None when there was nothing to move.
    """
    names = [n for n in sorted(os.listdir(workdir)) if n not in keep] if os.path.isdir(workdir) else []
    if not names:
        return None
    target = set_aside_name(workdir, when)
    suffix = 1
    while os.path.lexists(target):
        target, suffix = f"{set_aside_name(workdir, when)}-{suffix}", suffix + 1
    os.makedirs(target)
    for name in names:
        os.rename(os.path.join(workdir, name), os.path.join(target, name))
    return target
