"""The fit loop: loading the data, the tf.data pipelines, and train(), which trains or resumes a run."""

import dataclasses
import errno
import math
import os
import re
import shutil
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf

from tfvae import data as data_lib
from tfvae import files, integrity, picture_arrays
from tfvae.errors import TfvaeError
from tfvae.models import model_class, networks
from tfvae.models.adversarial import DISCRIMINATOR_LR_RATIO
from tfvae.rundir import (
    check_exports,
    check_run_files,
    check_workdir,
    load_history,
    point_latest,
    write_config,
    write_skipped_files,
)
from tfvae.training.checkpoints import Checkpointer, describe_checkpoint
from tfvae.training.model_setup import (
    create_model,
    damaged_exports,
    default_steps_per_execution,
    export_models,
    resolved_batch_size,
    set_learning_rate,
    steps_per_epoch,
    trained_examples,
)
from tfvae.training.prior import train_prior
from tfvae.training.recorder import RunRecorder
from tfvae.training.runtime import chief_first, configure_runtime, is_chief, make_strategy, resolve_precision
from tfvae.training.writers import ImageWriter

_DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO)


def load_data(config, log=print):
    """Loads the dataset named by ``config``, as training uses it (``--classes``, ``--binarize=static``).

    A folder is decoded once into its decode cache (``config.cache_dir``), with progress lines to ``log``.
    ``config`` is left as it is: what the data turned out to be is ``dataset.facts`` (a DataFacts), which
    ``config.with_data`` records in the run's Config.

    Raises:
      TfvaeError: the data can't be had, its images don't fit ``config.arch``, or a cvae's data has no labels.
    """
    dataset = data_lib.load_configured(config, log)
    try:
        networks.check_image_shape(dataset.image_shape, config.arch, config.filters)
    except ValueError as e:
        raise TfvaeError(str(e)) from None
    if model_class(config.model).conditional and not dataset.num_classes:
        raise TfvaeError(f"--model={config.model} needs class labels, but {config.dataset} data from "
                         f"{dataset.source} has none; put the images in one subfolder per class, or use --model=vae")
    return dataset


def pipelines(config, dataset, epoch=0, skip_batches=0, replicas=1, test_images=0):
    """The (train, test) tf.data pipelines for ``dataset``, for a strategy of ``replicas`` replicas: the pair of
    ``train_pipeline`` and ``test_pipeline``."""
    return (train_pipeline(config, dataset, epoch, skip_batches, replicas),
            test_pipeline(config, dataset, replicas, test_images))


def _pipeline_settings(config, dataset):
    return dict(num_classes=dataset.num_classes, batch_size=config.batch_size, binarize=config.binarize,
                seed=config.seed, noise=data_lib.parse_noise(config.noise))


def train_pipeline(config, dataset, epoch=0, skip_batches=0, replicas=1, constants=None):
    """The training pipeline: the one (0-based) ``epoch``, finite, from ``skip_batches`` batches in (mirrored at
    random with ``--flip``). Several replicas train on whole batches only (a short last batch could leave a
    replica no image, whose mean loss is NaN; each epoch drops a different few of its shuffled images).
    ``constants``: a dict kept across a training's epochs (``tfvae.data.make_pipeline``)."""
    return data_lib.make_pipeline(dataset.x_train, dataset.y_train, shuffle=True, epoch=epoch,
                                  drop_remainder=replicas > 1, skip_batches=skip_batches, flip=config.flip,
                                  constants=constants, **_pipeline_settings(config, dataset))


def test_pipeline(config, dataset, replicas=1, test_images=0):
    """The test pipeline: one pass, never mirrored, every test image once (no last batch smaller than the replica
    count: it joins the one before); ``test_images`` > 0: the first that many test images only."""
    x_test, y_test = dataset.x_test, dataset.y_test
    if 0 < test_images < len(x_test):
        x_test, y_test = x_test[:test_images], None if y_test is None else y_test[:test_images]
    return data_lib.make_pipeline(x_test, y_test, shuffle=False, min_last_batch=replicas,
                                  **_pipeline_settings(config, dataset))


