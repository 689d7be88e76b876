"""The library's docstrings and comments state the maths, the rule and its reference; measured figures live in
docs/ (the issue "One model, one place", item 5).

A measured figure (a test loss, an FCD, a speed-up, a timing, a seed's statistics) goes stale when the code or the
machine changes, and a docstring is the last place anyone looks for a stale number. So a docstring or comment under
tfvae/ keeps the decision and points to the page that holds the figure with its conditions ("chosen by measurement:
docs/performance.md"), and this test fails, naming file:line and the phrase, where one still holds a figure.

What counts as a measured figure is ``PATTERNS`` below: a number with a unit of measurement (nats, bits/dim, dB,
seconds, img/s, MB, %), a speed ratio ("1.2x faster", "0.79x"), a metric with its value ("FCD 14.1", "test loss
259.2", "perplexity 1.0"), a seed's statistics ("seed 0: mean 1.18") and "measured" without a docs/ page in the same
paragraph. Constants, defaults, formulas, shapes and citations ("1e-3", "K = 100", "1 / (12 * 255^2)", "28x28",
"Burda et al. 2016") are not matched. Docstrings are read with ``ast``, comments with ``tokenize``; a paragraph (a
docstring's lines up to a blank one, a run of comment lines) is matched as one text, so a phrase broken over two
lines is still found. Nothing here imports TensorFlow or tfvae.

Review every match in the library at once (the same patterns, without pytest):

    python tests/test_docstrings.py            # prints file:line: phrase  [pattern], one a line
    python -m pytest -q -n 0 --noconftest tests/test_docstrings.py   # the tests, without conftest's TensorFlow
"""

import ast
import io
import os
import re
import sys
import tokenize

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIBRARY = os.path.join(REPO, "tfvae")

NUMBER = r"(?<![\w.])[-+~]?\d[\d,]*(?:\.\d+)?"
RANGE = rf"{NUMBER}(?:\s*(?:-|to|–)\s*{NUMBER})?"
UNITS = (r"\s*(?:nats?|bits?/dim|bits per (?:dim|dimension|code)|dB|ms|secs?|seconds?|mins?|minutes?|hours?"
         r"|img/s|images/s|steps/s|examples/s|GFLOP/s|[KMG]i?B|bytes)|\s+[sh]")  # "0s and 1s" are digits
PATTERNS = {
    "number with a unit": rf"{RANGE}(?:{UNITS})(?![\w/])",
    "percentage": rf"{RANGE}\s*%",
    "speed ratio": rf"{RANGE}\s*[x×]\s*(?:faster|slower|the (?:throughput|speed|images/s|time)"
                   r"|(?:too )?(?:large|small|less|more))\b|(?<![\w.])\d+\.\d+[x×](?![\w])",
    "metric value": r"\b(?:FCD|FID|PSNR|SSIM|AUROC|AUC|IS|NLL|ELBO|-ELBO|KL|perplexity"
                    r"|(?:test|training|validation) loss|accuracy|sharpness|colourfulness)"
                    r"\s*(?:of|was|is|=|:|at)?\s*[-−]?\d[\d,]*\.\d+",
    "seed's statistics": r"\bseeds? \d+(?:\s*(?:and|,)\s*\d+)*\s*:\s*[^.;]*?\d",
    "counted share": r"(?<![\w.])\d[\d,]* of (?:the |its |their )?\d[\d,]*(?:\.\d+)? \(?(?!x\b)[a-z]",
    "measurement without its page": r"\b(?:was|were|been|by|when) measured\b|\(measured\)"
                                    r"|\bmeasured (?:here|on|to|per)\b|\bby measurement\b",
}
COMPILED = {name: re.compile(pattern) for name, pattern in PATTERNS.items()}
DOCS_POINTER = re.compile(r"\bdocs/[\w./-]+\.md")


def paragraphs(path):
    """[(first line, [lines])] of the docstrings' paragraphs and the runs of comment lines of one file."""
    with open(path, encoding="utf-8") as f:
        source = f.read()
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                block, start = [], first.lineno
                for i, line in enumerate(first.value.value.splitlines() + [""]):
                    if line.strip():
                        start = start if block else first.lineno + i
                        block.append(line.strip())
                    elif block:
                        found.append((start, block))
                        block = []
    previous, block, start = None, [], 0
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type != tokenize.COMMENT:
            continue
        line = token.start[0]
        text = token.string.lstrip("#").strip()
        if text.startswith("noqa"):
            continue
        if block and line == previous + 1:
            block.append(text)
        else:
            if block:
                found.append((start, block))
            block, start = [text], line
        previous = line
    if block:
        found.append((start, block))
    return found


