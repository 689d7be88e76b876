"""Measure what a trained run is worth: likelihood, reconstruction, sample quality, anomaly scores.

    tfvae evaluate                                        # runs/latest -> eval.json, report.md, PNGs
    tfvae evaluate --sampler=prior,gmm --num_images=1000  # both samplers; IWAE on 1000 test images
    tfvae evaluate --sampler=prior,gmm,two_stage          # and a second-stage VAE fitted to the codes
    tfvae evaluate --compare runs/ae-fashion_mnist-z2 runs/vae-fashion_mnist-z2 --sampler=prior,gmm
    tfvae evaluate --ood_dataset=mnist                    # AUROC of telling MNIST from the run's test set
    tfvae evaluate --mode=score --data_dir=my_images      # per-image scores -> <workdir>/scores.csv
    tfvae evaluate --one_class --workdir=runs/fashion-c0  # a --classes=0 run: AUROC of class 0 vs the rest
    tfvae evaluate --noise=gaussian:0.3                   # also PSNR of noisy and denoised test images

The first evaluation of a dataset trains a small feature classifier and caches it (see tfvae/evaluation/classifier.py).
"""

import os
import sys

from absl import app, flags

from tfvae.commands.cli import in_program_terms

FLAGS = flags.FLAGS


def define_flags():
    """Defines evaluate's flags."""
    flags.DEFINE_string("workdir", "runs/latest", "Run directory written by train.py.")
    flags.DEFINE_list("compare", [], "Run directories to evaluate and lay side by side (comma- or space-separated: "
                      "--compare runs/a runs/b); the report goes to --output, default <parent of the first>/compare.")
    flags.DEFINE_enum("mode", "evaluate", ["evaluate", "score"], "evaluate: metrics and report; score: per-image "
                      "scores of the images under --data_dir, written to CSV.")
    flags.DEFINE_integer("num_samples", 1000, "Importance samples k of the IWAE log-likelihood (5000 to compare with "
                         "papers).", lower_bound=1)
    flags.DEFINE_integer("num_images", 0, "Test images for the IWAE estimate (0: all). Costs num_images x num_samples "
                         "decoder passes.", lower_bound=0)
    flags.DEFINE_integer("iwae_batch", 4000, "Most latent codes per decoder call of the IWAE estimate (4 images x "
                         "1000 draws by default); larger is faster until memory runs out.", lower_bound=1)
    flags.DEFINE_enum("iwae_precision", "float32", ["float32", "mixed_bfloat16"], "mixed_bfloat16: the IWAE's "
                      "decoder passes in bfloat16 with float32 logits, 1.4x faster on AVX512_BF16 CPUs (mean NLL "
                      "within 0.01 nats of float32's here).")
    flags.DEFINE_integer("sample_count", 10000, "Generated images (and as many real ones) for FCD, IS and "
                         "precision/recall.", lower_bound=1)
    flags.DEFINE_list("sampler", ["prior"], "prior: z ~ N(0, I); gmm: a Gaussian mixture (--gmm_components) fitted to "
                      "the training images' codes; two_stage: a second small VAE fitted to them (Dai & Wipf 2019); "
                      "diffusion: a diffusion model fitted to them, drawn by an ODE solver (--diffusion_solver, "
                      "--diffusion_steps); "
                      "learned: the model's own learned prior (a vamp's VampPrior; a vqvae's PixelCNN prior, its only "
                      "sampler, used for a vqvae when --sampler is left at prior). "
                      "Comma-separated for several. A fitted one is saved in <workdir>/samplers/ and reused, as "
                      "sample.py --sampler does. The default, prior, is every model's here, so that runs compare "
                      "alike.")
    flags.DEFINE_integer("gmm_components", None, "Components of the gmm sampler's mixture (default 10, Ghosh et al.'s; "
                         "a gridvae's: one per 40 codes it is fitted to, 10 to 500 within a fit's work); a saved "
                         "mixture of another size is fitted again.", lower_bound=1)
    flags.DEFINE_integer("gmm_max_codes", 20000, "The most training codes the gmm sampler is fitted to: a run with "
                         "more is fitted to a random subset of that many, drawn with the fit's seed (0); a saved "
                         "mixture fitted to other codes is fitted again.", lower_bound=1)
    flags.DEFINE_integer("diffusion_steps", 50, "Solver steps of the diffusion sampler's draws (a setting of the "
                         "draws: a saved fit is reused).", lower_bound=1)
    flags.DEFINE_enum("diffusion_solver", "dpmpp_2m", ["dpmpp_2m", "ddim"], "The ODE solver of the diffusion "
                      "sampler's draws: dpmpp_2m (DPM-Solver++(2M), second order) or ddim (first order); a setting of "
                      "the draws: a saved fit is reused.")
    flags.DEFINE_float("temperature", 1.0, "Every sampler's temperature tau, as sample.py --temperature: the Gaussian "
                       "noise of the draws multiplied by tau, a PixelCNN's logits divided by it. 1: the density itself "
                       "(the default, and what the likelihood describes).")
    flags.DEFINE_integer("elbo_samples", 8, "Draws per image of the -ELBO's reconstruction term.", lower_bound=1)
    flags.DEFINE_string("ood_dataset", "", "mnist, fashion_mnist or folder: score these images as out-of-distribution "
                        "against the run's test set (AUROC).")
    flags.DEFINE_string("ood_data_dir", "", "Where the OOD data lives (required for --ood_dataset=folder).")
    flags.DEFINE_string("data_dir", "", "--mode=score: the folder of images to score.")
    flags.DEFINE_string("output", "", "evaluate: report directory (default the run directory); score: CSV path "
                        "(default <workdir>/scores.csv).")
    flags.DEFINE_integer("seed", 0, "Seed of every draw: samples, test subsets, importance samples.")
    flags.DEFINE_integer("batch_size", 512, "Most images or latent codes per forward pass.", lower_bound=1)
    flags.DEFINE_integer("classifier_epochs", 8, "Epochs of the feature classifier, when it has to be trained.",
                         lower_bound=1)
    flags.DEFINE_string("cache_dir", "", "Classifier cache (default $TFVAE_CACHE, else ~/.cache/tfvae).")
    flags.DEFINE_boolean("one_class", False, "The one-class protocol on a run trained with --classes: score every test "
                         "image (every class) and report the AUROC of the run's classes against the rest.")
    flags.DEFINE_string("noise", "", "Corruption of the test images whose denoising is measured (none, "
                        "gaussian:STDDEV, saltpepper:PROB, mask:PROB); default the run's own --noise.")


