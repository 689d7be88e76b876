"""A trained run loaded for evaluation: ``tfvae.api.Run`` plus its dataset and images as the model sees them."""


import numpy as np

from tfvae import api, runs
from tfvae import data as data_lib
from tfvae.config import Config


class Run(api.Run):
    """A run loaded for evaluation: a ``tfvae.api.Run`` with its dataset as grey levels (``dataset``, uint8,
    whatever the run's binarization) and the binary copies the model sees for binarized runs."""

    def __init__(self, workdir, config, dataset, epochs_trained=0, **kwargs):
        super().__init__(workdir, config, **kwargs)
        self.dataset = dataset
        self._epochs_trained = epochs_trained

    @property
    def epochs_trained(self):
        """Epochs the run finished, as ``load_run`` found them (from history.csv when state.json is damaged)."""
        return self._epochs_trained

    def model_view(self, x_uint8, split):
        """Images in [0, 1] as the model sees them: a fixed binary copy for binarized runs."""
        if self.config.binarize == "none":
            return x_uint8.astype("float32") / 255.0
        # The static copy training drew (seed for train, seed + 1 for test); one such draw for dynamic runs.
        seed = self.config.seed + (1 if split == "test" else 0)
        return data_lib.binarize_static(x_uint8, seed=seed).astype("float32") / 255.0

    def model_view_uint8(self, x_uint8, split):
        return np.rint(self.model_view(x_uint8, split) * 255.0).astype(np.uint8)


def load_run(workdir, log=print):
    """Loads a run directory (or the ``latest`` file naming one) for evaluation, through ``tfvae.api.load``.

    Only config.json, encoder.keras and decoder.keras must be good. The epochs trained come from
    checkpoints/state.json, or if it is damaged from history.csv (``log`` gets one line saying so).

    Raises:
      TfvaeError: no complete run there (the models are loaded here, before any data).
    """
    loaded = api.load(workdir)
    encoder, decoder = loaded.encoder, loaded.decoder
    grey = Config.from_json(loaded.config.to_json())
    grey.binarize = "none"  # the binary copies are drawn in Run.model_view
    _, _, dataset = runs.load_test_data(grey)
    run = Run(loaded.workdir, loaded.config, dataset, epochs_trained=runs.epochs_trained(loaded.workdir, log),
              encoder=encoder, decoder=decoder)
    run.variance  # noqa: B018  (a gaussian run without its trained variance fails here, before any long step)
    return run
