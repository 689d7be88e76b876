"""train.py's flags, made from the Config's fields: one definition per setting (``tfvae.fields.setting``).

    define_flags(flags.FLAGS)      # one absl flag per field that a flag sets, with its help, default and bounds
    config_from_flags(flags.FLAGS) # the Config the parsed flags say
    markdown_table()               # docs/flags.md's table (tests/test_registry.py keeps the page equal to it)

``python -m tfvae.config_flags`` prints the table.
"""

import dataclasses

from absl import flags as absl_flags

from tfvae.config import Config
from tfvae.fields import is_flag

__all__ = ["config_from_flags", "define_flags", "flag_fields", "markdown_table"]


def flag_fields():
    """The Config's fields that flags set, run-wide ones first, in declaration order."""
    return [f for f in dataclasses.fields(Config) if is_flag(f)]


def _define(field, flag_values):
    meta, default, name = field.metadata, field.default, field.name
    kwargs = dict(flag_values=flag_values)
    if meta["lower"] is not None:
        kwargs["lower_bound"] = meta["lower"]
    if name == "jit_compile":  # True, False or "auto": a boolean flag whose absence means Keras's auto
        absl_flags.DEFINE_boolean(name, None, meta["help"], flag_values=flag_values)
    elif field.type in ("bool", bool):
        absl_flags.DEFINE_boolean(name, default, meta["help"], flag_values=flag_values)
    elif field.type in ("tuple", tuple):
        absl_flags.DEFINE_list(name, [str(v) for v in default], meta["help"], flag_values=flag_values)
    elif field.type in ("str", str) and meta["choices"]:
        absl_flags.DEFINE_enum(name, default, meta["choices"], meta["help"], flag_values=flag_values)
    elif field.type in ("str", str):
        absl_flags.DEFINE_string(name, default, meta["help"], flag_values=flag_values)
    elif field.type in ("int", int):
        absl_flags.DEFINE_integer(name, default, meta["help"], **kwargs)
    elif field.type in ("float", float):
        absl_flags.DEFINE_float(name, default, meta["help"], **kwargs)
    else:
        raise TypeError(f"no flag type for Config.{name} ({field.type})")


def define_flags(flag_values=absl_flags.FLAGS):
    """Defines one flag per field of ``flag_fields()`` in ``flag_values``."""
    for field in flag_fields():
        _define(field, flag_values)


def config_from_flags(flag_values=absl_flags.FLAGS):
    """The Config that the parsed ``flag_values`` say."""
    values = {f.name: flag_values[f.name].value for f in flag_fields()}
    if values["jit_compile"] is None:
        values["jit_compile"] = "auto"
    values["classes"] = tuple(values["classes"])
    return Config(**values)


def _default_text(field):
    value = field.default
    if field.name == "jit_compile":
        return "auto"
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "(none)"
    if isinstance(value, bool):
        return str(value).lower()
    return '""' if value == "" else str(value)


def markdown_table():
    """The Markdown table of every train.py flag made from a Config field: flag, default, meaning."""
    rows = ["| flag | default | meaning |", "|---|---|---|"]
    for field in flag_fields():
        text = field.metadata["help"].replace("|", "\\|")
        rows.append(f"| `--{field.name}` | `{_default_text(field)}` | {text} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
