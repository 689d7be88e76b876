"""Train an autoencoder or VAE and write its run directory.

    python train.py --model=vae --latent=2                # the Keras example on MNIST
    python train.py --flagfile=configs/fashion_vae_z2.cfg  # a documented setup
    tensorboard --logdir runs                             # live curves and pictures

Running the same command again resumes from the last finished epoch.
"""

import os
import sys

import quiet_startup

quiet_startup.quiet_tensorflow_startup()  # TensorFlow without its C++ start-up notices and info logs

from absl import app, flags  # noqa: E402

from tfvae import config_flags, projector, training  # noqa: E402
from tfvae.config_flags import config_from_flags  # noqa: E402
from tfvae.errors import TfvaeError  # noqa: E402
from tfvae.models import model_class  # noqa: E402

config_flags.define_flags()  # one flag per setting of tfvae.config.Config, with its help (docs/flags.md)
flags.DEFINE_boolean("restart", False, "Start the run over: first move everything --workdir holds (e.g. a run "
                     "whose checkpoints are all damaged) to <workdir>.old-<UTC time>; nothing is deleted.")
FLAGS = flags.FLAGS


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
    terms = ", ".join(f"{label} {result[key]:{spec}}" for key, label, spec in model_class(config.model).summary_terms)
    print(f"final test loss {result['loss']:.2f} (reconstruction {result['reconstruction']:.2f}, {terms}) after "
          f"{result['epochs']} epoch(s)")
    print(f"wrote {config.workdir}: encoder.keras, decoder.keras, history.csv, config.json, checkpoints/, logs/")
    print(f"next: python sample.py --workdir={config.workdir} --grid 15; tensorboard --logdir "
          f"{os.path.dirname(os.path.abspath(config.workdir))}")
    return 0


if __name__ == "__main__":
    app.run(main)
