"""The dataset a run's configuration names, loaded the way its training loads it."""

import dataclasses

from tfvae.data.classes import select_classes
from tfvae.data.pipeline import binarize_static
from tfvae.data.sources import load_dataset


def load_configured(config, log=print, binarize=True):
    """The dataset ``config`` names: its ``--classes`` only, and with ``binarize=static`` its fixed binary copies.

    Args:
      config: a ``tfvae.config.Config`` (any object with its data fields: dataset, data_dir, image_size,
        channels, max_examples, download, seed, cache_dir, max_image_pixels, classes, binarize). It is only read.
      log: where a folder's decoding progress goes.
      binarize: False keeps the grey levels whatever ``config.binarize`` says (evaluation draws its binary
        views itself); True applies ``binarize=static``: one fixed draw, ``seed`` for the training split and
        ``seed + 1`` for the test split, the copies training uses.

    Returns:
      a Dataset (uint8 images).
    """
    dataset = load_dataset(
        config.dataset, data_dir=config.data_dir or None, image_size=config.image_size or None,
        channels=config.channels or None, max_examples=config.max_examples, download=config.download,
        seed=config.seed, cache_dir=config.cache_dir, max_image_pixels=config.max_image_pixels, log=log)
    if config.classes:  # the chosen classes' training and test images (a one-line error for unlabelled data)
        dataset = select_classes(dataset, config.classes)
    if binarize and config.binarize == "static":
        dataset = dataclasses.replace(dataset, x_train=binarize_static(dataset.x_train, seed=config.seed),
                                      x_test=binarize_static(dataset.x_test, seed=config.seed + 1))
    return dataset
