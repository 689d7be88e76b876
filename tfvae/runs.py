"""Reading a finished (or running) run directory: its config, its saved models, its test data.

Models load with ``safe_mode=True`` only: a ``.keras`` file can't run code on load.
"""

import os

import keras

from tfvae import sampling
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


def sample_to_png(workdir, mode, n, output="", seed=0, label=None):
    """Writes the picture of ``mode`` (see api.Run.picture, plus "scatter") and returns its path.

    ``mode="projector"`` writes the Projector's files instead (``tfvae.projector``) and returns their directory.
    """
    from tfvae import api, projector

    run = api.load(workdir)
    if mode == "projector":
        return projector.write_projector(run)
    output = output or os.path.join(run.workdir, f"{mode}.png")
    if mode == "scatter":
        run.check_label(label)
        z, _, labels = run.test_codes()
        title = f"{run.config.model} z{run.latent_dim} on {run.config.dataset}: test-set latent means"
        return sampling.save_scatter(output, z, labels, list(run.config.class_names) or None, title)
    return sampling.save_png(output, run.picture(mode, n, label=label, seed=seed))
