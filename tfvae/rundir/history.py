"""history.csv: one row per finished epoch, and its repair from the TensorBoard scalars when it is damaged."""

import csv
import glob
import io
import os

from tfvae import files, integrity

HISTORY_FIELDS = ("epoch", "loss", "reconstruction", "kl", "val_loss", "val_reconstruction", "val_kl",
                  "learning_rate", "seconds", "train_seconds", "examples_per_sec")
# Columns only some models log (an rae's or wae's regulariser), each written after the column named with it.
OPTIONAL_FIELDS = {"penalty": "kl", "val_penalty": "val_kl"}


def history_fields(rows):
    """The columns of history.csv for ``rows``: HISTORY_FIELDS, plus each OPTIONAL_FIELDS column a row holds."""
    fields = list(HISTORY_FIELDS)
    for name, after in OPTIONAL_FIELDS.items():
        if any(name in row for row in rows):
            fields.insert(fields.index(after) + 1, name)
    return fields


def read_history(path):
    if not os.path.isfile(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_history(path, rows):
    def write(tmp):
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=history_fields(rows), extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    files.atomic_save(path, write)


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
                        if value.tag.startswith("epoch_") and (name in HISTORY_FIELDS or name in OPTIONAL_FIELDS):
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
