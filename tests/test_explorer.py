"""The latent explorer (a TensorBoard plugin): its entry point, its routes as a server (every refusal a JSON 4xx,
nothing read outside the log directory), its bounded cache, and the page in a real browser (Debian's chromium
through Selenium) inside a real TensorBoard. Two tiny runs are trained with train.py (a 4-D vae, a 2-D cvae)."""

import importlib.metadata
import json
import os
import shutil
import socket
import sys
import time

import numpy as np
import pytest
from tensorboard import default, program
from tensorboard.backend import application
from tensorboard.plugins import base_plugin
from werkzeug.test import Client

import tfvae
from tests.conftest import run_scripts
from tfvae.explorer import params, plugin, rundirs

ROUTE = "/data/plugin/latent"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def logdir(mnist_dir, offline_env, tmp_path_factory):
    """logs/ with vae4 (latent 4), group/cvae2 (a cvae, latent 2), nodecoder (config.json only), and two ways
    out: escape (a symlink to a run outside) and linked (a run whose decoder.keras links outside)."""
    root = tmp_path_factory.mktemp("explorer")
    logs = root / "logs"
    common = [f"--data_dir={mnist_dir}", "--max_examples=256", "--epochs=1", "--batch_size=64"]
    run_scripts([["train.py", "--model=vae", "--latent=4", f"--workdir={logs / 'vae4'}", *common],
                 ["train.py", "--model=cvae", "--latent=2", f"--workdir={logs / 'group' / 'cvae2'}", *common]],
                offline_env)
    (logs / "nodecoder").mkdir()
    shutil.copy(logs / "vae4" / "config.json", logs / "nodecoder" / "config.json")
    outside = root / "outside"
    shutil.copytree(logs / "vae4", outside / "secret", ignore=shutil.ignore_patterns("logs", "checkpoints"))
    os.symlink(outside / "secret", logs / "escape")
    (logs / "linked").mkdir()
    shutil.copy(logs / "vae4" / "config.json", logs / "linked" / "config.json")
    for name in ("encoder.keras", "decoder.keras"):
        os.symlink(outside / "secret" / name, logs / "linked" / name)
    return logs


@pytest.fixture(scope="module")
def runs(logdir):
    return {name: tfvae.load(str(logdir / name)) for name in ("vae4", "group/cvae2")}


class Spy:
    """tfvae.load, recording the directories it was asked to load."""

    def __init__(self):
        self.paths = []

    def __call__(self, path):
        self.paths.append(os.path.realpath(path))
        return tfvae.load(path)


def make_client(logdir, max_runs=4):
    spy = Spy()
    explorer = plugin.ExplorerPlugin(base_plugin.TBContext(logdir=str(logdir)), max_runs=max_runs, load=spy)
    return Client(application.TensorBoardWSGI([explorer])), explorer, spy


@pytest.fixture(scope="module")
def client(logdir):
    return make_client(logdir)


def get(client, route, **args):
    return client.get(f"{ROUTE}/{route}", query_string=args)


def pixels(response):
    shape = tuple(int(d) for d in response.headers["X-Image-Shape"].split(","))
    return np.frombuffer(response.data, np.uint8).reshape(shape)


def as_uint8(images):
    return np.rint(np.asarray(images) * 255).astype(np.uint8)


# -- registration --------------------------------------------------------------------------------------------


def test_the_entry_point_registers_the_plugin_with_tensorboard():
    points = [e for e in importlib.metadata.entry_points(group="tensorboard_plugins") if e.name == "latent"]
    assert [e.value for e in points] == ["tfvae.explorer.plugin:ExplorerLoader"], \
        "the tensorboard_plugins entry point is not registered: pip install -e '.[test]' in this checkout"
    assert points[0].load() is plugin.ExplorerLoader
    assert plugin.ExplorerLoader in default.get_dynamic_plugins()  # what `tensorboard --logdir runs` loads
    static = os.path.join(os.path.dirname(plugin.__file__), "static", "index.js")
    assert os.path.isfile(static)  # shipped as package data (setup.cfg [options.package_data])


