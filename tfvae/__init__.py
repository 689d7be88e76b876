"""tfvae: autoencoders and variational autoencoders that generate images (Keras 3 on TensorFlow).

Importing the package registers its custom layers, so saved ``encoder.keras``/``decoder.keras`` files load
with ``keras.saving.load_model(path, safe_mode=True)``. ``tfvae.load("runs/latest")`` gives a finished run
(``tfvae.api.Run``).

The floors, top first. A module imports only from floors below its own (an import inside a function too), and
modules on one floor import nothing of each other; setup.cfg's ``[importlinter]`` contract says the same and
``lint-imports`` (run by .ci/run) checks it::

    pictures                     sample.py's pictures of a Run (grids, reconstructions, denoising, scatter)
    evaluation | projector       built on a Run: the metrics of a run, its latent space for TensorBoard,
      | explorer                 the TensorBoard plugin that explores it interactively
    api | training               a finished run (Run, load) | the fit loop, which writes a run directory
                                 (it knows nothing of api or projector: train.py passes the Projector as a hook)
    samplers | code_grids        the parts a Run is made of, each given what it needs: the samplers of codes
      | scores | latent_views    (prior, gmm, two_stage, diffusion, learned): fitting, drawing, storing them in
      | run_data                 a run directory's samplers/ (read, or fitted and written), a run's samplers by name |
                                 a vqvae's side of a Run: its code grids, their indices, its PixelCNN prior |
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
                                 module that touches Keras's private attributes (each wrapped, each tested
                                 against the installed Keras)

The scripts (train.py, sample.py, evaluate.py) sit on top: they parse flags, build a Config or options, call
one library function and translate its errors into flag names (``tfvae.errors.flag_message``). They first call
``quiet_startup.quiet_tensorflow_startup()`` (beside them, outside the package): importing tfvae changes no file
descriptor, logger or matplotlib backend.
"""

__version__ = "0.1.0"  # the one place of the version: setup.cfg reads it (version = attr: tfvae.__version__)

from tfvae import models  # registers the custom layers
from tfvae.api import Run, load  # tfvae.load("runs/latest"): a finished run from Python

__all__ = ["Run", "__version__", "load", "models"]
