"""Decode once: a folder's images decoded in parallel into a uint8 ``.npy`` file that later epochs and runs read.

The first time a folder is used at a given image size and channel count, `decode_folder` decodes every image
file under it with one process per core (`decode.py`; a progress line with the count, images/s and ETA goes
to ``log``) and writes the results, in sorted path order, into
``<cache>/folders/<name>-<SxSxC>-<key>-<listing>.npy`` (an ordinary NumPy array of shape (files, S, S, C),
uint8). The files that fail to decode are recorded with their reason, as skipped files, in the ``.json`` next
to it. Later epochs and later runs read rows of that array instead of decoding, as fast as training on the same
images held in memory (benchmarks/folder_throughput.py; the figures are in docs/performance.md, "Folders").

The cache entry is keyed by

* the folder (its real path) and the decode settings: image size, channels, ``max_image_pixels``, Pillow's
  version and `CACHE_VERSION` (the entry's name);
* a fingerprint of the folder's listing: every image file's relative path, size and mtime (checked on every
  load; a stat per file). A changed folder is decoded again, reusing the rows of the files whose path, size
  and mtime are unchanged, so adding 10 images to 100,000 decodes those 10 (and the files that failed before).

Crash safety: the array is written under a temporary name (``*.npy.tmp.<host>.<pid>``) and renamed into place, then
the ``.json`` that names it is written the same way; the ``.json`` is the commit, so a build killed at any
moment leaves the previous complete entry or none, never half of one (temporaries of this host's dead
processes are removed by the next build; another host's, on a shared cache of a cluster, are left to it: a pid
means nothing across hosts).

Rows are read with ``os.preadv`` on the ``.npy`` file rather than through ``np.memmap``: both leave the images
on disk (in the page cache when there is room) rather than in the process's memory, but pages touched through
a memory map count towards the process's resident size, reads do not (reading a whole cache through a memory
map raises the resident size by the cache's size; docs/performance.md, "100,000 64x64 RGB images").

The cache lives in ``cache_dir``, else ``$TFVAE_CACHE``, else ``~/.cache/tfvae`` (`cache_root`; evaluation
keeps its classifiers there too). ``cache_dir="none"`` turns it off: the files are checked once at load (the
same parallel pass) and decoded again each time they are served, as before. When the cache location cannot
be written (read-only, full, not a directory), the folder is streamed with one notice: never an error.
"""

import errno
import hashlib
import json
import os
import re
import shutil
import socket
import threading
import weakref

import numpy as np

from tfvae import files
from tfvae.data.base import DataError
from tfvae.data.decode import DecodedFolder, Decoder
from tfvae.data.images import DEFAULT_MAX_IMAGE_PIXELS

CACHE_VERSION = 1  # Bump when the decoder's output or the file layout changes: old entries are then ignored.
NO_CACHE = "none"  # cache_dir value that turns the cache off.


def cache_root(cache_dir: str = "") -> str:
    """Where tfvae caches things: ``cache_dir``, else ``$TFVAE_CACHE``, else ``~/.cache/tfvae``."""
    return os.path.expanduser(cache_dir or os.environ.get("TFVAE_CACHE") or os.path.join("~", ".cache", "tfvae"))


def cache_enabled(cache_dir: str) -> bool:
    """False for ``cache_dir="none"`` (any case): stream the folder, decoding every image each epoch."""
    return (cache_dir or "").strip().lower() != NO_CACHE


class CacheFile:
    """Reads rows of a uint8 ``.npy`` array with ``os.preadv``: no copy in memory, no mapped pages.

    Safe to use from several threads (a ``tf.numpy_function`` runs in parallel) and after a fork (each process
    opens its own descriptor).
    """

    def __init__(self, path, shape, offset):
        self.path, self.shape, self.offset = path, tuple(shape), offset
        self.row_bytes = int(np.prod(self.shape[1:]))
        self._fd, self._pid, self._lock = None, None, threading.Lock()

    @classmethod
    def open(cls, path, shape):
        """Checks that ``path`` is a complete C-order uint8 .npy of ``shape``; OSError or ValueError if not."""
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            found, fortran_order, dtype = read_header(f)
            offset = f.tell()
            size = os.fstat(f.fileno()).st_size
        if tuple(found) != tuple(shape) or fortran_order or dtype != np.uint8:
            raise ValueError(f"{path} holds {dtype} {found}, not uint8 {tuple(shape)}")
        if size != offset + int(np.prod(shape)):
            raise ValueError(f"{path} is truncated ({size} bytes)")
        cache = cls(path, shape, offset)
        cache._descriptor()  # Opened now: a rebuild by another process may replace the file, never this copy.
        return cache

    def __getstate__(self):
        return {"path": self.path, "shape": self.shape, "offset": self.offset}

    def __setstate__(self, state):
        self.__init__(state["path"], state["shape"], state["offset"])

    def _descriptor(self):
        with self._lock:
            if self._fd is None or self._pid != os.getpid():
                self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
                weakref.finalize(self, _close_in, self._fd, self._pid)
            return self._fd

    def read(self, rows):
        """The images at ``rows``, as a new uint8 array (len(rows), H, W, C)."""
        rows = np.asarray(rows, np.int64).reshape(-1)
        out = np.empty((len(rows), *self.shape[1:]), np.uint8)
        flat = out.reshape(len(rows), self.row_bytes)
        fd = self._descriptor()
        for k, row in enumerate(rows):
            if os.preadv(fd, [flat[k]], self.offset + int(row) * self.row_bytes) != self.row_bytes:
                raise DataError(f"the decode cache {self.path} is truncated; delete it and run the same command "
                                "again (or pass --cache_dir=none)")
        return out


