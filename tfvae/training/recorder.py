"""The Keras callback that records a run: per-step loss checks, checkpoints, and each epoch's files in order."""

import math
import os
import time

import keras
import tensorflow as tf

from tfvae import files
from tfvae.errors import TfvaeError
from tfvae.rundir import write_history
from tfvae.training.checkpoints import Checkpointer, describe_checkpoint, probe_loss, weights_are_finite
from tfvae.training.model_setup import export_models
from tfvae.training.writers import ScalarWriter

EXPORT_SHARE = 0.05  # the automatic export schedule's bound on the exports' share of a training's time


def export_due(epoch, *, first, last, every, since_last=None, last_seconds=None):
    """Whether encoder.keras and decoder.keras are written after ``epoch`` (1-based) finished epochs.

    Always after the ``first`` epoch a training runs (a resumed one's too) and the ``last`` of the run; between
    them every ``every`` epochs, or with ``every`` 0 whenever the ``since_last`` seconds since the last export ended
    are at least (1 - s) / s times the ``last_seconds`` that export took (s = ``EXPORT_SHARE``): each export then
    follows at least 19 times its own time of training, so exports take at most a twentieth of it.
    """
    if epoch in (first, last):
        return True
    if every:
        return epoch % every == 0
    return since_last >= (1.0 - EXPORT_SHARE) / EXPORT_SHARE * last_seconds


class NonFiniteLoss(TfvaeError):
    """The loss or the weights became NaN or infinite; nothing of that epoch was saved."""


