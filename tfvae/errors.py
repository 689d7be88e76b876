"""User-facing errors: each message is one line that names the problem and the fix."""

import re


class TfvaeError(Exception):
    """A problem with the user's flags, files or run directory (not a bug in tfvae).

    The scripts print ``error: <message>`` and exit non-zero without a traceback.
    """


class ArgumentError(TfvaeError):
    """A bad argument of a library call, in the caller's words: the message names the argument (``label=3``).

    Attributes:
      argument: the argument's name, so that a script can name its own flag instead (``flag_message``).
    """

    def __init__(self, argument, message):
        super().__init__(message)
        self.argument = argument


def flag_message(error, flags=None):
    """``error``'s message as a script says it: an ArgumentError's ``name=value`` written as ``--flag=value``.

    Args:
      error: a TfvaeError.
      flags: {argument name: flag name} where they differ; by default the flag has the argument's name.

    Returns:
      the message, one line.
    """
    message = str(error)
    if isinstance(error, ArgumentError):
        flag = (flags or {}).get(error.argument, error.argument)
        message = re.sub(rf"\b{error.argument}=(['\"])(.*?)\1", rf"--{flag}=\2", message)
        message = re.sub(rf"(?<!-)\b{error.argument}=", f"--{flag}=", message)
        message = re.sub(rf"\bno {error.argument} given", f"no --{flag} given", message)
    return message
