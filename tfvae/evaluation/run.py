"""A trained run loaded for evaluation: its config, models, and images as the model sees them."""

import csv
import dataclasses
import os

import numpy as np

from tfvae import data as data_lib
from tfvae import integrity, metrics, runs, sampling
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


def load_run(workdir, log=print):
    """Loads a run directory for evaluation; TfvaeError if there is no complete run there.

    Only config.json, encoder.keras and decoder.keras must be good. The epochs trained come from
    checkpoints/state.json, or if it is damaged from history.csv (``log`` gets one line saying so).
    """
    config = runs.load_config(workdir)
    encoder = runs.load_model_file(workdir, "encoder", config)
    decoder = runs.load_model_file(workdir, "decoder", config)
    grey = Config.from_json(config.to_json())
    grey.binarize = "none"  # the binary copies are drawn in Run.model_view
    _, _, dataset = runs.load_test_data(grey)
    run = Run(workdir, config, encoder, decoder, dataset, epochs_trained(workdir, log))
    if run.variational != (config.model != "ae"):
        raise TfvaeError(f"{workdir}: config.json says model={config.model} but encoder.keras "
                         f"{'has' if run.variational else 'lacks'} z_log_var; the run directory is inconsistent")
    return run


def epochs_trained(workdir, log=print):
    """The epochs the run's newest checkpoint has finished; from history.csv if checkpoints/state.json is damaged."""
    from tfvae.training.checkpoints import Checkpointer
    from tfvae.training.rundir import read_history

    checkpointer = Checkpointer(workdir)
    try:
        if os.path.lexists(checkpointer.state_path):
            return checkpointer.read_state()["epoch"]
        problem = "is missing"
    except TfvaeError:
        problem = integrity.read_json_problem(checkpointer.state_path) or "is damaged"
    history_path = os.path.join(workdir, "history.csv")
    try:
        epochs = max((int(row["epoch"]) for row in read_history(history_path)), default=0)
    except (OSError, ValueError, TypeError, KeyError, csv.Error):
        epochs = 0
    source = f"history.csv's last row ({epochs})" if epochs else "nowhere: reported as 0"
    log(f"{checkpointer.state_path} {problem}: the epochs trained are taken from {source}; the models are "
        "evaluated as they are (train.py needs state.json to resume this run)")
    return epochs