def train(config, strategy=None, verbose=None, log=print, callbacks=(), restart=False, on_finished=None, data=None,
          test_data=None):
    """Trains (or resumes) the run ``config`` describes and writes its run directory.

    Holds the run directory's lock throughout: a second train() on the same directory fails at once. Under
    ``--strategy=multi_worker`` every worker runs this same function; only the chief writes ``config.workdir``
    (and takes its lock), the others write to a temporary directory that is removed at the end (Keras's
    multi-worker saving recipe), and every worker resumes from the checkpoint in ``config.workdir``.

    Args:
      config: a Config (left as it is: the run's own, written to config.json, is a checked copy with the
        precision used and the data's facts, ``Config.with_data``).
      strategy: a tf.distribute strategy; default ``make_strategy(config.strategy)``.
      verbose: Keras progress-bar mode; default 1 on a terminal, else 2 (one line per epoch).
      log: where one-line messages go.
      callbacks: more Keras callbacks, run after the run's own (benchmarks use them to time epochs).
      restart: start the run over: first move everything ``config.workdir`` holds (a damaged run, say) to a
        new sibling ``<workdir>.old-<UTC time>``, deleting nothing.
      on_finished: called as ``on_finished(config, dataset)`` by the chief after the run's last epoch, with
        the run's Config and the data it trained on, once encoder.keras and decoder.keras are written
        (train.py writes the Projector's files there); its failures are its own to report.
      data: your own images to train on instead of ``config``'s dataset: a numpy array (n, H, W, C) or (n, H, W),
        uint8 or float in [0, 1], ``(images, labels)``, or a finite tf.data pipeline of them
        (``tfvae.data.arrays``). The run's dataset becomes ``arrays``, kept in ``<workdir>/data.npz`` (a default
        workdir becomes ``runs/<model>-arrays-z<latent>``); without ``test_data`` a fixed random tenth is held
        out. A run resumes with the same arrays (other shapes are refused), or with none: ``data.npz``'s.
      test_data: held-out images (and labels) for ``data``, in the same forms.

    Returns:
      dict with the final test ``loss``, ``reconstruction`` and ``kl`` (and an rae's or wae's ``penalty``),
      ``epochs``, ``workdir`` and the run's ``config``.

    Raises:
      TfvaeError: bad flags or data, a run directory in use or not writable, a non-finite loss
        (``NonFiniteLoss``): each a one-line message; the last checkpoint is kept.
    """
    if data is not None:
        config = config.for_arrays()
    elif test_data is not None:
        raise TfvaeError("test_data= given without data=; pass the training images too")
    config = dataclasses.replace(config).validate()  # the caller's Config stays what the flags said
    configure_runtime(config, log)  # before anything starts TensorFlow's runtime
    strategy = strategy or make_strategy(config.strategy)  # multi_worker: before any other TensorFlow op
    arrays = None if data is None else data_lib.from_arrays(data, test_data)  # checked before anything is written
    config.precision = resolve_precision(config.precision)  # config.json records the policy actually used
    chief = is_chief(strategy)
    if not restart:
        check_workdir(config)
    if not chief:
        if arrays is not None:
            raise TfvaeError("data= trains on one host: save the arrays as an .npz and pass --dataset=arrays "
                             "--data_dir=FILE.npz on every worker")
        writedir = tempfile.mkdtemp(prefix="tfvae-worker-")
        try:
            return _train(config, strategy, writedir, verbose, log, list(callbacks), None)
        finally:
            shutil.rmtree(writedir, ignore_errors=True)
    with files.RunLock(config.workdir):
        if restart:
            aside = integrity.set_aside(config.workdir, keep=(files.LOCK_NAME,))
            if aside:
                log(f"--restart: moved what {config.workdir} held to {aside}; starting over")
        check_run_files(config.workdir)
        removed = files.remove_stale_temporaries(config.workdir, os.path.join(config.workdir, "logs"))
        if removed:
            log(f"removed {len(removed)} unfinished file(s) left by a killed run: "
                f"{', '.join(os.path.basename(p) for p in removed)}")
        if arrays is not None:  # kept in the run directory: the run's data from now on (resume, evaluate, explorer)
            data_lib.store(config.workdir, arrays, log)
        return _train(config, strategy, config.workdir, verbose, log, list(callbacks), on_finished)


