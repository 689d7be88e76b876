"""The samplers of latent codes, in one package: what they are, how they are fitted, stored and drawn from.

One job per module (each imports only the ones listed above it)::

    denoiser.py      the diffusion process (noise schedules, forward noising) and the denoiser of vector codes, an
                     MLP of residual blocks with a time embedding, as plain weights evaluated with numpy's or
                     TensorFlow's ops
    unet.py          the denoiser of grid codes, a small U-Net, as plain weights evaluated with TensorFlow's ops
    solvers.py       the ODE solvers that draw from a fitted diffusion model (DPM-Solver++(2M), DDIM)
    diffusion.py     the diffusion sampler over the codes: its fit with EMA weights and held-out codes, its
                     draws; its maths is in its docstring
    densities.py     the samplers (prior, gmm, two_stage; diffusion, registered from diffusion.py; "learned" is the
                     model's own prior): their densities, fitting and drawing, and their state as arrays; the
                     derivations are in its docstring
    npz.py           a run directory's samplers/<name>.npz: ``save_sampler``, ``load_sampler`` and their checks
    store.py         ``load_or_fit``: a run's fitted sampler read from its run directory, or fitted and written there
    run_samplers.py  ``RunSamplers``: a run's samplers by name, checked, made or fitted once (``Run.samplers``)
    draws.py         codes drawn from a run's sampler and the images they decode to (evaluate.py's samples)

``tfvae.api.Run.sampler`` is where a run gets its samplers; ``tfvae.picture_arrays.check_temperature`` (below the
models, which use it too) checks a draw's temperature.
"""

from tfvae.samplers.densities import (
    CLASSES,
    GMM_COMPONENTS,
    GMM_MAX_CODES,
    LEARNED,
    SAMPLERS,
    GaussianMixtureSampler,
    Prior,
    TwoStageSampler,
    capped_codes,
    default_sampler,
    fit_sampler,
    sampler_from_state,
)
from tfvae.samplers.diffusion import DIFFUSION_STEPS, DiffusionSampler
from tfvae.samplers.draws import generate, sample_latents
from tfvae.samplers.npz import SAMPLER_DIR, encoder_fingerprint, load_sampler, sampler_path, save_sampler
from tfvae.samplers.solvers import SOLVER, SOLVERS
from tfvae.samplers.store import load_or_fit

__all__ = [
    "CLASSES", "DIFFUSION_STEPS", "GMM_COMPONENTS", "GMM_MAX_CODES", "LEARNED", "SAMPLERS", "SAMPLER_DIR", "SOLVER",
    "SOLVERS", "DiffusionSampler", "GaussianMixtureSampler", "Prior", "TwoStageSampler", "capped_codes",
    "default_sampler", "encoder_fingerprint", "fit_sampler", "generate", "load_or_fit", "load_sampler",
    "sample_latents", "sampler_from_state", "sampler_path", "save_sampler",
]
