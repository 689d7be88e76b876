"""``python -m tfvae train|sample|evaluate [flags]``: the ``tfvae`` command, where the PATH has no entry point."""

import sys

from tfvae.commands import cli

if __name__ == "__main__":
    sys.exit(cli.main(["python -m tfvae", *sys.argv[1:]]))