# -- the server ----------------------------------------------------------------------------------------------


def test_runs_are_the_run_directories_inside_the_log_directory(client, logdir, tmp_path):
    client, explorer, _ = client
    listed = json.loads(get(client, "runs").data)["runs"]
    assert listed == [{"name": "group/cvae2", "decoder": True}, {"name": "nodecoder", "decoder": False},
                      {"name": "vae4", "decoder": True}]  # not escape or linked: they lead outside
    assert explorer.is_active()
    listing = json.loads(client.get("/data/plugins_listing").data)["latent"]
    assert listing["loading_mechanism"] == {"type": "IFRAME", "module_path": f"{ROUTE}/index.js"}
    assert get(client, "index.js").data.startswith(b"// The latent explorer's page")
    (tmp_path / "only").mkdir()
    shutil.copy(logdir / "vae4" / "config.json", tmp_path / "only")
    assert not plugin.ExplorerPlugin(base_plugin.TBContext(logdir=str(tmp_path))).is_active()  # no decoder
    assert not plugin.ExplorerPlugin(base_plugin.TBContext(logdir=str(tmp_path / "none"))).is_active()


def test_run_describes_the_codes_usage_and_planes(client, runs):
    client, _, _ = client
    info = json.loads(get(client, "run", run="vae4").data)
    run = runs["vae4"]
    z, _, y = run.test_codes()
    values, what = run.latent_usage()
    assert (info["latent_dim"], info["image_shape"], info["conditional"], what) == (4, [28, 28, 1], False, "KL")
    np.testing.assert_allclose(info["codes"], z, atol=1e-4)
    assert info["labels"] == y.tolist() and info["test_images"] == len(z)
    assert info["order"] == sorted(range(4), key=lambda d: -values[d]) == info["sliders"]
    np.testing.assert_allclose(np.asarray(info["pca"]) @ np.asarray(info["pca"]).T, np.eye(2), atol=1e-6)
    assert all(lo <= -3 and hi >= 3 for lo, hi in info["ranges"])  # the prior's +-3 at least
    cvae = json.loads(get(client, "run", run="group/cvae2").data)
    assert cvae["conditional"] and cvae["class_names"] == [str(i) for i in range(10)]


def test_decode_interpolate_and_image_are_the_runs_own(client, runs):
    client, _, _ = client
    run = runs["vae4"]
    z = np.array([[0.5, -1.25, 2.0, 0.0], [-3.0, 0.25, 0.0, 1.5]], "float32")
    response = get(client, "decode", run="vae4", z=",".join(map(str, z[0])))
    assert response.status_code == 200 and response.headers["X-Image-Shape"] == "1,28,28,1"
    assert float(response.headers["X-Decode-Ms"]) > 0
    assert np.abs(pixels(response).astype(int) - as_uint8(run.decode(z[:1]))).max() <= 1
    both = get(client, "decode", run="vae4", z=";".join(",".join(map(str, row)) for row in z))
    assert np.abs(pixels(both).astype(int) - as_uint8(run.decode(z))).max() <= 1

    x, _ = run.test_data()
    assert np.array_equal(pixels(get(client, "image", run="vae4", index="7"))[0], as_uint8(x[7]))
    strip = pixels(get(client, "interpolate", run="vae4", a="3", b="11", steps="5"))
    assert strip.shape == (5, 28, 28, 1)
    assert np.abs(strip.astype(int) - as_uint8(run.interpolate(x[3], x[11], 5))).max() <= 1

    cvae = runs["group/cvae2"]
    image = pixels(get(client, "decode", run="group/cvae2", z="0.5,-0.5", label="7"))
    assert np.abs(image.astype(int) - as_uint8(cvae.decode(np.array([[0.5, -0.5]], "float32"), 7))).max() <= 1


