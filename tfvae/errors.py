"""User-facing errors: each message is one line that names the problem and the fix."""


class TfvaeError(Exception):
    """A problem with the user's flags, files or run directory (not a bug in tfvae).

    The scripts print ``error: <message>`` and exit non-zero without a traceback.
    """
