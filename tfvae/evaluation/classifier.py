"""The feature classifier of the sample-quality metrics, trained once per dataset and cached.

It is cached as ``<cache>/classifiers/<dataset>-<H>x<W>x<C>-<data hash>.keras`` with a ``.json`` holding its
test accuracy; see ``tfvae.evaluation``.
"""

import hashlib
import json
import os
import time

import numpy as np
from scipy import special

from tfvae import files, integrity
from tfvae.data import cache_root  # the root folders' decode caches share: $TFVAE_CACHE, else ~/.cache/tfvae
from tfvae.errors import TfvaeError
from tfvae.evaluation.options import CLASSIFIER_BATCH


def data_fingerprint(dataset):
    """A short hash of a dataset's training images and labels."""
    digest = hashlib.sha1()
    digest.update(str(dataset.x_train.shape).encode())
    digest.update(np.ascontiguousarray(dataset.x_train).tobytes())
    if dataset.y_train is not None:
        digest.update(np.ascontiguousarray(dataset.y_train, dtype=np.int64).tobytes())
    return digest.hexdigest()[:12]


def classifier_path(dataset, cache_dir=""):
    """``<cache>/classifiers/<dataset>-<H>x<W>x<C>-<hash>.keras`` for ``dataset``."""
    shape = "x".join(str(d) for d in dataset.image_shape)
    name = f"{dataset.name}-{shape}-{data_fingerprint(dataset)}.keras"
    return os.path.join(cache_root(cache_dir), "classifiers", name)


def build_classifier(image_shape, num_classes):
    """A small conv net: 2 x (Conv-ReLU-MaxPool) -> Dense(128) "features" -> class logits.

    No batch normalisation: its moving statistics would make a briefly trained classifier (tests) useless at
    inference, and the net reaches the accuracy goals without it.
    """
    import keras
    from keras import layers

    image = keras.Input(image_shape, name="image")
    h = image
    for filters in (32, 64):
        h = layers.Conv2D(filters, 3, padding="same", activation="relu")(h)
        h = layers.MaxPooling2D(2, padding="same")(h)
    h = layers.Flatten()(h)
    h = layers.Dropout(0.25)(h)
    features = layers.Dense(128, activation="relu", name="features")(h)
    h = layers.Dropout(0.25)(features)
    logits = layers.Dense(num_classes, name="logits")(h)
    return keras.Model(image, logits, name="feature_classifier")


class FeatureClassifier:
    """A trained classifier and the features it gives: the ``features`` layer and the class probabilities."""

    def __init__(self, model, info, trained_now):
        import keras
        import tensorflow as tf

        self.model, self.info, self.trained_now = model, info, trained_now
        both = keras.Model(model.inputs, [model.get_layer("features").output, model.outputs[0]])
        self._call = tf.function(lambda x: both(x, training=False), reduce_retracing=True, autograph=False)

    def features_and_probs(self, images, batch_size=512):
        """(features (n, 128), class probabilities (n, classes)) of float images in [0, 1]."""
        feats, probs = [], []
        for start in range(0, len(images), batch_size):
            f, logits = self._call(np.asarray(images[start:start + batch_size], "float32"))
            feats.append(f.numpy())
            probs.append(special.softmax(logits.numpy().astype("float64"), axis=1))
        return np.concatenate(feats), np.concatenate(probs)


def train_classifier(dataset, epochs, seed=0, log=print):
    """Trains ``build_classifier`` on the dataset's training split.

    Returns:
      (model, info dict with test_accuracy, epochs, sizes and seconds).
    """
    import keras

    keras.utils.set_random_seed(seed)
    model = build_classifier(dataset.image_shape, dataset.num_classes)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    x_train = dataset.x_train.astype("float32") / 255.0
    x_test = dataset.x_test.astype("float32") / 255.0
    start = time.perf_counter()
    log(f"training the feature classifier on {len(x_train)} {dataset.name} images for {epochs} epoch(s) "
        "(once; it is cached)")
    model.fit(x_train, dataset.y_train, batch_size=CLASSIFIER_BATCH, epochs=epochs, verbose=0, shuffle=True)
    _, accuracy = model.evaluate(x_test, dataset.y_test, batch_size=512, verbose=0)
    info = {"dataset": dataset.name, "data_source": dataset.source, "image_shape": list(dataset.image_shape),
            "num_classes": dataset.num_classes, "num_train": len(x_train), "num_test": len(x_test),
            "epochs": epochs, "test_accuracy": float(accuracy), "seconds": time.perf_counter() - start}
    return model, info


def load_or_train_classifier(dataset, cache_dir="", epochs=8, seed=0, log=print):
    """The cached classifier for ``dataset``, trained and cached first if there is none.

    Returns:
      A FeatureClassifier; ``trained_now`` tells whether it was trained by this call.

    Raises:
      TfvaeError: the dataset has no labels.
    """
    import keras

    if not dataset.num_classes or dataset.y_train is None:
        raise TfvaeError(f"{dataset.name} data from {dataset.source} has no class labels, so no feature "
                         "classifier can be trained")
    path = classifier_path(dataset, cache_dir)
    info_path = path[: -len(".keras")] + ".json"
    for cached in (path, info_path):
        if os.path.isdir(cached):
            raise TfvaeError(f"{cached} is a directory, not a cached classifier file; move it away (the classifier "
                             "is then trained again and cached)")
    if os.path.lexists(path) or os.path.lexists(info_path):
        # A damaged cache entry is named and retrained, never fatal: it is a copy of what training gives.
        problem = integrity.keras_archive_problem(path)
        where = path
        if not problem:
            where, problem = info_path, integrity.read_json_problem(info_path)
        if not problem:
            try:
                model = keras.saving.load_model(path, safe_mode=True)
                info = integrity.read_json(info_path)
                return FeatureClassifier(model, {**info, "path": path}, trained_now=False)
            except Exception as e:  # noqa: BLE001
                where, problem = path, f"cannot be loaded ({type(e).__name__})"
        log(f"the cached classifier {where} {problem}; training it again")
    model, info = train_classifier(dataset, epochs, seed=seed, log=log)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # Shared by every run of the dataset: two evaluate.py at once each write their own temporaries.
    files.atomic_save(path, model.save, tmp=files.temporary_path(path, unique=True))
    files.atomic_write_text(info_path, json.dumps(info, indent=2) + "\n", unique=True)
    log(f"feature classifier: test accuracy {info['test_accuracy']:.4f}, cached in {path}")
    return FeatureClassifier(model, {**info, "path": path}, trained_now=True)
