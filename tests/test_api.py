"""The Python API of a finished run, the Projector files as TensorBoard reads them, traversals and vae_loss, on
conftest's tiny `trained` run (which tests/test_docs.py's examples share)."""

import gc
import glob
import gzip
import io
import math
import os
import re
import shutil
import weakref
from statistics import NormalDist

import numpy as np
import pytest
from PIL import Image

import tfvae
from tests.conftest import REPO, TRAINED_LATENT, monte_carlo_elbo_terms, run_script
from tfvae import api, losses, pictures, projector, rundir
from tfvae.config import Config
from tfvae.errors import TfvaeError
from tfvae.models import build_model

LATENT = TRAINED_LATENT


@pytest.fixture(scope="session")
def run(trained):
    return tfvae.load(str(trained / "runs" / "latest"))


def test_latest_is_a_file_naming_the_run_and_load_resolves_it(trained, run, tmp_path):
    assert (trained / "runs" / "latest").read_text() == "vae\n"  # a file: TensorBoard walks into symlinks
    assert os.path.samefile(run.workdir, trained / "runs" / "vae")
    # A latest symlink from an older tfvae still works; a damaged latest file is a one-line error.
    os.symlink(trained / "runs" / "vae", tmp_path / "latest")
    assert rundir.resolve_workdir(str(tmp_path / "latest")) == str(tmp_path / "latest")
    (tmp_path / "bad").write_text("../../etc\n")
    with pytest.raises(TfvaeError, match="should hold the name of a run directory"):
        tfvae.load(str(tmp_path / "bad"))
    # Training replaces such a symlink with the file, and leaves a run directory called latest alone.
    rundir.point_latest(str(tmp_path / "new"))
    assert not os.path.islink(tmp_path / "latest") and (tmp_path / "latest").read_text() == "new\n"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "latest").mkdir()
    rundir.point_latest(str(tmp_path / "other" / "run"))
    assert (tmp_path / "other" / "latest").is_dir()


def test_encode_decode_sample_reconstruct_interpolate(run):
    x, y = run.test_data()
    assert x.dtype == np.float32 and x.shape == (128, 28, 28, 1) and 0 <= x.min() and x.max() <= 1
    z_mean, z_log_var = run.encode(x[:10])
    assert z_mean.shape == z_log_var.shape == (10, LATENT)
    # uint8 and float images give the same codes; (n, H, W) is accepted for one channel; batching changes nothing.
    uint8 = np.rint(x[:10] * 255).astype(np.uint8)
    np.testing.assert_allclose(run.encode(uint8)[0], z_mean, atol=1e-5)
    np.testing.assert_allclose(run.encode(x[:10, ..., 0])[0], z_mean, atol=1e-6)
    small = api.Run(run.workdir, run.config, run.encoder, run.decoder, batch_size=3)
    np.testing.assert_allclose(small.encode(x[:10])[0], z_mean, atol=1e-5)
    encoder_out = run.encoder(x[:10], training=False)
    np.testing.assert_allclose(z_mean, encoder_out["z_mean"], atol=1e-6)

    images = run.decode(z_mean)
    logits = np.asarray(run.decoder(z_mean, training=False), dtype="float64")
    np.testing.assert_allclose(images, 1 / (1 + np.exp(-logits)), atol=1e-6)
    assert images.dtype == np.float32 and images.shape == (10, 28, 28, 1)
    np.testing.assert_allclose(run.reconstruct(x[:10]), images, atol=1e-6)

    samples = run.sample(6, seed=1)
    assert samples.shape == (6, 28, 28, 1) and 0 <= samples.min() and samples.max() <= 1
    np.testing.assert_array_equal(samples, run.sample(6, seed=1))
    assert not np.array_equal(samples, run.sample(6, seed=2))
    np.testing.assert_allclose(samples, run.decode(np.random.default_rng(1).standard_normal((6, LATENT))),
                               atol=1e-6)

    line = run.interpolate(x[0], x[1], steps=5)
    assert line.shape == (5, 28, 28, 1)
    np.testing.assert_allclose(line[[0, -1]], images[:2], atol=1e-5)
    np.testing.assert_allclose(line[2], run.decode((z_mean[:1] + z_mean[1:2]) / 2)[0], atol=1e-5)


