"""The latent explorer's decode latency: what one image under the mouse costs the TensorBoard server.

    python benchmarks/explorer_latency.py runs/vae-mnist-z2 runs/vae-folder-z128   # run directories

For each run it builds the explorer plugin as TensorBoard does (its WSGI routes, served in-process through
werkzeug's test client, so no socket or browser time is counted), loads the run once, then sends ``--requests``
``decode`` requests, each one code drawn from N(0, I) (a cvae: a random class), as the page does while the mouse
moves. It prints, per run, the median / 90th percentile / max of the decoder's own time (the route's
``X-Decode-Ms`` header: ``Run.decode`` of one code) and of the whole request (parsing, checks, decode, uint8
pixels), and the machine's load average (``os.getloadavg``) before and after: on a shared machine the load is
part of the result.
"""

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfvae import startup  # noqa: E402

startup.quiet_tensorflow_startup()  # TensorFlow without its C++ start-up notices and info logs

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from tensorboard.backend import application  # noqa: E402
from tensorboard.plugins import base_plugin  # noqa: E402
from werkzeug.test import Client  # noqa: E402

from tfvae.explorer import plugin  # noqa: E402

flags.DEFINE_integer("requests", 200, "Decode requests timed per run (after 10 untimed ones).", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seed of the codes.")
FLAGS = flags.FLAGS


def percentiles(values):
    values = sorted(values)
    return values[len(values) // 2], values[min(len(values) - 1, int(0.9 * len(values)))], values[-1]


def measure(workdir, count, rng):
    """(run description, decoder ms list, request ms list) for ``count`` one-code decode requests."""
    parent, name = os.path.split(os.path.abspath(workdir))
    explorer = plugin.ExplorerPlugin(base_plugin.TBContext(logdir=parent))
    client = Client(application.TensorBoardWSGI([explorer]))
    start = time.perf_counter()
    response = client.get("/data/plugin/latent/run", query_string={"run": name})
    if response.status_code != 200:
        raise SystemExit(f"{workdir}: {response.get_json()['error']}")
    load_s = time.perf_counter() - start
    info = response.get_json()
    decoder_ms, request_ms = [], []
    for i in range(count + 10):
        args = {"run": name, "z": ",".join(f"{v:.4f}" for v in rng.standard_normal(info["latent_dim"]))}
        if info["conditional"]:
            args["label"] = str(rng.integers(info["num_classes"]))
        start = time.perf_counter()
        response = client.get("/data/plugin/latent/decode", query_string=args)
        elapsed = (time.perf_counter() - start) * 1000
        assert response.status_code == 200, response.data
        if i >= 10:
            decoder_ms.append(float(response.headers["X-Decode-Ms"]))
            request_ms.append(elapsed)
    return info, load_s, decoder_ms, request_ms


def main(argv):
    if len(argv) < 2:
        raise app.UsageError("name one or more run directories")
    rng = np.random.default_rng(FLAGS.seed)
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs")
    for workdir in argv[1:]:
        info, load_s, decoder_ms, request_ms = measure(workdir, FLAGS.requests, rng)
        shape = "x".join(map(str, info["image_shape"]))
        decoder, request = (" / ".join(f"{v:.1f}" for v in percentiles(ms)) for ms in (decoder_ms, request_ms))
        print(f"{workdir}: {info['model']}, latent {info['latent_dim']}, {shape}; loaded (and test set encoded) in "
              f"{load_s:.1f} s; {len(decoder_ms)} one-code requests, median / p90 / max: decoder {decoder} ms, "
              f"whole request {request} ms (mean {statistics.mean(request_ms):.1f})")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    app.run(main)
