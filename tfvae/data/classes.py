"""Training on chosen classes: the subset of a labelled `Dataset` that ``--classes`` keeps.

The one-hot labels keep their full depth (``Dataset.num_classes`` and ``class_names`` are unchanged), so that a
CVAE trained on some classes still takes the data set's labels. Both splits are filtered: a run's test metrics
cover the test images of its classes (the one-class protocol, `tfvae.evaluation.evaluate_one_class`, scores them
all).
"""

import dataclasses

import numpy as np

from tfvae.data.images import ImageFiles
from tfvae.errors import TfvaeError


def select_classes(dataset, classes):
    """The images of ``classes`` only, in their original order.

    Args:
      dataset: a labelled `tfvae.data.Dataset` (training images as an array or `ImageFiles`).
      classes: class ids, each in [0, dataset.num_classes).

    Returns:
      A new `Dataset` holding only those classes' training and test images.

    Raises:
      TfvaeError: the data has no labels, a class id is out of range, or a chosen class has no training image.
    """
    classes = sorted({int(c) for c in classes})
    wanted = ",".join(map(str, classes))
    if dataset.y_train is None or not dataset.num_classes:
        raise TfvaeError(f"--classes={wanted} needs labelled data, but {dataset.name} data from {dataset.source} has "
                         "no labels; put the images in one subfolder per class, or leave --classes out")
    bad = [c for c in classes if not 0 <= c < dataset.num_classes]
    if bad:
        names = f" ({dataset.class_names[0]} .. {dataset.class_names[-1]})" if dataset.class_names else ""
        raise TfvaeError(f"--classes={wanted}: class {bad[0]} is out of range; {dataset.name} has the classes "
                         f"0..{dataset.num_classes - 1}{names}")
    keep_train = np.isin(dataset.y_train, classes)
    keep_test = np.isin(dataset.y_test, classes)
    empty = [c for c in classes if not np.any(dataset.y_train == c)]
    if empty:
        raise TfvaeError(f"--classes={wanted}: class {empty[0]} has no training image in {dataset.source}")
    x_train = dataset.x_train
    if isinstance(x_train, ImageFiles):  # keep the files on disk
        x_train = dataclasses.replace(x_train, paths=tuple(np.asarray(x_train.paths, dtype=object)[keep_train]))
    else:
        x_train = x_train[keep_train]
    return dataclasses.replace(dataset, x_train=x_train, y_train=dataset.y_train[keep_train],
                               x_test=dataset.x_test[keep_test], y_test=dataset.y_test[keep_test])


def describe_classes(classes, class_names=()):
    """"class 0 (T-shirt/top)" or "classes 0, 2 (T-shirt/top, Pullover)" for log lines and reports."""
    classes = list(classes)
    names = [class_names[c] for c in classes if c < len(class_names)] if class_names else []
    named = f" ({', '.join(names)})" if len(names) == len(classes) and names != [str(c) for c in classes] else ""
    return f"class{'es' if len(classes) > 1 else ''} {', '.join(map(str, classes))}{named}"


def describe_test_set(count, classes, class_names=()):
    """Which test images a run's test metrics cover: "the 1000 test images of class 0 (T-shirt/top)"."""
    if not classes:
        return f"all {count} test images"
    return f"the {count} test images of {describe_classes(classes, class_names)}"
