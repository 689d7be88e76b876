"""Folder training throughput: the decode cache against the same images in memory, side by side in one run.

    python benchmarks/folder_throughput.py                                 # 3,000 generated pictures
    python benchmarks/folder_throughput.py --data_dir=PATH/TO/IMAGES       # a real folder
    python benchmarks/folder_throughput.py --flagfile=configs/folder_vae_64.cfg --batch_size=32   # other flags

The network, batch size and precision are train.py's, from its flags (configs/folder_vae_64.cfg unless a
--flagfile is given). First the folder is decoded into an empty, temporary decode cache, which gives the
first-time decoding rate (images/s over all cores). Then one model trains on the same training images served
three ways, in alternating segments after a warm-up, so that all see the same machine load:

  (a) cache:    the folder as train.py serves it from the second epoch (and the second run) on: rows of the
                decode cache, read batch by batch (`tfvae.data.ImageFiles` backed by the cache);
  (b) memory:   the same images as one uint8 NumPy array in memory (`make_pipeline` on an ndarray);
  (c) streamed: the folder with --cache_dir=none, every image decoded again each time it is served (the
                path before the cache; --nostreamed leaves it out).

It prints images/s for each and the ratios (a)/(b) (goal >= 0.97) and (c)/(b), each the median over rounds
of the ratio of adjacent segments: on a shared machine only ratios taken within one run mean anything.
"""

import dataclasses
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from tfvae import startup  # noqa: E402

startup.quiet_tensorflow_startup()  # TensorFlow without its C++ start-up notices and info logs

from absl import app, flags  # noqa: E402

import train  # noqa: E402  (defines train.py's flags: the network is configured exactly as train.py does)
from benchmarks.common import cpu_info, fit_segment, load_average  # noqa: E402

flags.DEFINE_integer("num_images", 3000, "Pictures to generate when --data_dir is empty.", lower_bound=16)
flags.DEFINE_integer("rounds", 3, "Timed rounds; each runs one segment of every variant.", lower_bound=1)
flags.DEFINE_integer("steps", 48, "Training steps per timed segment.", lower_bound=4)
flags.DEFINE_integer("warmup_steps", 16, "Untimed steps of each variant before the first round.")
flags.DEFINE_boolean("streamed", True, "Also time (c), the folder decoded every time it is served.")
FLAGS = flags.FLAGS
DEFAULT_FLAGFILE = os.path.join(os.path.dirname(HERE), "configs", "folder_vae_64.cfg")


