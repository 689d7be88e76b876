"""A trained run loaded for evaluation: its config, models, and images as the model sees them."""

import dataclasses
import json
import os

import numpy as np

from tfvae import data as data_lib
from tfvae import metrics, runs, sampling
from tfvae.config import Config
from tfvae.errors import TfvaeError


@dataclasses.dataclass
class Run:
    """A loaded run: its config, models, and test/training images as the model sees them."""

    workdir: str
    config: Config
    encoder: object
    decoder: object
    dataset: data_lib.Dataset  # grey-level uint8 images, whatever the run's binarization
    epochs_trained: int

    @property
    def name(self):
        return os.path.basename(os.path.normpath(os.path.realpath(self.workdir)))

    @property
    def variational(self):
        outputs = self.encoder.output
        return isinstance(outputs, dict) and "z_log_var" in outputs

    @property
    def conditional(self):
        return self.config.model == "cvae"

    @property
    def likelihood(self):
        return metrics.likelihood_for_loss(self.config.loss)

    @property
    def variance(self):
        """The Gaussian decoder's variance (1/2 for mse, the trained one for gaussian); None for bce."""
        try:
            return metrics.decoder_variance(self.decoder, self.config.loss)
        except ValueError as e:
            raise TfvaeError(f"{self.workdir}: {e}") from None

    def model_view(self, x_uint8, split):
        """Images in [0, 1] as the model sees them: a fixed binary copy for binarized runs."""
        if self.config.binarize == "none":
            return x_uint8.astype("float32") / 255.0
        # The static copy training drew (seed for train, seed + 1 for test); one such draw for dynamic runs.
        seed = self.config.seed + (1 if split == "test" else 0)
        return data_lib.binarize_static(x_uint8, seed=seed).astype("float32") / 255.0

    def model_view_uint8(self, x_uint8, split):
        return np.rint(self.model_view(x_uint8, split) * 255.0).astype(np.uint8)

    def one_hot(self, labels):
        return sampling.one_hot(labels, self.config.num_classes) if self.conditional else None


def load_run(workdir):
    """Loads a run directory for evaluation; TfvaeError if there is no complete run there."""
    config = runs.load_config(workdir)
    encoder = runs.load_model_file(workdir, "encoder")
    decoder = runs.load_model_file(workdir, "decoder")
    grey = Config.from_json(config.to_json())
    grey.binarize = "none"  # the binary copies are drawn in Run.model_view
    _, _, dataset = runs.load_test_data(grey)
    state_path = os.path.join(workdir, "checkpoints", "state.json")
    epochs = 0
    if os.path.isfile(state_path):
        with open(state_path) as f:
            epochs = int(json.load(f).get("epoch", 0))
    run = Run(workdir, config, encoder, decoder, dataset, epochs)
    if run.variational != (config.model != "ae"):
        raise TfvaeError(f"{workdir}: config.json says model={config.model} but encoder.keras "
                         f"{'has' if run.variational else 'lacks'} z_log_var; the run directory is inconsistent")
    run.variance  # noqa: B018  (a gaussian run without its trained variance fails here, before any long step)
    return run
