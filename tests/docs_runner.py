"""Runs the code blocks of the documentation as tests/test_docs.py plans them (its docstring and docs/design.md
state the convention): ``python tests/docs_runner.py PLAN.json RESULTS.json``.

One process runs every page, so TensorFlow starts once: each script is loaded with `runpy` and called through its
own ``main`` after its own absl flags have parsed the command, and its flags are removed again before the next
script defines its own (train.py, sample.py and evaluate.py share flag names such as ``--workdir``).
"""

import configparser
import contextlib
import gc
import io
import json
import os
import re
import shlex
import shutil
import sys
import time
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import tensorflow as tf  # noqa: E402
from absl import flags  # noqa: E402

from tests import script_runner  # noqa: E402  (also imports pyplot and scikit-learn, which sample.py expects)
from tfvae.commands import cli  # noqa: E402

gc.freeze()  # the imports above live to the end: the garbage collector stops scanning them (tests/conftest.py)

FLAGS = flags.FLAGS
SCRIPTS = ("train.py", "sample.py", "evaluate.py")
SEPARATORS = {"&&", "||", ";", "|", "&"}
UNPARSABLE = "<unparsable>"
# evaluate.py on a tiny run: a handful of images and importance samples, a 1-epoch feature classifier.
EVALUATE_OVERRIDES = ["--num_samples=4", "--num_images=16", "--sample_count=64", "--classifier_epochs=1",
                      "--elbo_samples=2", "--batch_size=256"]


# Python blocks run as written but for their epochs: `epochs=30` runs as `epochs=1` (as train.py's --epochs=1).
EPOCHS = re.compile(r"\bepochs=\d+")

TRAINED = {}  # a train.py config (flags and overrides) -> (the page, the run directory it wrote in a fresh folder)


class Failed(Exception):
    """A command or block that does not do what the page says."""


def setup_cfg():
    parser = configparser.ConfigParser()
    parser.read(os.path.join(REPO, "setup.cfg"))
    requires = parser["options"]["install_requires"]
    extras = {name: value for name, value in parser["options.extras_require"].items()}
    return requires, extras


def _has_import_contract():
    parser = configparser.ConfigParser()
    parser.read(os.path.join(REPO, "setup.cfg"))
    return "importlinter" in parser and any(section.startswith("importlinter:contract:") for section in parser)


def requirement_names(text):
    return {re.split(r"[<>=!\[ ;]", line.strip())[0].lower() for line in text.splitlines()
            if line.strip() and not line.strip().startswith("#")}


def statements(block):
    """The commands of a shell block: continuation lines joined, comments dropped, split at && || ; | &."""
    text = block.replace("\\\n", " ")
    for line in text.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        tokens = list(lexer)
        command = []
        for token in tokens + [";"]:
            if token in SEPARATORS:
                if command:
                    yield command
                command = []
            else:
                command.append(token)


class Scripts(script_runner.Scripts):
    """Loads one script at a time into this process, with its own absl flags (tests/script_runner.py)."""

    def parse(self, argv):
        """Parses argv with the loaded script's flags; an unknown flag or a bad value raises Failed."""
        try:
            return super().parse(argv)
        except flags.Error as e:
            raise Failed(f"its flags do not parse: {e}") from None


