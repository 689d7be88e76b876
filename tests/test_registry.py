"""One model, one place: the registry, the settings defined once, and iwae added through them.

- Nothing outside tfvae/models/ branches on a model's name (an AST walk of the library and the scripts).
- Each setting is one dataclass field: train.py's flags, config.json's fields and docs/flags.md come from it.
- An old config.json, from before a model's setting existed, still loads (tests/test_iwae.py).
"""

import ast
import dataclasses
import json
import os

import pytest

from tfvae import models
from tfvae.config import Config, RunSettings
from tfvae.config_flags import flag_fields, markdown_table

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- nothing outside tfvae/models/ branches on a model's name ---------------------------------------------------


def _model_names(node):
    """Model-name string constants in ``node`` itself or in a tuple/list/set literal it is."""
    if isinstance(node, ast.Constant) and node.value in models.MODELS:
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [n for elt in node.elts for n in _model_names(elt)]
    return []


def name_branches(source, path="<string>"):
    """(path, line, names) of each comparison with, dict keyed by or match case on a model's name in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            names = [n for part in (node.left, *node.comparators) for n in _model_names(part)]
        elif isinstance(node, ast.Dict):
            names = [n for key in node.keys if key is not None for n in _model_names(key)]
        elif isinstance(node, ast.match_case):
            names = [n for sub in ast.walk(node.pattern) if isinstance(sub, ast.MatchValue)
                     for n in _model_names(sub.value)]
        else:
            continue
        if names:
            found.append((path, node.lineno if hasattr(node, "lineno") else node.pattern.lineno, names))
    return found


def _library_sources():
    paths = [os.path.join(REPO, script) for script in ("train.py", "sample.py", "evaluate.py")]
    for root, _, files in os.walk(os.path.join(REPO, "tfvae")):
        if os.path.relpath(root, REPO).split(os.sep)[:2] == ["tfvae", "models"]:
            continue
        paths += [os.path.join(root, f) for f in files if f.endswith(".py")]
    return paths


def test_nothing_outside_the_models_package_branches_on_a_models_name():
    found = [hit for path in _library_sources() for hit in name_branches(open(path).read(), path)]
    assert found == [], "branch on a model's name outside tfvae/models/ (ask the model's class instead): " + str(found)


def test_the_branch_finder_finds_each_kind_of_branch():
    # The check above must be able to fail: each way of branching on a name is found, a mention that is no branch isn't.
    sources = ['if config.model == "vqvae": pass', 'ok = kind not in ("ae", "rae")', 'x = {"cvae": 2}.get(m)',
               'match model:\n    case "vamp":\n        pass', 'if "wae" != name: pass']
    for source in sources:
        assert len(name_branches(source)) == 1, source
    assert name_branches('model = "vae"\nprint(f"a {model}")\nif x == "gaussian": pass') == []


def test_every_model_class_says_what_it_is():
    for name in models.MODELS:
        cls = models.model_class(name)
        assert issubclass(cls, models.Autoencoder) and cls.title and cls.description, name
        assert cls.default_sampler in ("prior", "gmm", "learned"), name
        assert cls.has_learned_prior or cls.default_sampler != "learned", name
        assert dataclasses.is_dataclass(cls.Hparams), name
        for field in dataclasses.fields(cls.Hparams):
            assert field.metadata.get("help"), f"{name}'s {field.name} has no help"
    with pytest.raises(ValueError, match="unknown model 'nope'; choose one of ae, vae"):
        models.model_class("nope")


# -- each setting defined once ------------------------------------------------------------------------------------


def test_flags_fields_and_docs_are_one_definition():
    from tests import script_runner

    train = script_runner.load(os.path.join(REPO, "train.py"))
    defined = {flag.name for module, flags in script_runner.FLAGS.flags_by_module_dict().items()
               if module in ("tfvae.config_flags", train["train_command"].__name__) for flag in flags}
    fields = {f.name for f in flag_fields()}
    # Actions, not settings of the run: --config names a flagfile, --callback adds Keras callbacks.
    assert defined == fields | {"restart", "config", "callback"}
    for field in flag_fields():
        assert script_runner.FLAGS[field.name].help.endswith(field.metadata["help"]), field.name  # enums: <a|b>: ...
    # config.json holds every field, run-wide and every model's own; nothing else.
    config = Config(model="vamp", pseudo_inputs=7)
    assert set(json.loads(config.to_json())) == {f.name for f in dataclasses.fields(Config)}
    assert {f.name for f in dataclasses.fields(Config)} == (
        {f.name for f in dataclasses.fields(RunSettings)} | set(models.hyperparameter_fields()))
    assert config.architecture()["pseudo_inputs"] == 7 and "pseudo_inputs" not in Config().architecture()
    # docs/flags.md is the generated table, and training.md points to it.
    page = open(os.path.join(REPO, "docs", "flags.md")).read()
    assert markdown_table() in page, "docs/flags.md is stale: python -m tfvae.config_flags prints its table"
    assert "flags.md" in open(os.path.join(REPO, "docs", "training.md")).read()


def test_a_setting_of_another_model_is_refused_and_each_bound_checked(tmp_path):
    from tfvae.errors import TfvaeError

    with pytest.raises(TfvaeError, match="--pseudo_inputs is a hyperparameter of --model=vamp; a vae has none"):
        Config(model="vae", pseudo_inputs=7, workdir=str(tmp_path)).validate()
    with pytest.raises(TfvaeError, match=r"--pseudo_inputs must be at least 1 \(got 0\)"):
        Config(model="vamp", pseudo_inputs=0, workdir=str(tmp_path)).validate()
    with pytest.raises(TfvaeError, match=r"--codebook_size must be at least 2 \(got 1\)"):
        Config(model="vqvae", codebook_size=1, workdir=str(tmp_path)).validate()
    with pytest.raises(TfvaeError, match="unknown --channels=2; choose one of 0, 1, 3"):
        Config(channels=2, workdir=str(tmp_path)).validate()