def test_score_is_the_elbo_and_flags_noise(run):
    x, _ = run.test_data()
    x, samples, draws = x[:16], 64, 1024
    scores = run.score(x, samples=samples, seed=0)
    terms, _ = run.scores.score_terms(x, samples=samples, seed=0)
    z_mean, z_log_var = run.encode(x)
    kl = 0.5 * np.sum(np.square(z_mean) + np.exp(z_log_var) - 1 - z_log_var, axis=1)
    np.testing.assert_allclose(terms["kl"], kl, rtol=1e-4, atol=1e-4)
    # The score is the -ELBO: the closed-form KL plus -E_q[log p(x|z)], here by plain Monte Carlo with numpy draws
    # through the decoder and the Bernoulli log-likelihood written out.
    recon, spread, _ = monte_carlo_elbo_terms(z_mean, z_log_var, run.decoder, x, draws=draws, seed=3)
    tolerance = 4 * spread * math.sqrt(1 / draws + 1 / samples) + 1e-3  # both estimates' standard errors
    assert np.all(np.abs(scores - (kl + recon)) < tolerance), (scores, kl + recon)
    # The IWAE NLL is a tighter bound than the -ELBO: their gap is not negative beyond its standard error.
    gap = terms["neg_elbo"] - terms["nll"]
    assert gap.mean() > -3 * gap.std(ddof=1) / math.sqrt(len(gap)), gap
    noise = np.random.default_rng(0).uniform(size=(32, 28, 28, 1)).astype("float32")
    assert np.median(run.score(noise)) > 2 * np.median(scores)  # the anomaly score: noise is far stranger


def test_bad_inputs_are_one_line_errors(run):
    x, _ = run.test_data()
    cases = [(lambda: run.encode(x[:2] * 255.0), "must lie in [0, 1]"),
             (lambda: run.encode(x[:2, :14]), "images of shape (2, 14, 28, 1)"),
             (lambda: run.encode(np.zeros((2, 28, 28, 1), np.int64)), "dtype int64"),
             (lambda: run.encode(x[:2], labels=[1, 2]), "only a cvae takes labels"),
             (lambda: run.decode(np.zeros((2, LATENT + 1))), f"the run's are (n, {LATENT})"),
             (lambda: pictures.picture(run, "grid", 3, label=1), "label=1 given, but"),
             (lambda: pictures.picture(run, "reconstruct", len(x) + 1),
              f"a row of reconstructions is {len(x) + 1} test images, but the run's test set has {len(x)}")]
    for call, fragment in cases:
        with pytest.raises(TfvaeError) as error:
            call()
        assert fragment in str(error.value) and "\n" not in str(error.value)


def test_a_cvae_takes_class_ids(tmp_path):
    model = build_model("cvae", (28, 28, 1), 2, num_classes=10, seed=0)
    config = Config(model="cvae", latent=2, image_shape=(28, 28, 1), num_classes=10)
    cvae = api.Run(str(tmp_path), config, model.encoder, model.decoder)
    z = np.zeros((3, 2), "float32")
    assert not np.allclose(cvae.decode(z, labels=[0, 1, 2])[0], cvae.decode(z, labels=[0, 1, 2])[1])
    np.testing.assert_allclose(cvae.decode(z, labels=7)[2], cvae.decode(z, labels=[0, 0, 7])[2])
    np.testing.assert_allclose(cvae.sample(11, seed=0)[10], cvae.decode(
        np.random.default_rng(0).standard_normal((11, 2)), labels=np.arange(11) % 10)[10], atol=1e-6)
    for labels, fragment in ((None, "pass labels"), ([0, 1, 10], "label 10 is not a class"),
                             ([0.5, 1, 2], "integer class ids")):
        with pytest.raises(TfvaeError, match=re.escape(fragment)):
            cvae.decode(z, labels=labels)


def test_a_cvae_draws_every_picture_with_its_labels(tmp_path):
    model = build_model("cvae", (28, 28, 1), 3, num_classes=10, seed=0)
    cvae = api.Run(str(tmp_path), Config(model="cvae", latent=3, image_shape=(28, 28, 1), num_classes=10),
                   model.encoder, model.decoder)
    rng = np.random.default_rng(0)
    cvae.set_test_data(rng.integers(0, 256, (20, 28, 28, 1), dtype=np.uint8), rng.integers(0, 10, 20))
    for mode in ("grid", "random", "reconstruct", "interpolate"):
        assert pictures.picture(cvae, mode, 4).shape == (4 * 28, 4 * 28, 1), mode
    picture, rows, what, index = cvae.traverse(n=4, index=5)
    assert what == "KL" and [d for d, _ in rows] == [0, 1, 2] and picture.shape[0] == 3 * 28
    with pytest.raises(TfvaeError, match=re.escape("label=10, but the run has 10 classes (0..9)")):
        pictures.picture(cvae, "random", 2, label=10)


