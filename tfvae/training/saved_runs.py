"""``save_run``: the run directory of a model fitted by hand (``compile`` and ``fit`` in your own Keras code), which
``tfvae.load``, sample.py, evaluate.py and the explorer then use like one that train.py wrote.

What it writes, in ``tfvae.rundir``'s formats: encoder.keras and decoder.keras (float32, as training exports
them), the data (below), history.csv (the rows of the model's last ``fit``), config.json (the model's name, image
shape and latent size, its settings and hyperparameters as ``tfvae.models.build_model`` recorded them, and the
data's facts), then ``latest`` beside it. It keeps no checkpoints: ``tfvae.train`` on such a directory trains
from scratch.

The data, for what needs it (evaluate.py, the latent scatter, the explorer, the samplers fitted to the training
codes):

* ``data=`` (and ``test_data=``): the images the model was fitted on, kept in the run's data.npz
  (``tfvae.data.arrays``: numpy arrays or a finite tf.data pipeline; labels for a cvae). Without ``test_data``
  the test set is a fixed random tenth of ``data`` (seed 0), which the model was fitted on: config.json's
  data_source says so, and evaluate.py's scores are then training-set scores.
* ``dataset="mnist"`` (or fashion_mnist; folder with ``data_dir``): a data set tfvae loads, loaded once now for
  its facts; nothing is copied.
* neither: the run keeps no data; sampling from the prior works, and what needs images refuses in one line.
"""

import dataclasses
import inspect
import os

from tfvae import data as data_lib
from tfvae import files
from tfvae.config import PRECISIONS, Config
from tfvae.data import DataFacts
from tfvae.errors import TfvaeError
from tfvae.models import Autoencoder, hyperparameter_fields, with_article
from tfvae.rundir import check_run_files, point_latest, write_config, write_history
from tfvae.rundir.history import HISTORY_FIELDS, OPTIONAL_FIELDS
from tfvae.training.model_setup import export_models

# build_model's settings under their Config names (the rest have the same name in both).
_CONFIG_NAMES = {"reconstruction": "loss", "latent_dim": "latent", "name": "model"}


def save_run(model, workdir, data=None, test_data=None, *, dataset=None, data_dir="", log=print):
    """Writes the run directory ``workdir`` of ``model``, a tfvae model built by ``tfvae.models.build_model`` and
    fitted by hand; see the module docstring.

    Args:
      model: the model (its encoder, decoder and ``build_settings``).
      workdir: the run directory to write (created; one that train.py trained, with checkpoints/, is refused).
      data: the images the model was fitted on (and labels): a numpy array (n, H, W, C) or (n, H, W), uint8 or
        float in [0, 1], ``(images, labels)``, or a finite tf.data pipeline of them; kept in data.npz.
      test_data: held-out images (and labels) in the same forms; default: a fixed random tenth of ``data``.
      dataset: instead of ``data``, the name of the tfvae data set the model was fitted on (``tfvae.data.DATASETS``).
      data_dir: that data set's directory (a folder's images; mnist's own files).
      log: where the line saying what was written goes.

    Returns:
      ``workdir``.

    Raises:
      TfvaeError: a model that is not a tfvae model built by ``build_model``, one whose prior is trained after
        it (a vqvae: train it with ``tfvae.train``), data that does not fit it, a run directory trained by
        train.py or in use (each one line).
    """
    settings = _build_settings(model)
    cls = type(model)
    if cls.trains_prior_after:
        raise TfvaeError(f"{with_article(settings['name'])}'s prior is a network trained after the model (its "
                         "PixelCNN); train it with tfvae.train(config, data=...), which fits both")
    if data is not None and dataset:
        raise TfvaeError(f"data= and dataset={dataset!r} both given; pass the arrays or the data set's name")
    if test_data is not None and data is None:
        raise TfvaeError("test_data= given without data=; pass the images the model was fitted on too")
    image_shape = tuple(int(d) for d in model.encoder.inputs[0].shape[1:])
    labels_in = int(model.encoder.inputs[1].shape[-1]) if cls.conditional else 0
    rows = _history_rows(model)
    config = _config(settings, model, workdir, dataset or "arrays", data_dir, image_shape, epochs=max(len(rows), 1))
    arrays = None
    if data is not None:
        arrays = _arrays(data, test_data)
        facts = _facts_of(arrays, image_shape, labels_in, cls.conditional, with_article(settings['name']))
    elif dataset:
        loaded = data_lib.load_configured(config, log=log)
        facts = _facts_of(loaded, image_shape, labels_in, cls.conditional, with_article(settings['name']))
    else:
        facts = DataFacts(image_shape, labels_in, tuple(str(i) for i in range(labels_in)), 0,
                          "none: saved by tfvae.save_run without data (evaluate.py and the explorer need images: "
                          "save it again with data= or dataset=)")
    config = config.with_data(facts)

    with files.RunLock(workdir):
        if os.path.isdir(os.path.join(workdir, "checkpoints")):
            raise TfvaeError(f"{workdir} holds a run that train.py or tfvae.train trained (it has checkpoints/); "
                             "pass another workdir")
        check_run_files(workdir)
        export_models(model, workdir)
        kept = os.path.join(workdir, data_lib.ARRAYS_FILE)
        if arrays is not None:
            data_lib.save_arrays(kept, arrays)
        elif os.path.lexists(kept):  # a previous save's arrays, not this run's data
            os.remove(kept)
        history = os.path.join(workdir, "history.csv")
        if rows:
            write_history(history, rows)
        elif os.path.lexists(history):
            os.remove(history)
        write_config(workdir, config)
        point_latest(workdir)
    written = ["encoder.keras", "decoder.keras"] + ([data_lib.ARRAYS_FILE] if arrays is not None else []) + \
        (["history.csv"] if rows else []) + ["config.json"]
    log(f"wrote {workdir}: {', '.join(written)} ({config.model} z{config.latent}, {len(rows)} epoch(s) of history; "
        f"data: {facts.data_source})")
    return workdir


