"""Importing tfvae (and every module of it) has no side effects: no matplotlib backend chosen, no logging filter or
handler, nothing done to stderr's file descriptor; its public names are ``__all__``'s. ``import tfvae`` itself
imports neither TensorFlow nor Keras (tests/test_commands.py): its exports load when first used."""

import ast
import json
import os
import subprocess
import sys
import types

import pytest

import tfvae
from tests.conftest import REPO
from tfvae import startup

# Prints, as JSON, the state of a process's logging, matplotlib backend and warnings filters after PRELUDE,
# and the os.dup/os.dup2 calls PRELUDE made.
REPORT = """
import json, logging, os, sys, warnings
calls, real = [], {name: getattr(os, name) for name in ("dup", "dup2")}
os.dup = lambda *args: calls.append("dup") or real["dup"](*args)
os.dup2 = lambda *args: calls.append("dup2") or real["dup2"](*args)
import matplotlib
matplotlib.use("pdf")
PRELUDE
os.dup, os.dup2 = real["dup"], real["dup2"]
import tensorflow as tf
from absl import logging as absl_logging

def describe(logger):
    return {"level": logger.level, "filters": [type(f).__qualname__ for f in logger.filters],
            "handlers": [type(h).__qualname__ for h in logger.handlers], "propagate": logger.propagate}

print(json.dumps({"tensorflow": describe(tf.get_logger()), "root": describe(logging.getLogger()),
                  "absl": absl_logging.get_verbosity(), "backend": matplotlib.get_backend(), "fd_calls": calls,
                  "warnings_filters": len(warnings.filters)}))
"""


def report(prelude):
    # TFVAE_QUIET_STARTUP=1 is what once made `import tfvae` redirect stderr: it must do nothing now.
    env = dict(os.environ, TFVAE_QUIET_STARTUP="1", TF_CPP_MIN_LOG_LEVEL="2")
    out = subprocess.run([sys.executable, "-c", REPORT.replace("PRELUDE", prelude)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """The report of a process that only imports TensorFlow and Keras, and of one that imports every module of
    tfvae and then draws figures through it (two processes for the three tests that read them)."""
    folder = tmp_path_factory.mktemp("figures")
    every_module_then_draw = (
        "import pkgutil, importlib, tfvae\n"
        "for m in pkgutil.walk_packages(tfvae.__path__, 'tfvae.'):\n"
        "    importlib.import_module(m.name)\n"
        "import numpy as np\n"
        "from tfvae import picture_arrays\n"
        "from tfvae.evaluation import report\n"
        f"picture_arrays.save_scatter({str(folder / 'scatter.png')!r}, "
        "np.random.default_rng(0).normal(size=(50, 3)), labels=np.arange(50) % 3, class_names=['a', 'b', 'c'], "
        "title='t')\n"
        f"report.save_histograms({str(folder / 'hist.png')!r}, [('x', np.zeros(5), np.ones(5), 1.0)], 'in', "
        "'out')")
    return report("import tensorflow, keras"), report(every_module_then_draw), folder


def test_importing_tfvae_and_all_its_modules_has_no_side_effects(reports):
    baseline, after, _ = reports
    assert after["fd_calls"] == baseline["fd_calls"], "importing tfvae duplicated file descriptors (stderr's?)"
    assert after["backend"] == "pdf", "importing tfvae switched matplotlib's backend"
    for key in ("tensorflow", "root", "absl", "warnings_filters"):
        assert after[key] == baseline[key], f"importing tfvae changed {key}: {baseline[key]} -> {after[key]}"


def test_drawing_figures_keeps_the_chosen_matplotlib_backend(reports):
    _, after, folder = reports
    assert after["backend"] == "pdf"  # set before tfvae was imported and figures drawn: kept
    assert (folder / "scatter.png").read_bytes()[:4] == b"\x89PNG"
    assert (folder / "hist.png").read_bytes()[:4] == b"\x89PNG"


def test_public_names_are_all_and_no_stray_imports():
    assert set(tfvae.__all__) >= {"Run", "load", "models", "__version__"}
    for name in tfvae.__all__:
        assert hasattr(tfvae, name), name
    submodules = {name for name, value in vars(tfvae).items()
                  if isinstance(value, types.ModuleType) and value.__name__ == f"tfvae.{name}"}
    public = {name for name in dir(tfvae) if not name.startswith("_")}
    assert public - submodules <= set(tfvae.__all__), public - submodules - set(tfvae.__all__)
    assert not {"os", "re", "sys", "tempfile"} & set(dir(tfvae))
    assert isinstance(tfvae.__version__, str) and tfvae.__version__.count(".") == 2


def test_setuptools_reads_the_version_without_importing_tfvae():
    """setup.cfg's ``version = attr: tfvae.__version__``: a literal that setuptools reads statically, so building
    a wheel never imports TensorFlow."""
    code = ("import sys\n"
            "sys.modules['tensorflow'] = sys.modules['keras'] = None  # importing them would fail\n"
            "from setuptools.config.expand import read_attr\n"
            "print(read_attr('tfvae.__version__', root_dir='.'), 'tfvae' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [tfvae.__version__, "False"]


def test_each_script_quiets_tensorflow_before_anything_imports_it():
    """Each script calls tfvae.startup.quiet_tensorflow_startup() before any statement that imports more of tfvae,
    or TensorFlow or Keras (read from its source; the next test runs one for real). ``tfvae.startup`` itself
    imports neither (tests/test_commands.py checks it in a fresh process)."""
    heavy = ("tfvae", "tensorflow", "keras")
    for script in ("train.py", "sample.py", "evaluate.py"):
        tree = ast.parse(open(os.path.join(REPO, script)).read())
        quiet = first_heavy = None
        for i, node in enumerate(tree.body):
            if quiet is None and "quiet_tensorflow_startup()" in ast.unparse(node):
                quiet = i
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [f"{node.module}.{a.name}" for a in node.names] if isinstance(node, ast.ImportFrom) else [])
            if first_heavy is None and any(n.split(".")[0] in heavy and n != "tfvae.startup" for n in names):
                first_heavy = i
        assert quiet is not None and (first_heavy is None or quiet < first_heavy), script


def test_a_script_starts_tensorflow_without_its_notices(tmp_path):
    """tfvae.startup.quiet_tensorflow_startup() at work in a real process: stderr holds the script's own error
    line only, none of TensorFlow's C++ start-up notices (oneDNN, CUDA drivers, CPU features)."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TFVAE_QUIET_STARTUP")}
    args = ["sample.py", f"--workdir={tmp_path / 'missing'}"]  # imports TensorFlow, then fails in one line
    out = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    noise = [line for line in out.stderr.splitlines() if startup.STARTUP_NOISE.match(line)
             or "oneDNN" in line or "cuda" in line.lower()]
    assert noise == [] and "rror" in out.stderr.splitlines()[0], (args, out.stderr[-2000:])
