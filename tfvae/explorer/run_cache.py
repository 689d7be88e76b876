"""A bounded cache of loaded runs: each run is loaded once (``tfvae.load``), its test codes encoded once, and
then every request decodes through that Run.

An entry is reloaded when its ``decoder.keras`` changes (training went on), and the least recently used entry
is dropped beyond ``max_runs``.
"""

import collections
import os
import threading

import numpy as np

import tfvae
from tfvae import models, picture_arrays
from tfvae.errors import TfvaeError

MAX_RUNS = 4  # loaded runs kept at once
MAX_POINTS = 2000  # test codes sent to the page (the first ones of the test set)
SLIDERS = 16  # latent dimensions given a slider, highest usage first


def describe(run, name):
    """What the page needs about ``run``: shapes, classes, test codes, latent usage, slider ranges, PCA plane."""
    if run.code_grids.gridded:
        raise TfvaeError(f"{name} is {models.with_article(run.config.model)}, whose codes are "
                         f"{run.code_grids.kind()}: the explorer shows vector latents only (python sample.py "
                         "--mode=random draws from its sampler)")
    z, _, y = run.test_codes()
    values, what = run.latent_usage()
    order = [int(d) for d in np.argsort(-np.asarray(values), kind="stable")]
    z = np.asarray(z, dtype="float64")
    shown = z[:MAX_POINTS]
    lo, hi = z.min(axis=0), z.max(axis=0)
    span = np.maximum(hi - lo, 1e-3)
    lo, hi = lo - 0.25 * span, hi + 0.25 * span
    if run.variational:  # the prior's +-3 sigma at least
        lo, hi = np.minimum(lo, -3.0), np.maximum(hi, 3.0)
    mean, axes = picture_arrays.principal_plane(z)
    return {
        "run": name,
        "model": run.config.model,
        "latent_dim": run.latent_dim,
        "image_shape": list(run.image_shape),
        "conditional": run.conditional,
        "num_classes": run.num_classes,
        "class_names": run.class_names,
        "test_images": int(len(z)),
        "codes": np.round(shown, 5).tolist(),
        "labels": None if y is None else [int(v) for v in np.asarray(y)[:MAX_POINTS]],
        "usage": {"values": [float(v) for v in values], "what": what},
        "order": order,
        "sliders": order[:SLIDERS],
        "ranges": [[float(a), float(b)] for a, b in zip(lo, hi)],
        "mean": mean.tolist(),
        "pca": axes.tolist(),
    }


class Entry:
    """One loaded run: the Run, its description, and a lock that serialises its use."""

    def __init__(self, run, info, stamp):
        self.run, self.info, self.stamp = run, info, stamp
        self.lock = threading.Lock()


def _stamp(path):
    try:
        stat = os.stat(os.path.join(path, "decoder.keras"))
        return stat.st_mtime_ns, stat.st_size
    except OSError:
        return None


class RunCache:
    """Loaded runs by name, at most ``max_runs`` (least recently used dropped first)."""

    def __init__(self, max_runs=MAX_RUNS, load=None):
        self.max_runs = max_runs
        self._load = load
        self._entries = collections.OrderedDict()
        self._loading = collections.defaultdict(threading.Lock)
        self._lock = threading.Lock()

    def get(self, name, path):
        """The Entry of run ``name`` in directory ``path``, loading it (once) when needed.

        Raises:
          TfvaeError: the run can't be loaded (missing or damaged files), in tfvae's own words.
        """
        with self._lock:
            loading = self._loading[name]
        with loading:  # one thread loads a run; others asking for it wait for that load
            stamp = _stamp(path)
            with self._lock:
                entry = self._entries.get(name)
                if entry is not None and entry.stamp == stamp:
                    self._entries.move_to_end(name)
                    return entry
            run = self._load_run(path)
            entry = Entry(run, describe(run, name), stamp)
            with self._lock:
                self._entries[name] = entry
                self._entries.move_to_end(name)
                while len(self._entries) > self.max_runs:
                    self._entries.popitem(last=False)
            return entry

    def _load_run(self, path):
        if self._load is not None:
            return self._load(path)
        run = tfvae.load(path)
        # Loads decoder.keras now (a missing or damaged one is reported at once) and makes the first call, whose
        # set-up would otherwise delay the first image under the mouse.
        run.decode(np.zeros((1, run.latent_dim), "float32"), 0 if run.conditional else None)
        return run

    def __len__(self):
        with self._lock:
            return len(self._entries)
