"""Measure what a trained run is worth: likelihood, reconstruction, sample quality, anomaly scores.

    python evaluate.py                                        # runs/latest -> eval.json, report.md, PNGs
    python evaluate.py --sampler=prior,gmm --num_images=1000  # both samplers; IWAE on 1000 test images
    python evaluate.py --sampler=prior,gmm,two_stage          # and a second-stage VAE fitted to the codes
    python evaluate.py --compare runs/ae-fashion_mnist-z2 runs/vae-fashion_mnist-z2 --sampler=prior,gmm
    python evaluate.py --ood_dataset=mnist                    # AUROC of telling MNIST from the run's test set
    python evaluate.py --mode=score --data_dir=my_images      # per-image scores -> <workdir>/scores.csv
    python evaluate.py --one_class --workdir=runs/fashion-c0  # a --classes=0 run: AUROC of class 0 vs the rest
    python evaluate.py --noise=gaussian:0.3                   # also PSNR of noisy and denoised test images

The first evaluation of a dataset trains a small feature classifier and caches it (see tfvae/evaluation/classifier.py).
"""

import sys

from tfvae import startup

startup.quiet_tensorflow_startup()  # TensorFlow without its C++ start-up notices and info logs

from tfvae.commands import cli, evaluate_command  # noqa: E402  (the command: `tfvae evaluate` runs the same code)
from tfvae.commands.evaluate_command import main, options_from_flags  # noqa: E402, F401

evaluate_command.define_flags()

if __name__ == "__main__":
    cli.run(evaluate_command, sys.argv)
