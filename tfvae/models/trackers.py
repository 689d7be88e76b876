"""The models' running means of their loss terms (Keras Mean metrics), weighted by the examples each batch holds."""

from keras import ops


def batch_weight(batch):
    """The examples in ``batch`` (this replica's share of it), as float32: the weight of its mean terms."""
    return ops.cast(ops.shape(batch["image"])[0], "float32")


def track(tracker, value, weight):
    """Adds a batch's mean ``value`` to the Mean ``tracker`` with ``weight`` examples, so that an epoch's figure is the
    mean over its examples: a short last batch counts for what it holds, and a replica's empty share of one (whose
    mean is NaN) counts for nothing. Under a strategy, Keras sums the trackers' totals and counts over replicas.
    """
    value = ops.cast(value, "float32")
    tracker.update_state(ops.where(weight > 0, value, ops.zeros_like(value)), sample_weight=weight)
