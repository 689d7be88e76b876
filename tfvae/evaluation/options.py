"""What evaluate.py measures and how much of it: ``EvalOptions`` and the constants it checks against."""

import dataclasses
import os

from tfvae import data as data_lib
from tfvae import picture_arrays
from tfvae.errors import ArgumentError, TfvaeError
from tfvae.samplers import DIFFUSION_STEPS, GMM_MAX_CODES, SAMPLERS, SOLVER, SOLVERS

MODES = ("evaluate", "score")
KNN_K = 3  # Kynkäänniemi et al. 2019
GRID_SIDE = 10  # sample grids are GRID_SIDE x GRID_SIDE images
WORST_COUNT = 16  # worst reconstructions shown
CLASSIFIER_BATCH = 128
# The reconstructions' FCD is the floor a sampler cannot beat (its samples go through the same decoder): the floor
# limits a run when the best sampler's FCD is within this share of it above it, else the sampler does.
FLOOR_TOLERANCE = 0.1

IWAE_PRECISIONS = ("float32", "mixed_bfloat16")


@dataclasses.dataclass
class EvalOptions:
    """What to measure and how much of it; built once from evaluate.py's flags.

    Attributes:
      num_samples: importance samples K of the IWAE estimate.
      num_images: test images for the IWAE estimate (0: all).
      iwae_batch: most latent codes per decoder call of the IWAE estimate (iwae_batch // num_samples images
        with all their draws per call).
      iwae_precision: "float32", or "mixed_bfloat16" to run the IWAE's decoder passes in bfloat16 (logits
        still float32): faster on an AVX512_BF16 CPU, with the same mean NLL (docs/performance.md, "IWAE NLL").
      sample_count: generated (and real) images for the sample-quality metrics.
      samplers: names from SAMPLERS (``tfvae.samplers``: prior, gmm, two_stage, diffusion, learned); the default
        is the prior for every model but a vqvae (whose only sampler, learned, replaces it), so that the runs of a
        comparison are measured alike (``Run.sampler``'s default, used by sample.py and ``Run.sample``, is gmm for
        an ae or rae).
      elbo_samples: draws per image of the -ELBO's reconstruction term.
      ood_dataset: "" (none) or a name from tfvae.data.DATASETS.
      ood_data_dir: where the OOD data lives ("": the dataset's usual places).
      batch_size: most images (or latent codes) per forward pass.
      seed: seed of every draw (samples, subsets, noise).
      classifier_epochs: epochs of the feature classifier when it has to be trained.
      cache_dir: "" for $TFVAE_CACHE, else ~/.cache/tfvae.
      gmm_components: components of the ex-post Gaussian mixture; None: the model's default
        (``tfvae.samplers.run_samplers.default_components``).
      gmm_max_codes: the most training codes the mixture is fitted to (a random subset of a run with more).
      diffusion_steps: solver steps of the diffusion sampler's draws.
      diffusion_solver: the ODE solver of its draws (``tfvae.samplers.solvers.SOLVERS``).
      sampler_settings: {sampler name: {setting: value}}, more of the samplers' settings (``Run.sampler``'s),
        winning over gmm_components, gmm_max_codes, diffusion_steps and diffusion_solver, e.g.
        ``{"diffusion": {"steps": 16000}}``.
      temperature: every sampler's temperature (``tfvae.samplers``; 1: the density itself).
      output: report directory (evaluate, compare) or CSV path (score); "" for the defaults.
      noise: corruption of the test images whose denoising is measured (the ``--noise`` grammar of
        `tfvae.data.parse_noise`); "" for the run's own ``--noise`` (none: no denoising measurement).
    """

    num_samples: int = 1000
    num_images: int = 0
    iwae_batch: int = 4000
    iwae_precision: str = "float32"
    sample_count: int = 10000
    samplers: tuple = ("prior",)
    elbo_samples: int = 8
    ood_dataset: str = ""
    ood_data_dir: str = ""
    batch_size: int = 512
    seed: int = 0
    classifier_epochs: int = 8
    cache_dir: str = ""
    gmm_components: int = None
    gmm_max_codes: int = GMM_MAX_CODES
    diffusion_steps: int = DIFFUSION_STEPS
    diffusion_solver: str = SOLVER
    sampler_settings: dict = dataclasses.field(default_factory=dict)
    temperature: float = 1.0
    output: str = ""
    noise: str = ""

    def __post_init__(self):
        self.samplers = tuple(self.samplers)

    def validate(self):
        """Raises TfvaeError naming the first bad value."""
        for name in ("num_samples", "iwae_batch", "sample_count", "elbo_samples", "batch_size",
                     "classifier_epochs", "gmm_components", "gmm_max_codes", "diffusion_steps"):
            if name == "gmm_components" and self.gmm_components is None:  # the model's default
                continue
            if getattr(self, name) < 1:
                raise TfvaeError(f"--{name} must be at least 1 (got {getattr(self, name)})")
        if self.iwae_precision not in IWAE_PRECISIONS:
            raise TfvaeError(f"unknown --iwae_precision={self.iwae_precision!r}; choose one of "
                             f"{', '.join(IWAE_PRECISIONS)}")
        if self.num_images < 0:
            raise TfvaeError(f"--num_images must be 0 (all) or positive (got {self.num_images})")
        if self.sample_count <= KNN_K:
            raise TfvaeError(f"--sample_count must be more than {KNN_K} for k-NN precision/recall")
        try:
            picture_arrays.check_temperature(self.temperature)
        except ArgumentError:
            raise TfvaeError(f"--temperature={self.temperature}: the samples' spread is multiplied by it, so it must "
                             "be a number above 0 (1: the density itself)") from None
        if not self.samplers or any(s not in SAMPLERS for s in self.samplers):
            raise TfvaeError(f"--sampler={','.join(self.samplers)}: choose from {', '.join(SAMPLERS)} "
                             "(comma-separated for several)")
        unknown = sorted(set(self.sampler_settings) - set(SAMPLERS))
        if unknown:
            raise TfvaeError(f"sampler settings for {', '.join(unknown)}: not a sampler; choose from "
                             f"{', '.join(SAMPLERS)}")
        if self.diffusion_solver not in SOLVERS:
            raise TfvaeError(f"unknown --diffusion_solver={self.diffusion_solver!r}; choose one of "
                             f"{', '.join(SOLVERS)}")
        if self.ood_dataset and self.ood_dataset not in data_lib.DATASETS:
            raise TfvaeError(f"unknown --ood_dataset={self.ood_dataset!r}; choose one of "
                             f"{', '.join(data_lib.DATASETS)}")
        if self.ood_dataset == "folder" and not self.ood_data_dir:
            raise TfvaeError("--ood_dataset=folder needs --ood_data_dir=PATH (a folder of images)")
        if self.ood_data_dir and not os.path.isdir(self.ood_data_dir):
            raise TfvaeError(f"--ood_data_dir {self.ood_data_dir} is not a directory")
        data_lib.parse_noise(self.noise)  # NoiseError (a TfvaeError): one line with the grammar
        return self
