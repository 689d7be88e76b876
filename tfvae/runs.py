"""Reading a finished (or running) run directory: its config, its saved models, its test data.

Models load with ``safe_mode=True`` only: a ``.keras`` file can't run code on load.
"""

import os

import keras
import numpy as np

from tfvae import sampling
from tfvae.config import Config
from tfvae.errors import TfvaeError


def load_config(workdir):
    """The run's Config; a clear error if ``workdir`` holds no run."""
    if not os.path.isdir(workdir):
        raise TfvaeError(f"no trained run at {workdir}; train one first: python train.py --model=vae --latent=2")
    return Config.load(workdir)


def load_model_file(workdir, name):
    """Loads ``<workdir>/<name>.keras`` with safe_mode=True."""
    import tfvae.models  # noqa: F401  (registers the custom layers)

    path = os.path.join(workdir, f"{name}.keras")
    if not os.path.isfile(path):
        raise TfvaeError(f"{workdir} has no {name}.keras yet (was training stopped during its first epoch?); "
                         "run train.py with the same flags to finish it")
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as e:  # noqa: BLE001  (a file we cannot trust or read: say so in one line)
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "safe_mode" in str(e) or "arbitrary code" in str(e):
            raise TfvaeError(f"refusing to load {path}: it contains Python code, which could do anything when run "
                             f"(Keras: {reason.split('. ')[0]}); tfvae loads models with safe_mode=True only, so "
                             "retrain it with train.py") from None
        raise TfvaeError(f"cannot load {path}: {reason}") from None


def load_test_data(config):
    """Test images in [0, 1] and labels (or None) of the run's dataset, loaded as training loaded them."""
    from tfvae import training

    dataset = training.load_data(Config.from_json(config.to_json()))
    return dataset.x_test.astype("float32") / 255.0, dataset.y_test, dataset


def sample_to_png(workdir, mode, n, output="", seed=0, label=None, noise=""):
    """Writes the picture of ``mode`` (see sampling.picture, plus "scatter" and "denoise") and returns its path.

    "denoise" draws ``max(n // 3, 1)`` groups of ``n`` test images: the clean images, their copies corrupted by
    ``noise`` (default the run's ``--noise``; seeded by ``seed``) and the run's reconstructions of the noisy copies.
    """
    config = load_config(workdir)
    num_classes = config.num_classes if config.model == "cvae" else 0
    if label is not None:
        if not num_classes:
            raise TfvaeError(f"--label needs a cvae run; {workdir} holds a {config.model}")
        if label >= num_classes:
            raise TfvaeError(f"--label={label} but the run has {num_classes} classes (0..{num_classes - 1})")
    output = output or os.path.join(workdir, f"{mode}.png")
    decoder = load_model_file(workdir, "decoder") if mode != "scatter" else None
    images = labels = encoder = None
    if mode in ("reconstruct", "interpolate", "scatter"):
        encoder = load_model_file(workdir, "encoder")
        images, labels, _ = load_test_data(config)
    if mode == "denoise":
        return sampling.save_png(output, _denoise_picture(config, workdir, n, seed, noise, num_classes))
    if mode == "scatter":
        cond = sampling.one_hot(labels, num_classes) if num_classes else None
        z = sampling.encode_mean(encoder, images, cond)
        title = f"{config.model} z{config.latent} on {config.dataset}: test-set latent means"
        return sampling.save_scatter(output, z, labels, list(config.class_names) or None, title)
    pic = sampling.picture(mode, n, decoder, encoder=encoder, images=images, labels=labels,
                           num_classes=num_classes, label=label, seed=seed)
    return sampling.save_png(output, pic)



def _denoise_picture(config, workdir, n, seed, noise, num_classes):
    from tfvae import data as data_lib

    spec = data_lib.parse_noise(noise or config.noise)
    if spec is None:
        raise TfvaeError(f"--mode=denoise needs a corruption: {workdir} was trained without --noise; pass one, e.g. "
                         "--noise=gaussian:0.3")
    encoder, decoder = load_model_file(workdir, "encoder"), load_model_file(workdir, "decoder")
    images, labels, _ = load_test_data(config)
    count = min(max(n // 3, 1) * n, len(images))
    pick = np.sort(np.random.default_rng(seed).choice(len(images), size=count, replace=False))
    clean = images[pick]
    noisy = data_lib.corrupt_array(clean, spec, seed)
    cond = sampling.one_hot(labels[pick], num_classes) if num_classes else None
    denoised = sampling.decode(decoder, sampling.encode_mean(encoder, noisy, cond), cond)
    return sampling.denoise_rows(clean, noisy, denoised, min(n, count))
