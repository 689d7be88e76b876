"""The package's layout: one home per concept, named for it."""

import collections
import os

import tfvae

PACKAGE = os.path.dirname(os.path.abspath(tfvae.__file__))


def test_no_two_modules_of_tfvae_share_a_name():
    homes = collections.defaultdict(list)
    for folder, _, names in os.walk(PACKAGE):
        for name in names:
            if name.endswith(".py") and name != "__init__.py":
                homes[name].append(os.path.relpath(os.path.join(folder, name), PACKAGE))
    shared = {name: sorted(paths) for name, paths in homes.items() if len(paths) > 1}
    assert not shared, f"modules of one name in tfvae/: {shared}"


def test_run_is_composed_of_parts_not_mixins():
    from tfvae.api import Run

    assert Run.__bases__ == (object,), f"tfvae.api.Run inherits {Run.__bases__}: give it parts instead"
