"""The folder source's one pass over its files: every file decoded, in order, over all cores, with progress lines.

`Decoder.run` decodes a list of a folder's files in worker processes (one per usable core), hands each image to
a ``store`` callback in path order (the decode cache writes it, `cache.py`), keeps the ones asked for, and
records why each failing file failed. Worker processes are forked: they only run Pillow and NumPy, whose imports
are all done before the fork (`import_before_fork`).
"""

import dataclasses
import multiprocessing
import os
import time

import numpy as np

from tfvae.data.images import _decode_image, _skip_reason

PROGRESS_SECONDS = 10.0  # At most one progress line this often.


def import_before_fork():
    """Runs here every import a decoding worker would make, so that a forked worker makes none.

    Pillow imports lazily: its format plugins on the first ``Image.open``, ``ImageOps`` (and with it the EXIF
    tags) on first use. An import in a child forked from a process with other threads (TensorFlow's, a test
    runner's) can wait forever on a lock one of those threads held at the fork: a CI run hung with a worker stuck
    inside Pillow's plugin import and its parent waiting for it.
    """
    from PIL import Image, ImageOps  # noqa: F401  (ImageOps imports ExifTags; Image.init every format plugin)

    Image.init()


@dataclasses.dataclass
class DecodedFolder:
    """The outcome of decoding a folder's files (``paths`` in `cache.decode_folder`).

    Attributes:
        kept: indices (into ``paths``) of the files that decoded, ascending.
        failed: {relative path: reason} of those that did not.
        cache: the cache holding one row per path (rows of failed files are zeros), or None when streaming.
        images: {index: image} of the kept files that ``keep`` asked for, when there is no cache.
    """

    kept: list
    failed: dict
    cache: object = None  # a cache.CacheFile
    images: dict = dataclasses.field(default_factory=dict)

    def take(self, indices, decode):
        """The images at ``indices`` (kept ones), from the cache, else from ``images``, else ``decode(i)``."""
        if self.cache is not None:
            return self.cache.read(indices)
        return np.stack([self.images[i] if i in self.images else decode(i) for i in indices])


@dataclasses.dataclass(frozen=True)
class Decoder:
    """Decodes files of one folder; picklable, so that worker processes can run it."""

    data_dir: str
    image_size: int
    channels: int
    max_image_pixels: int

    def __call__(self, rel):  # -> (image, None) or (None, why it failed)
        path = os.path.join(self.data_dir, rel)
        try:
            real_root, real = os.path.realpath(self.data_dir), os.path.realpath(path)
            if os.path.commonpath([real_root, real]) != real_root:
                return None, f"a symlink to {real}, outside --data_dir"
            return _decode_image(path, self.image_size, self.channels, self.max_image_pixels), None
        except Exception as e:  # noqa: BLE001 - any undecodable file is skipped and reported.
            return None, _skip_reason(path, e, self.max_image_pixels)

    def chunk(self, rels):
        return [self(rel) for rel in rels]

    def run(self, indices, paths, *, keep, log, workers=None, store=None, what="decoding", reused=0, target=None):
        """Decodes ``paths[i]`` for i in ``indices`` over ``workers`` processes, in order; see `decode_folder`."""
        indices = list(indices)
        workers = workers or len(os.sched_getaffinity(0))
        chunk = max(1, min(64, len(indices) // (8 * workers)))
        chunks = [indices[s:s + chunk] for s in range(0, len(indices), chunk)]
        result = DecodedFolder([], {})
        start = last = time.monotonic()
        if indices:
            where = f" into {target}" if target else ""
            also = f" ({reused:,} unchanged images reused)" if reused else ""
            log(f"decode cache: {what} {len(indices):,} images of {self.data_dir} at {self.image_size}x"
                f"{self.image_size}x{self.channels} with {min(workers, len(chunks))} process(es){where}{also}")
        pool, finished = None, False
        if workers > 1 and len(chunks) > 1:
            # fork: a spawned worker would import TensorFlow again, seconds each. The forked ones only run Pillow and
            # NumPy, never TensorFlow, and import nothing: the imports are done here first.
            import_before_fork()
            try:
                pool = multiprocessing.get_context("fork").Pool(min(workers, len(chunks)))
            except OSError as e:  # No processes to be had: decode here.
                log(f"decode cache: cannot start decoding processes ({e}); decoding in this one")
        try:
            outcomes = pool.imap(self.chunk, [[paths[i] for i in c] for c in chunks]) if pool else \
                (self.chunk([paths[i] for i in c]) for c in chunks)
            done = 0
            for c, outcome in zip(chunks, outcomes):
                for i, (image, problem) in zip(c, outcome):
                    if problem:
                        result.failed[paths[i]] = problem
                        continue
                    result.kept.append(i)
                    if store is not None:
                        store(i, image)
                    if keep(i):
                        result.images[i] = image
                done += len(c)
                now = time.monotonic()
                if now - last >= PROGRESS_SECONDS and done < len(indices):
                    rate = done / (now - start)
                    log(f"decode cache: {done:,}/{len(indices):,} images ({rate:,.0f} images/s, "
                        f"ETA {_duration((len(indices) - done) / rate)})")
                    last = now
            finished = True
        finally:
            if pool is not None:
                pool.close() if finished else pool.terminate()
                pool.join()
        if indices:
            seconds = time.monotonic() - start
            log(f"decode cache: {what} {len(indices):,} images took {_duration(seconds)} "
                f"({len(indices) / max(seconds, 1e-9):,.0f} images/s), {len(result.failed)} failed")
        return result


def _duration(seconds):
    if seconds < 10:
        return f"{seconds:.1f}s"
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else \
        f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
