"""Reading a finished (or running) run directory: its config, its saved models, its test data.

Models load with ``safe_mode=True`` only: a ``.keras`` file can't run code on load.
"""

import os

import keras

from tfvae import integrity, sampling
from tfvae.config import Config
from tfvae.errors import TfvaeError


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


def load_test_data(config):
    """Test images in [0, 1] and labels (or None) of the run's dataset, loaded as training loaded them."""
    from tfvae import training

    dataset = training.load_data(Config.from_json(config.to_json()))
    return dataset.x_test.astype("float32") / 255.0, dataset.y_test, dataset


def sample_to_png(workdir, mode, n, output="", seed=0, label=None):
    """Writes the picture of ``mode`` (see sampling.picture, plus "scatter") and returns its path."""
    config = load_config(workdir)
    num_classes = config.num_classes if config.model == "cvae" else 0
    if label is not None:
        if not num_classes:
            raise TfvaeError(f"--label needs a cvae run; {workdir} holds a {config.model}")
        if label >= num_classes:
            raise TfvaeError(f"--label={label} but the run has {num_classes} classes (0..{num_classes - 1})")
    output = output or os.path.join(workdir, f"{mode}.png")
    if os.path.isdir(output):
        raise TfvaeError(f"{output} is a directory, not a picture; pass another --output or move it away")
    decoder = load_model_file(workdir, "decoder", config) if mode != "scatter" else None
    images = labels = encoder = None
    if mode in ("reconstruct", "interpolate", "scatter"):
        encoder = load_model_file(workdir, "encoder", config)
        images, labels, _ = load_test_data(config)
    if mode == "scatter":
        cond = sampling.one_hot(labels, num_classes) if num_classes else None
        z = sampling.encode_mean(encoder, images, cond)
        title = f"{config.model} z{config.latent} on {config.dataset}: test-set latent means"
        return sampling.save_scatter(output, z, labels, list(config.class_names) or None, title)
    pic = sampling.picture(mode, n, decoder, encoder=encoder, images=images, labels=labels,
                           num_classes=num_classes, label=label, seed=seed)
    return sampling.save_png(output, pic)

