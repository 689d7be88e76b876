"""The TensorBoard plugin: the "latent" tab, its routes, and the loader TensorBoard finds by entry point.

Routes, under ``/data/plugin/latent/`` (all GET; errors are JSON ``{"error": "..."}`` with a 4xx status):

* ``index.js``: the page (an ES module that TensorBoard's frontend loads into an iframe and calls ``render()``).
* ``runs``: the runs under the log directory, ``[{"name", "decoder"}]``.
* ``run?run=NAME``: the run's shapes, classes, test codes, latent usage, slider order and ranges, PCA plane.
* ``decode?run=NAME&z=z0,z1,...[&label=K]``: the decoded image of one code (or up to ``params.MAX_CODES``
  separated by ``;``) as raw uint8 pixels, ``X-Image-Shape: n,H,W,C``; ``X-Decode-Ms``: the decoder's time.
* ``image?run=NAME&index=I``: test image I, raw uint8 pixels as above.
* ``interpolate?run=NAME&a=I&b=J[&steps=S][&label=K]``: ``Run.interpolate`` between test images I and J.
"""

import json
import os
import time

import numpy as np
from tensorboard.plugins import base_plugin
from werkzeug import wrappers

from tfvae.errors import TfvaeError
from tfvae.explorer import PLUGIN_NAME, params, run_cache, rundirs

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")


def _json(payload, status=200):
    return wrappers.Response(json.dumps(payload), status=status, content_type="application/json",
                             headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})


def _pixels(images, seconds=None):
    """Raw uint8 pixels of float images in [0, 1], with their shape in a header."""
    array = np.asarray(images)
    pixels = np.clip(np.rint(array * 255.0), 0, 255).astype(np.uint8)
    headers = {"X-Image-Shape": ",".join(map(str, pixels.shape)), "Cache-Control": "no-store",
               "X-Content-Type-Options": "nosniff"}
    if seconds is not None:
        headers["X-Decode-Ms"] = f"{seconds * 1000:.2f}"
    return wrappers.Response(pixels.tobytes(), content_type="application/octet-stream", headers=headers)


class ExplorerPlugin(base_plugin.TBPlugin):
    """The latent explorer for every run with a decoder under TensorBoard's log directory."""

    plugin_name = PLUGIN_NAME

    def __init__(self, context, max_runs=run_cache.MAX_RUNS, load=None):
        """Args:
          context: TensorBoard's ``TBContext`` (its ``logdir`` is searched for runs).
          max_runs: loaded runs kept at once.
          load: ``workdir -> Run`` (default ``tfvae.load``; tests pass a spy).
        """
        self.rundirs = rundirs.RunDirectory(context.logdir or "")
        self.cache = run_cache.RunCache(max_runs, load)

    def get_plugin_apps(self):
        return {
            "/index.js": self._serve_js,
            "/runs": self._serve_runs,
            "/run": self._serve_run,
            "/decode": self._serve_decode,
            "/image": self._serve_image,
            "/interpolate": self._serve_interpolate,
        }

    def is_active(self):
        return any(run["decoder"] for run in self.rundirs.runs().values())

    def frontend_metadata(self):
        return base_plugin.FrontendMetadata(es_module_path="/index.js", tab_name="latent")

    # -- routes --------------------------------------------------------------------------------------------

    @wrappers.Request.application
    def _serve_js(self, request):
        del request  # the one static file
        with open(os.path.join(STATIC, "index.js"), encoding="utf-8") as f:
            return wrappers.Response(f.read(), content_type="text/javascript",
                                     headers={"X-Content-Type-Options": "nosniff"})

    @wrappers.Request.application
    def _serve_runs(self, request):
        del request
        runs = self.rundirs.runs()
        return _json({"runs": [{"name": name, "decoder": runs[name]["decoder"]} for name in sorted(runs)]})

    @wrappers.Request.application
    def _serve_run(self, request):
        return self._handle(request, lambda entry: _json(entry.info))

    @wrappers.Request.application
    def _serve_decode(self, request):
        def decode(entry):
            info = entry.info
            z = np.asarray(params.codes(request.args.get("z"), info["latent_dim"]), dtype="float32")
            label = params.label(request.args.get("label"), info["conditional"], info["num_classes"])
            with entry.lock:
                start = time.perf_counter()
                images = entry.run.decode(z, label)
                seconds = time.perf_counter() - start
            return _pixels(images, seconds)

        return self._handle(request, decode)

    @wrappers.Request.application
    def _serve_image(self, request):
        def image(entry):
            i = params.index(request.args.get("index"), entry.info["test_images"])
            with entry.lock:
                x, _ = entry.run.test_data()
            return _pixels(x[i:i + 1])

        return self._handle(request, image)

    @wrappers.Request.application
    def _serve_interpolate(self, request):
        def interpolate(entry):
            info = entry.info
            a = params.index(request.args.get("a"), info["test_images"], "a")
            b = params.index(request.args.get("b"), info["test_images"], "b")
            steps = params.steps(request.args.get("steps"))
            label = params.label(request.args.get("label"), info["conditional"], info["num_classes"])
            with entry.lock:
                x, _ = entry.run.test_data()
                start = time.perf_counter()
                images = entry.run.interpolate(x[a], x[b], steps, label=label)
                seconds = time.perf_counter() - start
            return _pixels(images, seconds)

        return self._handle(request, interpolate)

    # -- checks shared by every run route -----------------------------------------------------------------

    def _handle(self, request, respond):
        """Checks the request and its run, then ``respond(entry)``; every refusal is a JSON error."""
        if request.method != "GET":
            return _json({"error": f"{request.method} is not served here; use GET"}, 405)
        if len(request.query_string) > params.MAX_QUERY:
            return _json({"error": f"query of {len(request.query_string)} bytes; at most {params.MAX_QUERY}"}, 414)
        name = request.args.get("run")
        try:
            path, has_decoder = self.rundirs.lookup(name)
        except rundirs.BadRunName as e:
            return _json({"error": str(e)}, 400)
        except rundirs.RunNotFound as e:
            return _json({"error": str(e)}, 404)
        if not has_decoder:
            return _json({"error": f"run {name!r} has no decoder.keras yet: train.py writes it when the run's first "
                                   "epoch ends (or training stopped before that); pick another run"}, 404)
        try:
            entry = self.cache.get(name, path)
        except TfvaeError as e:
            return _json({"error": f"run {name!r} cannot be loaded: {e}"}, 500)
        try:
            return respond(entry)
        except params.BadRequest as e:
            return _json({"error": str(e)}, e.status)
        except TfvaeError as e:
            return _json({"error": str(e)}, 400)


class ExplorerLoader(base_plugin.TBLoader):
    """What the ``tensorboard_plugins`` entry point names: makes the plugin for TensorBoard's context."""

    def load(self, context):
        return ExplorerPlugin(context)