HUGE_BATCH = ";".join(["0,0,0,0"] * (params.MAX_CODES + 1))
BAD_REQUESTS = [  # (route, query, status, what the error says)
    ("decode", {"run": "../outside/secret", "z": "0,0,0,0"}, 400, "not a plain relative path"),
    ("decode", {"run": "vae4/../../outside/secret", "z": "0,0,0,0"}, 400, "not a plain relative path"),
    ("run", {"run": "/etc"}, 400, "is an absolute path"),
    ("run", {"run": "C:\\Windows"}, 400, "no control characters or backslashes"),
    ("run", {"run": "vae4\x00"}, 400, "no control characters"),
    ("run", {"run": "x" * 600}, 400, "at most 512"),
    ("run", {}, 400, "pass run=<name>"),
    ("run", {"run": "escape"}, 404, "no run 'escape' under the log directory"),  # a symlink out
    ("run", {"run": "linked"}, 404, "no run 'linked'"),  # its models link out
    ("decode", {"run": "nope", "z": "0,0,0,0"}, 404, "no run 'nope'"),
    ("run", {"run": "nodecoder"}, 404, "has no decoder.keras yet"),
    ("decode", {"run": "vae4", "z": "0,0,0"}, 400, "a code of 3 numbers, but this run's latent has 4"),
    ("decode", {"run": "vae4", "z": "0,0,0,0,0"}, 400, "a code of 5 numbers"),
    ("decode", {"run": "vae4"}, 400, "pass z=<4 comma-separated numbers>"),
    ("decode", {"run": "vae4", "z": "0,0,zero,0"}, 400, "'zero', which is not a number"),
    ("decode", {"run": "vae4", "z": "0,NaN,0,0"}, 400, "codes must be finite numbers"),
    ("decode", {"run": "vae4", "z": "0,0,-inf,0"}, 400, "codes must be finite numbers"),
    ("decode", {"run": "vae4", "z": "0,0,1e999,0"}, 400, "codes must be finite numbers"),
    ("decode", {"run": "vae4", "z": "0,0,1e9,0"}, 400, "codes lie within"),
    ("decode", {"run": "vae4", "z": HUGE_BATCH}, 413, f"at most {params.MAX_CODES}"),
    ("decode", {"run": "vae4", "z": "0," * 40000 + "0"}, 414, "query of"),
    ("decode", {"run": "vae4", "z": "0,0,0,0", "label": "1"}, 400, "not a cvae"),
    ("decode", {"run": "group/cvae2", "z": "0,0"}, 400, "this run is a cvae: pass label="),
    ("decode", {"run": "group/cvae2", "z": "0,0", "label": "10"}, 400, "label 10 is not a class of this run"),
    ("decode", {"run": "group/cvae2", "z": "0,0", "label": "-1"}, 400, "label -1 is not a class"),
    ("decode", {"run": "group/cvae2", "z": "0,0", "label": "2.5"}, 400, "label must be an integer"),
    ("image", {"run": "vae4", "index": "9999"}, 400, "index=9999, but the run has 64 test images (0..63)"),
    ("image", {"run": "vae4", "index": "../1"}, 400, "index must be an integer"),
    ("interpolate", {"run": "vae4", "a": "0", "b": "1", "steps": "100000"}, 413, "at most 32 images"),
    ("interpolate", {"run": "vae4", "a": "0", "b": "-2"}, 400, "b=-2"),
]


def test_every_bad_request_is_a_json_4xx_and_reads_nothing_outside(client, logdir):
    client, _, spy = client
    assert get(client, "run", run="vae4").status_code == 200  # vae4 loaded (its data read) before watching
    assert get(client, "run", run="group/cvae2").status_code == 200
    outside = os.path.realpath(logdir.parent / "outside")
    touched = []

    def watch(event, args):
        if event in ("open", "os.scandir", "os.listdir") and args and isinstance(args[0], (str, bytes)):
            touched.append(os.path.realpath(os.fsdecode(args[0])))

    sys.addaudithook(watch)  # audit hooks can't be removed: watch only what is appended below
    start = len(touched)
    for route, query, status, message in BAD_REQUESTS:
        response = get(client, route, **query)
        assert (response.status_code, response.content_type) == (status, "application/json"), (route, query)
        assert message in json.loads(response.data)["error"], (route, query, response.data)
    response = client.post(f"{ROUTE}/decode?run=vae4&z=0,0,0,0")
    assert response.status_code == 405 and "use GET" in json.loads(response.data)["error"]
    seen = touched[start:]
    touched.clear()
    assert not [p for p in seen if p.startswith(outside) or p.startswith("/etc")]
    assert all(p.startswith(os.path.realpath(logdir)) for p in spy.paths), spy.paths


