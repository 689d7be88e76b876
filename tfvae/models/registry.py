"""The model family by name: each name maps to the class that says everything about its model.

A model is one module of ``tfvae.models``: its class (a subclass of ``autoencoders.Autoencoder``) holds its
objective, its own hyperparameters (``Hparams``, a dataclass of ``tfvae.fields.setting`` fields: flags, config.json
fields and docs rows come from it), what it is (``variational``, ``conditional``, ``code_grid``, ``quantized``,
``has_learned_prior``), its default sampler, its learned prior and whether a prior is trained after it. Adding a
model is its module and one line below; nothing outside ``tfvae.models`` branches on a model's name
(tests/test_registry.py checks it).
"""

import dataclasses
import importlib
import types

__all__ = ["MODELS", "build_model", "hyperparameter_classes", "hyperparameter_fields", "model_class",
           "models_with", "owners", "with_article"]

_REGISTRY = {  # name: "module:Class" in tfvae.models
    "ae": "autoencoders:Autoencoder",
    "vae": "autoencoders:VAE",
    "cvae": "autoencoders:CVAE",
    "vamp": "vamp:VampVAE",
    "rae": "regularized:RAE",
    "wae": "regularized:WAE",
    "vqvae": "vqvae:VQVAE",
    "iwae": "iwae:IWAE",
    "gridvae": "spatial:SpatialVAE",
}
MODELS = tuple(_REGISTRY)


def model_class(name):
    """The class of model ``name`` (one of MODELS), without building one."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    module, cls = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(f"tfvae.models.{module}"), cls)


def with_article(name):
    """'an rae', 'a vae': a model's name with its article, the name read letter by letter."""
    return f"{'an' if name[0] in 'aefhilmnorsx' else 'a'} {name}"


def hyperparameter_classes():
    """The models' ``Hparams`` dataclasses, each once, a subclass before its bases (for ``tfvae.config.Config``)."""
    classes = []
    for name in MODELS:
        hparams = model_class(name).Hparams
        if hparams not in classes:
            classes.append(hparams)
    # Drop a class that another one extends: the subclass brings its fields.
    return tuple(c for c in classes if not any(o is not c and issubclass(o, c) for o in classes))


def hyperparameter_fields():
    """{name: dataclasses.Field} of every model's own hyperparameters."""
    return {f.name: f for cls in hyperparameter_classes() for f in dataclasses.fields(cls)}


def models_with(attribute):
    """The models whose class has ``attribute`` true (e.g. "variational"), in registry order."""
    return tuple(name for name in MODELS if getattr(model_class(name), attribute))


def owners(field_name):
    """The models whose hyperparameters include ``field_name``."""
    return tuple(name for name in MODELS
                 if field_name in {f.name for f in dataclasses.fields(model_class(name).Hparams)})


def build_model(name, image_shape, latent_dim, **settings):
    """Builds model ``name`` with matching encoder and decoder: an uncompiled ``keras.Model``.

    Args:
      name: one of MODELS.
      image_shape: (height, width, channels).
      latent_dim: size of z (a vqvae: the size D of its codebook vectors).
      **settings: the shared network and objective settings (``arch``, ``filters``, ``hidden``, ``num_classes``
        (> 0 for a conditional model), ``reconstruction``, ``beta``, ``recon_weight``, ``seed``, ``adversarial``,
        ``feature_match``: see ``tfvae.config.Config``) and any model's hyperparameters by name (``pseudo_inputs``,
        ``penalty_weight``, ...): the model takes its own and leaves the others' (so one set of settings builds
        any model); a name that is neither raises TypeError.

    The model keeps what built it in ``model.build_settings`` (read-only: ``name``, ``image_shape``,
    ``latent_dim`` and the settings given), from which ``tfvae.save_run`` writes its run's config.json.
    """
    cls = model_class(name)
    known = hyperparameter_fields()
    own = {f.name for f in dataclasses.fields(cls.Hparams)}
    hparams = cls.Hparams(**{k: v for k, v in settings.items() if k in own})
    shared = {k: v for k, v in settings.items() if k not in known}
    model = cls.build(tuple(image_shape), latent_dim, hparams, name=name, **shared)
    # A read-only mapping: Keras would wrap a dict attribute in its own tracked type.
    model.build_settings = types.MappingProxyType(
        {"name": name, "image_shape": tuple(int(d) for d in image_shape), "latent_dim": int(latent_dim), **settings})
    return model
