"""TensorBoard writers: per-epoch scalars, and pictures of reconstructions and prior samples."""

import os

import numpy as np
import tensorflow as tf

from tfvae import likelihoods, picture_arrays


class ScalarWriter:
    """TensorBoard scalars, one point per epoch: ``train/epoch_<name>`` and ``validation/epoch_<name>``."""

    def __init__(self, logdir):
        self.writers = {split: tf.summary.create_file_writer(os.path.join(logdir, split))
                        for split in ("train", "validation")}

    def write(self, epoch, logs):
        splits = {"train": {k: v for k, v in logs.items() if not k.startswith("val_")},
                  "validation": {k[len("val_"):]: v for k, v in logs.items() if k.startswith("val_")}}
        for split, values in splits.items():
            with self.writers[split].as_default(step=epoch):
                for name, value in values.items():
                    tf.summary.scalar(f"epoch_{name}", float(value))
            self.writers[split].flush()

    def close(self):
        for writer in self.writers.values():
            writer.close()


class ImageWriter:
    """Writes reconstructions of fixed test images and decoded fixed prior samples to TensorBoard: the decoder's
    distribution's mean (``tfvae.likelihoods.mean``) at ``model.prior_codes`` of fixed noise (N(0, I) draws, or a
    learned prior's; none for a vqvae, whose prior is trained after it)."""

    def __init__(self, logdir, batch, z, labels=None):
        self.writer = tf.summary.create_file_writer(os.path.join(logdir, "images"))
        self.batch, self.z, self.labels = batch, z, labels

    def write(self, model, epoch):
        likelihood = likelihoods.for_loss(model.reconstruction)
        recon = np.asarray(likelihoods.mean(model(self.batch)["logits"], likelihood))
        originals = np.asarray(self.batch["image"])
        cols = len(originals)
        with self.writer.as_default(step=epoch):
            tf.summary.image("reconstructions", picture_arrays.tile(np.concatenate([originals, recon]), 2, cols)[None])
            if self.z is not None:  # None: a model without a prior to draw from while it trains (vqvae)
                # A direct call: predict()'s per-call set-up would cost more every epoch than these 64 images.
                z = model.prior_codes(self.z)  # the fixed noise, as draws of the model's prior (a vamp's moves)
                outputs = model.decoder(z if self.labels is None else [z, self.labels])
                samples = np.asarray(likelihoods.mean(outputs, likelihood))
                side = int(np.sqrt(len(self.z)))
                tf.summary.image("samples", picture_arrays.tile(samples, side, side)[None])
        self.writer.flush()

    def close(self):
        self.writer.close()
