"""tfvae.keras_private against the installed Keras, the public APIs that replaced private ones, and a walk of tfvae/
that keeps every other private Keras/TensorFlow name out of the library.

When a Keras release removes or changes a private attribute, these tests fail in one line naming the Keras
version and tfvae/keras_private.py, the one module to update."""

import ast
import inspect
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import REPO
from tfvae import keras_private
from tfvae.models import adversarial, autoencoders, build_model
from tfvae.training import checkpoints, model_setup

PACKAGE = os.path.join(REPO, "tfvae")
WRAPPER = os.path.join(PACKAGE, "keras_private.py")
# Private names of Keras's and TensorFlow's objects: those tfvae used (now in tfvae/keras_private.py or replaced by
# public API) and their near neighbours. Only tfvae/keras_private.py may touch them.
PRIVATE_NAMES = {
    "_flatten_layers", "_maybe_symbolic_build", "_symbolic_build", "_seed_generators", "_in_multi_worker_mode",
    "_num_workers", "_cluster_resolver", "_learning_rate", "_get_current_learning_rate", "_distribution_strategy",
    "_distribute_strategy", "_jit_compile", "_steps_per_execution", "_tracker", "_layers", "_kernel",
    "_trainable_variables", "_non_trainable_variables", "_frequent_tracing_detector_manager",
}
PRIVATE_MODULES = ("keras.src", "tensorflow.python", "tf_keras")


def keras_changed(what):
    return (f"Keras {keras.__version__} (TensorFlow {tf.__version__}): {what}; tfvae/keras_private.py relies on it "
            "and needs updating for this release")


def python_files(root):
    for folder, _, names in os.walk(root):
        for name in sorted(names):
            if name.endswith(".py"):
                yield os.path.join(folder, name)


def private_uses(path):
    """(line, what) of each private Keras/TensorFlow name in the file: attributes read or written, methods
    defined (an override), imports of Keras's or TensorFlow's internal modules."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in PRIVATE_NAMES:
            yield node.lineno, f"attribute .{node.attr}"
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in PRIVATE_NAMES:
            yield node.lineno, f"override def {node.name}"
        elif isinstance(node, ast.Constant) and node.value in PRIVATE_NAMES:
            yield node.lineno, f"string {node.value!r} (getattr?)"
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PRIVATE_MODULES):
            yield node.lineno, f"from {node.module} import"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(PRIVATE_MODULES):
                    yield node.lineno, f"import {alias.name}"


def test_only_keras_private_touches_private_keras_and_tensorflow_names():
    found = [f"{os.path.relpath(path, REPO)}:{line}: {what}" for path in python_files(PACKAGE) if path != WRAPPER
             for line, what in private_uses(path)]
    assert found == [], ("private Keras/TensorFlow API outside tfvae/keras_private.py (use a public API, or wrap "
                         "it there with a test here):\n" + "\n".join(found))


def test_the_walk_finds_what_it_looks_for(tmp_path):
    path = tmp_path / "sample.py"
    path.write_text("import keras.src.layers\nfrom tensorflow.python.eager import context\n"
                    "class M:\n    def _maybe_symbolic_build(self):\n        return self._flatten_layers()\n"
                    "x = getattr(o, '_learning_rate')\ny = strategy.extended._in_multi_worker_mode()\n")
    whats = sorted(what for _, what in private_uses(str(path)))
    assert whats == ["attribute ._flatten_layers", "attribute ._in_multi_worker_mode", "from tensorflow.python.eager "
                     "import", "import keras.src.layers", "override def _maybe_symbolic_build",
                     "string '_learning_rate' (getattr?)"]
    assert list(private_uses(WRAPPER))  # the wrapper module is the one place they are


# --- the wrappers of tfvae.keras_private, against the installed Keras ---

def test_keras_still_has_the_private_methods_the_wrappers_use():
    assert hasattr(keras.Model, "_maybe_symbolic_build"), keras_changed("keras.Model has no _maybe_symbolic_build")
    params = inspect.signature(keras.Model._maybe_symbolic_build).parameters
    assert {"iterator", "data_batch"} <= set(params), keras_changed(
        f"Model._maybe_symbolic_build takes {list(params)}, not (iterator, data_batch)")
    assert hasattr(keras.layers.Layer, "_flatten_layers"), keras_changed("keras.layers.Layer has no _flatten_layers")


def test_is_fully_built_walks_nested_layers_and_the_optimizer():
    class Outer(keras.Model):
        def __init__(self):
            super().__init__()
            self.inner = keras.Sequential([keras.layers.Dense(2)])  # a nested model, not yet built

        def call(self, x):
            return self.inner(x)

    outer = Outer()
    outer.built = True  # the outer model says built; a nested layer is not
    try:
        assert not keras_private.is_fully_built(outer), keras_changed(
            "Layer._flatten_layers no longer lists nested layers")
    except AttributeError as e:
        pytest.fail(keras_changed(f"Layer._flatten_layers is gone ({e})"))
    outer.inner.build((None, 3))
    assert keras_private.is_fully_built(outer)
    outer.compile(optimizer="adam")
    assert not keras_private.is_fully_built(outer)  # the optimizer is not built yet
    outer.optimizer.build(outer.trainable_variables)
    assert keras_private.is_fully_built(outer)


def test_a_built_model_skips_keras_symbolic_build_and_an_unbuilt_one_does_not(monkeypatch):
    calls = []
    monkeypatch.setattr(keras.Model, "_maybe_symbolic_build",
                        lambda self, iterator=None, data_batch=None: calls.append(data_batch))

    class Model(keras_private.BuiltModelSkipsDistributedBuild, keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    model = Model()
    model._maybe_symbolic_build(data_batch="unbuilt")
    model(np.zeros((1, 3), "float32"))
    model.compile(optimizer="adam")
    model.optimizer.build(model.trainable_variables)
    model._maybe_symbolic_build(data_batch="built")
    assert calls == ["unbuilt"], keras_changed("the override of Model._maybe_symbolic_build is not reached")


def test_a_built_autoencoder_fits_a_dict_batch_under_mirrored_strategy():
    """The path the override serves: fit under a tf.distribute strategy, without Keras's symbolic build."""
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = build_model("vae", (8, 8, 1), 2, arch="mlp", hidden=8, seed=0)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), steps_per_execution=1)
        model.optimizer.build(model.autoencoder_variables)
    assert keras_private.is_fully_built(model)
    images = np.random.default_rng(0).uniform(size=(8, 8, 8, 1)).astype("float32")
    history = model.fit(tf.data.Dataset.from_tensor_slices({"image": images}).batch(4), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


# --- the public APIs that replaced private ones ---

@pytest.mark.parametrize("kind", ["vae", "wae"])
def test_noise_states_are_the_seed_generators_states_in_layer_order(kind):
    """checkpoints._noise_states reads model.non_trainable_variables; it is the list Keras's private walk gives
    (the order state.json keeps them in)."""
    model = build_model(kind, (8, 8, 1), 2, arch="mlp", hidden=8, seed=0)
    private = [g.state for layer in model._flatten_layers() for g in layer._seed_generators]
    public = checkpoints._noise_states(model)
    assert private, "the model has seed generators"
    assert [id(v) for v in public] == [id(v) for v in private], keras_changed(
        "the SeedGenerator states in model.non_trainable_variables differ from the layers' _seed_generators")


def test_set_learning_rate_sets_a_constant_and_leaves_a_schedule():
    constant = keras.optimizers.Adam(1e-3)
    model_setup.set_learning_rate(constant, 5e-4)
    assert float(constant.learning_rate) == pytest.approx(5e-4)
    schedule = keras.optimizers.schedules.CosineDecay(1e-3, decay_steps=10)
    scheduled = keras.optimizers.Adam(schedule)
    model_setup.set_learning_rate(scheduled, 5e-4)
    assert float(scheduled.learning_rate) == pytest.approx(1e-3)  # the schedule's rate at step 0
    scaled = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(1e-3))
    model_setup.set_learning_rate(scaled, 2e-4)
    assert float(scaled.inner_optimizer.learning_rate) == pytest.approx(2e-4)