def test_a_plain_autoencoder_scores_by_reconstruction_and_has_no_metadata_without_labels(tmp_path):
    model = build_model("ae", (28, 28, 1), 2, seed=0)
    ae = api.Run(str(tmp_path), Config(model="ae", latent=2, image_shape=(28, 28, 1)), model.encoder, model.decoder)
    x = np.random.default_rng(0).uniform(size=(6, 28, 28, 1)).astype("float32")
    z_mean, z_log_var = ae.encode(x)
    assert z_log_var is None
    logits = np.asarray(model.decoder(z_mean), dtype="float64")
    bce = np.sum(np.logaddexp(0, logits) - logits * x, axis=(1, 2, 3))  # -log p(x | z_mean), Bernoulli
    np.testing.assert_allclose(ae.score(x), bce, rtol=1e-5)
    ae.set_test_data(x, None)
    assert ae.traverse(n=3)[2] == "var"
    logdir = projector.write_projector(ae)
    assert not os.path.exists(os.path.join(logdir, "metadata.tsv"))
    get, _ = tensorboard_client(str(tmp_path))
    tensor = np.frombuffer(get("/tensor?run=logs/latent&name=z_mean"), "float32").reshape(6, 3)
    np.testing.assert_allclose(tensor[:, :2], z_mean, rtol=1e-5, atol=1e-6)


def test_the_traversal_sweeps_the_highest_kl_dimensions(run):
    x, _ = run.test_data()
    z_mean, z_log_var = run.encode(x)
    kl = (0.5 * (np.square(z_mean) + np.exp(z_log_var) - 1 - z_log_var)).mean(axis=0)
    picture, rows, what, index = run.traverse(n=3, seed=0)
    assert what == "KL" and [d for d, _ in rows] == list(np.argsort(-kl)[:3])  # 4 dims, 3 rows: the top 3
    np.testing.assert_allclose([v for _, v in rows], np.sort(kl)[::-1][:3], rtol=1e-4, atol=1e-6)
    margin = picture.shape[1] - 3 * 28
    assert picture.shape[0] == 3 * 28 and margin > 20 and picture[:, :margin].max() == 1.0  # labels drawn
    ticks = [NormalDist().inv_cdf(p) for p in (0.05, 0.5, 0.95)]
    for r, (dim, _) in enumerate(rows):
        for c, tick in enumerate(ticks):
            code = z_mean[index].copy()
            code[dim] = tick
            np.testing.assert_allclose(picture[r * 28:(r + 1) * 28, margin + c * 28:margin + (c + 1) * 28],
                                       run.decode(code[None])[0], atol=1e-5)
    full = run.traverse(n=5, index=0)[1]
    assert [d for d, _ in full] == list(range(LATENT))  # a latent of at most n: every dimension, in order


def tensorboard_client(logdir):
    """TensorBoard's projector plugin over ``logdir``, as `tensorboard --logdir` serves it (werkzeug client)."""
    from tensorboard.backend import application
    from tensorboard.backend.event_processing import data_provider
    from tensorboard.backend.event_processing import plugin_event_multiplexer as event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.projector import projector_plugin
    from werkzeug import test as werkzeug_test
    from werkzeug import wrappers

    multiplexer = event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(logdir)
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, logdir)
    plugin = projector_plugin.ProjectorPlugin(base_plugin.TBContext(logdir=logdir, data_provider=provider))
    client = werkzeug_test.Client(application.TensorBoardWSGI([plugin]), wrappers.Response)

    def get(path):
        response = client.get("/data/plugin/projector" + path)
        body = response.data
        if response.headers.get("Content-Encoding") == "gzip":
            body = gzip.GzipFile(fileobj=io.BytesIO(body)).read()
        assert response.status_code == 200, (path, body[:300])
        return body

    return get, sorted(multiplexer.Runs())