def _train(config, strategy, writedir, verbose, log, callbacks, on_finished):
    keras.utils.set_random_seed(config.seed)
    chief = writedir == config.workdir
    # A folder's decode cache is built by a cluster's chief alone, and read by the others where they share it.
    dataset = chief_first(strategy, chief, lambda: load_data(config, log))
    # The run's Config, as config.json records it: what the data turned out to be, and the batch size used.
    config = dataclasses.replace(config.with_data(dataset.facts),
                                 batch_size=resolved_batch_size(config, len(dataset.x_train)))
    config_problem = check_workdir(config)  # again, now that the image shape and classes are known
    log(f"data: {config.dataset} from {dataset.source}; {len(dataset.x_train)} train / "
        f"{len(dataset.x_test)} test images of shape {config.image_shape}"
        + (f"; --classes: training on {data_lib.describe_classes(config.classes, config.class_names)} only, the "
           f"test metrics cover {data_lib.describe_test_set(len(dataset.x_test), config.classes, config.class_names)}"
           if config.classes else ""))
    if config.noise != "none":
        log(f"noise: the encoder sees {config.noise}-corrupted images (fresh noise each time, training and test "
            "losses); the loss scores the clean images")
    if config.flip:
        log("flip: each training image is mirrored left-right with probability 1/2, a fresh draw each epoch")

    # Several replicas train on whole batches only (``pipelines``).
    replicas = strategy.num_replicas_in_sync
    examples = trained_examples(config, len(dataset.x_train), replicas)

    # The checkpoint is chosen and loaded before anything is written: a run that can't resume changes nothing.
    with strategy.scope():
        model = create_model(config, examples)
    log(describe_speed(config, model, steps_per_epoch(config, examples)))
    # config.json records what runs: the steps per call and XLA as compiled (the precision is already resolved).
    config = dataclasses.replace(config, jit_compile=bool(model.jit_compile),
                                 steps_per_execution=int(model.steps_per_execution))
    checkpointer = Checkpointer(config.workdir, keep=config.keep_checkpoints)  # every worker resumes from it
    config_path = os.path.join(config.workdir, "config.json")
    try:
        state = checkpointer.restore(model, log=log, repair=chief)
    except TfvaeError as e:
        if config_problem and config_problem != "is missing":
            raise TfvaeError(f"{e} ({config_path} {config_problem} too, so the flags the run was trained with "
                             "are unknown)") from None
        raise
    if config_problem and state and chief:
        log(f"{config_path} {config_problem}; rewriting it from these flags, which the checkpoint fits")

    try:
        os.makedirs(writedir, exist_ok=True)
        skipped = write_skipped_files(writedir, config.data_dir, dataset)
        write_config(writedir, config)
        if chief:
            point_latest(writedir)
    except OSError as e:
        raise TfvaeError(f"cannot write the run directory {writedir} ({files.describe_os_error(e)}); pass a "
                         "writable --workdir") from None
    if skipped:
        log(f"skipped {len(dataset.skipped)} file(s) that could not be decoded; listed in {skipped}")

    initial_epoch, step_in_epoch = state.get("epoch", 0), state.get("step_in_epoch", 0)
    steps = steps_per_epoch(config, examples)
    if step_in_epoch >= steps:  # the data or batch size changed since: start the next epoch afresh
        step_in_epoch = 0
    if state:
        # The optimizer's state came back with the checkpoint, its learning rate too: the flag wins (a run
        # stopped by a diverging loss is resumed with a lower --learning_rate).
        set_learning_rate(model.optimizer, config.learning_rate)
        if model.critic is not None:  # the sharpness terms' discriminator keeps its ratio to it
            set_learning_rate(model.critic.optimizer, DISCRIMINATOR_LR_RATIO * config.learning_rate)
        log(f"resuming {config.workdir} after epoch {initial_epoch}"
            + (f" + {step_in_epoch} of its {steps} steps" if step_in_epoch else ""))
    history_path = os.path.join(writedir, "history.csv")
    # A damaged history.csv or event file loses what can't be read (one line says what); the rest is kept.
    logdir = os.path.join(writedir, "logs")
    history = load_history(history_path, initial_epoch, log=log, logdir=logdir) if chief else []
    files.truncate_event_files(logdir, initial_epoch, log=log)
    finished = initial_epoch >= config.epochs and not step_in_epoch
    if chief:
        check_exports(writedir, initial_epoch, finished, log=log)

    preview = {"image": dataset.x_test[:8].astype("float32") / 255.0}
    labels = None
    if model.conditional:
        preview["label"] = picture_arrays.one_hot(dataset.y_test[:8], config.num_classes)
        labels = picture_arrays.one_hot(np.arange(64) % config.num_classes, config.num_classes)
    # A model whose prior is trained after it (a vqvae's PixelCNN) has none to draw pictures from: reconstructions.
    code_shape = tuple(int(d) for d in model.decoder.inputs[0].shape[1:])  # (latent,), or a grid's (h, w, c)
    samples = None if model.trains_prior_after else picture_arrays.prior_samples(
        64, math.prod(code_shape), config.seed).reshape((64, *code_shape))
    recorder = RunRecorder(writedir, examples, history, batch_size=config.batch_size,
                           images=ImageWriter(logdir, preview, samples, labels), probe=preview,
                           checkpoint_every_steps=config.checkpoint_every_steps,
                           keep_checkpoints=config.keep_checkpoints, learning_rate=config.learning_rate,
                           export_every=config.export_every, epochs=config.epochs, log=log)
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    # One fit per epoch, on that epoch's finite pipeline: Keras then ends each epoch with a short call, so every
    # call runs --steps_per_execution steps but the last, and no epoch runs longer than its data. A run
    # checkpointed inside an epoch first finishes that epoch.
    epochs = range(initial_epoch, max(config.epochs, initial_epoch + bool(step_in_epoch)))
    if step_in_epoch:
        recorder.resume_at(initial_epoch, step_in_epoch, state.get("metrics"))
    theirs = _OneTraining(callbacks, config.epochs)  # the caller's callbacks see one training, not one per epoch
    test_ds = test_pipeline(config, dataset, replicas)
    # Each epoch validates on the first --validation_images test images: the validation pass was most of an
    # epoch's overhead (docs/performance.md).
    validates_all = not 0 < config.validation_images < len(dataset.x_test)
    validation_ds = test_ds if validates_all else test_pipeline(config, dataset, replicas, config.validation_images)
    constants = {}  # the training arrays, copied into TensorFlow once for every epoch's pipeline
    try:
        for epoch in epochs:
            skip = step_in_epoch if epoch == initial_epoch else 0
            train_ds = train_pipeline(config, dataset, epoch, skip, replicas, constants)
            model.fit(train_ds, validation_data=validation_ds, epochs=epoch + 1, initial_epoch=epoch,
                      callbacks=[recorder, theirs, _Progress(config.epochs, verbose)], verbose=verbose,
                      shuffle=False)
            if model.stop_training:  # a callback (EarlyStopping, say) ended the training
                break
        if epochs:
            recorder.export_if_behind()  # stopped by a callback before its last epoch's export
        theirs.end_training()
    except KeyboardInterrupt:  # Ctrl-C: the exports catch up with the checkpoint a resume would start from
        recorder.export_on_interrupt()
        raise
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
    if not epochs:
        log(f"{config.workdir} already finished {initial_epoch} epochs; nothing to train")
        damaged = damaged_exports(model, writedir)  # missing or damaged: rebuilt from the last checkpoint
        if damaged:
            export_models(model, writedir, damaged)
    if model.trains_prior_after and chief:  # a vqvae's PixelCNN prior, trained (or resumed) after the last epoch
        # Under the run's strategy on one host; a cluster's chief trains it alone (the workers have stopped).
        multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        train_prior(config, model, dataset, writedir, log=log, strategy=None if multi_worker else strategy)
    if epochs and chief and on_finished is not None:  # the chief, after the last epoch
        on_finished(config, dataset)
    # The last epoch's validation pass scored these weights already, on every test image (unless the caller's
    # callbacks may have changed them at the end, e.g. EarlyStopping's best weights): its figures are the result.
    result = {k[len("val_"):]: v for k, v in (recorder.last_logs or {}).items() if k.startswith("val_")}
    if not (epochs and result and validates_all and not callbacks and not model.stop_training):
        result = model.evaluate(test_ds, verbose=0, return_dict=True)
    return {**{k: float(v) for k, v in result.items()}, "epochs": max(initial_epoch, config.epochs),
            "workdir": config.workdir, "config": config}


