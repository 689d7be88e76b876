"""How well a run denoises: PSNR of seeded noisy test images, and of the run's reconstructions of them."""

import numpy as np

from tfvae import data as data_lib
from tfvae import metrics


def denoising_psnr(run, images, noise, seed=0, labels=None, batch_size=512):
    """PSNR (dB, mean over images) of noisy copies of ``images`` and of the run's reconstructions of those copies.

    The copies are `tfvae.data.corrupt_array(images, noise, seed)`: the same seed gives the same noisy images
    whatever the run, so runs (a denoising run and a plain one) are compared on the same inputs. Both PSNRs are
    against the clean images; the reconstruction decodes the posterior mean of the noisy copy.

    Args:
      run: a `tfvae.api.Run`.
      images: clean float images in [0, 1], as the model sees them.
      noise: a `tfvae.data.Noise`.
      seed: seed of the test noise.
      labels: one-hot labels for a CVAE, else None.
      batch_size: images per forward pass.

    Returns:
      dict with ``noise``, ``seed``, ``num_images``, ``psnr_noisy``, ``psnr_denoised``, ``mse_noisy`` and
      ``mse_denoised`` (per-pixel MSE, mean over images).
    """
    noisy = data_lib.corrupt_array(images, noise, seed)
    denoised, _ = run.scores.reconstruction(noisy, labels, batch_size)
    mse_noisy, psnr_noisy = metrics.mse_psnr(images, noisy)
    mse_denoised, psnr_denoised = metrics.mse_psnr(images, denoised)
    return {"noise": str(noise), "seed": seed, "num_images": len(images),
            "psnr_noisy": float(np.mean(psnr_noisy)), "psnr_denoised": float(np.mean(psnr_denoised)),
            "mse_noisy": float(np.mean(mse_noisy)), "mse_denoised": float(np.mean(mse_denoised))}
