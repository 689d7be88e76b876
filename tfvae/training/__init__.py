"""Training: strategy choice, data, the fit loop, checkpoints with resume; it writes the run directory.

The run directory's files and their formats are ``tfvae.rundir``'s; this package writes them.

Running the same command again resumes where the last checkpoint left off: after the last finished epoch, or
with ``--checkpoint_every_steps`` inside an epoch, skipping the batches already trained on. Each epoch's data
is a function of the seed and the epoch alone (``data.make_pipeline(epoch=...)``), so a resumed run sees
exactly the batches an uninterrupted one would. Each epoch is one ``fit`` on that epoch's finite pipeline, so
that every call runs ``--steps_per_execution`` steps but an epoch's last, which is short; the caller's callbacks
still see one training (``on_train_begin`` once).

What a kill at any moment leaves: every file is written under a temporary name and renamed into place
(``tfvae.files``), and an epoch is recorded in this order: TensorBoard scalars and images (flushed),
history.csv, the checkpoint (weights, then state.json naming them), then encoder.keras and decoder.keras when an
export is due (``--export_every``: by default after a training's first epoch, the last, and as often between as
keeps the exports under a twentieth of the time; after a Ctrl-C, from the checkpoint). The
checkpoint is the commit point: on resume, history rows and TensorBoard points after it are dropped and
written again, so no epoch is missing or duplicated. A non-finite loss or weight stops the run before
anything of its epoch is written.

The package, one job per module (each imports only the ones listed above it)::

    runtime.py       the tf.distribute strategy, which process is the chief, thread pools, the precision policy
    checkpoints.py   Checkpointer (weights, optimizer and noise state into the files tfvae.rundir lists; resume)
    model_setup.py   create_model: precision, Adam and its learning-rate schedule; the float32 export
    writers.py       TensorBoard scalars and images
    recorder.py      RunRecorder, the callback that checks each step and writes each epoch in the order above
    loop.py          load_data, pipelines and train(), the fit loop with resume
    saved_runs.py    save_run: the run directory of a model fitted by hand (export_models' files, its data)

Training imports neither ``tfvae.api`` nor ``tfvae.projector``: work after the last epoch (train.py writes the
Projector's files) is a hook the caller passes, ``train(config, on_finished=...)``.
"""

from tfvae.training.checkpoints import Checkpointer, describe_checkpoint, probe_loss, weights_are_finite
from tfvae.training.loop import load_data, pipelines, train
from tfvae.training.model_setup import (
    MIN_WARMUP_STEPS,
    create_model,
    default_batch_size,
    default_steps_per_execution,
    export_models,
    float32_copy,
    learning_rate,
    policy_copy,
    resolve_jit_compile,
    resolved_batch_size,
    set_learning_rate,
    steps_per_epoch,
    trained_examples,
)
from tfvae.training.recorder import NonFiniteLoss, RunRecorder, export_due
from tfvae.training.runtime import configure_runtime, cpu_has_bfloat16, is_chief, make_strategy, resolve_precision
from tfvae.training.saved_runs import save_run
from tfvae.training.writers import ImageWriter, ScalarWriter

__all__ = [
    "Checkpointer", "ImageWriter", "MIN_WARMUP_STEPS", "NonFiniteLoss", "RunRecorder", "ScalarWriter",
    "configure_runtime", "cpu_has_bfloat16", "create_model", "default_batch_size", "default_steps_per_execution",
    "describe_checkpoint", "export_due", "export_models", "float32_copy", "is_chief", "learning_rate", "load_data",
    "make_strategy", "pipelines", "policy_copy", "probe_loss", "resolve_jit_compile", "resolve_precision",
    "resolved_batch_size", "save_run", "set_learning_rate", "steps_per_epoch", "train", "trained_examples",
    "weights_are_finite",
]
