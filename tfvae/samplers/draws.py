"""Latent codes from a run's sampler (``tfvae.api.Run.sampler``) and the images they decode to.

The samplers are the run's own (``tfvae.samplers.densities``): the prior, or a density fitted to the training images'
posterior means and saved in the run directory (``samplers/<name>.npz``) on first use, by evaluate.py,
sample.py or ``Run.sample`` alike. So evaluate.py scores the very samples sample.py draws.
"""

import numpy as np

from tfvae.samplers.densities import GMM_MAX_CODES
from tfvae.samplers.diffusion import DIFFUSION_STEPS
from tfvae.samplers.solvers import SOLVER


def sample_latents(run, sampler, count, seed, batch_size=512, gmm_components=None, temperature=1.0,
                   diffusion_steps=DIFFUSION_STEPS, gmm_max_codes=GMM_MAX_CODES, settings=None,
                   diffusion_solver=SOLVER):
    """``count`` latent codes from ``sampler`` (a name of ``tfvae.samplers.SAMPLERS``) at ``temperature``, plus
    the sampler (a gmm of ``gmm_components``, None for the model's default, fitted to at most ``gmm_max_codes``
    codes; a diffusion sampler drawing in ``diffusion_steps`` steps of ``diffusion_solver``). ``settings``: {sampler
    name: {setting: value}}, more of a sampler's settings (``Run.sampler``'s), which win over those, e.g.
    ``{"diffusion": {"steps": 16000}}``.

    A fitted sampler is read from the run directory, or fitted to the posterior means of the run's training
    images (``Run.train_codes``) with seed 0 and saved there (``Run.sampler``). ``batch_size`` is unused (the
    codes are encoded with the Run's batch size); it is kept for callers.

    Raises:
      ArgumentError: an unknown sampler. TfvaeError: a damaged sampler file.
    """
    del batch_size
    asked = {"gmm": {"components": gmm_components, "max_codes": gmm_max_codes},
             "diffusion": {"diffusion_steps": diffusion_steps, "solver": diffusion_solver}}.get(sampler, {})
    fitted = run.sampler(sampler, **{**asked, **(settings or {}).get(sampler, {})})
    return fitted.sample(count, seed, temperature), fitted


def generate(run, z, batch_size=512):
    """Decoded Bernoulli means (grey levels in [0, 1]) of codes ``z``; a CVAE cycles through the classes."""
    labels = np.arange(len(z)) % run.num_classes if run.conditional else None
    return run.decode(z, labels, batch_size=batch_size)
