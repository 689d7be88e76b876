"""A Run's data (``tfvae.api.Run.data``): its dataset as its config names it, and its images as the model sees them.

The test set. ``test_data()`` is what evaluation scores: the test images as the model sees them. With
``binarize=none`` the grey levels; with ``binarize=static`` the fixed binary copy training used (one
Bernoulli draw seeded by the run's seed + 1); with ``binarize=dynamic`` one fixed Bernoulli draw seeded by the
run's seed + 1 as well (training drew fresh ones each epoch). ``test_data(grey=True)`` gives the grey levels
whatever the binarization (the real images sample quality is measured against); ``train_data()`` the
training images as the model sees them (the binary copy seeded by the run's seed).
"""

import numpy as np

from tfvae import arguments
from tfvae import data as data_lib


class RunData:
    """A run's dataset, loaded the first time it is asked for, and its images as the model sees them.

    Args:
      config: the run's Config: its dataset (and data settings), ``binarize``, ``seed`` and ``image_shape``.
      log: gets the data loader's lines (e.g. a fallback used, a folder decoded).
    """

    def __init__(self, config, log):
        self.config, self.log = config, log
        self._dataset = self._test_data = None

    @property
    def dataset(self):
        """The run's dataset as its config names it, in grey levels whatever its binarization (uint8)."""
        if self._dataset is None:
            self._dataset = data_lib.load_configured(self.config, log=self.log, binarize=False)
        return self._dataset

    def model_view(self, x_uint8, split="test"):
        """uint8 images as the model sees them, float32 in [0, 1]: for a binarized run, one fixed binary copy
        (seeded by the run's seed for ``split="train"``, seed + 1 for ``"test"``; see the module docstring)."""
        if self.config.binarize == "none":
            return x_uint8.astype("float32") / 255.0
        seed = self.config.seed + (1 if split == "test" else 0)
        return data_lib.binarize_static(x_uint8, seed=seed).astype("float32") / 255.0

    def model_view_uint8(self, x_uint8, split="test"):
        """``model_view`` as uint8 0..255."""
        return np.rint(self.model_view(x_uint8, split) * 255.0).astype(np.uint8)

    def test_data(self, grey=False):
        """The run's test images and their class ids (or None): the test set evaluation scores.

        Args:
          grey: the grey levels instead, whatever the run's binarization.

        Returns:
          (float32 images (n, H, W, C) in [0, 1], int class ids (n,) or None); see the module docstring.
        """
        if grey:
            return self.dataset.x_test.astype("float32") / 255.0, self.dataset.y_test
        if self._test_data is None:
            self._test_data = (self.model_view(self.dataset.x_test, "test"), self.dataset.y_test)
        return self._test_data

    def train_data(self):
        """The run's training images as the model sees them (float32 in [0, 1]) and their class ids (or None)."""
        return self.model_view(self.dataset.x_train, "train"), self.dataset.y_train

    def set_test_data(self, images, labels):
        """Uses these test images (the run's images: ``tfvae.arguments.images``; as the model sees them) and class
        ids instead of loading them."""
        image_shape = tuple(int(d) for d in self.config.image_shape)
        self._test_data = (arguments.images(images, image_shape), None if labels is None else np.asarray(labels))
