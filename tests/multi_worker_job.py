"""One worker of the 2-process multi-worker test (tests/test_multi_worker.py); not a test itself.

    TF_CONFIG=... python tests/multi_worker_job.py DATA_DIR WORKDIR EPOCHS REPORT.json

Trains through ``training.train`` with ``--strategy=multi_worker`` and writes, to REPORT.json (the test's
window into this process): the final weights' path, whether this task is the chief, and the files this task
wrote in its own temporary run directory, listed while it still exists.
"""

import glob
import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tfvae import training  # noqa: E402
from tfvae.config import Config  # noqa: E402


class Report(keras.callbacks.Callback):
    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_train_end(self, logs=None):
        weights = self.path.replace(".json", ".npz")
        np.savez(weights, *self.model.get_weights())
        temp_runs = glob.glob(os.path.join(tempfile.gettempdir(), "tfvae-worker-*"))
        files = sorted(os.path.relpath(f, d) for d in temp_runs for f in glob.glob(f"{d}/**", recursive=True)
                       if os.path.isfile(f))
        with open(self.path, "w") as f:
            json.dump({"weights": weights, "temp_runs": temp_runs, "temp_files": files}, f)


def main(data_dir, workdir, epochs, report):
    # A folder of pictures (through the decode cache) or the MNIST files.
    folder = {"dataset": "folder", "image_size": 28, "channels": 1} if any(
        name.endswith(".png") for name in os.listdir(data_dir)) else {"dataset": "mnist"}
    config = Config(model="vae", data_dir=data_dir, download=False, max_examples=256, batch_size=64,
                    epochs=int(epochs), strategy="multi_worker", workdir=workdir, **folder)
    messages = []
    result = training.train(config, verbose=0, log=messages.append, callbacks=[Report(report)])
    with open(report) as f:
        info = json.load(f)
    info.update(messages=messages, loss=result["loss"])
    with open(report, "w") as f:
        json.dump(info, f)


if __name__ == "__main__":
    main(*sys.argv[1:])
