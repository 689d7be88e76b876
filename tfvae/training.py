"""Training: strategy choice, data, the fit loop, checkpoints with resume, and the run directory.

A run directory holds everything a run produces::

    config.json            the resolved Config
    history.csv            one row per finished epoch: losses, test losses, seconds, examples/s
    checkpoints/           ckpt-<epoch>.weights.h5 (model + optimizer + noise state) and state.json
    encoder.keras          images [0, 1] (+ one-hot labels) -> {z_mean, z_log_var, z}
    decoder.keras          z (+ one-hot labels) -> logits
    logs/                  TensorBoard: train/ and validation/ scalars, images/ pictures

Running the same command again resumes from the last finished epoch. Every file is written to a temporary
name and renamed into place, so a run killed mid-write leaves the previous good copy.
"""

import csv
import json
import os
import shutil
import sys
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from tfvae import data as data_lib
from tfvae import sampling
from tfvae.config import Config
from tfvae.errors import TfvaeError
from tfvae.models import build_model, networks

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
        read_tf_config()  # a clear one-line error before TensorFlow sees a malformed TF_CONFIG
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


_TF_CONFIG_EXAMPLE = ('{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                      '"task": {"type": "worker", "index": 0}}')


def read_tf_config(environ=None):
    """The parsed ``TF_CONFIG`` environment variable; TfvaeError (one line) if it is missing or malformed.

    Returns:
      dict with ``cluster`` (job name -> list of "host:port") and ``task`` (``type`` and ``index``).
    """
    text = (os.environ if environ is None else environ).get("TF_CONFIG", "")
    hint = f"set it on every host, e.g. TF_CONFIG='{_TF_CONFIG_EXAMPLE}'"
    if not text.strip():
        raise TfvaeError(f"--strategy=multi_worker needs the TF_CONFIG environment variable; {hint}")
    try:
        tf_config = json.loads(text)
    except json.JSONDecodeError as e:
        raise TfvaeError(f"TF_CONFIG is not valid JSON ({e.msg} at character {e.pos}); {hint}") from None
    cluster = tf_config.get("cluster") if isinstance(tf_config, dict) else None
    task = tf_config.get("task") if isinstance(tf_config, dict) else None
    if not isinstance(cluster, dict) or not cluster or not all(
            isinstance(v, list) and v and all(isinstance(a, str) and ":" in a for a in v) for v in cluster.values()):
        raise TfvaeError(f'TF_CONFIG needs "cluster": {{job: ["host:port", ...]}}; {hint}')
    if not isinstance(task, dict) or task.get("type") not in cluster or not isinstance(task.get("index"), int) \
            or not 0 <= task["index"] < len(cluster[task["type"]]):
        raise TfvaeError(f'TF_CONFIG needs "task": {{"type": one of {sorted(cluster)}, "index": a position in '
                         f'that job\'s list}} (got {task!r}); {hint}')
    return tf_config


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


def atomic_write_text(path, text):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_save_model(model, path):
    """Saves a ``.keras`` file through a temporary name so a kill never leaves a half-written file."""
    tmp = path[: -len(".keras")] + ".tmp.keras"
    model.save(tmp)
    os.replace(tmp, path)


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
    tmp = f"{path}.tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=HISTORY_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


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


