"""Inductive link prediction: text-initialised RotatE against the plain one, same budget.

Run (from the repository root; CPU is fine at these sizes, about an hour for the default):
  export KGJAX_DATA_DIR=../shared/data
  python bench/inductive.py
  python bench/inductive.py --runs=fb15k237_inductive,15000 --out=bench/results/inductive_15k

Each `--runs` entry is a `configs/text_rotate.py` argument, trained twice: as the config
says (`text.init=text`: the entity table starts from the MiniLM description vectors) and
with `--config.text.init=uniform` (the plain reference init). Both end with the inductive
evaluation of `kgjax.evaluation.inductive`: the test split ranked with the parameters as
trained, and again with every entity absent from train embedded from its text by a ridge
map fitted on the trained entities. `fb15k237_inductive` is `kgjax split --dataset=fb15k237`
(10% of the entities held out with all their triples, seed 0; made here if missing).

Workdirs go under `--workdir_root` (runs/inductive): a killed invocation resumes where it
stopped, and a finished run is read back, not trained again. Writes `<out>.json` (every
run's results.json blocks and the machine) and `<out>.md` (the README's table).
"""

from __future__ import annotations

import argparse
import json
import os
import time

from kgjax import config as config_lib
from kgjax.data import inductive as inductive_split
from kgjax.data.catalog import local_folder
from kgjax.train.kge.trainer import train

from common import finished_results, machine, write_results

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INITS = ("text", "uniform")
SPLITS = {"fb15k237_inductive": "fb15k237", "umls_inductive": "umls"}


def text_rotate_config(arg: str):
    return config_lib.from_file(os.path.join(REPO, f"configs/text_rotate.py:{arg}"))


def ensure_split(name: str) -> None:
    """Writes data/<name> with `kgjax split`'s defaults unless it is there."""
    out = os.path.join(REPO, "data", name)
    if os.path.isfile(os.path.join(out, inductive_split.MANIFEST)):
        return
    source = local_folder(SPLITS[name])
    if source is None:
        raise SystemExit(f"{SPLITS[name]}: no local copy; set KGJAX_DATA_DIR")
    inductive_split.make_split(source, out)


def run_one(arg: str, init: str, workdir_root: str) -> dict:
    config = text_rotate_config(arg)
    config.text.init = init
    config.command += f" --config.text.init={init}"
    workdir = os.path.join(workdir_root, f"{arg.replace(',', '_')}_{init}")
    finished = finished_results(workdir)
    if finished:
        return {"workdir": workdir, "wall_seconds": None, "results": finished}
    started = time.perf_counter()
    results = train(config, workdir, progress=False)
    return {"workdir": workdir, "wall_seconds": time.perf_counter() - started, "results": results}


def summary_row(arg: str, init: str, run: dict) -> dict:
    results = run["results"]
    block = results["inductive"]
    row = {
        "run": arg,
        "init": init,
        "steps": results["steps"],
        "steps_per_second": results["steps_per_second"],
        "wall_seconds": run["wall_seconds"],
        "unseen_entities_test": block["unseen_entities"]["test"],
        "test_triples": block["num_triples"]["test"],
        "test_unseen_triples": block["num_triples"]["test_unseen"],
        "text_map_r2": block["text_map"]["r2"],
    }
    for name in ("as_trained", "from_text"):
        for split in ("test", "test_unseen"):
            metrics = block.get(name, {}).get(split, {}).get("both")
            if metrics:
                for key in ("mrr", "hits@1", "hits@10"):
                    row[f"{name}/{split}/{key}"] = metrics[key]
    return row


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        "| run | init | steps | test triples (with an unseen end) | unseen entities "
        "| as trained: MRR unseen / all | from text: MRR unseen / all "
        "| from text: Hits@10 unseen / all |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def pair(row, name, key):
        unseen, whole = row.get(f"{name}/test_unseen/{key}"), row.get(f"{name}/test/{key}")
        return "n/a" if unseen is None else f"{unseen:.3f} / {whole:.3f}"

    for row in rows:
        lines.append(
            f"| `{row['run']}` | {row['init']} | {row['steps']:,} | {row['test_triples']:,} "
            f"({row['test_unseen_triples']:,}) | {row['unseen_entities_test']:,} "
            f"| {pair(row, 'as_trained', 'mrr')} | {pair(row, 'from_text', 'mrr')} "
            f"| {pair(row, 'from_text', 'hits@10')} |"
        )
    lines += [
        "",
        f"{meta['device']} ({meta['cpu_count']} cores), jax {meta['jax']}, Python "
        f"{meta['python']}; `{meta['command']}`",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="fb15k237_inductive,fb15k237,wn18rr")
    parser.add_argument("--workdir_root", default=os.path.join(REPO, "runs", "inductive"))
    parser.add_argument("--out", default=os.path.join(REPO, "bench", "results", "inductive"))
    args = parser.parse_args()

    # Entries are config arguments, which may hold commas themselves (`name,15000`): split on
    # the names the config knows.
    runs = []
    for part in args.runs.split(","):
        if part.isdigit() or part == "full":
            runs[-1] += f",{part}"
        else:
            runs.append(part)
    rows, full = [], {}
    for arg in runs:
        if arg.split(",")[0] in SPLITS:
            ensure_split(arg.split(",")[0])
        for init in INITS:
            run = run_one(arg, init, args.workdir_root)
            full[f"{arg}/{init}"] = run
            rows.append(summary_row(arg, init, run))
            print(json.dumps(rows[-1]), flush=True)

    meta = {**machine(), "command": f"python bench/inductive.py --runs={args.runs}"}
    table = markdown(rows, meta)
    write_results(args.out, {"meta": meta, "rows": rows, "runs": full}, table)
    print(table)


if __name__ == "__main__":
    main()
