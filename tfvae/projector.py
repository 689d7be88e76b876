"""The latent space in TensorBoard: the test set's codes for the Embedding Projector, and the traversals.

``tensorboard --logdir runs`` -> Projector shows every test image (up to ``MAX_POINTS``) at its latent mean,
as its thumbnail, coloured by class ("Color by: class"); PCA, t-SNE and UMAP are the Projector's own. The
files live in the run's ``logs/latent/``::

    projector_config.pbtxt   the ProjectorConfig (tensorboard.plugins.projector), paths relative to it
    z_mean.tsv               one row of tab-separated latent means per image (a latent of fewer than 3
                             dimensions is padded with zero columns: the Projector's PCA, which it runs by
                             default, takes 3 components and gives NaN coordinates for 2-D data)
    metadata.tsv             a header "label<TAB>class", then one row per image (labelled data only)
    sprite.png               the thumbnails, row-major on a ceil(sqrt(n))-square grid of at most 8192 px a side
    events.out.tfevents.*    a text note (an event file is what makes the directory a TensorBoard run, and
                             the Projector only looks for its config in runs) and, after training, the
                             ``traversal`` image

How TensorBoard finds them (tensorboard/plugins/projector/projector_plugin.py): for every run directory it reads
``projector_config.pbtxt``; an embedding with a ``tensor_path`` needs no checkpoint, and every asset path must
resolve inside the config's directory. The metadata TSV has a header row because it has more than one column.
"""

import glob
import math
import os

import numpy as np

from tfvae import api, files, models, picture_arrays
from tfvae.errors import TfvaeError

LOGDIR = os.path.join("logs", "latent")
MAX_POINTS = 10000
SPRITE_MAX = 8192  # the Projector's largest sprite side, in pixels
TENSOR_NAME = "z_mean"
MIN_COLUMNS = 3  # the Projector's default view is a 3-D PCA (vz_projector/data.ts: projectPCA)


def projector_codes(z):
    """``z`` with zero columns appended up to ``MIN_COLUMNS``, so that the Projector's PCA has 3 components."""
    z = np.asarray(z, dtype="float32")
    return np.pad(z, ((0, 0), (0, max(0, MIN_COLUMNS - z.shape[1]))))


def latent_logdir(run):
    """``<workdir>/logs/latent``, the TensorBoard run that holds the latent space's views."""
    return os.path.join(run.workdir, LOGDIR)


def sprite(images, max_side=SPRITE_MAX):
    """Thumbnails of ``images`` (n, H, W, C) in [0, 1] tiled row-major on a ceil(sqrt(n)) square.

    Thumbnails are shrunk (keeping their aspect) when the sprite would exceed ``max_side`` pixels a side.

    Returns:
      (uint8 sprite (side * h, side * w, C), (w, h) of one thumbnail).
    """
    from PIL import Image

    count, height, width, channels = images.shape
    side = max(1, math.ceil(math.sqrt(count)))
    scale = min(1.0, max_side / (side * max(height, width)))
    w, h = max(1, int(width * scale)), max(1, int(height * scale))
    thumbs = np.rint(np.clip(images, 0.0, 1.0) * 255.0).astype(np.uint8)
    if (w, h) != (width, height):
        thumbs = np.stack([np.asarray(Image.fromarray(t[..., 0] if channels == 1 else t).resize(
            (w, h), Image.Resampling.BILINEAR)).reshape(h, w, channels) for t in thumbs])
    return picture_arrays.tile(thumbs, side, side), (w, h)


def write_projector(run, max_points=MAX_POINTS, step=None):
    """Writes the first ``max_points`` test images' latent means, thumbnails and labels for the Projector.

    Args:
      run: a ``tfvae.api.Run``.
      max_points: most test images shown.
      step: TensorBoard step of the text note written with them (default: the run's epochs trained); the
        note is written once, when the directory holds no event file yet.

    Returns:
      the directory written, ``<workdir>/logs/latent``.
    """
    logdir = _write_projector_files(run, max_points)
    if not glob.glob(os.path.join(logdir, "events.out.tfevents.*")):
        write_summaries(run, run.epochs_trained if step is None else step, note=True)
    return logdir


def write_end_of_training(run, step, n=9, max_points=MAX_POINTS):
    """After the last epoch: the Projector's files, and the note and traversal image at ``step``.

    Returns:
      the directory written, ``<workdir>/logs/latent``.
    """
    logdir = _write_projector_files(run, max_points)
    write_summaries(run, step, note=not _has_note(logdir), traversal=run.traverse(n)[0])
    return logdir


