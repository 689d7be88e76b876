"""Several runs side by side: each evaluated, then one table with a sample grid per row."""

import dataclasses
import json
import os
import shutil

from tfvae import api
from tfvae.errors import ArgumentError
from tfvae.evaluation.evaluate import evaluate_run
from tfvae.evaluation.report import SAMPLER_COLUMNS, compare_markdown, reconstruction_row, table_row, write_json


def compare_runs(workdirs, options, log=print):
    """Evaluates each run (writing its own eval.json/report.md) and writes one comparison report.

    The comparison (``compare.md``, ``compare.json`` and one sample grid per row) goes to ``options.output``,
    default ``<parent of the first run>/compare``.

    Returns:
      (report path, list of table rows).
    """
    if not workdirs:
        raise ArgumentError("workdirs", "no workdirs given: comparing needs at least one run directory")
    workdirs = [api.load(w).workdir for w in workdirs]  # resolved, and each a run: fail before any long step
    out_dir = options.output or os.path.join(os.path.dirname(os.path.abspath(workdirs[0])), "compare")
    os.makedirs(out_dir, exist_ok=True)
    shared, rows, all_results = {}, [], []
    for i, workdir in enumerate(workdirs):
        one = dataclasses.replace(options, output="")
        results = evaluate_run(workdir, one, log=log, shared=shared)
        all_results.append(results)
        for sampler in options.samplers:
            entry = results["samplers"][sampler]
            grid = f"{i:02d}-{results['name']}-{sampler}.png"
            shutil.copyfile(entry["grid"], os.path.join(out_dir, grid))
            rows.append(table_row(results, sampler, grid))
    rows += [row for row in map(reconstruction_row, all_results) if row]  # each run's floor, after the samplers
    floors = {json.dumps(r["floor"], sort_keys=True): r for r in all_results if r["floor"]}
    for r in floors.values():
        rows.append({"run": f"real test vs real train ({r['run']['dataset']})", "model": "-", "sampler": "-",
                     **{k: r["floor"].get(k) for k, _, _ in SAMPLER_COLUMNS}, "grid": ""})
    path = os.path.join(out_dir, "compare.md")
    with open(path, "w") as f:
        f.write(compare_markdown(rows, all_results, options))
    write_json(os.path.join(out_dir, "compare.json"), {"rows": rows, "runs": all_results})
    return path, rows
