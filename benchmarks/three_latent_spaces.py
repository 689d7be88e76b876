"""The documents' three latent spaces: one model trained with the reconstruction term alone, the KL term alone,
and both, side by side.

The three runs share everything but the two loss weights: the quickstart's conv VAE (latent 2), data, seed,
epochs and optimizer recipe (tfvae's defaults unless flags say otherwise).

* reconstruction only: ``--beta=0`` (a VAE whose KL weight is 0: in effect an autoencoder; its posterior
  variances shrink towards 0);
* KL only: ``--recon_weight=0`` (every posterior is pulled onto the prior N(0, I), whatever the image);
* both: the VAE's negative ELBO (``--recon_weight=1 --beta=1``).

Each panel draws one sample z ~ q(z|x) per test image, coloured by its class: for the first panel that is the
code itself, for the second the prior (a mean-only plot would be one dot at 0). Each panel's title gives the
terms trained, the test codes' mean KL and the spread of their means.

    python benchmarks/three_latent_spaces.py                              # MNIST (the offline fallback too)
    python benchmarks/three_latent_spaces.py --output=docs/three_latent_spaces.png --outdir=/tmp/three
"""

import dataclasses
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfvae import startup  # noqa: E402

startup.quiet_tensorflow_startup()  # TensorFlow without its C++ start-up notices and info logs

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from tfvae.config import Config  # noqa: E402

DEFAULTS = Config()
SPACES = (  # (directory, title, recon_weight, beta)
    ("reconstruction", "reconstruction only", 1.0, 0.0),
    ("kl", "KL only", 0.0, 1.0),
    ("both", "reconstruction + KL (VAE)", 1.0, 1.0),
)

flags.DEFINE_string("dataset", "mnist", "mnist (the offline fallback's 4,500 digits without a network) or "
                    "fashion_mnist.")
flags.DEFINE_string("data_dir", "", "As train.py --data_dir.")
flags.DEFINE_integer("epochs", DEFAULTS.epochs, "Epochs of each of the three runs.", lower_bound=1)
flags.DEFINE_integer("batch_size", DEFAULTS.batch_size, "As train.py --batch_size (0: the default for the data "
                     "size).", lower_bound=0)
flags.DEFINE_integer("seed", 0, "Seed of all three runs (weights, shuffling, noise) and of the plotted samples.")
flags.DEFINE_string("outdir", "runs/three_latent_spaces", "The three run directories go under it; a rerun "
                    "resumes them.")
flags.DEFINE_string("output", "", "The PNG (default <outdir>/three_latent_spaces.png).")
FLAGS = flags.FLAGS


def panel_data(run, seed):
    """(one sample z per test image, labels, mean KL in nats, std of the means per dim) of a finished run."""
    from tfvae import losses

    z_mean, z_log_var, labels = run.test_codes()
    eps = np.random.default_rng(seed).standard_normal(z_mean.shape).astype("float32")
    z = z_mean + np.exp(0.5 * z_log_var) * eps
    kl = float(np.mean(losses.gaussian_kl(z_mean, z_log_var)))
    return z, labels, kl, z_mean.std(0)


def draw(path, panels, class_names, caption):
    """Writes the panels (title, z, labels) side by side, coloured by class, to ``path``."""
    from matplotlib.figure import Figure  # no pyplot: no backend is chosen or switched

    fig = Figure(figsize=(5.2 * len(panels), 5.6))
    axes = fig.subplots(1, len(panels))
    for ax, (title, z, labels) in zip(axes, panels):
        sc = ax.scatter(z[:, 0], z[:, 1], c=labels, cmap="tab10", vmin=-0.5, vmax=9.5, s=6, alpha=0.8)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("z[0]")
        ax.set_ylabel("z[1]")
        ax.set_aspect("equal", adjustable="box")
        ax.grid(alpha=0.3)
    cbar = fig.colorbar(sc, ax=list(axes), ticks=range(10), fraction=0.02, pad=0.01)
    if class_names:
        cbar.ax.set_yticklabels(class_names[:10])
    fig.text(0.5, 0.0, caption, ha="center", va="top", fontsize=9)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    return path


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    import tfvae
    from tfvae import training

    # KL only: the decoder gets no gradient, which is the point; Keras warns about it every run.
    warnings.filterwarnings("ignore", "Gradients do not exist")
    panels, source = [], ""
    for name, title, recon_weight, beta in SPACES:
        config = dataclasses.replace(DEFAULTS, dataset=FLAGS.dataset, data_dir=FLAGS.data_dir, epochs=FLAGS.epochs,
                                     batch_size=FLAGS.batch_size, seed=FLAGS.seed, recon_weight=recon_weight,
                                     beta=beta, workdir=os.path.join(FLAGS.outdir, name))
        print(f"== {title}: --recon_weight={recon_weight:g} --beta={beta:g} -> {config.workdir}", flush=True)
        result = training.train(config, verbose=0)
        run = tfvae.load(config.workdir)
        source = run.config.data_source
        z, labels, kl, spread = panel_data(run, FLAGS.seed)
        print(f"   test loss terms: reconstruction {result['reconstruction']:.1f}, KL {result['kl']:.2f}; codes' means "
              f"std {[round(float(s), 3) for s in spread]}", flush=True)
        panels.append((f"{title}\nloss = {recon_weight:g} x reconstruction + {beta:g} x KL\n"
                       f"test reconstruction {result['reconstruction']:.1f}, KL {kl:.2f} nats", z, labels))
    caption = (f"{len(panels[0][1])} test images of {FLAGS.dataset} ({source.split(':')[0]}), one sample "
               f"z ~ q(z|x) each; same model, seed {FLAGS.seed}, {FLAGS.epochs} epochs")
    output = FLAGS.output or os.path.join(FLAGS.outdir, "three_latent_spaces.png")
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    print(f"wrote {draw(output, panels, run.class_names, caption)}")
    return 0


if __name__ == "__main__":
    app.run(main)
