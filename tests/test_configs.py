"""Every flagfile in configs/ parses, documents its command and expected result, and builds its model."""

import glob
import json
import os

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO, run_script

CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "*.cfg")))


def test_there_are_configs_for_the_documents_setups():
    names = {os.path.basename(c) for c in CONFIGS}
    assert {"mnist_vae_z2.cfg", "mnist_mlp_vae_z20.cfg", "fashion_ae_z2.cfg", "fashion_vae_z2.cfg",
            "fashion_vae_z8.cfg", "folder_vae_64.cfg"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_documents_and_builds(path):
    from tests import script_runner

    train = script_runner.load(os.path.join(REPO, "train.py"))  # the script's flag definitions
    text = open(path).read()
    assert "# Run:" in text and f"--flagfile=configs/{os.path.basename(path)}" in text
    expect = [ln for ln in text.splitlines() if ln.startswith("# Expect:")]
    assert expect and "EXPECT_" not in expect[0]
    argv = ["train.py", f"--flagfile={path}"]
    script_runner.FLAGS(argv)
    config = train["config_from_flags"]()
    script_runner.FLAGS.unparse_flags()
    if config.dataset == "folder":
        config.data_dir = REPO  # validate() checks that it exists; the images don't matter here
    config.validate()
    from tfvae.models import build_model

    shape = (config.image_size or 28, config.image_size or 28, config.channels or 1)
    model = build_model(config.model, shape, config.latent, arch=config.arch, filters=config.filters,
                        hidden=config.hidden, num_classes=10)
    assert model.decoder.output.shape[1:] == shape


def test_configs_ship_in_the_package_and_are_named_without_a_path():
    """``--config=NAME`` is ``--flagfile=tfvae/configs/NAME.cfg`` in its place (flags after it override it); the
    repository's configs/ is that folder, which the wheel holds (setup.cfg's package_data)."""
    from tests import script_runner
    from tfvae.commands import train_command

    assert os.path.samefile(os.path.join(REPO, "configs"), train_command.CONFIGS_DIR)
    assert train_command.config_names() == sorted(os.path.basename(c)[:-len(".cfg")] for c in CONFIGS)
    path = os.path.join(train_command.CONFIGS_DIR, "folder_vae_64.cfg")
    expand = train_command.expand_config
    assert expand(["p", "--epochs=1", "--config=folder_vae_64", "--epochs=2"]) == [
        "p", "--epochs=1", f"--flagfile={path}", "--config=folder_vae_64", "--epochs=2"]
    assert expand(["p", "--config", "folder_vae_64"]) == ["p", f"--flagfile={path}", "--config=folder_vae_64"]
    assert expand(["p", "--config=nope", "--", "--config=folder_vae_64"]) == [
        "p", "--config=nope", "--", "--config=folder_vae_64"]
    train = script_runner.load(os.path.join(REPO, "train.py"))
    try:
        script_runner._SCRIPTS.parse(["train.py", "--latent=3", "--config=folder_vae_64", "--epochs=2"])
        config = train["config_from_flags"]()
        assert (config.image_size, config.dataset, config.latent, config.epochs) == (64, "folder", 128, 2)
        with pytest.raises(script_runner.flags.IllegalFlagValueError, match="folder_vae_64"):
            script_runner._SCRIPTS.parse(["train.py", "--config=folder_vae_65"])  # the names there are
    finally:
        script_runner.FLAGS.unparse_flags()


def test_folder_config_trains_on_a_generated_folder(tmp_path, offline_env):
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / "images" / cls).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.integers(0, 256, (80, 70, 3), dtype=np.uint8)).save(
                tmp_path / "images" / cls / f"{i}.jpg")
    proc = run_script(["train.py", "--flagfile=configs/folder_vae_64.cfg", f"--data_dir={tmp_path / 'images'}",
                       "--epochs=1", "--flip", f"--workdir={tmp_path / 'run'}"], offline_env)
    assert "final test loss" in proc.stdout and "flip: each training image is mirrored" in proc.stdout
    assert (tmp_path / "run" / "decoder.keras").is_file()
    # --flip (pictures, where a mirror image is as likely) reaches the run and its record.
    assert json.loads((tmp_path / "run" / "config.json").read_text())["flip"] is True


def test_recon_weight_zero_needs_a_kl_term():
    from tfvae.config import Config
    from tfvae.errors import TfvaeError

    Config(recon_weight=0.0).validate()  # a vae: the KL term alone
    for bad in (dict(model="ae"), dict(beta=0.0), dict(recon_weight=0.0, model="ae")):
        with pytest.raises(TfvaeError, match="recon_weight|nothing to train"):
            Config(**{"recon_weight": 0.0, **bad}).validate()
    with pytest.raises(TfvaeError, match=r"--recon_weight must be at least 0 \(got -1.0\)"):
        Config(recon_weight=-1.0).validate()
