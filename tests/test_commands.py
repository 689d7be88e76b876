"""The installed ``tfvae`` command (tfvae/commands/cli.py): declared as the package's console entry point, its
errors one line, and nothing heavy imported before a command is chosen. The commands themselves run as the
scripts do (tests/test_scripts.py through the train.py/sample.py/evaluate.py shims); .ci/wheel_check runs the
installed command from a built wheel in a fresh environment."""

import configparser
import contextlib
import importlib
import io
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tfvae.commands import cli


def call(argv):
    """``cli.main(argv)`` in this process: (status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, out.getvalue(), err.getvalue()


def test_the_console_entry_point_is_declared_and_resolves():
    parser = configparser.ConfigParser()
    parser.read(os.path.join(REPO, "setup.cfg"))
    scripts = dict(line.split(" = ") for line in parser["options.entry_points"]["console_scripts"].split("\n")
                   if line.strip())
    assert scripts == {"tfvae": "tfvae.commands.cli:main"}
    module, function = scripts["tfvae"].split(":")
    assert getattr(importlib.import_module(module), function) is cli.main
    for command in cli.COMMANDS:  # each subcommand is a module of tfvae.commands with its flags and main
        module = importlib.import_module(f"tfvae.commands.{command}_command")
        assert callable(module.define_flags) and callable(module.main), command


@pytest.mark.parametrize("argv, said", [(["tfvae", "nope"], "unknown command 'nope'"),
                                        (["tfvae"], "no command given"),
                                        (["tfvae", "--workdir=runs/x"], "unknown command '--workdir=runs/x'")])
def test_no_known_command_is_one_line_and_a_failure(argv, said):
    code, out, err = call(argv)
    assert code == 2 and out == ""
    assert err.splitlines() == [f"error: {said}: tfvae's commands are train, sample, evaluate (see tfvae --help)"]


def test_help_lists_the_commands():
    code, out, err = call(["tfvae", "--help"])
    assert code == 0 and err == ""
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("  ")]
    assert listed == list(cli.COMMANDS) and "tfvae train --config=" in out


def test_the_startup_module_and_the_command_import_nothing_heavy():
    """``import tfvae``, ``tfvae.startup`` and ``tfvae.commands.cli`` leave TensorFlow and Keras unimported, so the
    start-up can be quieted before a command imports them, and ``tfvae --help`` answers at once (a fresh process)."""
    code = ("import sys, tfvae, tfvae.startup, tfvae.commands.cli\n"
            "print(sorted(m for m in ('tensorflow', 'keras', 'tfvae.models', 'tfvae.api') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_python_dash_m_tfvae_is_the_same_command():
    """Where the PATH has no ``tfvae`` (a checkout without pip install), ``python -m tfvae`` is the command."""
    out = subprocess.run([sys.executable, "-m", "tfvae", "nope"], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip() == ("error: unknown command 'nope': python -m tfvae's commands are train, sample, "
                                  "evaluate (see python -m tfvae --help)")


@pytest.mark.parametrize("path,said", [
    ("keras.callbacks", "give it as module:Name"),
    ("keras.callbacks:NoSuchCallback", "cannot import it"),
    ("keras.callbacks:CSVLogger:{filename}", "its arguments are not JSON"),
    ("keras.callbacks:CSVLogger:[1]", "must be a JSON object"),
    ("keras.callbacks:CSVLogger:{\"nope\": 1}", "unexpected keyword argument"),
    ("collections:OrderedDict", "made a OrderedDict, not a keras.callbacks.Callback"),
])
def test_a_bad_callback_path_is_one_line(path, said):
    from tfvae.commands.train_command import callback_from_path
    from tfvae.errors import TfvaeError

    with pytest.raises(TfvaeError) as error:
        callback_from_path(path)
    assert said in str(error.value) and str(error.value).startswith(f"--callback={path}")
    assert "\n" not in str(error.value)


def test_errors_name_the_commands_as_the_user_ran_them(tmp_path):
    from tfvae import rundir
    from tfvae.errors import TfvaeError

    with pytest.raises(TfvaeError) as error:
        rundir.load_config(str(tmp_path / "none"))
    message = str(error.value)
    assert "python train.py --model=vae" in message  # the library's words, what python train.py users read
    installed = cli.in_program_terms(message, "tfvae sample")
    assert "tfvae train --model=vae" in installed and ".py" not in installed
    assert cli.in_program_terms(message, "sample.py") == message
    # Only the commands' own names: a path or another script keeps its name.
    assert cli.in_program_terms("see /a/train.py, my_train.py, evaluate.py", "tfvae evaluate") == (
        "see /a/train.py, my_train.py, tfvae evaluate")
