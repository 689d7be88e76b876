"""Per-epoch overhead: the share of an epoch that is not its train steps, part by part.

    python benchmarks/epoch_overhead.py                        # Fashion-MNIST, the default conv VAE, 2 epochs
    python benchmarks/epoch_overhead.py --epochs=3 --latent=16 # any train.py setting

Trains through ``tfvae.training.train`` (the code train.py runs) with a timing callback, and splits each epoch's
wall time into: the train steps (first batch to last), the validation pass, the run's end-of-epoch writes
(TensorBoard scalars and images, history.csv, the checkpoint, the exports), and the gap until the next epoch
starts (one ``fit`` call per epoch: its set-up). The first epoch includes tracing; the figures that count are the
later epochs'. Then times a checkpoint and the two exports of the trained model alone. Prints the CPU flags and the
load average; run it alone on the machine.
"""

import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from benchmarks.common import describe_machine, load_average  # noqa: E402


def main():
    import keras

    from tfvae import training
    from tfvae.config import Config

    class EpochClock(keras.callbacks.Callback):
        """Times each epoch's parts: the caller's callbacks run after the run's own, so this epoch end follows
        the run's writes."""

        def __init__(self):
            super().__init__()
            self.rows, self.last_end = [], None

        def on_epoch_begin(self, epoch, logs=None):
            self.begin = time.perf_counter()
            self.gap = self.begin - self.last_end if self.last_end else float("nan")
            self.test_begin = self.test_end = None

        def on_test_begin(self, logs=None):
            self.test_begin = time.perf_counter()

        def on_test_end(self, logs=None):
            self.test_end = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            end = time.perf_counter()
            self.rows.append(dict(epoch=epoch + 1, train=self.test_begin - self.begin,
                                  validation=self.test_end - self.test_begin, writes=end - self.test_end,
                                  gap=self.gap))
            self.last_end = end

    settings = dict(model="vae", dataset="fashion_mnist", latent=2, epochs=2)
    for argument in sys.argv[1:]:
        key, _, value = argument.lstrip("-").partition("=")
        settings[key] = type(getattr(Config(), key))(value) if not isinstance(getattr(Config(), key), bool) else (
            value.lower() in ("1", "true"))
    print(f"machine: {describe_machine()}; load average at start: {load_average()}")
    clock = EpochClock()
    with tempfile.TemporaryDirectory() as workdir:
        config = Config(**settings, workdir=os.path.join(workdir, "run"))
        result = training.train(config, verbose=0, callbacks=[clock])
        writes = time_writes(result["config"])
    run = result["config"]
    print(f"{run.dataset}: {run.num_examples} train images, batch {run.batch_size}, steps per call "
          f"{run.steps_per_execution}, precision {run.precision}, jit_compile {run.jit_compile}")
    print("epoch  train s  validation s  writes s  gap s  overhead share")
    for row in clock.rows:
        gap = row["gap"] if row["gap"] == row["gap"] else 0.0  # the first epoch has none
        total = row["train"] + row["validation"] + row["writes"] + gap
        print(f"{row['epoch']:5d}  {row['train']:7.2f}  {row['validation']:12.2f}  {row['writes']:8.2f}  "
              f"{gap:5.2f}  {100 * (total - row['train']) / total:5.1f}%")
    print("the run's model, each write alone (7 after a warm-up; median, min-max s): "
          + "; ".join(f"{name} {statistics.median(v):.3f} ({min(v):.3f}-{max(v):.3f})" for name, v in writes.items()))
    print(f"load average at end: {load_average()}")


def time_writes(config):
    """Seconds of a checkpoint (weights and optimizer, state.json and its sha256) and of the two exports of the
    run's model, written 8 times each into the run directory (the first, a warm-up, not counted)."""
    from tfvae import training

    model = training.create_model(config)
    training.Checkpointer(config.workdir, keep=2).restore(model, log=lambda *_: None)
    checkpointer = training.Checkpointer(config.workdir, keep=config.keep_checkpoints)
    times = {"checkpoint": [], "exports": []}
    for i in range(8):
        started = time.perf_counter()
        checkpointer.save(model, config.epochs + 1 + i)
        saved = time.perf_counter()
        training.export_models(model, config.workdir)
        if i:
            times["checkpoint"].append(saved - started)
            times["exports"].append(time.perf_counter() - saved)
    return times


if __name__ == "__main__":
    main()
