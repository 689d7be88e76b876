"""The ``tfvae`` command (``tfvae train``, ``tfvae sample``, ``tfvae evaluate``), installed with the package.

    cli.py               the console entry point: ``tfvae COMMAND [flags]`` picks a command by its first argument,
                         then defines that command's absl flags only and runs it (``run``)
    train_command.py     ``tfvae train``: the flags made from the Config's fields, ``--config=NAME`` (a flagfile
                         shipped in ``tfvae/configs/``), ``--restart``
    sample_command.py    ``tfvae sample``: pictures of a trained run
    evaluate_command.py  ``tfvae evaluate``: a run's metrics and report, a comparison, or per-image scores

Each command module defines its flags in ``define_flags()``, not when it is imported: absl's ``FLAGS`` is one
registry for the process and the commands share flag names (``--workdir``, ``--mode``, ``--seed``). The repository's
train.py, sample.py and evaluate.py are shims over these modules. Importing this package imports nothing more.
"""