class _OneTraining(keras.callbacks.Callback):
    """The caller's callbacks, told of one training however many ``fit`` calls it takes: ``on_train_begin`` with
    the first, ``on_train_end`` from ``end_training`` after the last; ``set_params`` gives the run's epochs."""

    def __init__(self, callbacks, epochs):
        super().__init__()
        self.callbacks, self.epochs, self.begun, self.last_logs = list(callbacks), epochs, False, None
        for name in ("on_epoch_begin", "on_train_batch_begin", "on_train_batch_end", "on_test_begin",
                     "on_test_end", "on_test_batch_begin", "on_test_batch_end"):
            setattr(self, name, self._forward(name))

    def _forward(self, name):
        def forward(*args, **kwargs):
            for callback in self.callbacks:
                getattr(callback, name)(*args, **kwargs)
        return forward

    def set_model(self, model):
        super().set_model(model)
        for callback in self.callbacks:
            callback.set_model(model)

    def set_params(self, params):
        super().set_params(params)
        for callback in self.callbacks:
            callback.set_params({**params, "epochs": self.epochs})

    def on_train_begin(self, logs=None):
        if not self.begun:
            self.begun = True
            self._forward("on_train_begin")(logs)

    def on_epoch_end(self, epoch, logs=None):
        self.last_logs = logs
        self._forward("on_epoch_end")(epoch, logs)

    def on_train_end(self, logs=None):
        pass  # end_training, after the last fit

    def end_training(self):
        if self.begun:
            self._forward("on_train_end")(self.last_logs)


