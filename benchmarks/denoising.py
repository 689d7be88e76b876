"""A denoising autoencoder against a plain one, on the same noisy Fashion-MNIST test images.

    python benchmarks/denoising.py --model=ae --latent=16 --epochs=5 --noise=gaussian:0.3

Trains two runs with every other train.py flag equal: ``<root>/plain`` (clean inputs) and ``<root>/denoising``
(``--noise``: the encoder sees corrupted images, the loss scores the clean ones). Then, for each corruption in
``--test_noise`` (default: the training ``--noise``), the 10,000 test images are corrupted once with
``--test_seed`` and both runs reconstruct those same noisy images (`tfvae.evaluation.denoising_psnr`, the
numbers evaluate.py reports); the table gives the PSNR of the noisy images and of each run's output, against the
clean images. It also writes ``<root>/denoise.png`` (sample.py --mode=denoise of the denoising run) and
``<root>/denoise_plain.png`` (the same images through the plain run). Runs already finished in ``<root>`` are
reused.
"""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from tfvae import startup  # noqa: E402

startup.quiet_tensorflow_startup()  # TensorFlow without its C++ start-up notices and info logs

from absl import app, flags  # noqa: E402

import train  # noqa: E402  (defines train.py's flags: both runs are configured exactly as train.py would)

flags.DEFINE_list("test_noise", [], "Corruptions of the test images to measure (default: the training --noise).")
flags.DEFINE_integer("test_seed", 0, "Seed of the test noise (the same noisy images for both runs).")
flags.DEFINE_string("root", "runs/denoising", "Where the two runs go.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from tfvae import data as data_lib
    from tfvae import evaluation, pictures, training

    noises = [data_lib.parse_noise(n) for n in (FLAGS.test_noise or [FLAGS.noise])]
    if any(n is None for n in noises):
        raise app.UsageError("give the training corruption, e.g. --noise=gaussian:0.3 (and --test_noise if wanted)")
    seconds, workdirs = {}, {}
    for name, noise in (("plain", "none"), ("denoising", FLAGS.noise)):
        config = train.config_from_flags()
        config.dataset, config.noise = "fashion_mnist", noise
        config.workdir = workdirs[name] = os.path.join(FLAGS.root, name)
        started = time.perf_counter()
        result = training.train(config, verbose=0, log=lambda *a: None)
        seconds[name] = time.perf_counter() - started
        print(f"{name}: {config.model} latent {config.latent}, {result['epochs']} epochs, --noise={noise}; test loss "
              f"{result['loss']:.2f}; {seconds[name]:.0f} s", flush=True)
    loaded = {name: evaluation.load_run(w) for name, w in workdirs.items()}
    clean, _ = loaded["plain"].test_data()
    lines = ["| test noise | noisy input | plain run's output | denoising run's output |", "|---|---|---|---|"]
    for noise in noises:
        psnr = {name: evaluation.denoising_psnr(run, clean, noise, FLAGS.test_seed) for name, run in loaded.items()}
        lines.append(f"| {noise} | {psnr['plain']['psnr_noisy']:.2f} dB | {psnr['plain']['psnr_denoised']:.2f} dB | "
                     f"{psnr['denoising']['psnr_denoised']:.2f} dB |")
    print("\nPSNR against the clean test images (mean over the 10,000 images; higher is better):\n")
    print("\n".join(lines))
    for name, out in (("denoising", "denoise.png"), ("plain", "denoise_plain.png")):
        path = pictures.sample_to_png(workdirs[name], "denoise", 8, output=os.path.join(FLAGS.root, out),
                                      seed=FLAGS.test_seed, noise=str(noises[0]))
        print(f"wrote {path}")
    print(f"training: plain {seconds['plain']:.0f} s, denoising {seconds['denoising']:.0f} s (shared machine, load "
          f"average {os.getloadavg()[0]:.2f})")
    return 0


if __name__ == "__main__":
    app.run(main)