def _build_settings(model):
    if not isinstance(model, Autoencoder):
        raise TfvaeError(f"save_run takes a tfvae model (tfvae.models.build_model), not a {type(model).__name__}")
    settings = getattr(model, "build_settings", None)
    if settings is None:
        raise TfvaeError(f"this {type(model).__name__} was not built by tfvae.models.build_model, so its settings "
                         "(arch, filters, hidden, ...) are unknown; build it with build_model")
    return settings


def _config(settings, model, workdir, dataset, data_dir, image_shape, epochs):
    """The run's Config from what built the model (each setting build_model was not given: its default there)."""
    cls = type(model)
    defaults = {name: p.default for name, p in inspect.signature(cls.build).parameters.items()
                if p.default is not inspect.Parameter.empty}
    given = {**defaults, **settings}
    given["seed"] = given.get("seed") or 0
    fields = {f.name for f in dataclasses.fields(Config)}
    values = {_CONFIG_NAMES.get(k, k): v for k, v in given.items()
              if _CONFIG_NAMES.get(k, k) in fields and k not in ("image_shape", "num_classes")}
    values = {k: v for k, v in values.items() if k not in hyperparameter_fields()
              or k in {f.name for f in dataclasses.fields(cls.Hparams)}}
    policy = model.encoder.dtype_policy.name
    square = image_shape[0] if image_shape[0] == image_shape[1] else 0
    config = Config(**values, dataset=dataset, data_dir=data_dir, workdir=workdir, epochs=epochs,
                    precision=policy if policy in PRECISIONS else "float32",
                    image_size=square if dataset == "folder" else 0,
                    channels=image_shape[2] if dataset == "folder" else 0)
    return config.validate()


def _arrays(data, test_data):
    """The Dataset of the arrays the model was fitted on: ``test_data`` as its test set, or a tenth of ``data``."""
    if test_data is not None:
        return data_lib.from_arrays(data, test_data, "save_run")
    x, y = data_lib.images_and_labels(data, "data")
    _, _, x_test, y_test, _ = data_lib.split(x, y)
    source = (f"{data_lib.describe_arrays(data)} given to save_run (the test set is a fixed random tenth of the "
              "images the model was fitted on: pass test_data= for held-out images)")
    return data_lib.make_dataset(x, y, x_test, y_test, source)


def _facts_of(dataset, image_shape, labels_in, conditional, model):
    """What ``dataset`` is, checked against the model: its images' shape, a cvae's labels."""
    if dataset.image_shape != image_shape:
        raise TfvaeError(f"the data's images are {dataset.image_shape}, but {model} of {image_shape} images was "
                         "built; pass the images it was fitted on")
    if conditional and not dataset.num_classes:
        raise TfvaeError(f"{model} takes class labels: pass data=(images, labels)")
    if conditional and dataset.num_classes > labels_in:
        raise TfvaeError(f"the data has {dataset.num_classes} classes, but {model} of {labels_in} was built")
    facts = dataset.facts
    if conditional and facts.num_classes != labels_in:  # the model's classes, some of them absent from the data
        facts = dataclasses.replace(facts, num_classes=labels_in, class_names=tuple(str(i) for i in range(labels_in)))
    return facts


def _history_rows(model):
    """history.csv's rows of the model's last ``fit`` (Keras's History callback), [] if it has none."""
    history = getattr(model, "history", None)
    logs = getattr(history, "history", None) or {}
    names = [k for k in (*HISTORY_FIELDS, *OPTIONAL_FIELDS) if k in logs]
    epochs = len(logs.get("loss", ()))
    return [{"epoch": str(i + 1), **{k: f"{float(logs[k][i]):.6g}" for k in names if i < len(logs[k])}}
            for i in range(epochs)]
