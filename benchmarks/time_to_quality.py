"""Time to a good model: tfvae's default configuration against the keras.io example's own 10 epochs.

    python benchmarks/time_to_quality.py                       # the defaults, as train.py would train
    python benchmarks/time_to_quality.py --precision=float32    # any train.py flag changes (a)

1. (b) benchmarks/keras_example.py, as published, trains 10 epochs on full Fashion-MNIST (plain fit on a NumPy
   array, batch 128); its test loss after them is the target, its fit time the reference.
2. (a) tfvae's default configuration (train.py's flags, Fashion-MNIST) trains through ``training.train`` -- the
   very function train.py calls, with its run directory, checkpoints, per-epoch validation and TensorBoard
   logs -- and every ``--probe_every`` epochs the benchmark measures the test loss; training stops at the
   first probe at or below the target.

Times are wall-clock from the start of fit (graph tracing included; imports, data loading and model building
excluded) to the end of the 10th epoch (b) or to the probe that reaches the target (a), without the time the
probes themselves take. (a)'s time includes what train.py does at each epoch's end (validation pass,
checkpoint, model export, TensorBoard pictures); (b) does none of that. The test loss is the same
single-sample negative ELBO for both (sum over pixels, mean over images).
"""

import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from tfvae import startup  # noqa: E402

startup.quiet_tensorflow_startup()  # TensorFlow without its C++ start-up notices and info logs

from absl import app, flags  # noqa: E402

import train  # noqa: E402  (defines train.py's flags, so (a) is configured exactly as train.py does)

flags.DEFINE_integer("baseline_epochs", 10, "Epochs of the keras.io example whose test loss is the target.")
flags.DEFINE_float("probe_every", 0.25, "Measure (a)'s test loss every this many epochs.", lower_bound=0.01)
flags.DEFINE_float("target", 0.0, "Skip (b) and use this test loss as the target (for quick checks).")
flags.DEFINE_float("baseline_seconds", 0.0, "With --target: (b)'s time, to print the ratio.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    import dataclasses

    import keras
    import keras_example
    import tensorflow as tf

    from tfvae import training

    config = train.config_from_flags()
    config.dataset = "fashion_mnist"
    config.workdir = tempfile.mkdtemp(prefix="tfvae-ttq-")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    # (b): the keras.io example, 10 epochs.
    if FLAGS.target:
        target, baseline_seconds = FLAGS.target, FLAGS.baseline_seconds
        print(f"(b) skipped: target test loss {target:.2f} given, baseline time {baseline_seconds:.0f} s")
    else:
        from tfvae import data as data_lib

        keras.utils.set_random_seed(0)
        ds = data_lib.load_dataset("fashion_mnist", data_dir=config.data_dir or None, download=config.download)
        x_train = ds.x_train.astype("float32") / 255.0
        x_test = ds.x_test.astype("float32") / 255.0
        baseline = keras_example.build_vae()
        epoch_ends = []

        class EpochTimes(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                epoch_ends.append(time.perf_counter())

        start = time.perf_counter()
        baseline.fit(x_train, epochs=FLAGS.baseline_epochs, batch_size=128, verbose=0, callbacks=[EpochTimes()])
        baseline_seconds = time.perf_counter() - start
        target = float(baseline.evaluate(x_test, batch_size=128, verbose=0, return_dict=True)["loss"])
        per_epoch = ", ".join(f"{b - a:.1f}" for a, b in zip([start] + epoch_ends, epoch_ends))
        print(f"(b) keras.io example: test loss {target:.2f} after {FLAGS.baseline_epochs} epochs in "
              f"{baseline_seconds:.1f} s (epochs: {per_epoch} s)")
        del baseline

    # (a): the default configuration through training.train, probed until it reaches the target.
    class Probe(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.elapsed, self.started, self.curve, self.reached = 0.0, None, [], None

        def on_train_begin(self, logs=None):
            self.started = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            step = int(self.model.optimizer.iterations.numpy())  # batch ends come every steps_per_execution steps
            if step < self.next_probe:
                return
            self.next_probe = (step // self.every + 1) * self.every
            now = time.perf_counter()
            self.elapsed += now - self.started
            loss = self.test_loss()
            epochs = step / self.steps_per_epoch
            self.curve.append((epochs, self.elapsed, loss))
            print(f"  (a) epoch {epochs:5.2f}  {self.elapsed:7.1f} s  test loss {loss:.2f}", flush=True)
            if loss <= target and self.reached is None:
                self.reached = (epochs, self.elapsed, loss)
                self.model.stop_training = True
            self.started = time.perf_counter()

        def test_loss(self):
            # The probe must not disturb training: its own loop, and the sampling noise stream restored.
            generators = [v for v in self.model.non_trainable_variables if "seed_generator" in v.path]
            saved = [v.numpy() for v in generators]
            total, count = 0.0, 0
            for batch in self.test_batches:
                total += float(self.eval_step(batch)) * int(batch["image"].shape[0])
                count += int(batch["image"].shape[0])
            for v, value in zip(generators, saved):
                v.assign(value)
            return total / count

    probe = Probe()
    probe_config = dataclasses.replace(config)
    dataset = training.load_data(probe_config)
    _, test_ds = training.pipelines(probe_config, dataset)
    probe.test_batches = list(test_ds)
    probe.steps_per_epoch = training.steps_per_epoch(config, len(dataset.x_train))
    probe.every = max(int(round(FLAGS.probe_every * probe.steps_per_epoch)), 1)
    probe.next_probe = probe.every

    class Bind(keras.callbacks.Callback):
        def set_model(self, model):
            probe.eval_step = tf.function(lambda batch: model.compute_terms(batch, training=False)["loss"])

    result = training.train(config, verbose=0, log=lambda m: print(f"  {m}"), callbacks=[Bind(), probe])
    config = result["config"]  # the run's own: the precision policy actually used
    print(f"(a) settings: precision={config.precision}, jit_compile={config.jit_compile}, batch {config.batch_size}, "
          f"learning rate {config.learning_rate} ({config.lr_schedule}, warm-up {config.warmup_epochs} epochs), "
          f"{config.epochs}-epoch recipe")
    if probe.reached:
        epochs, seconds, loss = probe.reached
        print(f"(a) tfvae default: test loss {loss:.2f} <= {target:.2f} after {epochs:.2f} epochs, {seconds:.1f} s")
        if baseline_seconds:
            print(f"time to the baseline's 10-epoch quality: (a) {seconds:.1f} s vs (b) {baseline_seconds:.1f} s = "
                  f"{seconds / baseline_seconds:.2f} of the baseline's time (goal <= 0.25)")
    else:
        print(f"(a) did not reach {target:.2f} in {result['epochs']} epochs (final test loss {result['loss']:.2f})")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    app.run(main)
