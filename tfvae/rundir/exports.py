"""The exported models, encoder.keras and decoder.keras: writing them, and loading them with their checks
(``load_model_file``; ``ExportedModels``: a run's two, each loaded the first time it is asked for).

Models load with ``safe_mode=True`` only: a ``.keras`` file can't run code on load.
"""

import os

import keras

from tfvae import files, integrity, likelihoods
from tfvae.config import Config
from tfvae.errors import TfvaeError
from tfvae.models import layers as _layers  # noqa: F401  (registers the custom layers the files hold)
from tfvae.models import model_class
from tfvae.models.vqvae import grid_shape

MODEL_NAMES = ("encoder", "decoder")


def save_model(model, path):
    """Saves a ``.keras`` file through a temporary name so a kill never leaves a half-written file."""
    files.atomic_save(path, model.save)


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


class ExportedModels:
    """A run's encoder.keras and decoder.keras, each loaded (``load_model_file``) the first time it is asked for:
    drawing prior samples never loads the encoder.

    Args:
      workdir: the run directory.
      config: its Config: the files' shapes are checked against it, and errors name its model.
      variational: whether the model's encoder is a posterior with a variance (z_log_var): encoder.keras must agree.
      encoder, decoder: Keras models already in memory, used instead of the files.
    """

    def __init__(self, workdir, config, variational, encoder=None, decoder=None):
        self.workdir, self.config, self.variational = workdir, config, variational
        self._encoder, self._decoder = encoder, decoder

    @property
    def encoder(self):
        """The Keras encoder: images in [0, 1] (+ one-hot labels) -> {"z_mean", "z_log_var", "z"}.

        Raises:
          TfvaeError: encoder.keras missing, damaged, or not this run's (``load_model_file``), or one whose
            z_log_var disagrees with the run's model.
        """
        if self._encoder is None:
            encoder = load_model_file(self.workdir, "encoder", self.config)
            outputs = encoder.output
            has_log_var = isinstance(outputs, dict) and "z_log_var" in outputs
            if has_log_var != self.variational:
                raise TfvaeError(f"{self.workdir}: config.json says model={self.config.model} but encoder.keras "
                                 f"{'has' if has_log_var else 'lacks'} z_log_var; the run directory is "
                                 "inconsistent")
            self._encoder = encoder
        return self._encoder

    @property
    def decoder(self):
        """The Keras decoder: z (+ one-hot labels) -> logits."""
        if self._decoder is None:
            self._decoder = load_model_file(self.workdir, "decoder", self.config)
        return self._decoder


def model_misfit(model, name, config):
    """None if ``model`` (the run's "encoder" or "decoder") has the shapes ``config`` gives, else how it differs."""
    image_shape, latent = tuple(config.image_shape), config.latent
    first_input = tuple(model.inputs[0].shape[1:])
    outputs = [tuple(t.shape[1:]) for t in keras.tree.flatten(model.outputs)]
    named = model.output if isinstance(model.output, dict) else {}
    if "pseudo_inputs" in named:  # a vamp's encoder also gives its (K, H, W, C) pseudo-inputs (tfvae.models.vamp)
        if tuple(named["pseudo_inputs"].shape[1:]) != image_shape:
            return (f"its pseudo-inputs have shape {tuple(named['pseudo_inputs'].shape[1:])}, config.json says "
                    f"{image_shape}")
        outputs = [tuple(t.shape[1:]) for key, t in named.items() if key != "pseudo_inputs"]
    code = (latent,)
    cls = model_class(config.model)
    if cls.code_grid:  # codes are (h, w, D) grids; a vqvae's encoder also gives the (h, w) indices
        code = grid_shape(image_shape, config.filters, latent)
        if name == "encoder" and cls.quantized:
            outputs = [shape for shape in outputs if shape != code[:2]]
    says = f"latent={latent}" if code == (latent,) else f"codes of shape {code}"
    if name == "decoder":
        if first_input != code:
            return f"it takes codes of shape {first_input}, config.json says {says}"
        drawn = (*image_shape[:2], likelihoods.output_channels(likelihoods.for_loss(config.loss), image_shape[2]))
        if outputs[0] != drawn:
            return (f"it draws {outputs[0]} values per image, config.json's image_shape={image_shape} and "
                    f"loss={config.loss} need {drawn}")
    else:
        if first_input != image_shape:
            return f"it takes images of shape {first_input}, config.json says {image_shape}"
        if any(shape != code for shape in outputs):
            return f"it gives codes of shape {outputs[0]}, config.json says {says}"
    wanted = 2 if cls.conditional else 1
    if len(model.inputs) != wanted:
        return f"it takes {len(model.inputs)} input(s), a {config.model}'s {name} takes {wanted}"
    if name == "encoder" and ("pseudo_inputs" in named) != ("pseudo_inputs" in cls.encoder_extras):
        return f"it {'has' if 'pseudo_inputs' in named else 'lacks'} pseudo-inputs, config.json says a {config.model}"
    return None


def check_exports(workdir, epochs, finished, log=print):
    """Says in one line per file when encoder.keras or decoder.keras is damaged; train() then rebuilds it
    (``finished``: now, from the checkpoint; else at the end of the next epoch)."""
    if epochs < 1:
        return
    for name in ("encoder", "decoder"):
        path = os.path.join(workdir, f"{name}.keras")
        problem = integrity.keras_archive_problem(path)
        if problem:
            when = "rebuilding it from the checkpoint" if finished else "it is rewritten at the end of the next epoch"
            log(f"{path} {problem}; {when}")
