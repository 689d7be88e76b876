"""Training throughput, side by side in one run: tfvae's default VAE against the keras.io example.

    python benchmarks/throughput.py                          # the defaults, as train.py would train
    python benchmarks/throughput.py --precision=float32      # any train.py flag changes (a)
    python benchmarks/throughput.py --compare="bf16:precision=mixed_bfloat16;spe4:steps_per_execution=4"

On the same data (Fashion-MNIST, 28x28, batch 128, latent 2) it trains

  (a) tfvae's default conv VAE through train.py's own code path: train.py's flags -> Config ->
      training.configure_runtime / make_strategy / load_data / pipelines / create_model -> Model.fit;
  (b) benchmarks/keras_example.py, the keras.io VAE as published, with a plain fit on a NumPy array;

in alternating segments (a, b, matmul, a, b, matmul, ...) after a warm-up, so that both see the same machine
load, and prints images/s for each, their ratio, the FLOPs per training image counted from the layers
(tfvae.flops: 2 FLOPs a multiply-accumulate, 3x the forward pass for a training step), the fp32 rate of a
2048x2048 tf.matmul measured between the segments, and the fraction of that rate (a) reaches. Only ratios
taken within one run mean anything on a shared machine: each is the median over the rounds of the ratio of
adjacent segments.
"""

import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from tfvae import startup  # noqa: E402

startup.quiet_tensorflow_startup()  # TensorFlow without its C++ start-up notices and info logs

from absl import app, flags  # noqa: E402

import train  # noqa: E402  (defines train.py's flags, so (a) is configured exactly as train.py does)
from benchmarks.common import describe_machine, fit_segment, load_average  # noqa: E402

flags.DEFINE_integer("rounds", 5, "Timed rounds; each runs one segment of (a), of (b) and of the matmul.")
flags.DEFINE_integer("steps", 60, "Training steps per timed segment.", lower_bound=4)
flags.DEFINE_integer("warmup_steps", 30, "Untimed steps of each model before the first round.")
flags.DEFINE_string("compare", "", "Extra variants of (a) timed in the same rounds: 'name:flag=value,flag=value;"
                    "name2:...' with Config field names, e.g. 'bf16:precision=mixed_bfloat16'.")
FLAGS = flags.FLAGS

BENCHMARK_DATA = dict(dataset="fashion_mnist", latent=2, batch_size=128)


def matmul_rate(seconds=1.0, n=2048):
    """fp32 GFLOP/s of repeated n x n tf.matmul calls for about ``seconds``."""
    import tensorflow as tf

    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    matmul = tf.function(lambda: tf.matmul(a, b))
    matmul().numpy()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        out = matmul()
        count += 1
    out.numpy()
    return 2 * n ** 3 * count / (time.perf_counter() - start) / 1e9


def parse_compare(text):
    """'name:k=v,k=v;name2:k=v' -> [(name, {k: v})], values parsed as int/float/bool where they look so."""
    variants = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, _, assignments = part.partition(":")
        fields = {}
        for item in filter(None, assignments.split(",")):
            key, _, value = item.partition("=")
            fields[key.strip()] = _parse_value(value.strip())
        variants.append((name.strip(), fields))
    return variants


