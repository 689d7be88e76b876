"""The run directory's files: history.csv, skipped_files.txt, the ``latest`` file, saved models, and the check
that a directory holds a run of this architecture (the layout is in the ``tfvae.training`` docstring)."""

import csv
import glob
import io
import os

from tfvae import files, integrity
from tfvae.config import Config
from tfvae.errors import TfvaeError

SKIPPED_FILES = "skipped_files.txt"
HISTORY_FIELDS = ("epoch", "loss", "reconstruction", "kl", "val_loss", "val_reconstruction", "val_kl",
                  "learning_rate", "seconds", "train_seconds", "examples_per_sec")


def atomic_save_model(model, path):
    """Saves a ``.keras`` file through a temporary name so a kill never leaves a half-written file."""
    files.atomic_save(path, model.save)


def point_latest(workdir):
    """Writes ``<parent of workdir>/latest``: one line naming ``workdir`` (``tfvae.runs.resolve_workdir`` reads it).

    A file, not a symlink: TensorBoard walks into symlinked directories, so a ``latest`` link listed the newest
    run twice under ``tensorboard --logdir runs``. A ``latest`` symlink from an older tfvae is replaced; a run
    directory that is itself called ``latest`` is left alone.
    """
    workdir = os.path.abspath(workdir)
    pointer = os.path.join(os.path.dirname(workdir), "latest")
    if os.path.basename(workdir) == "latest" or (os.path.isdir(pointer) and not os.path.islink(pointer)):
        return
    # Runs finishing at once in one folder (a sweep) each write it: a temporary of each process's own.
    files.atomic_write_text(pointer, os.path.basename(workdir) + "\n", unique=True)