def _close_in(fd, pid):
    if os.getpid() == pid:  # Not in a forked child: the descriptor is its parent's.
        os.close(fd)


def decode_folder(data_dir, paths, image_size, channels, *, max_image_pixels=None, cache_dir="",
                  keep=lambda i: False, log=None, workers=None) -> DecodedFolder:
    """Decodes (or reads back from the cache) every file in ``paths``; the folder source's one pass over its files.

    Files reached through a symlink that leads outside ``data_dir`` fail too (nothing outside it is read).

    Args:
        data_dir: the folder.
        paths: relative paths of its image files, sorted.
        image_size: side of the square images.
        channels: 1 or 3.
        max_image_pixels: larger images fail as possible decompression bombs (None: Pillow's limit; 0: none).
        cache_dir: see `cache_root`; ``"none"`` streams (decodes, keeps only what ``keep`` asks for).
        keep: when streaming, ``keep(i)`` says which decoded images to return in ``images``.
        log: where progress and notices go (None: nowhere).
        workers: decoding processes (None: one per usable core).

    Returns:
        A `DecodedFolder`.
    """
    log = log or (lambda *_: None)
    limit = DEFAULT_MAX_IMAGE_PIXELS if max_image_pixels is None else int(max_image_pixels)
    decoder = Decoder(data_dir, image_size, channels, limit)
    if not cache_enabled(cache_dir):
        return decoder.run(range(len(paths)), paths, keep=keep, log=log, workers=workers, what="checking")
    root = os.path.join(cache_root(cache_dir), "folders")
    real = os.path.realpath(data_dir)
    settings = {"version": CACHE_VERSION, "image_size": image_size, "channels": channels, "max_image_pixels": limit,
                "pillow": _pillow_version()}
    key = hashlib.sha256(json.dumps([real, settings], sort_keys=True).encode("utf-8", "surrogateescape"))
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", os.path.basename(real) or "root")[:40]
    stem = os.path.join(root, f"{name}-{image_size}x{image_size}x{channels}-{key.hexdigest()[:12]}")
    listing = [[rel, *_stat(os.path.join(data_dir, rel))] for rel in paths]
    fingerprint = hashlib.sha256(json.dumps([settings, listing]).encode("utf-8", "surrogateescape")).hexdigest()
    shape = (len(paths), image_size, image_size, channels)

    previous = _read_entry(stem)
    if previous and previous[0]["fingerprint"] == fingerprint:
        meta, cache = previous
        failed = {rel: meta["failed"][rel] for rel in paths if rel in meta["failed"]}
        log(f"decode cache: reading {len(paths) - len(failed):,} images of {data_dir} from {cache.path}")
        return DecodedFolder([i for i, rel in enumerate(paths) if rel not in failed], failed, cache)

    build = _Build(stem, fingerprint, shape, real, settings, listing, log)
    reuse = {}
    if previous:  # The same folder and settings, changed since: keep the rows of the files that are unchanged.
        meta, old = previous
        unchanged = {(rel, size, mtime): row for row, (rel, size, mtime) in enumerate(meta["files"])
                     if rel not in meta["failed"]}
        reuse = {i: unchanged[tuple(entry)] for i, entry in enumerate(listing) if tuple(entry) in unchanged}
        build.copy_rows(old, reuse)
    todo = [i for i in range(len(paths)) if i not in reuse]
    decoded = decoder.run(todo, paths, keep=keep, log=log, workers=workers, store=build.store,
                          what="decoding" if build.writing else "checking",
                          reused=len(reuse), target=build.path if build.writing else None)
    cache = build.commit({paths[i]: decoded.failed[paths[i]] for i in todo if paths[i] in decoded.failed})
    if cache is None:  # Streaming after all: read back what this pass kept, decode the rest as they come.
        for i, row in reuse.items():
            if keep(i):
                decoded.images[i] = previous[1].read([row])[0]
        decoded.kept = sorted([*decoded.kept, *reuse])
        return decoded
    return DecodedFolder(sorted([*decoded.kept, *reuse]), decoded.failed, cache)


def _pillow_version():
    import PIL

    return PIL.__version__