def pipelines(config, dataset):
    """The (train, test) tf.data pipelines for ``dataset``."""
    kwargs = dict(num_classes=dataset.num_classes, batch_size=config.batch_size, binarize=config.binarize,
                  seed=config.seed)
    train = data_lib.make_pipeline(dataset.x_train, dataset.y_train, shuffle=True, **kwargs)
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

    mixed_bfloat16 trains ~1.2x faster than float32 on 2 AVX512_BF16 cores (benchmarks/throughput.py) with the
    same quality (tests/test_performance.py; 30 epochs on Fashion-MNIST: test loss 259.9 vs float32's 260.8).
    Without native bfloat16 instructions or without oneDNN, bfloat16 is emulated and slow; GPUs were not
    measured here, so they keep float32.
    """
    if precision != "auto":
        return precision
    onednn_off = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "").lower() in ("0", "false")
    if tf.config.list_physical_devices("GPU") or onednn_off or not cpu_has_bfloat16():
        return "float32"
    return "mixed_bfloat16"


def learning_rate(config, steps_per_epoch):
    """Adam's learning rate: ``config.learning_rate``, or a schedule of optimizer steps.

    "cosine" warms up linearly from 0 over ``warmup_epochs``, then decays along a half cosine to 0 at the end
    of ``epochs``; ``learning_rate`` is its peak.
    """
    if config.lr_schedule == "constant":
        return config.learning_rate
    total = max(int(round(config.epochs * steps_per_epoch)), 1)
    warmup = min(int(round(config.warmup_epochs * steps_per_epoch)), total - 1)
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
    steps = config.steps_per_execution
    if isinstance(tf.distribute.get_strategy(),
                  (tf.distribute.MirroredStrategy, tf.distribute.MultiWorkerMirroredStrategy)):
        steps = 1  # Keras 3.15's multi-step loop fails under these strategies (keras-team/keras#19246)
    model.compile(optimizer=optimizer, jit_compile=config.jit_compile, steps_per_execution=steps)
    model.optimizer.build(model.trainable_variables)
    return model


def export_models(model, workdir):
    atomic_save_model(model.encoder, os.path.join(workdir, "encoder.keras"))
    atomic_save_model(model.decoder, os.path.join(workdir, "decoder.keras"))


class Checkpointer:
    """Epoch checkpoints (model, optimizer and noise state) in ``<workdir>/checkpoints``.

    ``ckpt-<epoch>.weights.h5`` is written under a temporary name and renamed, then ``state.json`` names it,
    then older checkpoints are removed: at every moment state.json names a complete checkpoint.
    """

    def __init__(self, workdir):
        self.directory = os.path.join(workdir, "checkpoints")
        self.state_path = os.path.join(self.directory, "state.json")

    def last_epoch(self):
        if not os.path.isfile(self.state_path):
            return 0
        with open(self.state_path) as f:
            return int(json.load(f)["epoch"])

    def save(self, model, epoch):
        os.makedirs(self.directory, exist_ok=True)
        name = f"ckpt-{epoch}.weights.h5"
        tmp = os.path.join(self.directory, f"ckpt-{epoch}.tmp.weights.h5")
        model.save_weights(tmp)
        os.replace(tmp, os.path.join(self.directory, name))
        atomic_write_text(self.state_path, json.dumps({"epoch": epoch, "checkpoint": name}) + "\n")
        for old in os.listdir(self.directory):
            if old.startswith("ckpt-") and old != name:
                os.remove(os.path.join(self.directory, old))

    def restore(self, model):
        """Loads the last checkpoint into ``model``; returns the number of finished epochs (0 if none)."""
        if not os.path.isfile(self.state_path):
            return 0
        with open(self.state_path) as f:
            state = json.load(f)
        model.load_weights(os.path.join(self.directory, state["checkpoint"]))
        return int(state["epoch"])


# ---------------------------------------------------------------------------------------------------------
# Callbacks


class RunRecorder(keras.callbacks.Callback):
    """At each epoch's end: adds timings to the logs, then checkpoints, exports and appends to history.csv.

    It must come before the TensorBoard callback so that examples/s reaches TensorBoard too.
    """

    def __init__(self, workdir, num_examples, history):
        super().__init__()
        self.workdir = workdir
        self.num_examples = num_examples
        self.history_path = os.path.join(workdir, "history.csv")
        self.rows = history
        self.checkpointer = Checkpointer(workdir)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.perf_counter()
        self.train_end = None

    def on_test_begin(self, logs=None):
        if self.train_end is None:
            self.train_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        now = time.perf_counter()
        train_seconds = (self.train_end or now) - self.epoch_start
        logs["examples_per_sec"] = self.num_examples / max(train_seconds, 1e-9)
        row = {k: float(v) for k, v in logs.items()}
        row.update(epoch=epoch + 1, seconds=now - self.epoch_start, train_seconds=train_seconds,
                   learning_rate=float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))
        self.checkpointer.save(self.model, epoch + 1)
        export_models(self.model, self.workdir)
        self.rows.append({k: _fmt(v) for k, v in row.items()})
        write_history(self.history_path, self.rows)


class ImageLogger(keras.callbacks.Callback):
    """Writes reconstructions of fixed test images and decoded fixed prior samples to TensorBoard."""

    def __init__(self, logdir, batch, z, labels=None):
        super().__init__()
        self.writer = tf.summary.create_file_writer(os.path.join(logdir, "images"))
        self.batch, self.z, self.labels = batch, z, labels

    def on_epoch_end(self, epoch, logs=None):
        recon = tf.sigmoid(self.model(self.batch)["logits"]).numpy()
        originals = np.asarray(self.batch["image"])
        cols = len(originals)
        samples = sampling.decode(self.model.decoder, self.z, self.labels)
        side = int(np.sqrt(len(self.z)))
        with self.writer.as_default(step=epoch + 1):
            tf.summary.image("reconstructions", sampling.tile(np.concatenate([originals, recon]), 2, cols)[None])
            tf.summary.image("samples", sampling.tile(samples, side, side)[None])
        self.writer.flush()


def _fmt(value):
    return f"{value:.6g}" if isinstance(value, float) else value


# ---------------------------------------------------------------------------------------------------------
# The run


def train(config, strategy=None, verbose=None, log=print, callbacks=()):
    """Trains (or resumes) the run ``config`` describes and writes its run directory.

    Under ``--strategy=multi_worker`` every worker runs this same function; only the chief writes
    ``config.workdir``, the others write to a temporary directory that is removed at the end (Keras's
    multi-worker saving recipe), and every worker resumes from the checkpoint in ``config.workdir``.

    Args:
      config: a Config; validated here and completed with the data's shape and source.
      strategy: a tf.distribute strategy; default ``make_strategy(config.strategy)``.
      verbose: Keras progress-bar mode; default 1 on a terminal, else 2 (one line per epoch).
      log: where one-line messages go.
      callbacks: extra Keras callbacks (benchmarks use them to time epochs).

    Returns:
      dict with the final test ``loss``, ``reconstruction`` and ``kl``, ``epochs`` and ``workdir``.
    """
    config.validate()
    configure_runtime(config, log)  # before anything starts TensorFlow's runtime
    strategy = strategy or make_strategy(config.strategy)  # multi_worker: before any other TensorFlow op
    config.precision = resolve_precision(config.precision)  # config.json records the policy actually used
    chief = is_chief(strategy)
    writedir = config.workdir if chief else tempfile.mkdtemp(prefix="tfvae-worker-")
    try:
        return _train(config, strategy, writedir, chief, verbose, log, list(callbacks))
    finally:
        if not chief:
            shutil.rmtree(writedir, ignore_errors=True)


def _train(config, strategy, writedir, chief, verbose, log, extra_callbacks):
    check_workdir(config)
    keras.utils.set_random_seed(config.seed)
    dataset = load_data(config)
    check_workdir(config)  # again, now that the image shape and classes are known
    log(f"data: {config.dataset} from {dataset.source}; {len(dataset.x_train)} train / "
        f"{len(dataset.x_test)} test images of shape {config.image_shape}")
    train_ds, test_ds = pipelines(config, dataset)

    os.makedirs(writedir, exist_ok=True)
    atomic_write_text(os.path.join(writedir, "config.json"), config.to_json())
    if chief:
        point_latest(writedir)

    with strategy.scope():
        model = create_model(config, len(dataset.x_train))
    initial_epoch = Checkpointer(config.workdir).restore(model)
    history_path = os.path.join(writedir, "history.csv")
    history = [r for r in read_history(history_path) if int(r["epoch"]) <= initial_epoch]
    if initial_epoch:
        log(f"resuming {config.workdir} after epoch {initial_epoch}")

    logdir = os.path.join(writedir, "logs")
    preview = {"image": dataset.x_test[:8].astype("float32") / 255.0}
    labels = None
    if model.conditional:
        preview["label"] = sampling.one_hot(dataset.y_test[:8], config.num_classes)
        labels = sampling.one_hot(np.arange(64) % config.num_classes, config.num_classes)
    callbacks = [
        RunRecorder(writedir, len(dataset.x_train), history),
        keras.callbacks.TensorBoard(logdir, write_graph=False, update_freq="epoch"),
        ImageLogger(logdir, preview, sampling.prior_samples(64, config.latent, config.seed), labels),
        *extra_callbacks,
    ]
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    if initial_epoch < config.epochs:
        model.fit(train_ds, validation_data=test_ds, epochs=config.epochs, initial_epoch=initial_epoch,
                  callbacks=callbacks, verbose=verbose, shuffle=False)
    else:
        log(f"{config.workdir} already finished {initial_epoch} epochs; nothing to train")
        export_models(model, writedir)
    result = model.evaluate(test_ds, verbose=0, return_dict=True)
    return {**{k: float(v) for k, v in result.items()}, "epochs": max(initial_epoch, config.epochs),
            "workdir": config.workdir}