def check_projector(get, run_name, run):
    import json

    x, y = run.test_data()
    info = json.loads(get(f"/info?run={run_name}"))
    (embedding,) = info["embeddings"]
    assert embedding["tensorShape"] == [len(x), LATENT]
    assert embedding["sprite"]["singleImageDim"] == [28, 28]
    tensor = np.frombuffer(get(f"/tensor?run={run_name}&name=z_mean"), "float32").reshape(len(x), LATENT)
    np.testing.assert_allclose(tensor, run.encode(x)[0], rtol=1e-5, atol=1e-6)
    lines = get(f"/metadata?run={run_name}&name=z_mean").decode().splitlines()
    assert lines[0] == "label\tclass" and len(lines) == len(x) + 1
    assert lines[1:4] == [f"{y[i]}\t{run.class_names[y[i]]}" for i in range(3)]
    sprite = np.asarray(Image.open(io.BytesIO(get(f"/sprite_image?run={run_name}&name=z_mean"))))
    side = math.ceil(math.sqrt(len(x)))
    assert sprite.shape[:2] == (side * 28, side * 28)
    for i in (0, side + 1, len(x) - 1):  # thumbnails row-major, as the Projector cuts them
        r, c = divmod(i, side)
        np.testing.assert_array_equal(sprite[r * 28:(r + 1) * 28, c * 28:(c + 1) * 28],
                                      np.rint(x[i, ..., 0] * 255).astype(np.uint8))


def test_tensorboard_projector_reads_the_codes_and_lists_each_run_once(trained, run, tmp_path):
    import tensorflow as tf

    logdir = str(tmp_path / "runs")  # a copy: its logs/latent is removed below, and `trained` is shared
    shutil.copytree(trained / "runs", logdir, symlinks=True)
    get, tb_runs = tensorboard_client(logdir)
    assert not [r for r in tb_runs if r.startswith("latest")], tb_runs  # each run once
    assert "vae/logs/latent" in tb_runs
    assert tuple(__import__("json").loads(get("/runs"))) == ("vae/logs/latent",)
    check_projector(get, "vae/logs/latent", run)
    tags = {value.tag for path in glob.glob(os.path.join(logdir, "vae", "logs", "latent", "events.*"))
            for event in tf.compat.v1.train.summary_iterator(path) for value in event.summary.value}
    assert {"projector", "traversal"} <= tags

    # On demand (sample.py --mode=projector) it is written again from the saved models.
    shutil.rmtree(os.path.join(logdir, "vae", "logs", "latent"))
    assert pictures.sample_to_png(os.path.join(logdir, "latest"), "projector", 0) == os.path.join(
        logdir, "vae", projector.LOGDIR)
    get, _ = tensorboard_client(logdir)
    check_projector(get, "vae/logs/latent", run)


def test_a_2d_latent_is_padded_to_the_projectors_three_pca_components():
    z = np.array([[1.0, 2.0], [3.0, 4.0]], "float32")
    np.testing.assert_array_equal(projector.projector_codes(z), [[1, 2, 0], [3, 4, 0]])
    wide = np.ones((2, 5), "float32")
    np.testing.assert_array_equal(projector.projector_codes(wide), wide)


def test_sprite_stays_within_the_projectors_limit():
    images = np.random.default_rng(0).uniform(size=(10, 64, 48, 3)).astype("float32")
    picture, (w, h) = projector.sprite(images, max_side=100)
    assert picture.shape == (4 * h, 4 * w, 3) and max(picture.shape[:2]) <= 100 and (w, h) == (18, 25)


def test_sample_py_traverse_with_the_default_workdir(trained, offline_env):
    proc = run_script([os.path.join(REPO, "sample.py"), "--mode=traverse", "--grid=3"], offline_env, cwd=trained)
    path = trained / proc.stdout.strip().splitlines()[-1].removeprefix("wrote ")
    assert os.path.samefile(path, trained / "runs" / "vae" / "traverse.png")
    width, height = Image.open(path).size
    assert height == 3 * 28 and width > 3 * 28


