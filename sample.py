"""Draw pictures from a trained run.

    python sample.py --grid 15                      # 15x15 latent manifold (2-D) or prior samples, runs/latest
    python sample.py --mode=reconstruct             # test images above their reconstructions
    python sample.py --mode=scatter                 # test-set latent means coloured by class
    python sample.py --mode=random --label=3        # a CVAE's samples of class 3
    python sample.py --mode=random --sampler=gmm    # codes from a mixture fitted to the training codes (saved)
    python sample.py --mode=random --sampler=learned  # a vamp's or vqvae's own prior (their default)
    python sample.py --mode=random --sampler=diffusion  # a diffusion model fitted to the training codes (saved)
    python sample.py --mode=random --temperature=0.7  # draws nearer the density's modes (1: the density itself)
    python sample.py --mode=traverse --grid 9       # one row per latent dimension, the highest KL first
    python sample.py --mode=projector               # test-set codes for TensorBoard's Projector (logs/latent)
    python sample.py --mode=denoise                 # rows of clean / noisy / denoised test images
"""

import sys

from tfvae import startup

startup.quiet_tensorflow_startup()  # TensorFlow without its C++ start-up notices and info logs

from tfvae.commands import cli, sample_command  # noqa: E402  (the command: `tfvae sample` runs the same code)
from tfvae.commands.sample_command import main, sampler_settings  # noqa: E402, F401

sample_command.define_flags()

if __name__ == "__main__":
    cli.run(sample_command, sys.argv)
