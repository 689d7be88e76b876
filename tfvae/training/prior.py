"""A VQ-VAE's PixelCNN prior, trained after the VQ-VAE's last epoch on its training images' code grids.

``train_prior`` encodes the training (and test) images with the trained VQ-VAE into (h, w) grids of codebook
indices, and fits ``tfvae.models.pixelcnn``'s PixelCNN to them for ``config.prior_epochs`` epochs (Adam 1e-3,
the run's batch size, each epoch's order drawn from the run's seed and the epoch, so a resumed prior sees the
batches an uninterrupted one would). After each epoch the weights and Adam's state are checkpointed in
``<workdir>/prior/`` (``tfvae.rundir``): a rerun resumes from there while the VQ-VAE's training codes are the
ones it was trained on, and trains it afresh otherwise. prior.keras is written after the last epoch.
"""

import hashlib
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf

from tfvae import data as data_lib
from tfvae import rundir
from tfvae.models import pixelcnn
from tfvae.training.model_setup import float32_copy

LEARNING_RATE = 1e-3


def code_grids(encoder, images, batch_size=256):
    """The int32 (n, h, w) codebook indices of float images (n, H, W, C) in [0, 1]."""
    out = [np.asarray(encoder(images[i:i + batch_size], training=False)["indices"])
           for i in range(0, len(images), batch_size)]
    return np.concatenate(out).astype("int32")


def model_view(x_uint8, config, split):
    """uint8 images as the VQ-VAE saw them (``tfvae.run_data.RunData.model_view``: a binarized run's fixed copy)."""
    if config.binarize == "none":
        return x_uint8.astype("float32") / 255.0
    return data_lib.binarize_static(x_uint8, seed=config.seed + (split == "test")).astype("float32") / 255.0


def train_prior(config, model, dataset, workdir, log=print, verbose=0, strategy=None):
    """Trains (or resumes) the PixelCNN prior of the VQ-VAE ``model`` and writes prior.keras.

    Args:
      config: the run's Config (``prior_epochs``, ``batch_size``, ``seed``, ``codebook_size``).
      model: the trained ``VQVAE``.
      dataset: the data it trained on.
      workdir: the run directory.
      log: gets a line per epoch trained, and one when a checkpoint is resumed or discarded.
      verbose: Keras progress-bar mode of each epoch's fit.
      strategy: the tf.distribute strategy the prior trains under (default: none); the VQ-VAE's own on one host,
        so that a prior trained on several GPUs takes the same steps as on one (its batches split between them).

    Returns:
      dict: ``epochs``, ``loss`` and ``val_loss`` (nats per grid), ``bits_per_code`` (test); None when
      ``prior_epochs`` is 0.
    """
    epochs = int(config.prior_epochs)
    if epochs < 1:
        return None
    encoder = float32_copy(model.encoder)  # the codes encoder.keras gives, whatever precision trained the model
    train_codes = code_grids(encoder, model_view(dataset.x_train, config, "train"))
    test_codes = code_grids(encoder, model_view(dataset.x_test, config, "test"))
    codes_sha256 = hashlib.sha256(train_codes.tobytes()).hexdigest()
    cells = math.prod(train_codes.shape[1:])
    with (strategy or tf.distribute.get_strategy()).scope():
        prior = pixelcnn.build_pixelcnn(train_codes.shape[1:], config.codebook_size, seed=int(config.seed))
        prior.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss=pixelcnn.GridCrossEntropy())
        prior.optimizer.build(prior.trainable_variables)
    state, start = rundir.read_prior_state(workdir), 0
    if state.get("codes_sha256") == codes_sha256 and 0 < int(state.get("epoch", 0)):
        prior.load_weights(rundir.prior_checkpoint_path(workdir))
        start = int(state["epoch"])
        if start < epochs:
            log(f"resuming the PixelCNN prior after epoch {start} of {epochs}")
    elif state:
        log("the PixelCNN prior's checkpoint was trained on other codes (the VQ-VAE has trained since): training "
            "it again")
    batch_size = int(config.batch_size) or 32
    for epoch in range(start, epochs):
        started = time.perf_counter()
        order = np.random.default_rng([int(config.seed), epoch]).permutation(len(train_codes))
        fit = prior.fit(train_codes[order], train_codes[order], batch_size=batch_size, epochs=1, shuffle=False,
                        verbose=verbose)
        val_loss = float(prior.evaluate(test_codes, test_codes, batch_size=batch_size, verbose=0))
        loss = float(fit.history["loss"][-1])
        if not (math.isfinite(loss) and math.isfinite(val_loss)):
            raise FloatingPointError(f"the PixelCNN prior's loss became {loss} (test {val_loss}) in epoch "
                                     f"{epoch + 1}")
        state = {"epoch": epoch + 1, "codes_sha256": codes_sha256, "loss": loss, "val_loss": val_loss,
                 "bits_per_code": val_loss / (cells * math.log(2.0))}
        rundir.save_prior_checkpoint(prior, workdir, state)
        log(f"prior epoch {epoch + 1}/{epochs}: loss {loss:.2f}, test {val_loss:.2f} nats per grid "
            f"({state['bits_per_code']:.3f} bits per code; uniform: {math.log2(config.codebook_size):.3f}) in "
            f"{time.perf_counter() - started:.1f} s")
    if start < epochs or not os.path.isfile(rundir.prior_path(workdir)):
        rundir.save_prior(prior, workdir)
    return {"epochs": epochs, **{k: state.get(k) for k in ("loss", "val_loss", "bits_per_code")}}
