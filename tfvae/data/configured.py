"""The dataset a run's configuration names, loaded the way its training loads it."""

import dataclasses
import os

from tfvae.data.arrays import ARRAYS_FILE
from tfvae.data.classes import select_classes
from tfvae.data.pipeline import binarize_static
from tfvae.data.sources import load_dataset


def load_configured(config, log=print, binarize=True):
    """The dataset ``config`` names: its ``--classes`` only, and with ``binarize=static`` its fixed binary copies.

    Args:
      config: a ``tfvae.config.Config`` (any object with its data fields: dataset, data_dir, image_size,
        channels, max_examples, download, seed, cache_dir, max_image_pixels, classes, binarize, and workdir: a run
        given its arrays keeps them in ``<workdir>/data.npz``, read when ``dataset`` is arrays and ``data_dir``
        empty). It is only read.
      log: where a folder's decoding progress goes.
      binarize: False keeps the grey levels whatever ``config.binarize`` says (evaluation draws its binary
        views itself); True applies ``binarize=static``: one fixed draw, ``seed`` for the training split and
        ``seed + 1`` for the test split, the copies training uses.

    Returns:
      a Dataset (uint8 images).
    """
    data_dir = config.data_dir
    if config.dataset == "arrays" and not data_dir:  # the arrays the run was given, kept in its run directory
        data_dir = os.path.join(config.workdir, ARRAYS_FILE)
    dataset = load_dataset(
        config.dataset, data_dir=data_dir or None, image_size=config.image_size or None,
        channels=config.channels or None, max_examples=config.max_examples, download=config.download,
        seed=config.seed, cache_dir=config.cache_dir, max_image_pixels=config.max_image_pixels, log=log)
    if config.classes:  # the chosen classes' training and test images (a one-line error for unlabelled data)
        dataset = select_classes(dataset, config.classes)
    if binarize and config.binarize == "static":
        dataset = dataclasses.replace(dataset, x_train=binarize_static(dataset.x_train, seed=config.seed),
                                      x_test=binarize_static(dataset.x_test, seed=config.seed + 1))
    return dataset
