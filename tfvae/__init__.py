"""tfvae: autoencoders and variational autoencoders that generate images (Keras 3 on TensorFlow).

``tfvae.load("runs/latest")`` gives a finished run (``tfvae.api.Run``). ``import tfvae.models`` (or
``tfvae.models``, ``tfvae.load``, ``tfvae.Run``, first used) registers the custom layers, so saved
``encoder.keras``/``decoder.keras`` files load with ``keras.saving.load_model(path, safe_mode=True)``.

``import tfvae`` itself imports neither TensorFlow nor Keras: its exports are loaded when first used (PEP 562's
module ``__getattr__``), so that ``tfvae.startup`` can quiet TensorFlow's start-up before anything imports it,
and ``tfvae --help`` answers at once.

The floors, top first. A module imports only from floors below its own (an import inside a function too), and
modules on one floor import nothing of each other; setup.cfg's ``[importlinter]`` contract says the same and
``lint-imports`` (run by .ci/run) checks it::

    __main__                     ``python -m tfvae``: the command below, where the PATH has no ``tfvae``
    commands                     the installed ``tfvae`` command (``tfvae train|sample|evaluate``): flags
                                 parsed into a Config or options, one library call, errors in flag names
    pictures                     sample.py's pictures of a Run (grids, reconstructions, denoising, scatter)
    evaluation | projector       built on a Run: the metrics of a run, its latent space for TensorBoard,
      | explorer                 the TensorBoard plugin that explores it interactively
    api | training               a finished run (Run, load) | the fit loop, which writes a run directory
                                 (it knows nothing of api or projector: train.py passes the Projector as a hook)
    samplers | code_grids        the parts a Run is made of, each given what it needs: the samplers of codes
      | scores | latent_views    (prior, gmm, two_stage, diffusion, learned): fitting, drawing, storing them in
      | run_data                 a run directory's samplers/ (read, or fitted and written), a run's samplers by name |
                                 a grid model's side of a Run: its code grids; a vqvae's indices, PixelCNN prior |
                                 a Run's scores: anomaly scores, -ELBO terms and the IWAE NLL | a Run's views
                                 of its latent space: each dimension's use, traversals | a Run's dataset and
                                 its images as the model sees them
    inference | rundir           the one compiled, batched forward path a Run owns | the run directory's
      | config_flags             on-disk format, read and written: latest, config.json, history.csv,
                                 checkpoints/state.json, encoder.keras and decoder.keras, prior.keras |
                                 train.py's flags and docs/flags.md, made from the Config's fields
    config | metrics             the run's configuration | the maths of the metrics, over arrays |
      | arguments                the checks of a Run's arguments (images, labels, codes)
    data | models | flops        datasets and pipelines | networks and model classes | FLOP counts |
      | cluster                  the multi-worker cluster
    losses | picture_arrays      the objectives | array helpers for pictures and draws (the temperature check)
    likelihoods                  the decoders' pixel distributions: layouts, log-probabilities (the 8-bit
                                 likelihood every report uses), means and draws
    files | integrity            atomic writes, locks | checks of files on disk
    errors | fields              TfvaeError: one-line messages for the user | a setting defined once (help,
      | keras_private            bounds, choices), from which flags, config.json and docs/flags.md come | the one
      | startup                  module that touches Keras's private attributes (each wrapped, each tested
                                 against the installed Keras) | the commands' quiet TensorFlow start-up

The commands (``tfvae.commands``) parse flags, build a Config or options, call one library function and
translate its errors into flag names (``tfvae.errors.flag_message``); the repository's train.py, sample.py and
evaluate.py are shims over them. They first call ``tfvae.startup.quiet_tensorflow_startup()``: importing tfvae
changes no file descriptor, logger or matplotlib backend.
"""

import importlib as _importlib

__version__ = "0.1.0"  # the one place of the version: setup.cfg reads it (version = attr: tfvae.__version__)

# name -> the module that defines it, imported when the name is first asked for (tfvae.load("runs/latest")).
_LAZY = {"Run": "tfvae.api", "load": "tfvae.api", "models": "tfvae.models", "save_run": "tfvae.training",
         "train": "tfvae.training"}

__all__ = ["Run", "__version__", "load", "models", "save_run", "train"]


def __getattr__(name):
    """``tfvae.Run``, ``tfvae.load``, ``tfvae.models``, ``tfvae.save_run`` (the run directory of a model fitted
    by hand) and ``tfvae.train`` (the full recipe), imported on first use (PEP 562)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'tfvae' has no attribute {name!r}")
    module = _importlib.import_module(_LAZY[name])
    value = module if module.__name__ == f"tfvae.{name}" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