def _has_note(logdir):
    """Whether an event file under ``logdir`` holds the Projector note (a resume that fell back to an earlier
    checkpoint dropped it with the other points after that checkpoint: it is written again)."""
    import tensorflow as tf
    from google.protobuf.message import DecodeError
    from tensorflow.core.util import event_pb2

    for path in glob.glob(os.path.join(logdir, "events.out.tfevents.*")):
        try:
            for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
                if any(v.tag == "projector" for v in event_pb2.Event.FromString(record).summary.value):
                    return True
        except (tf.errors.OpError, DecodeError):
            continue
    return False


def write_after_training(config, dataset, log=print):
    """The hook train.py gives training for after the last epoch (``train(on_finished=...)``, chief only):
    ``write_end_of_training`` for the run just trained.

    The models are read back through ``tfvae.api`` from the exported float32 files, as sample.py reads them;
    the test images are the data training loaded, as ``Run.test_data`` defines them. A failure is reported, not
    raised: the run itself is complete.

    Args:
      config: the run's Config (as written to its config.json).
      dataset: the data it trained on (``tfvae.training.load_data``).
      log: where the warning about a failure goes.

    Returns:
      the directory written, or None.
    """
    if models.model_class(config.model).code_grid:
        log(f"the latent space's Projector and traversal are for vector codes; a {config.model}'s are grids "
            "(python sample.py --mode=random draws samples of them)")
        return None
    try:
        run = api.Run(config.workdir, config)
        labels = None if dataset.y_test is None else dataset.y_test[:MAX_POINTS]
        # Static copies are drawn again identically; a dynamic run's test set is its one fixed draw.
        run.set_test_data(run.data.model_view(dataset.x_test)[:MAX_POINTS], labels)  # the traversal's KL uses them
        return write_end_of_training(run, step=config.epochs)
    except (OSError, TfvaeError) as e:
        log(f"warning: could not write the latent space to TensorBoard ({e}); python sample.py --mode=projector "
            "writes the Projector's files later")
        return None


def write_summaries(run, step, note=False, traversal=None):
    """Writes ``logs/latent``'s TensorBoard summaries: the note on the Projector and/or a traversal picture."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(latent_logdir(run))
    with writer.as_default(step=step):
        if note:
            tf.summary.text("projector", f"The Projector tab shows the latent means (`{TENSOR_NAME}`) of the "
                            f"{run.config.dataset} test images as thumbnails; colour them by `class`.")
        if traversal is not None:
            tf.summary.image("traversal", np.asarray(traversal, dtype="float32")[None],
                             description="One row per latent dimension (the highest average KL first), swept "
                                         "over norm.ppf(linspace(0.05, 0.95, n)) around one test image's code.")
    writer.close()


def _write_projector_files(run, max_points):
    from google.protobuf import text_format
    from PIL import Image
    from tensorboard.plugins import projector

    logdir = latent_logdir(run)
    os.makedirs(logdir, exist_ok=True)
    x, _ = run.test_data()
    count = min(max_points, len(x))
    z_mean, _, labels = run.test_codes(count)
    files.atomic_write_text(os.path.join(logdir, "z_mean.tsv"), "".join(
        "\t".join(f"{v:.6g}" for v in row) + "\n" for row in projector_codes(z_mean)))
    config = projector.ProjectorConfig()
    embedding = config.embeddings.add()
    embedding.tensor_name = TENSOR_NAME
    embedding.tensor_path = "z_mean.tsv"
    if labels is not None:
        names = run.class_names
        rows = (f"{int(y)}\t{names[int(y)] if int(y) < len(names) else int(y)}\n" for y in labels)
        files.atomic_write_text(os.path.join(logdir, "metadata.tsv"), "label\tclass\n" + "".join(rows))
        embedding.metadata_path = "metadata.tsv"
    picture, (w, h) = sprite(x[:count])
    files.atomic_save(os.path.join(logdir, "sprite.png"), lambda tmp: Image.fromarray(
        picture[..., 0] if picture.shape[-1] == 1 else picture).save(tmp, format="PNG"))
    embedding.sprite.image_path = "sprite.png"
    embedding.sprite.single_image_dim.extend([w, h])
    files.atomic_write_text(os.path.join(logdir, "projector_config.pbtxt"), text_format.MessageToString(config))
    return logdir
