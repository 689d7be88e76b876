"""Helpers the benchmarks share: the machine they ran on, timed fit segments, report table cells.

The pictures the benchmarks lay out are ``benchmarks/figures.py``'s. A benchmark puts the repository root on
``sys.path`` and calls ``tfvae.startup.quiet_tensorflow_startup()`` at its top (as train.py does), then imports
these helpers as ``from benchmarks.common import ...``.
"""

import math
import os
import time


def cpu_info():
    """(model name, set of flags) of the CPU from /proc/cpuinfo; (None, None) where it can't be read."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = f.read().splitlines()
        flags_line = next(line for line in lines if line.startswith("flags"))
    except (OSError, StopIteration):
        return None, None
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), None)
    return model, set(flags_line.split(":", 1)[1].split())


def describe_machine():
    """"N CPUs (model, the vector flags that decide the precision and speed)": printed beside every timing."""
    import platform

    model, present = cpu_info()
    cpu = model or platform.processor() or platform.machine()
    names = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16")
    cpu += "".join(f", {name.upper()}" for name in names if name in (present or ()))
    return f"{os.cpu_count()} CPUs ({cpu})"


def load_average():
    """The 1, 5 and 15 minute load averages, printed beside every timing ("n/a" where the system has none)."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def fit_segment(model, data, steps, images_per_step, **fit_kwargs):
    """Images per second of one ``model.fit`` of ``steps`` steps, timed from the end of its first step to the end of
    its last (iterator start-up and tracing excluded)."""
    import keras

    marks = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            marks.clear()

        def on_train_batch_end(self, batch, logs=None):
            marks.append((batch, time.perf_counter()))

    model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[Timer()], **fit_kwargs)
    (first_step, first_time), (last_step, last_time) = marks[0], marks[-1]
    return (last_step - first_step) * images_per_step / (last_time - first_time)


def cell(value, spec):
    """A report table's cell: ``value`` formatted with ``spec``, or a dash where there is none (None, inf, nan)."""
    return "—" if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, spec)