class RunRecorder(keras.callbacks.Callback):
    """Records the run: checks every step's loss, checkpoints, and at each epoch's end writes the epoch.

    An epoch is written in this order (the ``tfvae.training`` package docstring says why): timings into the
    logs; a check that the losses and weights are finite; TensorBoard scalars and images; history.csv; the
    checkpoint (the commit point); encoder.keras and decoder.keras when ``export_due`` says so (every epoch's
    checkpoint is what a resume starts from; the exports are what sampling reads, and rebuilding them in float32
    and writing them every epoch would cost a fast device a large share of a short epoch).

    Before a checkpoint inside an epoch, the weights and the loss they give on a fixed ``probe`` batch must be
    finite: a step's loss is computed before its update, so a diverging update would otherwise be checkpointed.
    (At an epoch's end the validation loss, computed after the last update, does that.)

    Args:
      workdir: the run directory.
      num_examples: training examples per epoch.
      batch_size: examples per step.
      history: the rows of history.csv kept so far (this list is appended to).
      images: an ``ImageWriter``, or None.
      probe: a batch whose loss checks the weights before each checkpoint, or None.
      checkpoint_every_steps: also checkpoint every this many steps inside an epoch (0: at epoch ends only).
      keep_checkpoints: end-of-epoch checkpoints kept (see ``Checkpointer``).
      learning_rate: the --learning_rate flag, which advice about the rate names (under a schedule it is the
        peak, not the current rate); default: the optimizer's current rate.
      export_every: export every this many epochs (0: automatically, ``export_due``).
      epochs: the run's last epoch, always exported (default: none known, every epoch's ``export_due`` decides).
      log: where one-line messages go.
    """

    def __init__(self, workdir, num_examples, history, *, batch_size=None, images=None, probe=None,
                 checkpoint_every_steps=0, keep_checkpoints=2, learning_rate=None, export_every=0, epochs=None,
                 log=print):
        super().__init__()
        self.workdir = workdir
        self.num_examples = num_examples
        self.batch_size = batch_size or num_examples
        self.steps_per_epoch = math.ceil(num_examples / self.batch_size)
        self.history_path = os.path.join(workdir, "history.csv")
        self.rows = history
        self.checkpointer = Checkpointer(workdir, keep=keep_checkpoints)
        self.scalars = ScalarWriter(os.path.join(workdir, "logs"))
        self.images = images
        self.probe = probe
        self.checkpoint_every_steps = checkpoint_every_steps
        self.learning_rate_flag = learning_rate
        self.log = log
        self.resume_epoch, self.resume_step, self.resume_metrics = None, 0, {}
        self.epoch_losses = [float(r["loss"]) for r in history if r.get("loss")]
        self.last_logs = None  # the last epoch's logs, its validation pass's ``val_*`` among them
        self.step_losses = []
        self.export_every, self.last_epoch = export_every, epochs
        self.first_epoch = None  # the first epoch this training finishes
        self.exported = None  # (epoch, step in epoch) of the weights last exported by this training
        self.export_end = self.export_seconds = None

    def resume_at(self, epoch, step_in_epoch, metrics):
        """The next fit starts ``step_in_epoch`` batches into ``epoch`` (0-based), with these running sums."""
        self.resume_epoch, self.resume_step, self.resume_metrics = epoch, step_in_epoch, metrics or {}

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.epoch_start, self.train_end = epoch, time.perf_counter(), None
        self.first_step = self.step = 0
        if epoch == self.resume_epoch:  # fit has just reset the metrics: put back the epoch's running sums
            self.first_step = self.step = self.resume_step
            for metric in self.model.metrics:
                for variable, value in zip(metric.variables, self.resume_metrics.get(metric.name, ())):
                    variable.assign(value)
        self.global_step = epoch * self.steps_per_epoch + self.step

    def on_train_batch_end(self, batch, logs=None):
        self.step = self.first_step + batch + 1
        loss = float((logs or {}).get("loss", 0.0))
        if not math.isfinite(loss):
            raise NonFiniteLoss(self._non_finite_message(f"the loss became {loss}", self.epoch + 1, self.step))
        self.step_losses.append(loss)
        files.crash_point("step-end")
        every = self.checkpoint_every_steps
        global_step, previous = self.epoch * self.steps_per_epoch + self.step, self.global_step
        self.global_step = global_step
        # "Crossed a multiple of every" rather than "is one": fit may report several steps at once.
        if every and global_step // every > previous // every and self.step < self.steps_per_epoch:
            self._check_finite(self.epoch + 1, self.step)
            metrics = {m.name: [float(keras.ops.convert_to_numpy(v)) for v in m.variables] for m in self.model.metrics}
            self.checkpointer.save(self.model, self.epoch, self.step, metrics)

    def on_test_begin(self, logs=None):
        if self.train_end is None:
            self.train_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        self.last_logs = dict(logs)
        now = time.perf_counter()
        train_seconds = (self.train_end or now) - self.epoch_start
        examples = self._examples(self.first_step, self.step)
        logs["examples_per_sec"] = examples / max(train_seconds, 1e-9)
        learning_rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        self._check_finite(epoch + 1, self.step, logs, probe=False)
        self._warn_if_diverging(epoch + 1, float(logs.get("loss", 0.0)))

        self.scalars.write(epoch + 1, {**logs, "learning_rate": learning_rate})
        files.crash_point("scalars-written")
        if self.images is not None:
            self.images.write(self.model, epoch + 1)
            files.crash_point("images-written")
        row = {k: float(v) for k, v in logs.items()}
        row.update(epoch=epoch + 1, seconds=now - self.epoch_start, train_seconds=train_seconds,
                   learning_rate=learning_rate)
        self.rows.append({k: _fmt(v) for k, v in row.items()})
        write_history(self.history_path, self.rows)
        self.checkpointer.save(self.model, epoch + 1)
        self.first_epoch = self.first_epoch or epoch + 1
        if export_due(epoch + 1, first=self.first_epoch, last=self.last_epoch, every=self.export_every,
                      since_last=None if self.export_end is None else time.perf_counter() - self.export_end,
                      last_seconds=self.export_seconds):
            self.export((epoch + 1, 0))

    def export(self, at):
        """Writes encoder.keras and decoder.keras from the model's weights, those of ``at`` (epoch, step)."""
        started = time.perf_counter()
        export_models(self.model, self.workdir)
        self.export_end = time.perf_counter()
        self.export_seconds, self.exported = self.export_end - started, at

    def export_if_behind(self):
        """Exports the weights of the last finished epoch unless they were (a training stopped early by a
        callback, e.g. EarlyStopping, before its last epoch's export)."""
        if self.first_epoch is not None and self.exported != (self.epoch + 1, 0):
            self.export((self.epoch + 1, 0))

    def export_on_interrupt(self):
        """After Ctrl-C: exports the newest checkpoint's weights (what a resume starts from) unless this training
        exported them already, and says so in one line; a failure is said too, never raised (the Ctrl-C stops the
        run either way, and the checkpoint is intact)."""
        try:
            state = self.checkpointer.read_state()
            at = (state.get("epoch"), state.get("step_in_epoch", 0)) if state else None
            if at is None or at == self.exported:
                return
            self.checkpointer.restore(self.model, log=self.log, repair=False)
            self.export(at)
        except (TfvaeError, OSError) as e:
            self.log(f"stopped; the exports were not brought up to the checkpoint ({e})")
            return
        self.log(f"stopped; exported encoder.keras and decoder.keras from the checkpoint after epoch {at[0]}"
                 + (f" + {at[1]} steps" if at[1] else ""))

    def close(self):
        """Closes the TensorBoard writers (everything was flushed at each epoch's end: errors don't matter)."""
        for writer in (self.scalars, self.images):
            try:
                if writer is not None:
                    writer.close()
            except (OSError, tf.errors.OpError):
                pass

    def _examples(self, first_step, end_step):
        """Training examples in the batches [first_step, end_step) of an epoch (the last one may be short)."""
        short = self.steps_per_epoch * self.batch_size - self.num_examples
        return (end_step - first_step) * self.batch_size - (short if end_step == self.steps_per_epoch else 0)

    def _check_finite(self, epoch, step, logs=None, probe=True):
        """Raises NonFiniteLoss unless ``logs``, the weights and (if ``probe``) the probe batch's loss are finite."""
        bad = sorted(k for k, v in (logs or {}).items() if not math.isfinite(float(v)))
        if bad:
            what = f"{', '.join(bad)} became {float(logs[bad[0]])}"
        elif not weights_are_finite(self.model):
            what = "the weights became NaN or infinite"
        elif probe and self.probe is not None and not math.isfinite(probe_loss(self.model, self.probe)):
            what = "the updated weights give a non-finite loss"
        else:
            return
        raise NonFiniteLoss(self._non_finite_message(what, epoch, step))

    def _non_finite_message(self, what, epoch, step):
        checkpoint = describe_checkpoint(self.checkpointer.read_state())
        kept = (f"{self.workdir} keeps its checkpoint after {checkpoint}" if checkpoint
                else f"no checkpoint was written to {self.workdir}")
        learning_rate = self._learning_rate_flag()
        finite = [x for x in self.step_losses if math.isfinite(x)]
        if len(finite) >= 2 and max(finite[-10:]) > 10 * min(finite):
            cause = (f"the loss diverged (it rose from {min(finite):.4g} to {max(finite[-10:]):.4g} before): the "
                     f"learning rate is too high; lower --learning_rate (now {learning_rate:g}), e.g. "
                     f"--learning_rate={learning_rate / 10:g}")
        elif len(self.step_losses) <= max(10, self.steps_per_epoch // 10):  # this early in the run
            cause = (f"this early, the learning rate is probably too high; lower --learning_rate (now "
                     f"{learning_rate:g}), e.g. --learning_rate={learning_rate / 10:g}")
        else:
            cause = (f"if it recurs, lower --learning_rate (now {learning_rate:g}) or check the data near this "
                     "point")
        return (f"{what} at epoch {epoch}, step {step} of {self.steps_per_epoch}: training stopped without "
                f"saving that epoch ({kept}); {cause}")

    def _learning_rate_flag(self):
        if self.learning_rate_flag is not None:
            return self.learning_rate_flag
        return float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def _warn_if_diverging(self, epoch, loss):
        if self.epoch_losses and 0 < min(self.epoch_losses) and loss > 100 * min(self.epoch_losses):
            self.log(f"warning: epoch {epoch}'s loss {loss:.4g} is over 100x the best so far "
                     f"({min(self.epoch_losses):.4g}): training is diverging; lower --learning_rate (now "
                     f"{self._learning_rate_flag():g})")
        self.epoch_losses.append(loss)


def _fmt(value):
    return f"{value:.6g}" if isinstance(value, float) else value