def _parse_value(value):
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def main(argv):
    del argv
    load_at_start = load_average()
    import dataclasses

    import keras
    import keras_example
    import tensorflow as tf

    from tfvae import flops, training

    tf.get_logger().setLevel("ERROR")  # each variant traces its own train function: no retracing warnings
    base = train.config_from_flags()
    for key, value in BENCHMARK_DATA.items():
        setattr(base, key, value)
    base.validate()
    training.configure_runtime(base)
    strategy = training.make_strategy(base.strategy)
    keras.utils.set_random_seed(base.seed)
    dataset = training.load_data(base)
    base = base.with_data(dataset.facts)  # the shapes and classes create_model builds for
    variants = [("a", base)] + [(name, dataclasses.replace(base, **fields))
                                for name, fields in parse_compare(FLAGS.compare)]
    models = {}
    for name, config in variants:
        train_ds, _ = training.pipelines(config, dataset)
        with strategy.scope():
            models[name] = (training.create_model(config), train_ds.repeat(), {"shuffle": False}, config)
    x_train = dataset.x_train.astype("float32") / 255.0
    baseline = keras_example.build_vae(base.latent)
    models["b"] = (baseline, x_train, {"batch_size": 128, "shuffle": True}, None)

    flops_a = flops.training_flops(models["a"][0])
    flops_b = flops.training_flops(baseline)
    threads = (tf.config.threading.get_intra_op_parallelism_threads(),
               tf.config.threading.get_inter_op_parallelism_threads())
    print(f"machine: {describe_machine()}; TensorFlow {tf.__version__}, Keras {keras.__version__}")
    print(f"data: {base.dataset} from {dataset.source}; {len(x_train)} training images, batch "
          f"{base.batch_size}, latent {base.latent}")
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on for x86 Linux builds)")
    compiled = models["a"][0]  # what runs, as compiled: not what the flags asked for
    print(f"settings (a): precision={base.precision}, jit_compile={compiled.jit_compile}, steps_per_execution="
          f"{compiled.steps_per_execution}, intra/inter-op threads={threads[0] or 'TF default'}/"
          f"{threads[1] or 'TF default'}, TF_ENABLE_ONEDNN_OPTS={onednn}, strategy={base.strategy} "
          f"({type(strategy).__name__}), pipeline=tfvae.data.make_pipeline (uint8 in memory, shuffle, batch, "
          "vectorised map to float32, prefetch AUTOTUNE)")
    print("settings (b): keras_example.py as published: float32, Keras defaults (jit_compile auto = off on CPU), "
          "fit(x=float32 NumPy array, batch_size=128, shuffle=True)")
    for name, (_, _, _, config) in models.items():
        if config is not None and name != "a":
            changed = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
                       if getattr(config, f.name) != getattr(base, f.name)}
            print(f"variant {name}: (a) with {changed}")
    print(f"FLOPs per training image: (a) {flops_a / 1e6:.2f} M, (b) {flops_b / 1e6:.2f} M "
          "(conv/deconv/dense multiply-accumulates x 2, forward x 3 for forward + backward)")
    print(f"load average at start: {load_at_start}")

    order = [name for name, _ in variants] + ["b"]

    def segment_steps(name, steps):
        """``steps`` rounded to whole executions, at least 2 (the first one is not timed)."""
        spe = models[name][0].steps_per_execution if models[name][3] is not None else 1
        return max(2 * spe, steps // spe * spe)

    for name in order:
        model, data, kwargs, _ = models[name]
        fit_segment(model, data, segment_steps(name, FLAGS.warmup_steps), 128, **kwargs)
    rates = {name: [] for name in order}
    matmul = []
    header = "round  " + "  ".join(f"{name:>10}" for name in order) + "   matmul GFLOP/s"
    print(header)
    for r in range(FLAGS.rounds):
        for name in order:
            model, data, kwargs, _ = models[name]
            rates[name].append(fit_segment(model, data, segment_steps(name, FLAGS.steps), base.batch_size, **kwargs))
        matmul.append(matmul_rate())
        print(f"{r + 1:5d}  " + "  ".join(f"{rates[n][-1]:10.0f}" for n in order) + f"   {matmul[-1]:10.0f}")

    def median(xs):
        return statistics.median(xs)

    print("images/s (median of rounds):")
    for name in order:
        print(f"  {name:>6}: {median(rates[name]):7.0f} img/s = {median(rates[name]) * flops_a / 1e9:6.1f} GFLOP/s")
    ratio = median([a / b for a, b in zip(rates["a"], rates["b"])])
    fraction = median([a * flops_a / 1e9 / m for a, m in zip(rates["a"], matmul)])
    print(f"fp32 2048x2048 matmul: {median(matmul):.0f} GFLOP/s (median; range {min(matmul):.0f}-{max(matmul):.0f})")
    print(f"ratio (a)/(b): {ratio:.2f}x (median of per-round ratios; goal >= 1.5x)")
    for name, _ in variants[1:]:
        print(f"ratio {name}/(b): {median([v / b for v, b in zip(rates[name], rates['b'])]):.2f}x; "
              f"{name}/(a): {median([v / a for v, a in zip(rates[name], rates['a'])]):.2f}x")
    note = (" (FLOPs counted as float32 work; bfloat16 compute can exceed the fp32 rate)"
            if base.precision != "float32" else "")
    print(f"(a) reaches {100 * fraction:.0f}% of the fp32 matmul rate{note} (median of rounds; goal >= 75%)")
    print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    app.run(main)