def test_vae_loss_closed_form_and_the_models_call_it(monkeypatch):
    x = np.zeros((2, 4, 4, 1), "float32")
    terms = losses.vae_loss(x, np.zeros_like(x), np.ones((2, 10), "float32"), np.zeros((2, 10), "float32"),
                            beta=2.0)
    np.testing.assert_allclose(terms["kl"], [5.0, 5.0], rtol=1e-6)  # KL of N(1, 1) over 10 dims
    np.testing.assert_allclose(terms["reconstruction"], [16 * math.log(2)] * 2, rtol=1e-6)
    np.testing.assert_allclose(terms["loss"], np.asarray(terms["reconstruction"]) + 10.0, rtol=1e-6)
    np.testing.assert_array_equal(losses.vae_loss(x, np.zeros_like(x))["kl"], [0.0, 0.0])  # plain AE

    calls = []
    original = losses.vae_loss

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(losses, "vae_loss", spy)
    model = build_model("vae", (8, 8, 1), 2, beta=0.5, seed=0)
    out = model.compute_terms({"image": np.random.default_rng(0).uniform(size=(3, 8, 8, 1)).astype("float32")})
    assert len(calls) == 1 and (calls[0]["reconstruction"], calls[0]["beta"]) == ("bce", 0.5)  # and maybe more
    np.testing.assert_allclose(float(out["loss"]), float(out["reconstruction"]) + 0.5 * float(out["kl"]), rtol=1e-5)


def _point_latest_many_times(workdir, times, failures):
    try:
        for _ in range(times):
            rundir.point_latest(workdir)
    except OSError as e:
        failures.put(repr(e))


def test_runs_finishing_at_once_in_one_folder_all_point_latest(tmp_path):
    # Several train.py in one runs/ folder (a sweep) each write runs/latest; none may fail on another's temporary.
    import multiprocessing

    context = multiprocessing.get_context("fork")
    failures = context.Queue()
    procs = [context.Process(target=_point_latest_many_times, args=(str(tmp_path / name), 300, failures))
             for name in ("a", "b", "c")]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    assert [proc.exitcode for proc in procs] == [0, 0, 0]
    assert failures.empty(), failures.get()
    assert (tmp_path / "latest").read_text() in ("a\n", "b\n", "c\n")
    assert sorted(os.listdir(tmp_path)) == ["latest"]  # no temporary left behind


def test_a_run_no_longer_referenced_is_freed_with_its_models(trained):
    """Every compiled path (encode, decode, the -ELBO's reconstruction and IWAE draws) is the Run's own: once the
    Run is dropped nothing keeps it or its models alive."""
    run = tfvae.load(str(trained / "runs" / "latest"))
    x, _ = run.test_data()
    z_mean, _ = run.encode(x[:16])
    assert run.decode(z_mean).shape == x[:16].shape
    assert np.isfinite(run.score(x[:16], samples=4)).all()
    assert np.isfinite(run.scores.likelihood_terms(x[:16], num_samples=4)["nll"]).all()
    refs = [weakref.ref(run), weakref.ref(run.decoder), weakref.ref(run.encoder)]
    del run
    gc.collect()
    assert [ref() for ref in refs] == [None, None, None]


def test_each_models_forward_is_traced_once_per_shape_without_a_retracing_warning(monkeypatch):
    """TensorFlow counts together the traces of the functions that share one Python code object, and warned of
    "excessive retracing" when each of five models' forward functions traced once; the inference path gives each
    model a function of its own (no logging filter), while one model's function stays bounded by reduce_retracing
    whatever the batch sizes."""
    import logging

    import keras
    import tensorflow as tf
    from tensorflow.python.eager.polymorphic_function import polymorphic_function as tf_function

    from tfvae import inference

    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = tf.get_logger()
    assert [f for f in logger.filters if type(f).__module__.startswith("tfvae")] == []  # tfvae hides nothing
    # TensorFlow warns at most twice per function code in a process: start from a fresh count.
    monkeypatch.setattr(tf_function, "_frequent_tracing_detector_manager",
                        tf_function._FrequentTracingDetectorManager())
    logger.addHandler(handler)
    try:
        paths = inference.Inference()
        for _ in range(8):
            model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
            assert paths.decode_logits(model, np.zeros((4, 3), "float32")).shape == (4, 2)
    finally:
        logger.removeHandler(handler)
    assert [m for m in messages if "retracing" in m] == []
    paths = inference.Inference()
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    for n in (1, 5, 17, 256, 300, 64):
        paths.decode_logits(model, np.zeros((n, 3), "float32"), batch_size=256)
    assert paths._forward(model).experimental_get_tracing_count() <= 2