def test_a_bounded_cache_loads_each_run_once(logdir):
    client, explorer, spy = make_client(logdir, max_runs=1)
    for name in ("vae4", "vae4", "group/cvae2", "group/cvae2", "vae4"):
        assert get(client, "run", run=name).status_code == 200
    assert len(spy.paths) == 3 and len(explorer.cache) == 1
    client, explorer, spy = make_client(logdir, max_runs=2)
    for name in ("vae4", "group/cvae2", "vae4", "group/cvae2"):
        get(client, "run", run=name)
    assert len(spy.paths) == 2 and len(explorer.cache) == 2


def test_run_names_are_checked_before_the_walk():
    for name in ("..", "a/../b", "/abs", "a//b", "./a", "a/."):
        with pytest.raises(rundirs.BadRunName):
            rundirs.check_name(name)
    assert rundirs.check_name("group/cvae2") == "group/cvae2" and rundirs.check_name(".") == "."


# -- the page, in chromium, inside a real TensorBoard --------------------------------------------------------


@pytest.fixture(scope="module")
def tensorboard_url(logdir):
    """A real TensorBoard on 127.0.0.1 (a free port) with the plugins `tensorboard` itself loads (built-in ones
    and those of the tensorboard_plugins entry points, ours among them); stopped after the module's tests."""
    plugins = default.get_plugins()
    assert plugin.ExplorerLoader in plugins, "the entry point is not registered: pip install -e '.[test]'"
    servers = []

    def server_class(app, flags):
        servers.append(program.WerkzeugServer(app, flags))
        return servers[-1]

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    board = program.TensorBoard(plugins=plugins, server_class=server_class)
    board.configure(argv=[None, "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port),
                          "--load_fast", "false", "--reload_interval", "0"])
    url = board.launch()
    yield url.rstrip("/")
    servers[0].shutdown()
    servers[0].server_close()


@pytest.fixture(scope="module")
def browser():
    """Headless Debian chromium driven by its chromedriver (Selenium never downloads one)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(path)]
    assert not missing, f"{missing} missing: apt-get install chromium chromium-driver (.ci/run does)"
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not try to download anything
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1200,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


def wait_for(driver, condition, what, timeout=90):
    end = time.monotonic() + timeout
    from selenium.common.exceptions import NoSuchElementException

    while time.monotonic() < end:
        try:
            value = condition(driver)
        except NoSuchElementException:  # the page has not built that element yet
            value = None
        if value:
            return value
        time.sleep(0.1)
    driver.save_screenshot(os.path.join(os.environ.get("TMPDIR", "/tmp"), "explorer_failure.png"))
    raise AssertionError(f"timed out waiting for {what}; page: {driver.find_element('tag name', 'body').text}")


def open_run(driver, url, run):
    driver.get(f"{url}/data/plugin_entry.html?name=latent&run={run}")
    return wait_for(driver, lambda d: d.execute_script(
        "const c = document.getElementById('decoded'); return c && c.dataset.version;"), f"{run}'s first image")


def shown(driver, canvas_id):
    """The canvas' pixels (H, W) (its red channel: the runs here are grey) and its data attributes."""
    data = driver.execute_script(
        "const c = document.getElementById(arguments[0]); const d = c.getContext('2d')"
        ".getImageData(0, 0, c.width, c.height).data; const red = [];"
        "for (let i = 0; i < d.length; i += 4) red.push(d[i]); return [c.height, c.width, red, {...c.dataset}];",
        canvas_id)
    h, w, red, attributes = data
    return np.array(red, np.uint8).reshape(h, w), attributes


def code_of(attributes):
    return np.array([[float(v) for v in attributes["code"].split(",")]], "float32")


