"""Runtime set-up: the tf.distribute strategy, which process writes, thread pools and the precision policy."""

import os

import tensorflow as tf

from tfvae import cluster
from tfvae.errors import TfvaeError


def make_strategy(name="auto", devices=None):
    """The tf.distribute strategy for ``name``.

    Args:
      name: "auto" (the TPU of a Cloud TPU VM, else all GPUs mirrored when there are several, the one GPU, else
        the CPU), "tpu" (``TPUStrategy`` over the TPU the cluster resolver finds), "default" (no
        distribution), "one_device" (the first GPU, else the CPU), "mirrored" (``devices``, else all GPUs) or
        "multi_worker" (``MultiWorkerMirroredStrategy`` over the cluster that ``TF_CONFIG`` describes; it must
        be created before TensorFlow runs anything else in the process).
      devices: explicit device names for "mirrored", e.g. two logical CPUs in tests.
    """
    if name == "tpu":
        return tpu_strategy()
    if name == "multi_worker":
        # A clear one-line error before TensorFlow sees a missing or malformed TF_CONFIG.
        if cluster.parse_tf_config() is None:
            raise TfvaeError("--strategy=multi_worker needs the TF_CONFIG environment variable; set it on every "
                             f"host, e.g. TF_CONFIG='{cluster.EXAMPLE}'")
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto" and not gpus and os.path.exists("/dev/accel0"):  # a Cloud TPU VM's chips
        return tpu_strategy()
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "one_device" if gpus else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices)
    raise TfvaeError(f"unknown --strategy={name!r}; choose one of auto, default, one_device, mirrored, "
                     "multi_worker, tpu")


def tpu_strategy():
    """``TPUStrategy`` over the TPU that ``TPUClusterResolver`` finds (a Cloud TPU VM's own, or $TPU_NAME's).

    Not run here: no TPU was lent. Training on a TPU needs static shapes: several replicas train on whole batches
    only (``tfvae.training.pipelines``).

    Raises:
      TfvaeError: no TPU found.
    """
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.OpError, RuntimeError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TfvaeError(f"--strategy=tpu found no TPU ({reason}); run on a Cloud TPU VM or set TPU_NAME") from None
    return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy):
    """Whether this process writes the run directory: always, except on the non-chief workers of a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if task_type is None:
        return True
    has_chief_job = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "chief" or (task_type == "worker" and resolver.task_id == 0 and not has_chief_job)


def wait_for_every_worker(strategy):
    """Returns once every worker of a multi-worker ``strategy`` has called it (an all-reduce of one number, which
    no worker finishes before all have joined); at once for any other strategy."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return

    @tf.function
    def one_each():
        return strategy.run(lambda: tf.constant(1.0))

    strategy.reduce(tf.distribute.ReduceOp.SUM, one_each(), axis=None)


def chief_first(strategy, chief, work):
    """``work()``, run by a cluster's chief before its other workers (they wait for it at one all-reduce), so what
    it writes to storage they share (a folder's decode cache) they read rather than build again; a worker whose
    storage is its own builds it there. Without a cluster, ``work()``."""
    if not chief:
        wait_for_every_worker(strategy)
    result = work()
    if chief:
        wait_for_every_worker(strategy)
    return result


def configure_runtime(config, log=print):
    """Applies the thread settings (they only take effect before TensorFlow has started its runtime) and, with
    ``--deterministic``, op determinism with TensorFloat-32 off (for the rest of the process)."""
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
        tf.config.experimental.enable_tensor_float_32_execution(False)
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


def cpu_has_bfloat16():
    """Whether this CPU has bfloat16 dot-product instructions that oneDNN uses (Linux /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision):
    """The policy ``--precision`` names; "auto" is mixed_bfloat16 where it helps, else float32.

    On CPUs with AVX512_BF16 (and oneDNN) mixed_bfloat16 trains faster than float32, more so with the logits layer
    in bfloat16 too (benchmarks/throughput.py), with the same quality (tests/test_performance.py): chosen by
    measurement, docs/performance.md#how-the-defaults-were-chosen. Without native bfloat16 instructions or
    without oneDNN, bfloat16 is emulated and slow; GPUs were not benchmarked, so they keep float32.
    """
    if precision != "auto":
        return precision
    onednn_off = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "").lower() in ("0", "false")
    if tf.config.list_physical_devices("GPU") or onednn_off or not cpu_has_bfloat16():
        return "float32"
    return "mixed_bfloat16"
