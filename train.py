"""Train an autoencoder or VAE and write its run directory.

    python train.py --model=vae --latent=2                # the Keras example on MNIST
    python train.py --flagfile=configs/fashion_vae_z2.cfg  # a documented setup
    tensorboard --logdir runs                             # live curves and pictures

Running the same command again resumes from the last finished epoch.
"""

import sys

from tfvae import startup

startup.quiet_tensorflow_startup()  # TensorFlow without its C++ start-up notices and info logs

from tfvae.commands import cli, train_command  # noqa: E402  (the command: `tfvae train` runs the same code)
from tfvae.commands.train_command import config_from_flags, expand_config, main  # noqa: E402, F401

train_command.define_flags()

if __name__ == "__main__":
    cli.run(train_command, sys.argv)
