"""The commands' start-up: TensorFlow imported with its C++ start-up notices kept out of their output.

``tfvae train|sample|evaluate`` (``tfvae.commands``), the repository's train.py, sample.py and evaluate.py and the
benchmarks call ``quiet_tensorflow_startup()`` first, before anything imports TensorFlow. Importing this module
imports neither TensorFlow nor the rest of tfvae (``tfvae/__init__.py`` loads its exports lazily), so an installed
command can call it in time. Only calling it changes the process (a finder on ``sys.meta_path``, stderr captured
while TensorFlow imports); the library itself changes no file descriptor, logger or backend when it is imported.
"""

import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

# TensorFlow's C++ start-up notices (oneDNN, missing CUDA drivers, CPU features) are printed before its logging is
# initialised, so TF_CPP_MIN_LOG_LEVEL can't hide them.
STARTUP_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|[IWE]\d{4} \S+\s+\d+ (port|cudart_stub|cpu_feature_guard|cuda_platform|cuda_dnn|cuda_fft|cuda_blas)\.cc:"
    r"|To enable the following instructions:)")


def quiet_tensorflow_startup():
    """Makes TensorFlow's import quiet, whenever it comes: stderr (file descriptor 2) is captured while TensorFlow
    imports and initialises its devices, then what it printed is written back without the known start-up
    notices. Sets ``TF_CPP_MIN_LOG_LEVEL=2`` (TensorFlow's Python-side info logs) unless it is set.

    TensorFlow is not imported here: the sample and evaluate commands import it after parsing their flags, so
    that ``--help`` answers at once. Does nothing more when TensorFlow is already imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietTensorflow) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorflow())


class _QuietTensorflow(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``tensorflow`` as the other finders do, and loads it with stderr filtered (once)."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # one import only; and the lookup below must not come back here
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            self.loader = spec.loader
            spec.loader = self
        return spec

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        with _filtered_stderr():
            self.loader.exec_module(module)
            module.config.list_physical_devices()  # CUDA initialisation prints its notices here


class _filtered_stderr:
    """Captures file descriptor 2; on exit, writes back what was printed less the lines STARTUP_NOISE matches."""

    def __enter__(self):
        sys.stderr.flush()
        self.saved = os.dup(2)
        self.captured = tempfile.TemporaryFile()
        os.dup2(self.captured.fileno(), 2)

    def __exit__(self, *exc_info):
        sys.stderr.flush()
        os.dup2(self.saved, 2)
        os.close(self.saved)
        with self.captured:
            self.captured.seek(0)
            for line in self.captured.read().decode(errors="replace").splitlines(keepends=True):
                if not STARTUP_NOISE.match(line):
                    sys.stderr.write(line)