def run_command(tokens, scripts, data, page_name):
    """Checks or runs one command; returns how (a short phrase). Raises Failed."""
    env = {}
    while tokens and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", tokens[0]):
        key, value = tokens.pop(0).split("=", 1)
        env[key] = value
    if not tokens:
        raise Failed("an environment assignment without a command")
    program, args = tokens[0], tokens[1:]
    if program == UNPARSABLE:
        raise Failed(f"the block does not parse as shell: {args[0]}")
    requires, extras = setup_cfg()
    if program == "pip":
        if args[:1] != ["install"]:
            raise Failed("only `pip install` is documented")
        for arg in args[1:]:
            match = re.fullmatch(r"\.(?:\[(.*)\])?", arg)
            if match:
                missing = {e for e in (match.group(1) or "").split(",") if e} - set(extras)
                if missing:
                    raise Failed(f"setup.cfg has no extra {sorted(missing)}")
        return "shape only: installs (its extras exist in setup.cfg)"
    if program == "apt-get":
        if args == ["update"]:
            return "shape only: refreshes the package lists"
        if args[:1] != ["install"] or len(args) < 2:
            raise Failed("expected `apt-get update` or `apt-get install PACKAGE...`")
        return "shape only: installs system packages"
    if program == "ruff":
        if "ruff" not in requirement_names(extras["test"]):
            raise Failed("ruff is not in the test extra")
        return "shape only: the linter, which CI runs"
    if program == "lint-imports":
        if "import-linter" not in requirement_names(extras["test"]) or not _has_import_contract():
            raise Failed("lint-imports needs import-linter in the test extra and an [importlinter] contract")
        return "shape only: the floors' import contract, which CI checks"
    if program == "tensorboard":
        if "tensorboard" not in requirement_names(requires) or "--logdir" not in " ".join(args):
            raise Failed("expected `tensorboard --logdir DIR`, with tensorboard a dependency")
        return "shape only: starts a server"
    if program == "tfvae":  # the installed command: `tfvae train ARGS` runs train.py's code (tfvae.commands)
        if not args or args[0] in cli.HELP:
            return "shape only: prints the commands"
        if args[0] not in cli.COMMANDS:
            raise Failed(f"tfvae has no command {args[0]!r} (tfvae/commands/cli.py)")
        program, args = "python", [f"{args[0]}.py", *args[1:]]
    if program not in ("python", "python3"):
        raise Failed(f"no rule to check `{program}` (tests/docs_runner.py)")
    if args[:2] == ["-m", "pytest"]:
        if "pytest" not in requirement_names(extras["test"]):
            raise Failed("pytest is not in the test extra")
        return "shape only: the test suite, which CI runs"
    if not args or not os.path.isfile(os.path.join(REPO, args[0])):
        raise Failed(f"no such script {args[:1]}")
    script, argv = args[0], args[1:]
    path = os.path.join(REPO, script)
    namespace = scripts.load(path)
    if script.startswith("benchmarks/"):
        scripts.parse([script, *argv])
        return "flags parsed by the benchmark's own definitions; not run (benchmarks take minutes)"
    if script not in SCRIPTS:
        raise Failed(f"no rule to check `python {script}`")
    if any(a in ("--help", "--helpfull", "--helpshort") for a in argv):
        return "shape only: prints the flags' help"
    scripts.parse([script, *argv])  # exactly as written
    if "TF_CONFIG" in env:
        from tfvae import cluster

        cluster.parse_tf_config(env["TF_CONFIG"])
        return "flags parsed, TF_CONFIG checked; not run (it needs the hosts it names)"
    if env:
        raise Failed(f"no rule for the environment {sorted(env)}")
    if script == "train.py":
        data_dir = data["folder_dir"] if FLAGS.dataset == "folder" else data["mnist_dir"]
        # Capping the examples also caps the test images (to 64), which --classes would then filter to none.
        cap = [] if FLAGS.classes else ["--max_examples=64"]
        overrides = ["--epochs=1", *cap, "--batch_size=32", f"--data_dir={data_dir}"]
        if FLAGS.model == "vqvae":
            overrides.append("--prior_epochs=1")  # its PixelCNN prior: one epoch too
    elif script == "evaluate.py":
        overrides = list(EVALUATE_OVERRIDES)
        if FLAGS.ood_dataset:
            overrides.append(f"--ood_data_dir={data['folder_dir' if FLAGS.ood_dataset == 'folder' else 'mnist_dir']}")
        if FLAGS.mode == "score":
            overrides.append(f"--data_dir={data['folder_dir']}")
    else:
        overrides = []
    remaining = scripts.parse([script, *argv, *overrides])
    if script == "train.py":
        config = namespace["config_from_flags"]()
        workdir, key = os.path.abspath(config.workdir), config.to_json()  # relative paths: the same in every folder
        fresh = not os.path.exists(workdir)
        if fresh and key in TRAINED:
            shutil.copytree(TRAINED[key][1], workdir)  # the same command, on the same data, from a fresh folder
            with open(os.path.join(os.path.dirname(workdir), "latest"), "w") as f:
                f.write(os.path.basename(workdir) + "\n")
            return f"the same config ran on tiny data for {TRAINED[key][0]}; its run directory is copied"
    # A 2-step run spends most of its time tracing its train step: train.py's steps run eagerly here (about 20 s
    # of the page runs). The compiled steps of each model, loss, network and strategy are tested elsewhere.
    tf.config.run_functions_eagerly(script == "train.py")
    try:
        code = namespace["main"](remaining)
    finally:
        tf.config.run_functions_eagerly(False)
    if code:
        raise Failed(f"exit status {code}")
    if script == "train.py" and fresh:
        TRAINED.setdefault(key, (page_name, workdir))
    return "ran on tiny data" + (f" ({' '.join(overrides)})" if overrides else "")


