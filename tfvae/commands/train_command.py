"""Train an autoencoder or VAE and write its run directory.

    tfvae train --model=vae --latent=2               # the Keras example on MNIST
    tfvae train --config=fashion_vae_z2              # a documented setup, shipped with tfvae (--config below)
    tfvae train --flagfile=my.cfg --epochs=5         # your own flagfile; later flags override its values
    tensorboard --logdir runs                        # live curves and pictures

Running the same command again resumes from the last finished epoch.
"""

import os
import sys

from absl import app, flags

from tfvae.commands.cli import in_program_terms

FLAGS = flags.FLAGS
# The documented setups (absl flagfiles, each with its command and expected result), shipped in the package;
# the repository's configs/ is a link to this folder.
CONFIGS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")


def config_names():
    """The names of the shipped configs: ``tfvae/configs/<name>.cfg``."""
    return sorted(name[:-len(".cfg")] for name in os.listdir(CONFIGS_DIR) if name.endswith(".cfg"))


def expand_config(argv):
    """``argv`` with each ``--config=NAME`` (or ``--config NAME``) of a shipped config preceded by
    ``--flagfile=<its path>``, in its place: its values apply as a flagfile's do, and flags after it override them.
    An unknown name is left to the ``--config`` flag, whose parsing rejects it with the names there are."""
    names, out, rest = set(config_names()), list(argv[:1]), list(argv[1:])
    while rest:
        arg = rest.pop(0)
        if arg == "--":  # absl stops parsing here
            out += [arg, *rest]
            break
        name, eq, value = arg.lstrip("-").partition("=")
        if not (arg.startswith("-") and name == "config"):
            out.append(arg)
            continue
        if not eq and rest:
            value = rest.pop(0)
        if value in names:
            out.append(f"--flagfile={os.path.join(CONFIGS_DIR, value + '.cfg')}")
        out.append(f"--config={value}" if eq or value else arg)
    return out


def config_from_flags():
    """The Config the parsed flags say (``tfvae.config_flags.config_from_flags``)."""
    from tfvae.config_flags import config_from_flags as from_flags

    return from_flags(FLAGS)


def define_flags():
    """Defines train's flags: one per setting of ``tfvae.config.Config`` (docs/flags.md), ``--config`` and
    ``--restart``."""
    from tfvae import config_flags

    config_flags.define_flags(FLAGS)
    flags.adopt_module_key_flags(config_flags)  # listed by --help as this command's own
    flags.DEFINE_enum("config", None, config_names(), "A documented setup shipped with tfvae: "
                      "tfvae/configs/<name>.cfg (the repository's configs/), read as --flagfile reads it, in its "
                      "place on the command line; flags after it override its values. Each file says how to run "
                      "it and what to expect.")
    flags.DEFINE_multi_string("callback", [], "A Keras callback to add, by import path, e.g. "
                              "keras.callbacks:TerminateOnNaN, with keyword arguments as JSON after a second colon: "
                              "'keras.callbacks:CSVLogger:{\"filename\": \"log.csv\"}'; repeatable (an experiment "
                              "tracker's Keras callback, say: docs/python_api.md). Not part of the run's settings.")
    flags.DEFINE_boolean("restart", False, "Start the run over: first move everything --workdir holds (e.g. a run "
                         "whose checkpoints are all damaged) to <workdir>.old-<UTC time>; nothing is deleted.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; flags look like --name=value")
    from tfvae import projector, training
    from tfvae.errors import TfvaeError
    from tfvae.models import model_class

    try:
        config = config_from_flags()
        callbacks = [callback_from_path(path) for path in FLAGS.callback]
        # After the last epoch: the test set's latent space for TensorBoard's Projector, and a traversal.
        result = training.train(config, restart=FLAGS.restart, on_finished=projector.write_after_training,
                                callbacks=callbacks)
    except TfvaeError as e:
        print(f"error: {in_program_terms(str(e), argv[0])}", file=sys.stderr)
        return 2
    terms = ", ".join(f"{label} {result[key]:{spec}}" for key, label, spec in model_class(config.model).summary_terms)
    print(f"final test loss {result['loss']:.2f} (reconstruction {result['reconstruction']:.2f}, {terms}) after "
          f"{result['epochs']} epoch(s)")
    print(f"wrote {config.workdir}: encoder.keras, decoder.keras, history.csv, config.json, checkpoints/, logs/")
    print(f"next: {sibling(argv[0], 'sample')} --workdir={config.workdir} --grid 15; tensorboard --logdir "
          f"{os.path.dirname(os.path.abspath(config.workdir))}")
    return 0


def callback_from_path(path):
    """The Keras callback ``--callback=module:Name[:{json keyword arguments}]`` names, made.

    Raises:
      TfvaeError: the module or name cannot be imported, the arguments are not a JSON object, or the object made
        is not a ``keras.callbacks.Callback``.
    """
    import importlib
    import json

    import keras

    from tfvae.errors import TfvaeError

    module, _, rest = path.partition(":")
    name, _, arguments = rest.partition(":")
    if not (module and name):
        raise TfvaeError(f"--callback={path}: give it as module:Name, e.g. keras.callbacks:TerminateOnNaN")
    try:
        kwargs = json.loads(arguments) if arguments else {}
    except json.JSONDecodeError as e:
        raise TfvaeError(f"--callback={path}: its arguments are not JSON ({e.msg})") from None
    if not isinstance(kwargs, dict):
        raise TfvaeError(f"--callback={path}: its arguments must be a JSON object of keyword arguments")
    try:
        made = getattr(importlib.import_module(module), name)(**kwargs)
    except (ImportError, AttributeError) as e:
        raise TfvaeError(f"--callback={path}: cannot import it ({e})") from None
    except TypeError as e:
        raise TfvaeError(f"--callback={path}: {e}") from None
    if not isinstance(made, keras.callbacks.Callback):
        raise TfvaeError(f"--callback={path} made a {type(made).__name__}, not a keras.callbacks.Callback")
    return made


def sibling(program, command):
    """How the user runs ``command`` beside ``program`` (argv[0]): ``tfvae sample`` after ``tfvae train``,
    ``python sample.py`` after ``python train.py``."""
    return f"tfvae {command}" if program.split()[0] == "tfvae" else f"python {command}.py"