def options_from_flags():
    from tfvae import evaluation

    return evaluation.EvalOptions(
        num_samples=FLAGS.num_samples, num_images=FLAGS.num_images, iwae_batch=FLAGS.iwae_batch,
        iwae_precision=FLAGS.iwae_precision, sample_count=FLAGS.sample_count,
        samplers=tuple(FLAGS.sampler), elbo_samples=FLAGS.elbo_samples, ood_dataset=FLAGS.ood_dataset,
        ood_data_dir=FLAGS.ood_data_dir, batch_size=FLAGS.batch_size, seed=FLAGS.seed,
        classifier_epochs=FLAGS.classifier_epochs, cache_dir=FLAGS.cache_dir, output=FLAGS.output,
        gmm_components=FLAGS.gmm_components, gmm_max_codes=FLAGS.gmm_max_codes, diffusion_steps=FLAGS.diffusion_steps,
        diffusion_solver=FLAGS.diffusion_solver, temperature=FLAGS.temperature,
        noise=FLAGS.noise)


def log(message):
    print(message, file=sys.stderr, flush=True)


def main(argv):
    compare = FLAGS.compare + argv[1:]  # "--compare a b" leaves b as an argument
    if len(argv) > 1 and not FLAGS.compare:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; flags look like --name=value")
    from tfvae import evaluation  # after flag parsing, so --help is instant
    from tfvae.errors import TfvaeError, flag_message

    try:
        options = options_from_flags().validate()
        if FLAGS.one_class:
            results = evaluation.evaluate_one_class(FLAGS.workdir, options, log=log)
            print(evaluation.one_class_markdown(results))
            print(f"wrote {results['path']}")
        elif FLAGS.mode == "score":
            path, count = evaluation.score_folder(FLAGS.workdir, FLAGS.data_dir, options, log=log)
            print(f"scored {count} image(s); wrote {path}")
        elif compare:
            path, rows = evaluation.compare_runs(compare, options, log=log)
            columns = evaluation.RUN_COLUMNS + evaluation.SAMPLER_COLUMNS + evaluation.OOD_COLUMNS
            print(evaluation.markdown_table(rows, columns))
            print(f"wrote {path} (each run's own eval.json and report.md are in its directory)")
        else:
            results = evaluation.evaluate_run(FLAGS.workdir, options, log=log)
            columns = evaluation.RUN_COLUMNS + evaluation.SAMPLER_COLUMNS + evaluation.OOD_COLUMNS
            rows = evaluation.result_rows(results)
            print(evaluation.markdown_table(rows, columns))
            out = os.path.dirname(results["figures"]["report"])
            logs = os.path.join(os.path.relpath(results["workdir"]), "logs", "eval")  # runs/latest resolved
            print(f"wrote {out}/eval.json and {out}/report.md; TensorBoard: {logs}")
    except TfvaeError as e:
        message = flag_message(e, {'workdirs': 'compare', 'components': 'gmm_components', 'max_codes': 'gmm_max_codes'})
        print(f"error: {in_program_terms(message, argv[0])}", file=sys.stderr)
        return 2
    return 0
