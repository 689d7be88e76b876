"""Reading a finished (or running) run directory: its config, its saved models, its test data.

Models load with ``safe_mode=True`` only: a ``.keras`` file can't run code on load.
"""

import csv
import os

import keras
import numpy as np

from tfvae import integrity, sampling
from tfvae.config import Config
from tfvae.errors import TfvaeError

LATEST = "latest"


def resolve_workdir(workdir):
    """The run directory ``workdir`` names: itself, or the run that a ``latest`` file names.

    train.py writes ``<runs>/latest``, a one-line file holding the newest run's directory name (a file, not a
    symlink: TensorBoard follows symlinks, so ``tensorboard --logdir runs`` listed the newest run twice). An
    older ``latest`` symlink still works: it is a directory to this function.
    """
    if not os.path.isfile(workdir):
        return workdir
    try:
        with open(workdir, encoding="utf-8") as f:
            text = f.read(4096)
    except (OSError, UnicodeDecodeError) as e:
        raise TfvaeError(f"cannot read {workdir}, which should name a run directory: {e}") from None
    name = text.strip()
    if not name or "\n" in name or os.sep in name or name in (".", ".."):
        raise TfvaeError(f"{workdir} should hold the name of a run directory beside it (train.py writes it), but "
                         f"holds {text[:60]!r}; pass --workdir=runs/<run> instead")
    return os.path.join(os.path.dirname(workdir), name)


def load_config(workdir):
    """The run's Config; a clear error if ``workdir`` holds no run."""
    if not os.path.isdir(workdir):
        raise TfvaeError(f"no trained run at {workdir}; train one first: python train.py --model=vae --latent=2")
    return Config.load(workdir)


def load_model_file(workdir, name, config=None):
    """Loads ``<workdir>/<name>.keras`` ("encoder" or "decoder") with safe_mode=True and checks that it fits the run.

    The file is checked before Keras reads it (Keras reports a cut-short zip as "File not found"), and the model
    after: its shapes must be those the run's config.json gives, or the two come from different runs.

    Args:
      workdir: the run directory.
      name: "encoder" or "decoder".
      config: the run's Config; default: read from ``workdir`` when it has a config.json (else not checked).

    Raises:
      TfvaeError: one line naming the file: missing, damaged, carrying code, or not of this run's shapes.
    """
    import tfvae.models  # noqa: F401  (registers the custom layers)

    path = os.path.join(workdir, f"{name}.keras")
    rebuild = (f"run train.py on {workdir} with the flags it was trained with, which rebuilds {name}.keras from "
               "the run's last checkpoint")
    if not os.path.lexists(path):
        raise TfvaeError(f"{path} is missing: {workdir} has no {name}.keras yet (was training stopped during its "
                         f"first epoch?); {rebuild} (or finishes its first epoch)")
    problem = integrity.keras_archive_problem(path)
    if problem:
        raise TfvaeError(f"{path} {problem}; restore it from a copy, or {rebuild}")
    try:
        model = keras.saving.load_model(path, safe_mode=True)
    except Exception as e:  # noqa: BLE001  (a file we cannot trust or read: say so in one line)
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "safe_mode" in str(e) or "arbitrary code" in str(e):
            raise TfvaeError(f"refusing to load {path}: it contains Python code, which could do anything when run "
                             f"(Keras: {reason.split('. ')[0]}); tfvae loads models with safe_mode=True only, so "
                             "retrain it with train.py") from None
        raise TfvaeError(f"cannot load {path}: {reason}; restore it from a copy, or {rebuild}") from None
    if config is None and os.path.lexists(os.path.join(workdir, "config.json")):
        config = Config.load(workdir)
    if config is not None:
        misfit = model_misfit(model, name, config)
        if misfit:
            raise TfvaeError(f"{path} does not fit the run's config.json ({misfit}): the two come from different "
                             f"runs; restore the run's own config.json, or {rebuild}")
    return model


