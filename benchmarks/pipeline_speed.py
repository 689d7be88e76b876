"""The input pipeline's own speed, without a model: images/s that training's tf.data pipeline serves.

    python benchmarks/pipeline_speed.py                # Fashion-MNIST in memory, and 64x64x3 from the decode cache
    python benchmarks/pipeline_speed.py --folder=DIR   # a folder of your own pictures for the second figure

Two sources, each served as a training epoch is (``tfvae.training.pipelines``: shuffled, batched, converted to
float32 in [0, 1]), timed over whole epochs after one untimed epoch (so the decode cache is in the page cache):

  (a) Fashion-MNIST's 60,000 28x28 images, uint8 arrays in memory, batch 128;
  (b) a folder at 64x64x3 read from its decode cache (3,000 generated 96x96 pictures unless ``--folder``),
      batch 64 (configs/folder_vae_64.cfg's).

Goals (issue: off the laptop): >= 50,000 img/s for (a), >= 5,000 img/s for (b) on 2 cores. Prints the CPU flags
and the load average; run it alone on the machine.
"""

import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from benchmarks.common import describe_machine, load_average  # noqa: E402


def images_per_second(config, dataset, epochs=3):
    """Median images/s of ``epochs`` timed passes of the training pipeline over ``dataset`` (one untimed first)."""
    from tfvae import training

    rates = []
    for epoch in range(epochs + 1):
        train, _ = training.pipelines(config, dataset, epoch=epoch)
        start, served = time.perf_counter(), 0
        for batch in train:
            served += int(batch["image"].shape[0])
        if epoch:
            rates.append(served / (time.perf_counter() - start))
    return sorted(rates)[len(rates) // 2]


def main():
    from tfvae import training
    from tfvae.config import Config

    folder = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--folder=")), None)
    print(f"machine: {describe_machine()}; load average at start: {load_average()}")
    config = Config(dataset="fashion_mnist", batch_size=128)
    dataset = training.load_data(config, log=lambda *_: None)
    rate = images_per_second(config.with_data(dataset.facts), dataset)
    print(f"(a) fashion_mnist 28x28x1 from memory, batch 128: {rate:,.0f} img/s (goal >= 50,000)")
    with tempfile.TemporaryDirectory() as scratch:
        if folder is None:  # 3,000 generated 96x96 colour pictures (the cache's speed does not depend on them)
            import numpy as np
            from PIL import Image

            folder = os.path.join(scratch, "pictures")
            os.makedirs(folder)
            rng = np.random.default_rng(0)
            for i in range(3000):
                pixels = np.kron(rng.integers(0, 256, (12, 12, 3), np.uint8), np.ones((8, 8, 1), np.uint8))
                Image.fromarray(pixels).save(os.path.join(folder, f"{i:04d}.png"))
        config = Config(dataset="folder", data_dir=folder, image_size=64, batch_size=64,
                        cache_dir=os.path.join(scratch, "cache"))
        dataset = training.load_data(config, log=lambda *_: None)
        rate = images_per_second(config.with_data(dataset.facts), dataset)
        print(f"(b) {len(dataset.x_train)} pictures 64x64x3 from the decode cache, batch 64: {rate:,.0f} img/s "
              "(goal >= 5,000)")
    print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    main()
