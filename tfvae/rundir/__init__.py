"""The run directory: its on-disk format, read and written here and nowhere else.

A run directory holds everything a run produces::

    config.json            the run's Config: the flags' values, then what the data turned out to be
                           (image_shape, num_classes, num_examples, class_names, data_source; see
                           ``tfvae.config.Config.with_data``)
    history.csv            one row per finished epoch: losses, test losses, seconds, examples/s
    checkpoints/           ckpt-<epoch>[-<step>].weights.h5 (model + optimizer state): the newest one and the last
                           --keep_checkpoints end-of-epoch ones; state.json lists them with their noise state,
                           size and sha256 (a damaged newest one is skipped on resume for the newest good one)
    encoder.keras          images [0, 1] (+ one-hot labels) -> {z_mean, z_log_var, z}
    decoder.keras          z (+ one-hot labels) -> logits
    logs/                  TensorBoard: train/ and validation/ scalars, images/ pictures; step = epoch (1, 2, ...)
                           latent/: the Projector's files and the traversal, after the last epoch (tfvae.projector)
    prior.keras, prior/    a vqvae's PixelCNN prior over its code grids, and its training checkpoint (prior_file.py)
    samplers/<name>.npz    a sampler fitted to the training codes after training (gmm, two_stage, diffusion),
                           written on its first use by sample.py, evaluate.py or ``Run.sample``: ``tfvae.samplers.npz``
                           writes and reads them, with the samplers they hold
    skipped_files.txt      folder data only: the files that could not be decoded, and why
    data.npz               arrays data only (``tfvae.train(config, data=...)``, ``tfvae.save_run``): the images (and
                           labels) the run was given, split into train and test (``tfvae.data.arrays``)
    .lock                  held (fcntl.flock) by the train.py writing the directory

and beside it, ``latest``: one line naming the newest run directory (``resolve_workdir`` reads it).

One job per module (each imports only the ones listed above it)::

    latest.py        ``latest``: written by ``point_latest``, read by ``resolve_workdir``
    config_file.py   config.json (``load_config``, ``check_workdir``), skipped_files.txt, files in their places
    history.py       history.csv, and its repair from the TensorBoard scalars
    state.py         checkpoints/state.json (``CheckpointState``), ``epochs_trained``
    exports.py       encoder.keras and decoder.keras: ``save_model``, ``load_model_file`` and their checks,
                     ``ExportedModels`` (a run's two, loaded on first use)
    prior_file.py    a vqvae's prior.keras and prior/: ``save_prior``, ``load_prior``, its checkpoint and state

What writes them, and in which order, is ``tfvae.training``'s (its docstring); ``tfvae.load`` reads them (and
writes the fitted samplers, ``tfvae.api.Run.sampler``).
"""

from tfvae.rundir.config_file import (
    RUN_FILES,
    RUN_FOLDERS,
    SKIPPED_FILES,
    check_run_files,
    check_workdir,
    load_config,
    write_config,
    write_skipped_files,
)
from tfvae.rundir.exports import (
    MODEL_NAMES,
    ExportedModels,
    check_exports,
    load_model_file,
    model_misfit,
    save_model,
)
from tfvae.rundir.history import HISTORY_FIELDS, history_from_events, load_history, read_history, write_history
from tfvae.rundir.latest import LATEST, point_latest, resolve_workdir
from tfvae.rundir.prior_file import (
    PRIOR_DIR,
    PRIOR_FILE,
    load_prior,
    prior_checkpoint_path,
    prior_path,
    read_prior_state,
    save_prior,
    save_prior_checkpoint,
)
from tfvae.rundir.state import CheckpointState, describe_checkpoint, epochs_trained, restart_advice

__all__ = [
    "HISTORY_FIELDS", "LATEST", "MODEL_NAMES", "PRIOR_DIR", "PRIOR_FILE", "load_prior", "prior_checkpoint_path",
    "prior_path", "read_prior_state", "save_prior", "save_prior_checkpoint", "RUN_FILES", "RUN_FOLDERS",
    "SKIPPED_FILES", "CheckpointState", "ExportedModels",
    "check_exports", "check_run_files", "check_workdir", "describe_checkpoint", "epochs_trained",
    "history_from_events", "load_config", "load_history", "load_model_file", "model_misfit", "point_latest",
    "read_history", "resolve_workdir", "restart_advice", "save_model", "write_config", "write_history",
    "write_skipped_files",
]