def model_misfit(model, name, config):
    """None if ``model`` (the run's "encoder" or "decoder") has the shapes ``config`` gives, else how it differs."""
    image_shape, latent = tuple(config.image_shape), config.latent
    first_input = tuple(model.inputs[0].shape[1:])
    outputs = [tuple(t.shape[1:]) for t in keras.tree.flatten(model.outputs)]
    if name == "decoder":
        if first_input != (latent,):
            return f"it takes codes of shape {first_input}, config.json says latent={latent}"
        if outputs[0] != image_shape:
            return f"it draws images of shape {outputs[0]}, config.json says {image_shape}"
    else:
        if first_input != image_shape:
            return f"it takes images of shape {first_input}, config.json says {image_shape}"
        if any(shape != (latent,) for shape in outputs):
            return f"it gives codes of shape {outputs[0]}, config.json says latent={latent}"
    wanted = 2 if config.model == "cvae" else 1
    if len(model.inputs) != wanted:
        return f"it takes {len(model.inputs)} input(s), a {config.model}'s {name} takes {wanted}"
    return None


def epochs_trained(workdir, log=None):
    """Epochs the run's newest checkpoint finished (checkpoints/state.json); 0 when it has none.

    When state.json is damaged, the epochs come from history.csv's last row instead, and ``log`` (if given)
    gets one line saying so: the exported models can still be used, though train.py can't resume the run.
    """
    from tfvae.training.checkpoints import Checkpointer
    from tfvae.training.rundir import read_history

    checkpointer = Checkpointer(workdir)
    if not os.path.lexists(checkpointer.state_path) and not os.path.lexists(os.path.join(workdir, "decoder.keras")):
        return 0  # no checkpoint yet
    try:
        if os.path.lexists(checkpointer.state_path):
            return checkpointer.read_state()["epoch"]
        problem = "is missing"
    except TfvaeError:
        problem = integrity.read_json_problem(checkpointer.state_path) or "is damaged"
    try:
        epochs = max((int(row["epoch"]) for row in read_history(os.path.join(workdir, "history.csv"))), default=0)
    except (OSError, ValueError, TypeError, KeyError, UnicodeDecodeError, csv.Error):
        epochs = 0
    if log:
        source = f"history.csv's last row ({epochs})" if epochs else "nowhere: reported as 0"
        log(f"{checkpointer.state_path} {problem}: the epochs trained are taken from {source}; the models are "
            "used as they are (train.py needs state.json to resume this run)")
    return epochs


def load_test_data(config):
    """Test images in [0, 1] and labels (or None) of the run's dataset, loaded as training loaded them."""
    from tfvae import training

    dataset = training.load_data(Config.from_json(config.to_json()))
    return dataset.x_test.astype("float32") / 255.0, dataset.y_test, dataset


def sample_to_png(workdir, mode, n, output="", seed=0, label=None, noise=""):
    """Writes the picture of ``mode`` (see api.Run.picture, plus "scatter" and "denoise") and returns its path.

    ``mode="projector"`` writes the Projector's files instead (``tfvae.projector``) and returns their directory.
    "denoise" draws ``max(n // 3, 1)`` groups of ``n`` test images: the clean images, their copies corrupted by
    ``noise`` (default the run's ``--noise``; seeded by ``seed``) and the run's reconstructions of the noisy copies.
    """
    from tfvae import api, projector

    run = api.load(workdir)
    if mode == "projector":
        return projector.write_projector(run)
    output = output or os.path.join(run.workdir, f"{mode}.png")
    if os.path.isdir(output):
        raise TfvaeError(f"{output} is a directory, not a picture; pass another --output or move it away")
    if mode == "denoise":
        return sampling.save_png(output, _denoise_picture(run, n, seed, noise))
    if mode == "scatter":
        run.check_label(label)
        z, _, labels = run.test_codes()
        title = f"{run.config.model} z{run.latent_dim} on {run.config.dataset}: test-set latent means"
        return sampling.save_scatter(output, z, labels, list(run.config.class_names) or None, title)
    return sampling.save_png(output, run.picture(mode, n, label=label, seed=seed))


def _denoise_picture(run, n, seed, noise):
    from tfvae import data as data_lib

    spec = data_lib.parse_noise(noise or run.config.noise)
    if spec is None:
        raise TfvaeError(f"--mode=denoise needs a corruption: {run.workdir} was trained without --noise; pass one, "
                         "e.g. --noise=gaussian:0.3")
    x, y = run.test_data()
    count = min(max(n // 3, 1) * n, len(x))
    pick = np.sort(np.random.default_rng(seed).choice(len(x), size=count, replace=False))
    clean = x[pick]
    noisy = data_lib.corrupt_array(clean, spec, seed)
    denoised = run.reconstruct(noisy, y[pick] if run.conditional else None)
    return sampling.denoise_rows(clean, noisy, denoised, min(n, count))
