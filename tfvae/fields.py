"""A setting, defined once: a dataclass field that carries its flag's help, bounds and choices.

The run's settings (``tfvae.config.Config``) and each model's own hyperparameters (the ``Hparams`` dataclass of
its module in ``tfvae.models``) are declared with ``setting``. From that one declaration come the absl flag and
its help (``tfvae.config_flags``), the field of config.json, the range check (``check``) and the row of
docs/flags.md: nothing is written twice.
"""

import dataclasses

__all__ = ["check", "is_flag", "setting"]


def setting(default, help, *, lower=None, choices=None, architecture=False, flag=True):  # noqa: A002 (absl's word)
    """A dataclass field with its documentation.

    Args:
      default: the default value (a tuple for list-valued settings).
      help: the flag's help text, which docs/flags.md shows too.
      lower: the smallest value allowed (numbers).
      choices: the values allowed.
      architecture: the value fixes the network's shape, so a run directory with another value can't be resumed.
      flag: False for a field recorded in config.json that no flag sets (what the data turned out to be).
    """
    metadata = {"help": help, "lower": lower, "choices": None if choices is None else tuple(choices),
                "architecture": architecture, "flag": flag}
    return dataclasses.field(default=default, metadata=metadata)


def is_flag(field):
    """Whether ``field`` (a ``dataclasses.Field``) is set by a flag."""
    return field.metadata.get("flag", False)


def check(field, value):
    """None when ``value`` fits ``field``'s choices and lower bound, else the one-line reason (naming the flag)."""
    choices, lower = field.metadata.get("choices"), field.metadata.get("lower")
    if choices is not None and value not in choices:
        return f"unknown --{field.name}={value!r}; choose one of {', '.join(map(str, choices))}"
    if lower is not None and value < lower:
        return f"--{field.name} must be at least {lower} (got {value})"
    return None