def move_to(driver, px, py):
    """Moves the mouse to canvas pixel (px, py) of the scatter plane."""
    from selenium.webdriver.common.action_chains import ActionChains

    scatter = driver.find_element("id", "scatter")
    rect = driver.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.width, r.height];",
                                 scatter)
    ActionChains(driver).move_to_element_with_offset(scatter, int(round(px - rect[0] / 2)),
                                                     int(round(py - rect[1] / 2))).perform()


def test_the_latent_tab_shows_the_explorer_in_tensorboard(tensorboard_url, browser, tmp_path):
    browser.get(f"{tensorboard_url}/#latent")
    frame = wait_for(browser, lambda d: d.find_elements("css selector", "iframe"), "the plugin's iframe")[0]
    browser.switch_to.frame(frame)
    try:
        status = wait_for(browser, lambda d: d.find_element("id", "status").text.startswith("cvae"), "the page")
        assert status and browser.find_element("id", "run").get_attribute("value") == "group/cvae2"
        assert browser.find_element("id", "message").text == ""
    finally:
        browser.switch_to.default_content()
    browser.save_screenshot(str(tmp_path / "tab.png"))


def test_the_mouse_decodes_the_code_under_it_and_a_slider_changes_it(tensorboard_url, browser, runs):
    run = runs["vae4"]
    open_run(browser, tensorboard_url, "vae4")
    target = run.test_codes()[0][5].tolist()  # test image 5's code: a known place on the plane
    px, py = browser.execute_script("return window.explorer.toPixel(arguments[0]);", target)
    before = browser.find_element("id", "decoded").get_attribute("data-version")
    move_to(browser, px, py)
    wait_for(browser, lambda d: d.find_element("id", "decoded").get_attribute("data-version") != before,
             "the image under the mouse")
    time.sleep(0.5)  # a move may send several codes; the last one shown is the one under the mouse
    image, attributes = shown(browser, "decoded")
    code = code_of(attributes)
    info = browser.execute_script("return window.explorer.state.info;")
    x_dim, y_dim = info["order"][:2]
    # The code shown is the one under the mouse: the target's plane coordinates (within a pixel or two of the
    # plane), the codes' mean elsewhere.
    per_pixel = browser.execute_script(
        "const b = window.explorer.state.bounds; return [(b.u[1] - b.u[0]) / 440, (b.v[1] - b.v[0]) / 440];")
    assert abs(code[0, x_dim] - target[x_dim]) <= 2 * per_pixel[0]
    assert abs(code[0, y_dim] - target[y_dim]) <= 2 * per_pixel[1]
    others = [d for d in range(4) if d not in (x_dim, y_dim)]
    np.testing.assert_allclose(code[0, others], np.asarray(info["mean"])[others], atol=1e-5)
    assert image.shape == (28, 28)
    assert np.abs(image.astype(int) - as_uint8(run.decode(code))[0, ..., 0]).max() <= 1

    # A slider (the most used dimension's) moved to its end with the keyboard changes that coordinate only.
    from selenium.webdriver.common.keys import Keys

    browser.find_element("css selector", "body").click()  # the mouse leaves the plane: back to the base code
    first = info["sliders"][0]
    slider = browser.find_element("id", f"slider-{first}")
    before = browser.find_element("id", "decoded").get_attribute("data-version")
    browser.execute_script("arguments[0].focus();", slider)
    slider.send_keys(Keys.END)
    top = info["ranges"][first][1]
    wait_for(browser, lambda d: abs(code_of(shown(d, "decoded")[1])[0, first] - top) < 1e-3,
             "the slider's image")
    moved, attributes = shown(browser, "decoded")
    code = code_of(attributes)
    assert np.abs(moved.astype(int) - as_uint8(run.decode(code))[0, ..., 0]).max() <= 1
    assert np.abs(moved.astype(int) - image.astype(int)).max() > 10  # the image changed

    # Over the codes' PCA plane, the code under the mouse projects to the mouse's place.
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element("id", "plane")).select_by_value("pca")
    px, py = browser.execute_script("return window.explorer.toPixel(arguments[0]);", target)
    before = browser.find_element("id", "decoded").get_attribute("data-version")
    move_to(browser, px, py)
    wait_for(browser, lambda d: d.find_element("id", "decoded").get_attribute("data-version") != before,
             "the image under the mouse over the PCA plane")
    time.sleep(0.5)
    image, attributes = shown(browser, "decoded")
    code = code_of(attributes)
    axes = np.asarray(info["pca"])
    per_pixel = browser.execute_script(
        "const b = window.explorer.state.bounds; return [(b.u[1] - b.u[0]) / 440, (b.v[1] - b.v[0]) / 440];")
    assert np.all(np.abs(axes @ (code[0] - target)) <= 2 * np.asarray(per_pixel))
    assert np.abs(image.astype(int) - as_uint8(run.decode(code))[0, ..., 0]).max() <= 1