def generate_pictures(directory, count, seed=0, sizes=(48, 160)):
    """``count`` PNGs of ``sizes`` pixels a side (at random), coloured shapes on gradients, in 4 class subfolders."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    for i in range(count):
        width, height = (int(v) for v in rng.integers(sizes[0], sizes[1] + 1, 2))
        top, bottom = rng.integers(0, 256, (2, 3))
        ramp = np.linspace(0, 1, height)[:, None, None]
        pixels = np.broadcast_to(top * (1 - ramp) + bottom * ramp, (height, width, 3)).astype(np.uint8)
        image = Image.fromarray(np.ascontiguousarray(pixels))
        draw = ImageDraw.Draw(image)
        for _ in range(3):
            x0, y0 = rng.integers(0, width), rng.integers(0, height)
            box = (x0, y0, x0 + rng.integers(8, width // 2 + 9), y0 + rng.integers(8, height // 2 + 9))
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
        folder = os.path.join(directory, f"class{i % 4}")
        os.makedirs(folder, exist_ok=True)
        image.save(os.path.join(folder, f"{i:06d}.png"))


def cpu_flags():
    model, present = cpu_info()
    if present is None:
        return "unknown"
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
    return f"{model or 'unknown CPU'}; " + ", ".join(f"{name} {'yes' if name in present else 'no'}" for name in wanted)


def main(argv):
    del argv
    load_at_start = load_average()
    import keras
    import numpy as np
    import tensorflow as tf

    from tfvae import training

    base = train.config_from_flags()
    scratch = tempfile.mkdtemp(prefix="tfvae-folder-benchmark-")
    try:
        if not base.data_dir:
            start = time.perf_counter()
            base.data_dir = os.path.join(scratch, "pictures")
            generate_pictures(base.data_dir, FLAGS.num_images)
            print(f"generated {FLAGS.num_images} pictures in {time.perf_counter() - start:.0f} s under {base.data_dir}")
        base.cache_dir = os.path.join(scratch, "cache")  # empty: the first load decodes everything
        base.validate()
        training.configure_runtime(base)
        strategy = training.make_strategy(base.strategy)
        base.precision = training.resolve_precision(base.precision)
        keras.utils.set_random_seed(base.seed)

        messages = []
        start = time.perf_counter()
        cached = training.load_data(base, log=messages.append)
        first_load = time.perf_counter() - start
        start = time.perf_counter()
        cached = training.load_data(base, log=messages.append)
        second_load = time.perf_counter() - start
        total = len(cached.x_train) + len(cached.x_test) + len(cached.skipped)
        in_memory = dataclasses.replace(cached, x_train=np.asarray(cached.x_train))
        datasets = {"cache": cached, "memory": in_memory}
        if FLAGS.streamed:
            datasets["streamed"] = training.load_data(dataclasses.replace(base, cache_dir="none"), log=None)

        print(f"machine: {len(os.sched_getaffinity(0))} cores, {cpu_flags()}; TensorFlow {tf.__version__}, "
              f"Keras {keras.__version__}; load average at start: {load_at_start} (a machine shared with other jobs)")
        print(f"data: {cached.source}; {len(cached.x_train)} training images of {cached.image_shape}")
        print(f"network: {base.arch} filters={list(base.filters)} hidden={base.hidden} latent={base.latent} "
              f"loss={base.loss}; batch {base.batch_size}, precision {base.precision}, steps_per_execution "
              f"{base.steps_per_execution}")
        for line in messages:
            print(f"  {line}")
        print(f"first load (decodes every file into the cache): {first_load:.1f} s = {total / first_load:.0f} "
              f"images/s over {len(os.sched_getaffinity(0))} core(s); second load (reads the cache): "
              f"{second_load:.2f} s")

        with strategy.scope():
            model = training.create_model(base.with_data(cached.facts), len(cached.x_train))
        streams = {name: training.pipelines(base, dataset)[0] for name, dataset in datasets.items()}
        spe = base.steps_per_execution

        def steps(n):
            return max(2 * spe, n // spe * spe)

        for stream in streams.values():
            fit_segment(model, stream, steps(FLAGS.warmup_steps), base.batch_size, shuffle=False)
        rates = {name: [] for name in streams}
        print("round  " + "  ".join(f"{name:>9}" for name in streams) + "   (images/s)")
        for r in range(FLAGS.rounds):
            for name, stream in streams.items():
                rates[name].append(fit_segment(model, stream, steps(FLAGS.steps), base.batch_size, shuffle=False))
            print(f"{r + 1:5d}  " + "  ".join(f"{rates[n][-1]:9.1f}" for n in streams))
        for name in streams:
            print(f"  {name:>8}: {statistics.median(rates[name]):7.1f} images/s (median of rounds)")
        ratio = statistics.median([a / b for a, b in zip(rates["cache"], rates["memory"])])
        print(f"ratio cache/memory: {ratio:.3f}x (median of per-round ratios; goal >= 0.97x)")
        if FLAGS.streamed:
            ratio = statistics.median([a / b for a, b in zip(rates["streamed"], rates["memory"])])
            print(f"ratio streamed/memory: {ratio:.3f}x")
        print(f"load average at end: {load_average()}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    if not any(arg.startswith("--flagfile") for arg in sys.argv[1:]):
        sys.argv.insert(1, f"--flagfile={DEFAULT_FLAGFILE}")
    app.run(main)