class _Progress(keras.callbacks.ProgbarLogger):
    """Keras's progress bar, counting the run's epochs ("Epoch 3/30") though each fit trains one."""

    def __init__(self, epochs, verbose):
        super().__init__()
        self.run_epochs, self.run_verbose = epochs, verbose

    def set_params(self, params):
        super().set_params({**params, "epochs": self.run_epochs, "verbose": self.run_verbose})


def describe_speed(config, model, steps):
    """One line: the train steps each call into TensorFlow really runs, XLA and the precision policy, as compiled
    (what runs, not what the flags asked for)."""
    used, asked = int(model.steps_per_execution), config.steps_per_execution
    flag = f"--steps_per_execution={asked}" if asked else f"auto ({default_steps_per_execution()})"
    why = ""
    if used != (asked or default_steps_per_execution()):
        why = (f" ({flag} asked: the epoch has {steps})" if used == steps else
               f" ({flag} asked: 1 under a mirrored strategy)")
    return (f"speed: {used} train step(s) per call{why}, jit_compile={model.jit_compile}, "
            f"precision={config.precision}")


def _write_error(workdir, checkpointer, reason, filename=None):
    state = describe_checkpoint(checkpointer.read_state())
    kept = f"its checkpoint after {state} is intact" if state else "no epoch had been checkpointed"
    where = f" {filename} in" if filename else " to"
    return (f"cannot write{where} {workdir} ({reason}); {kept}: free some space or fix the permissions, then run "
            "the same command again to resume")