def read_history(path):
    if not os.path.isfile(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_history(path, rows):
    def write(tmp):
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=HISTORY_FIELDS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    files.atomic_save(path, write)


def write_skipped_files(workdir, data_dir, dataset):
    """Lists the data files that could not be used in ``<workdir>/skipped_files.txt`` (removes it if none).

    Returns:
      the file's path, or None when nothing was skipped.
    """
    path = os.path.join(workdir, SKIPPED_FILES)
    if not dataset.skipped:
        if os.path.exists(path):
            os.remove(path)
        return None
    lines = [f"# {len(dataset.skipped)} file(s) under {data_dir} could not be used (path<TAB>reason); fix or "
             "delete them and run again to include them"]
    lines += [f"{rel}\t{dataset.skip_reasons.get(rel, 'could not be decoded')}" for rel in dataset.skipped]
    files.atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def check_workdir(config):
    """Refuses a run directory that already holds a run of another architecture.

    Returns:
      None, or what is wrong with the directory's config.json ("is missing", "is cut short (...)", ...):
      train() then rewrites it from the flags, once the checkpoint has shown that it fits them.
    """
    path = os.path.join(config.workdir, "config.json")
    try:
        previous = Config.read_file(path)
    except integrity.Unreadable as e:
        return str(e)
    mine, theirs = config.architecture(), previous.architecture()
    # image_shape and num_classes are known only after the data is loaded; compare them once both are.
    diffs = [k for k in mine if mine[k] != theirs[k] and mine[k] not in ((), [], 0)]
    if diffs:
        described = ", ".join(f"{k}={theirs[k]} (asked {mine[k]})" for k in diffs)
        raise TfvaeError(f"{config.workdir} holds a different run ({described}); pass another --workdir, "
                         "or the same flags to resume it")
    return None


# The files train.py writes at the top of a run directory (and in checkpoints/): a directory in their place is
# refused before anything is written.
RUN_FILES = ("config.json", "history.csv", "encoder.keras", "decoder.keras", SKIPPED_FILES,
             os.path.join("checkpoints", "state.json"))
RUN_FOLDERS = ("checkpoints", "logs")


def check_run_files(workdir):
    """Refuses a run directory where a folder stands in place of a file train.py writes, or the reverse.

    Raises:
      TfvaeError: one line naming the path and what to do.
    """
    for rel in RUN_FILES:
        path = os.path.join(workdir, rel)
        if os.path.isdir(path):
            raise TfvaeError(f"{path} is a directory, not a file; move it out of {workdir} (train.py writes this "
                             "file there) and run again")
    for rel in RUN_FOLDERS:
        path = os.path.join(workdir, rel)
        if os.path.lexists(path) and not os.path.isdir(path):
            raise TfvaeError(f"{path} is a file, not a directory; move it out of {workdir} (train.py writes this "
                             "folder there) and run again")


def load_history(path, epochs, log=print, logdir=None):
    """The rows of history.csv for epochs 1..``epochs`` (the checkpoint's), in order.

    Rows after ``epochs`` are dropped (a killed run wrote them before its checkpoint). When the file is damaged
    (cut short, emptied, overwritten, deleted), the rows it lost are rebuilt from the TensorBoard scalars under
    ``logdir`` (all but the timings, which TensorBoard does not hold); one line says so, and the file is
    rewritten at once, so that it never holds a damaged row next to new ones.
    """
    rows, problem = {}, None
    if epochs < 1:
        return []
    problem = "is missing" if not os.path.lexists(path) else integrity.file_problem(path)
    if not problem:
        try:
            with open(path, encoding="utf-8", newline="") as f:
                text = f.read()
        except UnicodeDecodeError:
            problem = "is not text (overwritten with other bytes?)"
        else:
            reader = csv.DictReader(io.StringIO(text))
            if not reader.fieldnames or reader.fieldnames[0] != "epoch":
                problem = "has no header row starting with epoch"
            else:
                for row in reader:
                    try:
                        epoch = int(row["epoch"])
                    except (TypeError, ValueError):
                        continue
                    if 1 <= epoch <= epochs and None not in row and all(row.get(k) not in (None, "")
                                                                       for k in reader.fieldnames):
                        rows.setdefault(epoch, row)
    lost = [e for e in range(1, epochs + 1) if e not in rows]
    if not lost and not problem:
        return [rows[e] for e in sorted(rows)]
    problem = problem or "is cut short or damaged"
    rebuilt = history_from_events(logdir, epochs) if logdir else {}
    found = [e for e in lost if e in rebuilt]
    for epoch in found:
        rows[epoch] = {**{k: "" for k in HISTORY_FIELDS}, **rebuilt[epoch]}
    missing = [e for e in lost if e not in rebuilt]
    kept = [rows[e] for e in sorted(rows)]
    write_history(path, kept)
    said = []
    if found:
        said.append(f"rebuilt the rows of epoch(s) {_ranges(found)} from the TensorBoard logs (without their "
                    "timings)")
    if missing:
        said.append(f"the rows of epoch(s) {_ranges(missing)} are lost")
    log(f"{path} {problem}: {'; '.join(said) or 'no rows were lost'}; rewrote it with {len(kept)} row(s)")
    return kept


def history_from_events(logdir, epochs):
    """{epoch: history row} for epochs 1..``epochs`` from the TensorBoard scalars under ``logdir`` (train/ and
    validation/), for the rows of a damaged history.csv; an epoch without its training loss is left out.
    A damaged event file gives what it holds before the damage."""
    import tensorflow as tf
    from google.protobuf.message import DecodeError
    from tensorflow.core.util import event_pb2

    rows = {}
    for split, prefix in (("train", ""), ("validation", "val_")):
        for path in sorted(glob.glob(os.path.join(logdir, split, "events.out.tfevents.*"))):
            if not os.path.isfile(path):
                continue
            try:
                for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
                    event = event_pb2.Event.FromString(record)
                    if not 1 <= event.step <= epochs:
                        continue
                    for value in event.summary.value:
                        name = prefix + value.tag.removeprefix("epoch_")
                        if value.tag.startswith("epoch_") and name in HISTORY_FIELDS:
                            number = (float(tf.make_ndarray(value.tensor)) if value.HasField("tensor")
                                      else value.simple_value)
                            rows.setdefault(event.step, {"epoch": str(event.step)})[name] = f"{number:.6g}"
            except (tf.errors.OpError, DecodeError):
                continue
    return {epoch: row for epoch, row in rows.items() if "loss" in row}


def _ranges(numbers):
    """"1-3, 5" for [1, 2, 3, 5]."""
    spans = []
    for n in numbers:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def check_exports(workdir, epochs, finished, log=print):
    """Says in one line per file when encoder.keras or decoder.keras is damaged; train() then rebuilds it
    (``finished``: now, from the checkpoint; else at the end of the next epoch)."""
    if epochs < 1:
        return
    for name in ("encoder", "decoder"):
        path = os.path.join(workdir, f"{name}.keras")
        problem = integrity.keras_archive_problem(path)
        if problem:
            when = "rebuilding it from the checkpoint" if finished else "it is rewritten at the end of the next epoch"
            log(f"{path} {problem}; {when}")
