"""One check of an accelerator (or a CPU), at most ~5 minutes on one GPU: what `auto` chose, how fast, what breaks.

    python benchmarks/accelerator_check.py            # on the machine to check; writes accelerator_check.json
    python benchmarks/accelerator_check.py --quick    # a minute or two, any machine: the same checks, tiny sizes

It prints, and writes to one JSON file (``--output``):

1. the device and what ``--strategy``, ``--precision``, ``--jit_compile`` and ``--steps_per_execution`` resolve to
   on it (``auto`` each);
2. images/s of train.py's default conv VAE on Fashion-MNIST (28x28, batch 128) and of configs/folder_vae_64.cfg's
   network on generated 64x64x3 pictures, each through ``tfvae.training.train`` (the run's own ``speed:`` line and
   its ``examples_per_sec`` of the last epoch: steps only, tracing excluded by a first epoch);
3. one short epoch of every model under mixed_float16 and under mixed_bfloat16, each with its final loss
   (finite or not);
4. the two-replica overflow case: a float16 overflow on replica 1 only must skip the step on both (on two logical
   devices of the first GPU, else of the CPU; run in a child process, since logical devices must be set before
   anything else runs).

Run it alone on the machine; figures taken beside other jobs are not results.
"""

import json
import math
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from tfvae import startup  # noqa: E402

startup.quiet_tensorflow_startup()

from benchmarks.common import describe_machine, load_average  # noqa: E402

QUICK = "--quick" in sys.argv
OUTPUT = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--output=")), "accelerator_check.json")


def overflow_case():
    """Child process: two logical devices, a float16 overflow on replica 1 only; prints one JSON line."""
    import numpy as np
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    kind = "GPU" if gpus else "CPU"
    device = (gpus or tf.config.list_physical_devices("CPU"))[0]
    limit = {"memory_limit": 1024} if gpus else {}
    tf.config.set_logical_device_configuration(device, [tf.config.LogicalDeviceConfiguration(**limit)] * 2)
    import keras

    from tfvae.models.autoencoders import skip_together

    names = [d.name for d in tf.config.list_logical_devices(kind)][:2]
    strategy = tf.distribute.MirroredStrategy(names)
    with strategy.scope():
        variable = keras.Variable(np.ones(3, "float32"))
        optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1), initial_scale=512.0)
        optimizer.build([variable])

    def step():
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        grads = skip_together([tf.where(replica == 1, np.inf, 1.0) * tf.ones(3)])
        optimizer.apply_gradients(zip(grads, [variable]))

    strategy.run(tf.function(step))
    print(json.dumps({"devices": names, "weights_unchanged": bool(np.all(variable.numpy() == 1.0)),
                      "loss_scale": float(optimizer.dynamic_scale.numpy())}))


def generated_folder(directory, count):
    import numpy as np
    from PIL import Image

    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        pixels = np.kron(rng.integers(0, 256, (12, 12, 3), np.uint8), np.ones((8, 8, 1), np.uint8))
        Image.fromarray(pixels).save(os.path.join(directory, f"{i:04d}.png"))
    return directory


def train_rate(config):
    """(images/s of the last epoch's steps, the run's speed line, its final test loss)."""
    from tfvae import training

    lines = []
    result = training.train(config, verbose=0, log=lines.append)
    with open(os.path.join(config.workdir, "history.csv")) as f:
        last = f.read().strip().splitlines()
    header, row = last[0].split(","), last[-1].split(",")
    rate = float(row[header.index("examples_per_sec")])
    speed = next((line for line in lines if line.startswith("speed:")), "")
    return rate, speed, result["loss"]


def main():
    import tensorflow as tf

    from tfvae import training
    from tfvae.config import Config
    from tfvae.models import MODELS, model_class

    report = {"machine": describe_machine(), "load_average_at_start": load_average(),
              "tensorflow": tf.__version__, "quick": QUICK}
    gpus = tf.config.list_logical_devices("GPU")
    strategy = training.make_strategy("auto")
    report["auto"] = {"gpus": [g.name for g in gpus], "strategy": type(strategy).__name__,
                      "precision": training.resolve_precision("auto"),
                      "jit_compile": training.resolve_jit_compile("auto", strategy.num_replicas_in_sync > 1),
                      "steps_per_execution": training.default_steps_per_execution()}
    print(f"machine: {report['machine']}; load average {report['load_average_at_start']}")
    print(f"auto: {report['auto']}")

    with tempfile.TemporaryDirectory() as scratch:
        images = 2048 if QUICK else 0  # 0: all 60,000
        epochs = 2  # the first traces; the second is timed
        conv = Config(dataset="fashion_mnist", epochs=epochs, max_examples=images,
                      workdir=os.path.join(scratch, "conv"))
        rate, speed, _ = train_rate(conv)
        report["conv_vae_28x28_img_per_s"] = rate
        print(f"default conv VAE, Fashion-MNIST 28x28: {rate:,.0f} img/s ({speed})")
        folder = generated_folder(os.path.join(scratch, "pictures"), 256 if QUICK else 3000)
        # configs/folder_vae_64.cfg's network and batch (its epochs and run directory are this check's).
        big = Config(model="vae", arch="conv", dataset="folder", data_dir=folder, image_size=64, channels=3,
                     filters=(16, 32, 64, 128), hidden=256, latent=128, loss="gaussian", batch_size=64,
                     epochs=epochs, cache_dir=os.path.join(scratch, "cache"), workdir=os.path.join(scratch, "folder"))
        rate, speed, _ = train_rate(big)
        report["folder_64x64x3_img_per_s"] = rate
        print(f"folder config's network, 64x64x3: {rate:,.0f} img/s ({speed})")

        report["models"] = {}
        for precision in ("mixed_float16", "mixed_bfloat16"):
            for name in MODELS:
                start = time.perf_counter()
                prior = {"prior_epochs": 1} if model_class(name).trains_prior_after else {}
                config = Config(model=name, dataset="fashion_mnist", epochs=1, max_examples=512, batch_size=64,
                                precision=precision, workdir=os.path.join(scratch, precision, name), **prior)
                try:
                    loss = training.train(config, verbose=0, log=lambda *_: None)["loss"]
                    outcome = "finite" if math.isfinite(loss) else f"non-finite ({loss})"
                except Exception as e:  # noqa: BLE001  (a check reports every failure and goes on)
                    loss, outcome = None, f"failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
                report["models"][f"{name}/{precision}"] = {"loss": loss, "outcome": outcome,
                                                          "seconds": round(time.perf_counter() - start, 1)}
                print(f"{name:6s} {precision:15s} {outcome}" + (f" loss {loss:.2f}" if loss is not None else ""))

    child = subprocess.run([sys.executable, os.path.abspath(__file__), "--overflow-case"], capture_output=True,
                           text=True, timeout=300)
    lines = [line for line in child.stdout.splitlines() if line.startswith("{")]
    report["overflow_on_replica_1"] = json.loads(lines[-1]) if lines else {"failed": child.stderr[-2000:]}
    print(f"float16 overflow on replica 1: {report['overflow_on_replica_1']}")
    report["load_average_at_end"] = load_average()
    with open(OUTPUT, "w") as f:
        json.dump(report, f, indent=1)
    print(f"wrote {OUTPUT}; load average at end {report['load_average_at_end']}")
    ok = (all(v["outcome"] == "finite" for v in report["models"].values())
          and report["overflow_on_replica_1"].get("weights_unchanged") is True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    overflow_case() if "--overflow-case" in sys.argv else main()
