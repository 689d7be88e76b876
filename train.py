"""Train an autoencoder or VAE and write its run directory.

    python train.py --model=vae --latent=2                # the Keras example on MNIST
    python train.py --flagfile=configs/fashion_vae_z2.cfg  # a documented setup
    tensorboard --logdir runs                             # live curves and pictures

Running the same command again resumes from the last finished epoch.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's Python-side info logs
os.environ.setdefault("TFVAE_QUIET_STARTUP", "1")  # and its C++ start-up notices (see tfvae/__init__.py)

from absl import app, flags  # noqa: E402

from tfvae import config as config_lib  # noqa: E402
from tfvae import projector, training  # noqa: E402
from tfvae.errors import TfvaeError  # noqa: E402

DEFAULTS = config_lib.Config()  # the flags' defaults are the Config's

flags.DEFINE_enum("model", "vae", config_lib.MODELS, "ae: plain autoencoder; vae: variational autoencoder; "
                  "cvae: VAE conditioned on the class label; vamp: VAE with a VampPrior (a mixture of the posteriors "
                  "of --pseudo_inputs learned images); rae: regularized autoencoder (RAE-L2, Ghosh et al. 2020; "
                  "sampled from a mixture fitted to its codes); wae: Wasserstein autoencoder with an MMD penalty "
                  "(Tolstikhin et al. 2018; sampled from N(0, I)); vqvae: VQ-VAE (an EMA codebook of "
                  "--codebook_size vectors of size --latent) with a PixelCNN prior over its code grid, trained after "
                  "it for --prior_epochs.")
flags.DEFINE_enum("arch", "conv", config_lib.ARCHS, "conv: the Keras example's Conv2D/Conv2DTranspose "
                  "networks; mlp: the PyTorch example's dense 784-400-20 networks; resnet: residual conv "
                  "stages, as many as halve the image down to about 4x4 (docs/training.md).")
flags.DEFINE_integer("latent", 2, "Size of the latent code z.", lower_bound=1)
flags.DEFINE_list("filters", ["32", "64"], "Conv2D filters of each stride-2 encoder layer (the decoder mirrors "
                  "them); image sides must be divisible by 2**len(filters). resnet: each stage's width, the last "
                  "one repeated.")
flags.DEFINE_integer("hidden", 0, "Units of the dense layer before z (0: 16 for conv, 400 for mlp).",
                     lower_bound=0)
flags.DEFINE_integer("pseudo_inputs", DEFAULTS.pseudo_inputs, "--model=vamp: the VampPrior's number of learned "
                     "pseudo-inputs K (Tomczak & Welling used 500 on MNIST; each step encodes them beside the batch).",
                     lower_bound=1)
flags.DEFINE_enum("dataset", "mnist", config_lib.DATASETS, "mnist, fashion_mnist, or folder (images under "
                  "--data_dir).")
flags.DEFINE_string("data_dir", "", "Folder with the data: IDX or .npz files for mnist/fashion_mnist, any tree "
                    "of PNG/JPEG images for folder. Empty: the dataset's usual places.")
flags.DEFINE_boolean("download", True, "Let keras.datasets download MNIST/Fashion-MNIST when no local copy is "
                     "found.")
flags.DEFINE_integer("image_size", 0, "Resize images to this square size (0: the dataset's own; 64 for "
                     "folders).", lower_bound=0)
flags.DEFINE_enum("channels", "0", ["0", "1", "3"], "1 (grey) or 3 (RGB); 0: the dataset's own.")
flags.DEFINE_integer("max_examples", 0, "Use at most this many training examples (0: all), for quick runs.",
                     lower_bound=0)
flags.DEFINE_string("cache_dir", "", "Folders only: where each folder is decoded once, the first time it is used "
                    "at a given --image_size/--channels, into a uint8 array that later epochs and runs read (default "
                    "$TFVAE_CACHE, else ~/.cache/tfvae). 'none': no cache, every image is decoded each epoch.")
flags.DEFINE_integer("max_image_pixels", DEFAULTS.max_image_pixels, "Folders only: images of more pixels are "
                     "skipped as possible decompression bombs (Pillow's guard); raise it to admit your own very large "
                     "images, 0 for no limit.", lower_bound=0)
flags.DEFINE_enum("binarize", "none", config_lib.BINARIZE, "none: grey levels; static: one fixed binary "
                  "sample; dynamic: pixels resampled as Bernoulli(x) every time an image is used.")
flags.DEFINE_string("noise", "none", "Denoising: the encoder sees corrupted images and the loss scores the clean "
                    "ones; none, gaussian:STDDEV, saltpepper:PROB or mask:PROB (fresh noise each time an image is "
                    "used, drawn from --seed).")
flags.DEFINE_boolean("flip", False, "Data augmentation: mirror each training image left-right with probability 1/2, "
                     "a fresh draw each time it is served (from --seed; test images never). For pictures whose "
                     "mirror image is as likely as they are (faces, objects); not for digits or text.")
flags.DEFINE_list("classes", [], "Train (and test) on these class ids only, e.g. --classes=0 or --classes=0,2,4 "
                  "(labelled data sets and folders with one subfolder per class).")
flags.DEFINE_integer("epochs", 30, "Number of epochs (the Keras example's 30).", lower_bound=1)
flags.DEFINE_integer("batch_size", 0, "Global batch size (split across replicas). 0: the Keras example's 128, "
                     "or 32 on fewer than 8,500 training images (e.g. the offline MNIST fallback), where 128 gives "
                     "too few optimizer steps.", lower_bound=0)
flags.DEFINE_float("learning_rate", DEFAULTS.learning_rate, "Adam learning rate (with --lr_schedule=cosine, the "
                   "peak). The Keras example's recipe is 1e-3 with --lr_schedule=constant.", lower_bound=0)
flags.DEFINE_enum("lr_schedule", DEFAULTS.lr_schedule, config_lib.LR_SCHEDULES, "cosine: linear warm-up "
                  "over --warmup_epochs, then cosine decay to 0 at the last epoch; constant: --learning_rate "
                  "throughout.")
flags.DEFINE_float("warmup_epochs", DEFAULTS.warmup_epochs, "Epochs of linear learning-rate warm-up (cosine "
                   "schedule); at least 200 steps, or a quarter of a shorter run (small data sets need it).",
                   lower_bound=0)
flags.DEFINE_float("beta", 1.0, "Weight of the KL term (beta-VAE; 1 is the ELBO).", lower_bound=0)
flags.DEFINE_float("recon_weight", 1.0, "Weight of the reconstruction term (1 is the ELBO; 0 trains the KL term "
                   "alone, the documents' 'KL only' latent space).", lower_bound=0)
flags.DEFINE_float("penalty_weight", 0.0, "rae: weight beta_z of 1/2 |z|^2; wae: weight lambda of the MMD "
                   "between the codes and N(0, I); 0: the model's default (rae 1e-2, wae 100).", lower_bound=0)
flags.DEFINE_float("decoder_l2", 0.0, "rae: weight lambda of the L2 penalty on the decoder's kernels; 0: the "
                   "default (1e-3).", lower_bound=0)
flags.DEFINE_float("adversarial", 0.0, "Weight of an adversarial sharpness term: a small PatchGAN discriminator "
                   "trained in the same fit, its hinge loss on the reconstructions added to the objective at this "
                   "fraction of the ELBO's pull on the decoder's output (0: off; docs/sharpness.md).", lower_bound=0)
flags.DEFINE_float("feature_match", 0.0, "Weight of a feature-matching sharpness term: the squared distance between "
                   "an image and its reconstruction in that discriminator's features (Larsen et al. 2016), at this "
                   "fraction of the ELBO's pull (0: off; docs/sharpness.md).", lower_bound=0)
flags.DEFINE_enum("loss", "bce", config_lib.RECONSTRUCTION_LOSSES, "bce: Bernoulli decoder, cross-entropy "
                  "summed over pixels; mse: Gaussian decoder with the fixed variance 1/2, squared error summed over "
                  "pixels; gaussian: Gaussian decoder with one shared variance set to each batch's optimum (its "
                  "per-pixel MSE; Rybkin et al. 2021), for colour images; gaussian_pixel: the decoder also emits "
                  "a learned variance per pixel and channel; logistic_mixture: PixelCNN++'s discretized logistic "
                  "mixture of the 8-bit values (docs/likelihoods.md).")
flags.DEFINE_integer("codebook_size", DEFAULTS.codebook_size, "vqvae: codebook vectors K.", lower_bound=2)
flags.DEFINE_float("commitment", DEFAULTS.commitment, "vqvae: weight of the commitment term (0.25, the paper's).",
                   lower_bound=0)
flags.DEFINE_integer("prior_epochs", DEFAULTS.prior_epochs, "vqvae: epochs of the PixelCNN prior over the training "
                     "codes, trained after the last VQ-VAE epoch (resumed like the VQ-VAE).", lower_bound=0)
flags.DEFINE_integer("seed", 0, "Seed for weights, shuffling and sampling noise.")
flags.DEFINE_integer("checkpoint_every_steps", 0, "Also checkpoint every this many steps inside an epoch, so "
                     "that a killed run loses at most that many steps (0: at the end of each epoch only).",
                     lower_bound=0)
flags.DEFINE_integer("keep_checkpoints", DEFAULTS.keep_checkpoints, "End-of-epoch checkpoints to keep (the "
                     "newest checkpoint is always kept too); a damaged newest one is skipped on resume for the "
                     "newest good one.", lower_bound=1)
flags.DEFINE_boolean("restart", False, "Start the run over: first move everything --workdir holds (e.g. a run "
                     "whose checkpoints are all damaged) to <workdir>.old-<UTC time>; nothing is deleted.")
flags.DEFINE_enum("strategy", "auto", config_lib.STRATEGIES, "auto: all GPUs mirrored when there are several, "
                  "else the one GPU, else the CPU; multi_worker: MultiWorkerMirroredStrategy over the cluster in "
                  "TF_CONFIG (run the same command on every host; --batch_size is global).")
flags.DEFINE_enum("precision", DEFAULTS.precision, config_lib.PRECISIONS, "Keras mixed-precision policy; the "
                  "latent heads, loss and KL stay float32 and exported models are float32. auto: mixed_bfloat16 on "
                  "CPUs with bfloat16 dot-product instructions (AVX512_BF16, AMX) and no GPU, else float32.")
flags.DEFINE_boolean("jit_compile", None, "Compile the train step with XLA (default: Keras's auto, which uses XLA "
                     "on GPUs and not on CPU-only machines).")
flags.DEFINE_integer("steps_per_execution", DEFAULTS.steps_per_execution, "Train steps run per call into "
                     "TensorFlow (reduced to a divisor of an epoch's steps; 1 under mirrored strategies). Per-batch "
                     "callbacks, e.g. the NaN check, run once per call.", lower_bound=1)
flags.DEFINE_integer("intra_op_threads", 0, "Threads inside one op (0: TensorFlow's default).", lower_bound=0)
flags.DEFINE_integer("inter_op_threads", 0, "Ops run at once (0: TensorFlow's default).", lower_bound=0)
flags.DEFINE_string("workdir", "", "Run directory (default runs/<model>-<dataset>-z<latent>); runs/latest "
                    "points to the newest.")
FLAGS = flags.FLAGS


def config_from_flags():
    return config_lib.Config(
        model=FLAGS.model, arch=FLAGS.arch, latent=FLAGS.latent, filters=FLAGS.filters, hidden=FLAGS.hidden,
        pseudo_inputs=FLAGS.pseudo_inputs,
        dataset=FLAGS.dataset, data_dir=FLAGS.data_dir, download=FLAGS.download, image_size=FLAGS.image_size,
        channels=int(FLAGS.channels), max_examples=FLAGS.max_examples, cache_dir=FLAGS.cache_dir,
        max_image_pixels=FLAGS.max_image_pixels, binarize=FLAGS.binarize,
        epochs=FLAGS.epochs, batch_size=FLAGS.batch_size, learning_rate=FLAGS.learning_rate,
        lr_schedule=FLAGS.lr_schedule, warmup_epochs=FLAGS.warmup_epochs, beta=FLAGS.beta,
        recon_weight=FLAGS.recon_weight, penalty_weight=FLAGS.penalty_weight, decoder_l2=FLAGS.decoder_l2,
        adversarial=FLAGS.adversarial, feature_match=FLAGS.feature_match, codebook_size=FLAGS.codebook_size,
        commitment=FLAGS.commitment, prior_epochs=FLAGS.prior_epochs,
        loss=FLAGS.loss, seed=FLAGS.seed, checkpoint_every_steps=FLAGS.checkpoint_every_steps,
        keep_checkpoints=FLAGS.keep_checkpoints, strategy=FLAGS.strategy, precision=FLAGS.precision,
        jit_compile="auto" if FLAGS.jit_compile is None else FLAGS.jit_compile,
        steps_per_execution=FLAGS.steps_per_execution, intra_op_threads=FLAGS.intra_op_threads,
        inter_op_threads=FLAGS.inter_op_threads, workdir=FLAGS.workdir,
        noise=FLAGS.noise, flip=FLAGS.flip, classes=tuple(FLAGS.classes))


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; flags look like --name=value")
    try:
        config = config_from_flags()
        # After the last epoch: the test set's latent space for TensorBoard's Projector, and a traversal.
        result = training.train(config, restart=FLAGS.restart, on_finished=projector.write_after_training)
    except TfvaeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if config.model == "vqvae":
        terms = f"commitment {result['commitment']:.2f}, codebook perplexity {result['perplexity']:.1f}"
    else:
        terms = f"penalty {result['penalty']:.4g}" if "penalty" in result else f"KL {result['kl']:.2f}"
    print(f"final test loss {result['loss']:.2f} (reconstruction {result['reconstruction']:.2f}, {terms}) after "
          f"{result['epochs']} epoch(s)")
    print(f"wrote {config.workdir}: encoder.keras, decoder.keras, history.csv, config.json, checkpoints/, logs/")
    print(f"next: python sample.py --workdir={config.workdir} --grid 15; tensorboard --logdir "
          f"{os.path.dirname(os.path.abspath(config.workdir))}")
    return 0


if __name__ == "__main__":
    app.run(main)
