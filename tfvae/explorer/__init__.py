"""The latent explorer: a TensorBoard plugin ("latent" tab) for touching a trained run's latent space.

``tensorboard --logdir runs`` finds it through the package's ``tensorboard_plugins`` entry point
(``tfvae.explorer.plugin:ExplorerLoader``). For every run directory under the log directory that holds a
``config.json`` and a ``decoder.keras``, the page draws the run's test codes over a plane and decodes the code
under the mouse, one slider per latent dimension, a cvae's class, and the interpolation between two clicked test
images. Decoding goes through ``tfvae.load(...)`` (the one inference path) inside the TensorBoard process.

Modules: ``rundirs`` (which run directories a request may name: found under the log directory, never outside),
``params`` (the query parameters, checked), ``run_cache`` (a bounded cache of loaded runs), ``plugin`` (the
TensorBoard plugin and its routes), ``static/index.js`` (the page).

Nothing else in tfvae imports this package.
"""

PLUGIN_NAME = "latent"
