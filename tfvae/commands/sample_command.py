"""Draw pictures from a trained run.

    tfvae sample --grid 15                      # 15x15 latent manifold (2-D) or prior samples, runs/latest
    tfvae sample --mode=reconstruct             # test images above their reconstructions
    tfvae sample --mode=scatter                 # test-set latent means coloured by class
    tfvae sample --mode=random --label=3        # a CVAE's samples of class 3
    tfvae sample --mode=random --sampler=gmm    # codes from a mixture fitted to the training codes (saved)
    tfvae sample --mode=random --sampler=learned  # a vamp's or vqvae's own prior (their default)
    tfvae sample --mode=random --temperature=0.7  # draws nearer the density's modes (1: the density itself)
    tfvae sample --mode=traverse --grid 9       # one row per latent dimension, the highest KL first
    tfvae sample --mode=projector               # test-set codes for TensorBoard's Projector (logs/latent)
    tfvae sample --mode=denoise                 # rows of clean / noisy / denoised test images
"""

import os
import sys

from absl import app, flags

from tfvae.commands.cli import in_program_terms

FLAGS = flags.FLAGS
MODES = ("grid", "random", "reconstruct", "interpolate", "scatter", "traverse", "projector", "denoise")


def define_flags():
    """Defines sample's flags."""
    flags.DEFINE_string("workdir", "runs/latest", "Run directory written by train.py.")
    flags.DEFINE_enum("mode", "grid", MODES, "grid: the 2-D latent manifold over norm.ppf(linspace(0.01, 0.99, n)) "
                      "(prior samples for larger latents); random: prior samples; reconstruct: test images above "
                      "their reconstructions; interpolate: rows walking between two test images' codes; scatter: "
                      "test-set latent means coloured by class (PCA of larger latents); traverse: one row per latent "
                      "dimension (the grid ones with the highest average KL, highest first) swept over "
                      "norm.ppf(linspace(0.05, 0.95, n)) around a test image's code; projector: the test set's codes, "
                      "thumbnails and labels for TensorBoard's Projector, in <workdir>/logs/latent; denoise: groups of "
                      "clean / noisy / denoised test images (--noise).")
    flags.DEFINE_integer("grid", 15, "The picture is grid x grid images.", lower_bound=1)
    flags.DEFINE_integer("label", None, "CVAE only: the class to draw (default: one class per row).", lower_bound=0)
    flags.DEFINE_string("output", "", "PNG path (default <workdir>/<mode>.png).")
    flags.DEFINE_integer("seed", 0, "Seed of the samples and of the choice of test images.")
    flags.DEFINE_string("sampler", None, "What draws the codes of --mode=random and of --mode=grid beyond a 2-D "
                        "latent (the names: tfvae.samplers.SAMPLERS): prior (N(0, I)), gmm (a mixture of "
                        "--gmm_components Gaussians fitted to the training images' codes), two_stage (a second small "
                        "VAE fitted to them), diffusion (a diffusion model fitted to them, drawn in --diffusion_steps "
                        "steps of --diffusion_solver) or learned (the model's own learned prior: a vamp's "
                        "VampPrior, a vqvae's PixelCNN prior over its code grids). Default: learned for a vamp or "
                        "vqvae, prior for a vae or cvae, gmm for an ae. A fitted one is saved in <workdir>/samplers/ "
                        "on first use and reused after.")
    flags.DEFINE_integer("diffusion_steps", None, "Solver steps of the diffusion sampler's draws (default 50; a "
                         "setting of the draws: a saved fit is reused).", lower_bound=1)
    flags.DEFINE_enum("diffusion_solver", None, ["dpmpp_2m", "ddim"], "The ODE solver of the diffusion sampler's "
                      "draws (default dpmpp_2m, DPM-Solver++(2M), second order; ddim: first order; a setting of the "
                      "draws: a saved fit is reused).")
    flags.DEFINE_integer("gmm_components", None, "Components of the gmm sampler's mixture (default 10, Ghosh et "
                         "al.'s; a gridvae's: one per 40 codes it is fitted to, 10 to 500 within a fit's work); a "
                         "saved mixture of another size is fitted again.", lower_bound=1)
    flags.DEFINE_integer("gmm_max_codes", None, "The most training codes the gmm sampler is fitted to (default "
                         "20,000): a run with more is fitted to a random subset of that many, drawn with the fit's "
                         "seed; a saved mixture fitted to other codes is fitted again.", lower_bound=1)
    flags.DEFINE_float("temperature", 1.0, "The samples' temperature tau (--mode=random, and --mode=grid beyond a 2-D "
                       "latent): the sampler's Gaussian noise is multiplied by tau (prior z = tau * e; gmm, two_stage "
                       "and a VampPrior likewise), a PixelCNN's logits divided by it. 1: the density itself; below 1 "
                       "draws nearer its modes, more alike (docs/sampling.md measures what that buys).")
    flags.DEFINE_string("noise", "", "--mode=denoise: the corruption (default the run's --noise), e.g. gaussian:0.3.")


def sampler_settings(components, diffusion_steps=None, max_codes=None, solver=None):
    """The sampler settings --gmm_components, --diffusion_steps, --gmm_max_codes and --diffusion_solver ask for
    (those given)."""
    settings = {} if components is None else {"components": components}
    if max_codes is not None:
        settings["max_codes"] = max_codes
    if diffusion_steps is not None:
        settings["diffusion_steps"] = diffusion_steps
    if solver is not None:
        settings["solver"] = solver
    return settings


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; flags look like --name=value")
    # `import keras` itself imports scikit-learn (keras.wrappers -> keras.src.wrappers.sklearn_wrapper) and
    # matplotlib.pyplot (keras.src.activations -> keras.src.visualization) when they are installed, guarded by
    # try/except ImportError; tfvae's own imports never do. This command uses neither (a part of its cold start:
    # docs/performance.md), so it marks them absent; only the scatter plot needs pyplot.
    for unused in ("sklearn",) + (() if FLAGS.mode == "scatter" else ("matplotlib.pyplot",)):
        sys.modules.setdefault(unused, None)
    from tfvae import pictures  # after flag parsing, so --help is instant

    if sys.modules.get("sklearn", "") is None:  # keras has imported without it; fitting a gmm sampler imports it
        del sys.modules["sklearn"]
    from tfvae.errors import TfvaeError, flag_message

    try:
        path = pictures.sample_to_png(FLAGS.workdir, FLAGS.mode, FLAGS.grid, output=FLAGS.output, seed=FLAGS.seed,
                                      label=FLAGS.label, noise=FLAGS.noise, sampler=FLAGS.sampler,
                                      sampler_settings=sampler_settings(FLAGS.gmm_components, FLAGS.diffusion_steps,
                                                                        FLAGS.gmm_max_codes, FLAGS.diffusion_solver),
                                      temperature=FLAGS.temperature)
    except TfvaeError as e:
        message = flag_message(e, {'n': 'grid', 'components': 'gmm_components', 'max_codes': 'gmm_max_codes',
                                    'solver': 'diffusion_solver'})
        print(f"error: {in_program_terms(message, argv[0])}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    if FLAGS.mode == "projector":  # <runs>/<run>/logs/latent
        print(f"see it: tensorboard --logdir {os.path.dirname(os.path.dirname(os.path.dirname(path)))} -> "
              "Projector, color by class")
    return 0