def test_across_workers_is_false_off_a_multi_worker_cluster():
    assert not autoencoders._across_workers(tf.distribute.get_strategy())
    assert not autoencoders._across_workers(tf.distribute.MirroredStrategy(["/cpu:0"]))
    # A two-worker cluster end to end: tests/test_multi_worker.py (its logs are averaged only when this is True).


def test_worker_count_counts_as_tensorflow_does():
    """What MultiWorkerMirroredStrategy's private _num_workers was read for, from its public cluster_resolver."""
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver
    spec = tf.train.ClusterSpec({"chief": ["h0:1"], "worker": ["h1:1", "h2:1"], "evaluator": ["h3:1"]})
    assert autoencoders._worker_count(resolver(spec, task_type="worker", task_id=0)) == 3
    assert autoencoders._worker_count(resolver(spec, task_type="evaluator", task_id=0)) == 1
    single = tf.train.ClusterSpec({"worker": ["h0:1"]})
    assert autoencoders._worker_count(resolver(single, task_type="worker", task_id=0)) == 1
    assert autoencoders._worker_count(resolver(tf.train.ClusterSpec({}))) == 0


def test_spectral_conv_saves_its_kernel_bias_and_u():
    layer = adversarial.SpectralConv2D(2, 3, padding="same")
    layer.build((None, 4, 4, 1))
    store = {}
    layer.save_own_variables(store)
    assert [tuple(store[k].shape) for k in sorted(store)] == [(3, 3, 1, 2), (2,), (2,)]
    copy = adversarial.SpectralConv2D(2, 3, padding="same")
    copy.build((None, 4, 4, 1))
    copy.load_own_variables(store)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(copy.kernel), keras.ops.convert_to_numpy(layer.kernel))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(copy.u), keras.ops.convert_to_numpy(layer.u))
