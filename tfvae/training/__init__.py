"""Training: strategy choice, data, the fit loop, checkpoints with resume, and the run directory.

A run directory holds everything a run produces::

    config.json            the resolved Config
    history.csv            one row per finished epoch: losses, test losses, seconds, examples/s
    checkpoints/           ckpt-<epoch>[-<step>].weights.h5 (model + optimizer state): the newest one and the last
                           --keep_checkpoints end-of-epoch ones; state.json lists them with their noise state,
                           size and sha256 (a damaged newest one is skipped on resume for the newest good one)
    encoder.keras          images [0, 1] (+ one-hot labels) -> {z_mean, z_log_var, z}
    decoder.keras          z (+ one-hot labels) -> logits
    logs/                  TensorBoard: train/ and validation/ scalars, images/ pictures; step = epoch (1, 2, ...)
                           latent/: the Projector's files and the traversal, after the last epoch (tfvae.projector)
    skipped_files.txt      folder data only: the files that could not be decoded, and why
    .lock                  held (fcntl.flock) by the train.py writing the directory

Running the same command again resumes where the last checkpoint left off: after the last finished epoch, or
with ``--checkpoint_every_steps`` inside an epoch, skipping the batches already trained on. The training data
is one stream whose order depends only on the seed (``data.make_pipeline(repeat=True)``), so a resumed run
sees exactly the batches an uninterrupted one would.

What a kill at any moment leaves: every file is written under a temporary name and renamed into place
(``tfvae.files``), and an epoch is recorded in this order: TensorBoard scalars and images (flushed),
history.csv, the checkpoint (weights, then state.json naming them), encoder.keras and decoder.keras. The
checkpoint is the commit point: on resume, history rows and TensorBoard points after it are dropped and
written again, so no epoch is missing or duplicated. A non-finite loss or weight stops the run before
anything of its epoch is written.

The package, one job per module (each imports only the ones listed above it)::

    runtime.py       the tf.distribute strategy, which process is the chief, thread pools, the precision policy
    rundir.py        the run directory's files: history.csv, skipped_files.txt, ``latest``, saved models
    checkpoints.py   Checkpointer (weights, optimizer and noise state; resume), finiteness probes
    model_setup.py   create_model: precision, Adam and its learning-rate schedule; the float32 export
    writers.py       TensorBoard scalars and images
    recorder.py      RunRecorder, the callback that checks each step and writes each epoch in the order above
    loop.py          load_data, pipelines and train(), the fit loop with resume
"""

from tfvae.training.checkpoints import Checkpointer, describe_checkpoint, probe_loss, weights_are_finite
from tfvae.training.loop import load_data, pipelines, train
from tfvae.training.model_setup import (
    MIN_WARMUP_STEPS,
    create_model,
    default_batch_size,
    export_models,
    float32_copy,
    learning_rate,
    policy_copy,
    resolved_batch_size,
    set_learning_rate,
    steps_per_epoch,
)
from tfvae.training.recorder import NonFiniteLoss, RunRecorder
from tfvae.training.rundir import (
    HISTORY_FIELDS,
    SKIPPED_FILES,
    atomic_save_model,
    check_workdir,
    load_history,
    point_latest,
    read_history,
    write_history,
    write_skipped_files,
)
from tfvae.training.runtime import configure_runtime, cpu_has_bfloat16, is_chief, make_strategy, resolve_precision
from tfvae.training.writers import ImageWriter, ScalarWriter

__all__ = [
    "HISTORY_FIELDS", "MIN_WARMUP_STEPS", "SKIPPED_FILES", "Checkpointer", "ImageWriter", "NonFiniteLoss",
    "RunRecorder", "ScalarWriter", "atomic_save_model", "check_workdir", "configure_runtime", "cpu_has_bfloat16",
    "create_model", "default_batch_size", "describe_checkpoint", "export_models", "float32_copy", "is_chief",
    "learning_rate", "load_data", "load_history", "make_strategy", "pipelines", "point_latest", "policy_copy",
    "probe_loss", "read_history", "resolve_precision", "resolved_batch_size", "set_learning_rate",
    "steps_per_epoch", "train", "weights_are_finite", "write_history", "write_skipped_files",
]