def test_two_clicked_test_images_give_their_interpolation(tensorboard_url, browser, runs):
    from selenium.webdriver.common.action_chains import ActionChains

    run = runs["vae4"]
    open_run(browser, tensorboard_url, "vae4")
    # Two test points at least 8 px from every other point, so that a click picks exactly them.
    a, b = browser.execute_script("""
        const codes = window.explorer.state.info.codes, px = codes.map(window.explorer.toPixel);
        const alone = px.map((p, i) => px.every((q, j) => i === j || Math.hypot(p[0] - q[0], p[1] - q[1]) > 8)
                                       && p[0] > 10 && p[0] < 430 && p[1] > 10 && p[1] < 430);
        const picks = []; alone.forEach((ok, i) => { if (ok) picks.push(i); });
        return [picks[0], picks[picks.length - 1]];""")
    for index in (a, b):
        px, py = browser.execute_script(
            "return window.explorer.toPixel(window.explorer.state.info.codes[arguments[0]]);", index)
        move_to(browser, px, py)
        ActionChains(browser).click().perform()
    wait_for(browser, lambda d: shown(d, "strip")[1].get("pair") == f"{a},{b}", "the interpolation")
    strip, _ = shown(browser, "strip")
    x, _ = run.test_data()
    expected = as_uint8(run.interpolate(x[a], x[b], 10))[..., 0]  # (10, 28, 28)
    assert strip.shape == (28, 280)
    assert np.abs(strip.astype(int) - np.concatenate(list(expected), axis=1)).max() <= 1
    assert np.array_equal(shown(browser, "imageA")[0], as_uint8(x[a])[..., 0])
    # The base code is B's: the sliders start from the clicked test image's code.
    base = browser.execute_script("return window.explorer.state.base;")
    np.testing.assert_allclose(base, run.test_codes()[0][b], atol=1e-4)


def test_a_cvae_decodes_the_class_picked(tensorboard_url, browser, runs):
    from selenium.webdriver.support.ui import Select

    cvae = runs["group/cvae2"]
    open_run(browser, tensorboard_url, "group/cvae2")
    assert browser.find_element("id", "labelRow").is_displayed()
    Select(browser.find_element("id", "label")).select_by_value("3")
    wait_for(browser, lambda d: shown(d, "decoded")[1].get("label") == "3", "class 3's image")
    image, attributes = shown(browser, "decoded")
    assert np.abs(image.astype(int) - as_uint8(cvae.decode(code_of(attributes), 3))[0, ..., 0]).max() <= 1


@pytest.mark.parametrize("run, message", [("nope", "no run 'nope' under the log directory"),
                                          ("nodecoder", "has no decoder.keras yet"),
                                          ("escape", "no run 'escape'"),
                                          ("..%2Foutside%2Fsecret", "not a plain relative path")])
def test_an_unknown_run_or_one_without_a_decoder_is_a_message(tensorboard_url, browser, run, message):
    browser.get(f"{tensorboard_url}/data/plugin_entry.html?name=latent&run={run}")
    text = wait_for(browser, lambda d: d.find_element("id", "message").text, "the message")
    assert message in text
    assert not browser.find_element("id", "main").is_displayed()
    assert browser.find_element("id", "run").is_displayed()  # another run can still be picked
