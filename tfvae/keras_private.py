"""Every use of a private (underscore) attribute of Keras, in one place.

tfvae uses Keras's and TensorFlow's public API everywhere else; ``tests/test_keras_private.py`` checks that no
other module of tfvae touches these names, and exercises each wrapper against the installed Keras, so a Keras
release that removes or changes one fails there, in one line naming the Keras version, rather than deep inside
a training run. Each wrapper says what it does and why no public API does it.

Checked against Keras 3.15 on TensorFlow 2.21.
"""


class BuiltModelSkipsDistributedBuild:
    """A mixin for a ``keras.Model`` whose variables all exist before ``fit``: under ``tf.distribute`` its
    ``fit``/``evaluate`` skip Keras's symbolic build.

    Why: under a tf.distribute strategy, Keras's ``fit``/``evaluate`` first pull one batch and all-reduce it
    (``strategy.reduce(MEAN, batch)``) in order to build missing variables (``Model._maybe_symbolic_build``).
    tfvae's models are already built (the functional networks, the metric trackers, and the optimizer, which
    ``create_model`` builds), and the all-reduce of a dict batch fails across workers
    (MultiWorkerMirroredStrategy). Keras has no public switch for this step, so the mixin overrides the private
    method: it returns at once when every layer and the optimizer are built, and otherwise does what Keras does.
    Put it before ``keras.Model`` in the bases.
    """

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if is_fully_built(self):
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)


def is_fully_built(model):
    """Whether ``model``, every layer nested in it (at any depth) and its optimizer (if any) are built.

    Why private: Keras's only walk of the nested layers of a model is ``Layer._flatten_layers``; the public
    ``model.layers`` lists one level, and only where the layer is a model.
    """
    optimizer = getattr(model, "optimizer", None)
    return all(layer.built for layer in model._flatten_layers()) and (optimizer is None or optimizer.built)
