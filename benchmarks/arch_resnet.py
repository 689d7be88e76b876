"""conv against resnet on a folder of pictures, at equal wall time.

    python benchmarks/make_picture_sets.py --output=/work/picture_sets --sets=emoji
    python benchmarks/arch_resnet.py --data_dir=/work/picture_sets/emoji --output=/work/bench/arch --budget_s=600
    python benchmarks/arch_resnet.py ... --max_examples=1000 --budget_s=120        # a small, quick comparison

Every run is the folder config (configs/folder_vae_64.cfg: a VAE on 64x64 RGB with a calibrated Gaussian
decoder, latent 128, batch 64) trained by ``training.train``, the function train.py calls, with only --arch (and
the flags given here) changed. Equal wall time: first every architecture's training step is timed on the real
batches, ``--calibration_steps`` steps of each in turn for ``--calibration_rounds`` rounds after a warm-up, so
that all see the same machine load (``seconds_per_epoch``); then each trains for the epochs that fit in
``--budget_s`` (at least 1), its cosine learning-rate schedule sized to them, so every run ends its schedule.
The report gives the time each run actually took (history.csv's per-epoch ``seconds``: training, plus
validation, checkpoint and export, which the calibration leaves out), so a budget missed because the machine's
load changed shows.

Measured on the test images: the test loss (the -ELBO in nats of [0, 1] pixels with the decoder's trained
variance: the last epoch's val_loss), MSE and PSNR of the reconstructions at z = z_mean (``metrics.mse_psnr``),
and sharpness and colourfulness ratios to the real test images (``metrics.perception``: evaluate.py's
``recon_*_ratio``) of the reconstructions and of prior samples. CPU flags and the load average are printed
before and after: on a shared machine the timings, and so the epochs each budget buys, are noisy.
"""

import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfvae import startup  # noqa: E402

startup.quiet_tensorflow_startup()  # TensorFlow without its C++ start-up notices and info logs

from absl import app, flags  # noqa: E402

from benchmarks.common import cpu_info  # noqa: E402

flags.DEFINE_string("data_dir", None, "Folder of images (one subfolder per class).")
flags.DEFINE_string("output", None, "Where the runs and report.json go (a rerun resumes finished runs).")
flags.DEFINE_list("archs", ["conv", "resnet"], "Architectures to compare, one run each.")
flags.DEFINE_float("budget_s", 300.0, "Wall-time budget of every run's training, seconds.", lower_bound=1.0)
flags.DEFINE_list("filters", ["16", "32", "64", "128"], "Filters per stride-2 layer (conv) or per stage (resnet).")
flags.DEFINE_integer("latent", 128, "Latent size.", lower_bound=1)
flags.DEFINE_integer("hidden", 256, "Dense units before z.", lower_bound=1)
flags.DEFINE_integer("batch_size", 64, "Batch size.", lower_bound=1)
flags.DEFINE_integer("image_size", 64, "Image side.", lower_bound=8)
flags.DEFINE_integer("max_examples", 0, "Use only this many images of the folder (0: all).", lower_bound=0)
flags.DEFINE_integer("calibration_steps", 32, "Timed training steps per calibration segment.", lower_bound=1)
flags.DEFINE_integer("calibration_rounds", 3, "Timed calibration segments (their median is used).", lower_bound=1)
flags.DEFINE_integer("sample_count", 256, "Prior samples for their sharpness and colourfulness.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seed of the runs and the samples.")
FLAGS = flags.FLAGS


def machine():
    """The load average and the CPU's vector flags, printed beside every timing."""
    _, present = cpu_info()
    wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "fma")
    return {"load_average": [round(v, 2) for v in os.getloadavg()], "cpu_count": os.cpu_count(),
            "cpu_flags": [f for f in wanted if f in (present or ())]}


def make_config(arch, epochs, workdir):
    from tfvae.config import Config

    return Config(model="vae", arch=arch, dataset="folder", data_dir=FLAGS.data_dir, image_size=FLAGS.image_size,
                  channels=3, filters=tuple(int(f) for f in FLAGS.filters), hidden=FLAGS.hidden,
                  latent=FLAGS.latent, loss="gaussian", epochs=epochs, batch_size=FLAGS.batch_size,
                  max_examples=FLAGS.max_examples, seed=FLAGS.seed, workdir=workdir).validate()


