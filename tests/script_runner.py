"""train.py, sample.py and evaluate.py called inside the test process, as their own ``python SCRIPT`` would run them.

The scripts are shims over ``tfvae.commands`` (``tfvae train|sample|evaluate``): loading one runs its
``<command>_command.define_flags()``, so a script loaded again after another defines its flags again; the command
modules stay imported (they define nothing when imported).

A new Python process spends most of a tiny run starting TensorFlow (about 6 s here, more under load); the suite ran
some 60 scripts that way. ``run_script`` does what ``python SCRIPT ARGS`` does without the start-up: the script is
loaded with ``runpy`` (its absl flags defined, the previous script's removed: the three share names such as
``--workdir``), its flags parse ``ARGS`` exactly as ``absl.app.run`` does, its ``main`` runs in ``cwd`` with ``env``
as the environment, and stdout, stderr and the exit status come back as a ``subprocess.CompletedProcess``:

- a flag that does not parse -> ``FATAL Flags parsing error: ...`` on stderr, status 1 (absl's own words);
- ``app.UsageError`` -> its message on stderr, status 1; ``sys.exit(code)`` -> that status;
- an uncaught exception -> its traceback on stderr, status 1, as the interpreter does.

What a separate process alone can show (a script killed mid-write, same seeds in fresh interpreters, the start-up
quiet, the ``if __name__ == "__main__"`` path) stays a real process: ``tests.conftest.run_process``.
"""

import contextlib
import io
import os
import runpy
import subprocess
import sys
import traceback
import warnings

# sample.py marks scikit-learn and pyplot absent unless they are already imported (to start faster); the tests and
# evaluate.py, run later in this process, need them.
import matplotlib
import sklearn  # noqa: F401
from absl import app, flags

matplotlib.use("Agg")
import matplotlib.pyplot  # noqa: E402, F401

FLAGS = flags.FLAGS
SCRIPT_MODULES = {"train", "sample", "evaluate"}


def _flags_of_scripts():
    """Names of the flags defined by a script imported as a module (``import train``), or by a command of
    ``tfvae.commands`` (whose ``define_flags()`` the scripts call: its flags are the command module's)."""
    return {flag.name for module, defined in FLAGS.flags_by_module_dict().items()
            if module in SCRIPT_MODULES or module == "tfvae.config_flags" or module.startswith("tfvae.commands.")
            for flag in defined}


class Scripts:
    """Loads one script at a time into this process, with its own absl flags."""

    def __init__(self):
        self.flags, self.modules, self.path, self.namespace = set(), set(), None, None

    def load(self, path):
        """Defines ``path``'s flags (removing the previously loaded script's); returns its namespace."""
        if path == self.path:  # already loaded: its flags are defined
            return self.namespace
        for name in self.flags | _flags_of_scripts():  # a script imported as a module (`import train`) too
            if name in FLAGS:
                delattr(FLAGS, name)
        for name in self.modules | (SCRIPT_MODULES & set(sys.modules)):
            sys.modules.pop(name, None)
        flags_before, modules_before = set(FLAGS), set(sys.modules)
        namespace = runpy.run_path(path, run_name="loaded_" + os.path.splitext(os.path.basename(path))[0])
        if "define_flags" in namespace:  # benchmarks/keras_example.py defines its flags only when run
            namespace["define_flags"]()
        self.flags = set(FLAGS) - flags_before
        self.modules = {m for m in set(sys.modules) - modules_before
                        if m in ("train", "sample", "evaluate") or m.split(".")[0] == "benchmarks"}
        self.path, self.namespace = path, namespace
        return namespace

    def parse(self, argv):
        """Parses argv (``[script, *flags]``) with the loaded script's flags from their defaults; returns the rest.
        train.py's ``--config=NAME`` is first expanded as its command does (``expand_config``). Raises
        ``flags.Error`` when a flag is unknown or a value is bad."""
        FLAGS.unparse_flags()
        expand = (self.namespace or {}).get("expand_config")
        return FLAGS(expand(argv) if expand else argv)


_SCRIPTS = Scripts()


def load(path):
    """Loads the script at ``path`` into this process (its flags defined, from their defaults); its namespace."""
    namespace = _SCRIPTS.load(path)
    FLAGS.unparse_flags()
    return namespace


@contextlib.contextmanager
def _environment(env, cwd):
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)


def run_script(args, env, cwd, eager=None):
    """Runs ``python args[0] args[1:]`` in this process; returns a CompletedProcess (text stdout and stderr).

    ``eager``: run the train steps eagerly (``tf.config.run_functions_eagerly``); by default train.py's are, as a
    tiny run's few steps cost less than tracing them (the compiled steps are tested by the in-process trainings;
    pass False where the compiled path is the point)."""
    import tensorflow as tf

    path, argv = args[0], list(args[1:])
    namespace = _SCRIPTS.load(path)
    stdout, stderr = io.StringIO(), io.StringIO()
    if eager is None:
        eager = os.path.basename(path) == "train.py"
    was_eager = tf.config.functions_run_eagerly()
    tf.config.run_functions_eagerly(eager or was_eager)
    with _environment(env, cwd), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr), \
            warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Even though the `tf.config.experimental_run_functions_eagerly`")
        try:
            try:
                remaining = _SCRIPTS.parse([path, *argv])
            except flags.Error as e:  # absl.app.run's words and status
                print(f"FATAL Flags parsing error: {e}", file=sys.stderr)
                code = 1
            else:
                code = namespace["main"](remaining)
        except app.UsageError as e:
            print(str(e), file=sys.stderr)  # absl prints the usage and this message
            code = 1
        except SystemExit as e:
            if isinstance(e.code, str):
                print(e.code, file=sys.stderr)
                code = 1
            else:
                code = e.code or 0
        except Exception:  # noqa: BLE001 (what the interpreter prints for an uncaught exception)
            traceback.print_exc()
            code = 1
        finally:
            FLAGS.unparse_flags()
            tf.config.run_functions_eagerly(was_eager)
    return subprocess.CompletedProcess([sys.executable, *args], code or 0, stdout.getvalue(), stderr.getvalue())
