"""The multi-worker cluster description in the ``TF_CONFIG`` environment variable, checked before TensorFlow sees it.

TensorFlow reads ``TF_CONFIG`` itself, and a malformed one surfaces as a traceback deep inside
``MultiWorkerMirroredStrategy``. ``parse_tf_config`` checks it first and names the problem in one line::

    {"cluster": {"chief": ["host0:2222"], "worker": ["host1:2222", "host2:2222"]},
     "task": {"type": "worker", "index": 1}}
"""

import json
import os

from tfvae.errors import TfvaeError

EXAMPLE = '{"cluster": {"worker": ["host0:2222", "host1:2222"]}, "task": {"type": "worker", "index": 0}}'
# Task types that run without an entry of their own in "cluster".
_TASKS_OUTSIDE_CLUSTER = ("evaluator",)


def parse_tf_config(text=None):
    """The parsed ``TF_CONFIG``, or None when it is unset or blank.

    Args:
      text: the JSON text to check; default: the ``TF_CONFIG`` environment variable.

    Returns:
      None, or a dict with ``cluster`` ({task type: ["host:port", ...]}) and ``task`` ({"type", "index"}),
      plus any other keys TF_CONFIG had (e.g. ``rpc_layer``).

    Raises:
      TfvaeError: one line naming what is wrong and showing the expected shape.
    """
    text = os.environ.get("TF_CONFIG", "") if text is None else text
    if not text.strip():
        return None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise _error(f"is not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    if not isinstance(config, dict):
        raise _error(f"must be a JSON object, not {type(config).__name__}")
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise _error('needs "cluster": an object mapping task types to lists of "host:port" addresses')
    for kind, addresses in cluster.items():
        if not isinstance(addresses, list) or not addresses:
            raise _error(f'"cluster"."{kind}" must be a non-empty list of "host:port" addresses')
        for address in addresses:
            if not _is_address(address):
                raise _error(f'"cluster"."{kind}" holds {address!r}, not a "host:port" address')
    if len(cluster.get("chief", [])) > 1:
        raise _error(f'"cluster"."chief" lists {len(cluster["chief"])} addresses; a cluster has one chief')
    if not isinstance(task, dict) or "type" not in task:
        raise _error('needs "task": {"type": <a task type of "cluster">, "index": <its position>}')
    kind, index = task["type"], task.get("index", 0)
    if kind not in cluster and kind not in _TASKS_OUTSIDE_CLUSTER:
        raise _error(f'"task"."type" is {kind!r}, which "cluster" does not list (it has {", ".join(cluster)})')
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise _error(f'"task"."index" must be a non-negative integer, not {index!r}')
    if kind in cluster and index >= len(cluster[kind]):
        raise _error(f'"task"."index" is {index} but "cluster"."{kind}" has only {len(cluster[kind])} '
                     f"address(es) (indices 0..{len(cluster[kind]) - 1})")
    return {**config, "task": {**task, "index": index}}


def _is_address(address):
    if not isinstance(address, str):
        return False
    host, sep, port = address.rpartition(":")
    return bool(sep and host and port.isdigit() and 0 <= int(port) <= 65535)


def _error(problem):
    return TfvaeError(f"TF_CONFIG {problem}; expected e.g. {EXAMPLE}")