def seconds_per_epoch(archs, log):
    """{arch: (seconds per training epoch, steps per epoch)}, timed on the real batches in alternation.

    Every architecture is built and warmed up (which traces its step and fills its shuffle buffer); then each
    of ``calibration_rounds`` rounds times ``calibration_steps`` steps of every architecture in turn, from batch
    end to batch end (the pipeline's start is not counted), so that all see the same machine load. The median
    over rounds is used.
    """
    import keras

    from tfvae import training

    setups, times = {}, {arch: [] for arch in archs}
    for arch in archs:
        config = make_config(arch, 1, "")
        dataset = training.load_data(config, log)
        config = config.with_data(dataset.facts)
        keras.utils.set_random_seed(config.seed)
        model = training.create_model(config)
        train, _ = training.pipelines(config, dataset)
        unit = model.steps_per_execution if isinstance(model.steps_per_execution, int) else 1
        steps = max(2 * unit, FLAGS.calibration_steps // unit * unit)
        setups[arch] = (model, train, steps, unit, training.model_setup.steps_per_epoch(config, config.num_examples))
        model.fit(train, steps_per_epoch=steps, epochs=1, verbose=0)  # traces the step
    for _ in range(FLAGS.calibration_rounds):
        for arch, (model, train, steps, unit, _) in setups.items():
            ends = {}
            stamp = keras.callbacks.LambdaCallback(
                on_train_batch_end=lambda batch, logs, ends=ends: ends.setdefault(batch + 1, time.perf_counter()))
            model.fit(train, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[stamp])
            times[arch].append((ends[steps] - ends[unit]) / (steps - unit))
    return {arch: (statistics.median(times[arch]) * setup[4], setup[4]) for arch, setup in setups.items()}


def measure(workdir):
    """Test loss, MSE/PSNR and the perception ratios of a finished run (see the module docstring)."""
    import numpy as np

    from tfvae import api, metrics, rundir

    run = api.load(workdir, log=lambda *a: None)
    history = rundir.read_history(os.path.join(workdir, "history.csv"))
    images, _ = run.test_data()
    recon = run.reconstruct(images)
    mse, psnr = metrics.mse_psnr(images, recon)
    real = metrics.perception(images)
    rec = metrics.perception(recon, real)
    prior = metrics.perception(run.sample(FLAGS.sample_count, seed=FLAGS.seed, sampler="prior"), real)
    seconds = [float(r["seconds"]) for r in history]
    return {"epochs": len(history), "train_seconds": sum(seconds), "seconds_per_epoch": float(np.mean(seconds)),
            "test_loss": float(history[-1]["val_loss"]), "test_mse": float(mse.mean()),
            "psnr": float(psnr.mean()), "recon_sharpness_ratio": rec["sharpness_ratio"],
            "recon_colourfulness_ratio": rec["colourfulness_ratio"],
            "prior_sharpness_ratio": prior["sharpness_ratio"],
            "prior_colourfulness_ratio": prior["colourfulness_ratio"],
            "parameters": int(run.encoder.count_params() + run.decoder.count_params())}


def markdown(rows):
    head = ("| arch | calibrated s/epoch | epochs | trained s | s/epoch | test loss (nats) | test MSE | PSNR dB | "
            "recon. sharpness / colourfulness | prior sharpness / colourfulness | parameters |\n"
            "|" + "---|" * 11 + "\n")
    fmt = lambda v: "—" if v is None else f"{v:.2f}"  # noqa: E731
    return head + "".join(
        f"| {r['arch']} | {r['calibrated_seconds_per_epoch']:.1f} | {r['epochs']} | {r['train_seconds']:.0f} | "
        f"{r['seconds_per_epoch']:.1f} | {r['test_loss']:.0f} | {r['test_mse']:.4f} | {r['psnr']:.2f} | "
        f"{fmt(r['recon_sharpness_ratio'])} / {fmt(r['recon_colourfulness_ratio'])} | "
        f"{fmt(r['prior_sharpness_ratio'])} / {fmt(r['prior_colourfulness_ratio'])} | {r['parameters']:,} |\n"
        for r in rows)


def main(argv):
    del argv
    if not FLAGS.data_dir or not FLAGS.output:
        raise app.UsageError("--data_dir and --output are required")
    from tfvae import training

    log = print
    plan_path = os.path.join(FLAGS.output, "budget.json")
    if os.path.isfile(plan_path):  # resuming: keep the epochs the first calibration chose
        with open(plan_path) as f:
            plans = json.load(f)
    else:
        before = machine()
        plans = {arch: {"arch": arch, "calibrated_seconds_per_epoch": per_epoch, "steps_per_epoch": steps,
                        "epochs": max(1, int(FLAGS.budget_s // per_epoch)), "budget_s": FLAGS.budget_s,
                        "machine": before}
                 for arch, (per_epoch, steps) in seconds_per_epoch(FLAGS.archs, log).items()}
        os.makedirs(FLAGS.output, exist_ok=True)
        with open(plan_path, "w") as f:
            json.dump(plans, f, indent=1)
    rows = []
    for arch in FLAGS.archs:
        plan, workdir = plans[arch], os.path.join(FLAGS.output, arch)
        log(f"{arch}: {plan['calibrated_seconds_per_epoch']:.1f} s an epoch measured; {plan['epochs']} epochs "
            f"fit in {FLAGS.budget_s:.0f} s (load {plan['machine']['load_average']})")
        training.train(make_config(arch, plan["epochs"], workdir), verbose=0, log=lambda *a: None)
        rows.append({**plan, **measure(workdir), "machine_after": machine()})
    with open(os.path.join(FLAGS.output, "report.json"), "w") as f:
        json.dump(rows, f, indent=1)
    print(json.dumps(machine()))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    app.run(main)