def run_page(page, steps, scripts, data):
    results = []
    os.chdir(page["cwd"])
    failed = False
    for step in steps:
        result = {"line": step["line"], "lang": step["lang"], "code": step["code"]}
        results.append(result)
        if failed:
            result.update(status="skipped", how="not run: a block before it failed")
            continue
        out, start = io.StringIO(), time.perf_counter()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                if step["lang"] == "python":
                    code = EPOCHS.sub("epochs=1", step["code"])
                    tf.config.run_functions_eagerly(code != step["code"])  # a few steps: tracing would be most
                    try:
                        exec(compile(code, f"{page['name']}:{step['line']}", "exec"), {"__name__": "__main__"})
                    finally:
                        tf.config.run_functions_eagerly(False)
                    result["how"] = "executed" + (" with epochs=1, eagerly" if code != step["code"] else "")
                else:
                    result["how"] = run_command(list(step["tokens"]), scripts, data, page["name"])
            result["status"] = "ok"
        except Failed as e:
            result.update(status="failed", how=str(e))
        except BaseException as e:  # noqa: BLE001 (a SystemExit or a traceback: report it with the page's line)
            result.update(status="failed", how=f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=-3)}")
        result["output"] = out.getvalue()[-3000:]
        result["seconds"] = round(time.perf_counter() - start, 1)
        failed = failed or result["status"] == "failed"
    return results


def main(plan_path, results_path):
    with open(plan_path) as f:
        plan = json.load(f)
    # load_dataset("mnist") in a python block finds the tiny digits (512 train / 128 test) in this Keras cache.
    keras_home = os.path.join(os.path.dirname(os.path.abspath(results_path)), "keras_home")
    os.makedirs(os.path.join(keras_home, "datasets"), exist_ok=True)
    shutil.copy(os.path.join(plan["data"]["mnist_dir"], "mnist.npz"), os.path.join(keras_home, "datasets"))
    os.environ["KERAS_HOME"] = keras_home
    scripts = Scripts()
    results = {}
    for page in plan["pages"]:
        steps = []
        for block in page["blocks"]:
            if block["lang"] == "python":
                steps.append({"line": block["line"], "lang": "python", "code": block["code"]})
            else:
                try:
                    commands = list(statements(block["code"]))
                except ValueError as e:  # e.g. an unclosed quote
                    commands = [[UNPARSABLE, str(e)]]
                for tokens in commands:
                    steps.append({"line": block["line"], "lang": block["lang"], "code": shlex.join(tokens),
                                  "tokens": tokens})
        results[page["name"]] = run_page(page, steps, scripts, plan["data"])
    with open(results_path, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:])
