"""The ``tfvae`` console entry point (setup.cfg's ``console_scripts``): ``tfvae train|sample|evaluate [flags]``.

One entry point with subcommands, not three: one name on the PATH, one ``tfvae --help`` that lists the commands.
absl keeps every flag in one process-wide registry (``absl.flags.FLAGS``) and the commands share flag names
(``--workdir``, ``--mode``, ``--seed``) with different meanings, so the command is picked from ``argv[1]`` first and
only then are that command's flags defined (``define_flags()`` of its module) and parsed by ``absl.app.run``: the
help, the parsing and the errors are absl's, as for ``python train.py``.
"""

import importlib
import os
import re
import sys

from absl import app, flags

from tfvae import startup

COMMANDS = {
    "train": "train an autoencoder or VAE and write its run directory",
    "sample": "draw pictures from a trained run (grids, samples, reconstructions, scatter, ...)",
    "evaluate": "measure a trained run: likelihood, reconstruction, sample quality, anomaly scores",
}
HELP = ("-h", "-help", "--help", "help", "--helpshort", "--helpfull")


def usage(program="tfvae"):
    """The top-level help: the commands, and where their flags are listed."""
    lines = [f"usage: {program} COMMAND [--flag=value ...]", "", "commands:"]
    lines += [f"  {name:<9} {what}" for name, what in COMMANDS.items()]
    lines += ["", f"{program} COMMAND --help lists a command's flags; e.g. {program} train --config=mnist_vae_z2, "
              f"then {program} sample --grid 15."]
    return "\n".join(lines)


def in_program_terms(message, program):
    """``message`` as the user who ran ``program`` (argv[0]) reads it: the library names the scripts ("python
    train.py --model=vae", "sample.py"), which are ``tfvae train``, ``tfvae sample`` to the installed command."""
    if program.split()[0] != "tfvae":
        return message
    named = "|".join(COMMANDS)
    message = re.sub(rf"\bpython ({named})\.py\b", r"tfvae \1", message)
    return re.sub(rf"(?<![\w/.-])({named})\.py\b", r"tfvae \1", message)


def run(command, argv):
    """Runs a command module (its flags already defined) as absl runs a script: parses ``argv``'s flags, calls
    ``command.main`` and exits with its status. ``--help`` lists the command's own flags, which are made the key
    flags of the program (``sys.argv[0]``) absl's short help shows."""
    for flag in flags.FLAGS.get_key_flags_for_module(command.__name__):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    expand = getattr(command, "expand_config", None)  # train's --config=NAME: the shipped flagfile
    app.run(command.main, argv=expand(argv) if expand else argv)


def main(argv=None):
    """``tfvae COMMAND [flags]``. Without a known command: the usage (``--help``, status 0) or one error line
    (status 2). Otherwise does not return: the command's status ends the process, as ``absl.app.run`` does."""
    entry = argv is None
    argv = list(sys.argv if entry else argv)
    program = os.path.basename(argv[0]) if argv and argv[0] else "tfvae"
    command = argv[1] if len(argv) > 1 else ""
    if command in HELP:
        print(usage(program))
        return 0
    if command not in COMMANDS:
        said = f"unknown command {command!r}" if command else "no command given"
        print(f"error: {said}: {program}'s commands are {', '.join(COMMANDS)} (see {program} --help)",
              file=sys.stderr)
        return 2
    startup.quiet_tensorflow_startup()  # before the command's module imports TensorFlow
    module = importlib.import_module(f"tfvae.commands.{command}_command")
    module.define_flags()
    if entry:  # absl's --help prints __main__'s docstring: the console script's wrapper has none
        sys.modules["__main__"].__doc__ = module.__doc__
    run(module, [f"{program} {command}", *argv[2:]])