def _stat(path):
    """(size, mtime in ns) of ``path`` (following symlinks), or (-1, -1) when it can't be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return -1, -1
    return st.st_size, st.st_mtime_ns


def _read_entry(stem):
    """(metadata, CacheFile) of the complete cache entry at ``stem``, or None."""
    try:
        with open(f"{stem}.json", encoding="utf-8") as f:
            meta = json.load(f)
        cache = CacheFile.open(os.path.join(os.path.dirname(stem), meta["array"]), meta["shape"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if meta.get("version") != CACHE_VERSION or len(meta["files"]) != meta["shape"][0]:
        return None
    return meta, cache


class _Build:
    """Writes one cache entry: the array under a temporary name, then the rename, then the .json (the commit).

    Any OSError (read-only or full disk, a path that is not a directory) turns it off with one notice; the
    decode pass goes on, and the folder is streamed.
    """

    def __init__(self, stem, fingerprint, shape, data_dir, settings, listing, log):
        self.stem, self.fingerprint, self.shape, self.log = stem, fingerprint, shape, log
        self.meta = {"version": CACHE_VERSION, "data_dir": data_dir, "settings": settings,
                     "fingerprint": fingerprint, "shape": list(shape), "files": listing}
        self.path = f"{stem}-{fingerprint[:12]}.npy"
        self.tmp = f"{self.path}.tmp.{_host()}.{os.getpid()}"
        self.fd = None
        self.row_bytes = int(np.prod(shape[1:]))
        try:
            os.makedirs(os.path.dirname(stem), exist_ok=True)
            _remove_dead_temporaries(os.path.dirname(stem))
            need, free = int(np.prod(shape)), shutil.disk_usage(os.path.dirname(stem)).free
            if need > free:
                self._give_up(f"{need / 1e9:.2f} GB needed, {free / 1e9:.2f} GB free")
                return
            array = np.lib.format.open_memmap(self.tmp, mode="w+", dtype=np.uint8, shape=shape)  # sparse
            del array  # Unmapped: the rows are written with pwrite, so they never count as this process's memory.
            self.offset = CacheFile.open(self.tmp, shape).offset
            self.fd = os.open(self.tmp, os.O_WRONLY)
        except OSError as e:
            self._give_up(files.describe_os_error(e))

    @property
    def writing(self):
        return self.fd is not None

    def _give_up(self, reason):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        try:
            os.remove(self.tmp)
        except OSError:
            pass
        self.log(f"decode cache: cannot write {os.path.dirname(self.stem)} ({reason}); "
                 "the images will be decoded again every epoch (pass --cache_dir=DIR to cache them elsewhere)")

    def store(self, index, image):
        if self.fd is None:
            return
        try:
            if os.pwrite(self.fd, np.ascontiguousarray(image).data, self.offset + index * self.row_bytes) \
                    != self.row_bytes:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError as e:
            self._give_up(files.describe_os_error(e))

    def copy_rows(self, old, rows):
        """Copies ``old``'s row ``rows[i]`` to row i, for every i in ``rows``."""
        items = sorted(rows.items())
        for start in range(0, len(items), 1024):
            chunk = items[start:start + 1024]
            images = old.read([row for _, row in chunk])
            for (i, _), image in zip(chunk, images):
                self.store(i, image)

    def commit(self, failed):
        """Renames the array into place and writes the .json; the CacheFile, or None if it could not."""
        if self.fd is None:
            return None
        try:
            os.fsync(self.fd)
            os.close(self.fd)
            self.fd = None
            files.crash_point("decode-cache-array-written")
            os.replace(self.tmp, self.path)
            files.crash_point("decode-cache-array-renamed")
            files.atomic_write_text(f"{self.stem}.json", json.dumps({
                **self.meta, "array": os.path.basename(self.path), "failed": failed}), unique=True)
        except OSError as e:
            self._give_up(files.describe_os_error(e))
            return None
        prefix = os.path.basename(self.stem) + "-"
        for name in os.listdir(os.path.dirname(self.stem)):  # Arrays of earlier listings of this folder.
            if name.startswith(prefix) and name.endswith(".npy") and name != os.path.basename(self.path):
                try:
                    os.remove(os.path.join(os.path.dirname(self.stem), name))
                except OSError:
                    pass
        return CacheFile.open(self.path, self.shape)


def _host():
    """This host's name as it goes into a temporary's name (no dots, which separate the name's parts)."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"


def _remove_dead_temporaries(directory):
    """Removes ``*.tmp.<host>.<pid>`` files of this host whose process is gone (a build that was killed); older
    ``*.tmp.<pid>`` files count as this host's. Another host's are left alone: its pid cannot be checked here."""
    for name in os.listdir(directory):
        found = re.search(r"\.tmp\.(?:([A-Za-z0-9-]+)\.)?(\d+)$", name)
        if not found or found.group(1) not in (None, _host()):
            continue
        try:
            os.kill(int(found.group(2)), 0)
        except ProcessLookupError:
            try:
                os.remove(os.path.join(directory, name))
            except OSError:
                pass
        except OSError:
            pass