def figures(path):
    """[(line, phrase, pattern name)] of the measured figures in one file's docstrings and comments."""
    hits = []
    for start, lines in paragraphs(path):
        text = " ".join(lines)
        ends = []  # the offset where each line ends in ``text``
        for line in lines:
            ends.append((ends[-1] + 1 if ends else 0) + len(line))
        for name, pattern in COMPILED.items():
            if name == "measurement without its page" and DOCS_POINTER.search(text):
                continue
            for match in pattern.finditer(text):
                row = next(i for i, end in enumerate(ends) if match.start() <= end)
                hits.append((start + row, match.group(0).strip(), name))
    return sorted(set(hits))


def library_figures(root=LIBRARY):
    found = []
    for directory, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                found += [(os.path.relpath(path, REPO), *hit) for hit in figures(path)]
    return found


def test_no_measured_figures_in_the_librarys_docstrings_and_comments():
    found = library_figures()
    assert not found, ("measured figures in docstrings or comments; move each to its docs page and point there "
                       "(docs/design.md):\n" + "\n".join(f"{f}:{line}: {phrase!r}  [{name}]"
                                                          for f, line, phrase, name in found))


def test_the_docs_pages_the_library_points_to_exist():
    """Every ``docs/<page>.md#anchor`` a docstring or comment names is a page with that heading."""
    for file, line, target in docs_pointers():
        page, _, anchor = target.partition("#")
        path = os.path.join(REPO, page)
        assert os.path.isfile(path), f"{file}:{line}: {target}: no such page"
        if anchor:
            with open(path, encoding="utf-8") as f:
                headings = {re.sub(r"[^\w\- ]", "", h.lstrip("#").strip().lower()).replace(" ", "-")
                            for h in f.read().splitlines() if h.startswith("#")}
            assert anchor in headings, f"{file}:{line}: {target}: no such heading"


def docs_pointers(root=LIBRARY):
    """[(file, line, "docs/page.md#anchor")] named in the library's docstrings and comments."""
    found = []
    for directory, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                for start, lines in paragraphs(path):
                    for row, line in enumerate(lines):
                        for target in re.findall(r"\bdocs/[\w./-]+\.md(?:#[\w-]+)?", line):
                            found.append((os.path.relpath(path, REPO), start + row, target))
    return found


def check(text):
    """The pattern names that match one paragraph (for the examples below)."""
    return {name for name, pattern in COMPILED.items() if pattern.search(text)}


def test_the_patterns_find_figures():
    for text in ["spent 42 nats on the MMD term in its first epoch", "in 311 of the 2,016 pairs of positions",
                 "mixed_bfloat16 trains 1.06-1.17x faster than float32", "seed 0: mean 1.18, std 0.58 along z[1]",
                 "FCD 14.1 against 22.3", "PSNR 23.0", "test loss 259.2 vs 264.4", "about 20 s on 60,000 codes",
                 "2.6 bits/dim", "1,209 MB peak RSS", "the short run's test loss 9% worse", "ran at 0.79x",
                 "it came out 2.5x to 16x too large", "where it was measured to help", "perplexity 1.0",
                 "AUROC 0.93", "takes ~6 s each", "1.04-1.2x the throughput of 1"]:
        assert check(text), text


def test_the_patterns_leave_maths_and_defaults_alone():
    for text in ["Adam 1e-3 with beta_1 = 0.5, beta_2 = 0.9", "commitment 0.25, the paper's", "K = 128 codes",
                 "sigma^2 = VARIANCE_MIN + exp(clip(r, LOG_VAR_MIN, LOG_VAR_MAX))", "1 / (12 * 255^2)",
                 "Tomczak & Welling 2018, K = 500 on MNIST", "a 15x15 grid of 28x28 images", "3x the forward FLOPs",
                 "density x w = 1.38 at sigma^2 = VARIANCE_MIN", "bits/dim = nats / (D ln 2)", "in nats: float64 (n,)",
                 "1 of a vqvae's prior", "chosen by measurement: docs/performance.md", "Burda et al. 2016",
                 "(n, H, W, C) in [0, 1]", "a 10-component mixture", "seed + 1 for the test split", "2 ** len(filters)",
                 "scaled by 255", "8-bit pixels", "PSNR = 10 log10(1 / MSE)", "50k Inception samples"]:
        assert not check(text) - ({"measurement without its page"} if "docs/" in text else set()), text


if __name__ == "__main__":
    for file, line, phrase, name in library_figures(sys.argv[1] if len(sys.argv) > 1 else LIBRARY):
        print(f"{file}:{line}: {phrase}  [{name}]")
