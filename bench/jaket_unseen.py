"""JAKET's pre-trained LM1 + knowledge module on graphs they never saw, against its ablations
(CPU-sized).

Run (from the repository root; pin one invocation per core with `taskset -c N`):
  KGJAX_DATA_DIR=../shared/data python bench/jaket_unseen.py --tasks=wn18rr_1pct \
      --out=bench/results/jaket_unseen_wn18rr
  kgjax split --dataset=fb15k237 --out=runs/fb15k237_inductive   # 10% of entities held out
  KGJAX_DATA_DIR=../shared/data python bench/jaket_unseen.py --tasks=fb15k237_inductive_lp \
      --out=bench/results/jaket_unseen_inductive

Tasks (each a `kgjax train --config=configs/jaket_km.py:<row>` run per system and seed):
  wn18rr_1pct, wn18rr_10pct  WordNet lexname classification of WN18RR's synsets from 1% (10%)
      of their labels, relation prediction alongside (part 1's transfer rows): a graph, a
      vocabulary and relations none of the systems was pre-trained on.
  fb15k237_inductive_lp  link prediction on the inductive FB15k-237 split (`kgjax split`):
      test triples each have one end among 1,454 entities held out of the training graph,
      embedded from their descriptions by the system's LM1 and passed through its knowledge
      module. Every pre-training here reads only the split's seen part (a folder this script
      writes: the split's train and valid triples, the description folders, the entities'
      Freebase domains): the held-out entities, their descriptions and the mentions of them
      never enter it.

Systems (the issue's ablations, on the same task data and fine-tuning budget):
  minilm  plain MiniLM: E^(0) from all-MiniLM-L6-v2's LM1, a fresh knowledge module
  km      MiniLM + a knowledge module pre-trained on a graph alone (`configs/jaket_km.py:
          fb15k237`; part 1): E^(0) from MiniLM, the module's layers carried over
  mlm     MiniLM after continued masked-LM pre-training on the same linked texts and budget as
          JAKET (`configs/jaket.py:fb15k237_mlm` / `fb15k237_seen_mlm`): E^(0) from its LM1,
          a fresh knowledge module
  jaket   the joint pre-training (`configs/jaket.py:fb15k237` / `fb15k237_seen`): E^(0) from
          its LM1 (`kgjax export`), its knowledge module's layers carried over
The WN18RR tasks read the FB15k-237 pre-training runs of bench/jaket_downstream.py (runs/
jaket_fb15k237{,_mlm}_s<seed>) and of bench/jaket_km.py (runs/bench_jaket_km/
fb15k237_full_s<seed>), and take minilm and km from bench/jaket_km.py's transfer runs, the
same commands (runs/bench_jaket_km/wn18rr_1pct_{scratch,from_fb15k237}_s<seed>). On the
inductive split every system reads FB15k-237's descriptions (StAR's), E^(0) and corpus alike.
Runs this
script starts live under --workdirs; an invocation skips what has finished and resumes the
rest.

Writes <out>.{json,md} (mean ± sample standard deviation over seeds) and appends every
finished run to <out>.runs.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import numpy as np

from common import finished_results, machine, read_runs_log, write_results

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KM_CONFIG = os.path.join(REPO, "configs", "jaket_km.py")
JAKET_CONFIG = os.path.join(REPO, "configs", "jaket.py")
SYSTEMS = ("minilm", "km", "mlm", "jaket")
# FB15k-237's descriptions (StAR's "Name -- first sentence"), named: the seen-graph folder
# this script writes carries no split.json to find the default by.
STAR = ("--config.memory.source=star",)
# task: (configs/jaket_km.py row, what its table shows)
TASKS = {
    "wn18rr_1pct": ("wn18rr_1pct", "category"),
    "wn18rr_10pct": ("wn18rr_10pct", "category"),
    "fb15k237_inductive_lp": ("fb15k237_lp", "link"),
}
COLUMNS = {
    "category": (
        ("held-out category acc", "category/held_out", "accuracy"),
        ("relation acc (test)", "relation_prediction/test", "accuracy"),
        ("relation MRR (test)", "relation_prediction/test", "mrr"),
    ),
    "link": (
        ("MRR (test)", "link_prediction/test", "mrr"),
        ("Hits@1", "link_prediction/test", "hits@1"),
        ("Hits@10", "link_prediction/test", "hits@10"),
        ("MRR (valid, seen)", "link_prediction/valid", "mrr"),
    ),
}


def run_kgjax(arguments: list[str], workdir: str) -> dict:
    """`kgjax train ...` into `workdir` unless it has finished; its results (wall seconds of
    this call added when it ran)."""
    results = finished_results(workdir)
    if results is None:
        started = time.perf_counter()
        command = [sys.executable, "-m", "kgjax.cli", "train", *arguments]
        subprocess.run([*command, f"--workdir={workdir}", "--noprogress"], check=True, cwd=REPO)
        results = finished_results(workdir)
        results["wall_seconds"] = round(time.perf_counter() - started, 1)
    return results


def exported_lm(workdir: str, exports: str) -> str:
    """The language model of the `jaket` run in `workdir` as a model folder (written once)."""
    out = os.path.join(exports, os.path.basename(os.path.normpath(workdir)))
    if not os.path.isfile(os.path.join(out, "config.json")):
        subprocess.run(
            [sys.executable, "-m", "kgjax.cli", "export", f"--workdir={workdir}", f"--out={out}"],
            check=True,
            cwd=REPO,
        )
    return out


def write_seen_graph(split: str, out: str) -> str:
    """The seen part of the inductive split `split` as a dataset folder of its own: train.txt
    and valid.txt (every triple among seen entities), test.txt a copy of valid.txt (the
    pre-training runs report relation prediction on it; nothing held out is read), the
    description folders linked, and categories.tsv (FB15k-237's Freebase domains)."""
    from kgjax.data import catalog, categories, descriptions  # noqa: PLC0415  (this task's)

    marker = os.path.join(out, "categories.tsv")
    if os.path.isfile(marker):
        return out
    os.makedirs(out, exist_ok=True)
    for name, source in (("train", "train"), ("valid", "valid"), ("test", "valid")):
        shutil.copyfile(os.path.join(split, f"{source}.txt"), os.path.join(out, f"{name}.txt"))
    for folder in ("kg-bert", "star", "wikidata"):
        target = os.path.join(os.path.abspath(split), folder)
        if os.path.isdir(target) and not os.path.exists(os.path.join(out, folder)):
            os.symlink(target, os.path.join(out, folder))
    full = catalog.local_folder("fb15k237")
    names = list(descriptions.read_key_text_file(full / "kg-bert" / "entity2text.txt"))
    labels = categories.load_categories("fb15k237", names)
    lines = [
        f"{name}\t{labels.names[label]}\n"
        for name, label in zip(names, labels.labels, strict=True)
        if label >= 0
    ]
    temporary = pathlib.Path(marker + ".tmp")
    temporary.write_text("".join(lines))
    temporary.rename(marker)  # last: a folder with categories.tsv is complete
    return out


def pretraining(system: str, seed: int, task: str, args) -> tuple[str | None, str | None]:
    """(model folder for E^(0) or None for MiniLM, knowledge-module run for init_from or None)
    of `system`, running its pre-training first where needed."""
    if system == "minilm":
        return None, None
    inductive = task == "fb15k237_inductive_lp"
    if system == "km":
        if not inductive:
            return None, os.path.join(args.km_workdirs, f"fb15k237_full_s{seed}")
        seen = write_seen_graph(args.split, args.split + "_seen")
        workdir = os.path.join(args.workdirs, f"jaket_km_fb15k237_seen_s{seed}")
        run_kgjax(
            [
                f"--config={KM_CONFIG}:fb15k237", f"--config.seed={seed}",
                f"--config.data.path={seen}", "--config.categories.source=file",
                f"--config.categories.path={seen}/categories.tsv", *STAR,
            ],
            workdir,
        )  # fmt: skip
        return None, workdir
    row = "fb15k237_seen" if inductive else "fb15k237"
    row += "_mlm" if system == "mlm" else ""
    workdir = os.path.join(args.workdirs, f"jaket_{row}_s{seed}")
    flags = [f"--config={JAKET_CONFIG}:{row}", f"--config.seed={seed}"]
    if inductive:
        seen = write_seen_graph(args.split, args.split + "_seen")
        flags += [
            f"--config.data.path={seen}",
            f"--config.categories.path={seen}/categories.tsv",
            *STAR,
        ]
    run_kgjax(flags, workdir)
    encoder = exported_lm(workdir, os.path.join(args.workdirs, "jaket_lm"))
    return encoder, (workdir if system == "jaket" else None)


def task_run(task: str, system: str, seed: int, args) -> dict:
    row, _ = TASKS[task]
    encoder, init_from = pretraining(system, seed, task, args)
    flags = [f"--config={KM_CONFIG}:{row}", f"--config.seed={seed}"]
    if task == "fb15k237_inductive_lp":
        flags += [f"--config.data.path={args.split}", "--config.eval_every_steps=2000", *STAR]
    if encoder:
        flags.append(f"--config.memory.encoder={encoder}")
    if init_from:
        flags.append(f"--config.model.init_from={init_from}")
    # minilm and km on WN18RR are bench/jaket_km.py's transfer runs (the same commands). (Its
    # inductive runs read the entities' bare names, the default of a folder not named
    # fb15k-237 before `descriptions.dataset_kind`: not these.)
    kept = {
        ("wn18rr_1pct", "minilm"): "wn18rr_1pct_scratch",
        ("wn18rr_1pct", "km"): "wn18rr_1pct_from_fb15k237",
        ("wn18rr_10pct", "minilm"): "wn18rr_10pct_scratch",
        ("wn18rr_10pct", "km"): "wn18rr_10pct_from_fb15k237",
    }.get((task, system))
    if kept:
        workdir = os.path.join(args.km_workdirs, f"{kept}_s{seed}")
    else:
        workdir = os.path.join(args.workdirs, f"unseen_{task}_{system}_s{seed}")
    return run_kgjax(flags, workdir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="wn18rr_1pct")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--workdirs", default=os.path.join(REPO, "runs"))
    parser.add_argument("--km_workdirs", default=os.path.join(REPO, "runs", "bench_jaket_km"))
    parser.add_argument("--split", default=os.path.join(REPO, "runs", "fb15k237_inductive"))
    parser.add_argument("--out", default=os.path.join(REPO, "bench", "results", "jaket_unseen"))
    parser.add_argument("--report_only", action="store_true", help="tabulate the log only")
    args = parser.parse_args()
    tasks, systems = args.tasks.split(","), args.systems.split(",")
    for given, known in ((tasks, TASKS), (systems, SYSTEMS)):
        unknown = [name for name in given if name not in known]
        if unknown:
            parser.error(f"unknown {unknown}; one of {list(known)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    if "fb15k237_inductive_lp" in tasks and not os.path.isfile(
        os.path.join(args.split, "split.json")
    ):
        sys.exit(f"{args.split}: no inductive split; `kgjax split --dataset=fb15k237 --out=...`")

    log_path = f"{args.out}.runs.jsonl"
    os.makedirs(os.path.dirname(os.path.abspath(log_path)) or ".", exist_ok=True)
    done = read_runs_log(log_path, ("task", "system", "seed"))
    for task in tasks:
        for seed in seeds:
            for system in systems:
                if (task, system, seed) in done or args.report_only:
                    continue
                results = task_run(task, system, seed, args)
                entry = {
                    "task": task, "system": system, "seed": seed,
                    "results": {k: v for k, v in results.items() if k not in ("categories", "budgets")},
                }  # fmt: skip
                done[(task, system, seed)] = entry
                with open(log_path, "a") as f:
                    f.write(json.dumps(entry) + "\n")
                print(json.dumps({"task": task, "system": system, "seed": seed}), flush=True)

    meta = {
        **machine(),
        "command": f"python bench/jaket_unseen.py --tasks={args.tasks} --systems={args.systems} --seeds={args.seeds}",
    }
    table, lines = [], []
    for task in tasks:
        _, kind = TASKS[task]
        columns = COLUMNS[kind]
        lines += [
            f"### {task}",
            "",
            "| system | seeds | " + " | ".join(label for label, _, _ in columns) + " | train s |",
            "|---|---|" + "---|" * (len(columns) + 1),
        ]
        for system in systems:
            runs = [done[key]["results"] for key in sorted(done) if key[:2] == (task, system)]
            if not runs:
                continue
            row = {"task": task, "system": system, "seeds": len(runs)}
            cells = []
            for label, section, metric in columns:
                values = [r[section][metric] for r in runs]
                spread = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
                row[label] = (float(np.mean(values)), spread)
                cells.append(f"{row[label][0]:.3f} ± {spread:.3f}")
            row["train_seconds"] = float(np.mean([r["train_seconds"] for r in runs]))
            wall = f"{row['train_seconds']:.0f}"
            table.append(row)
            lines.append(f"| {system} | {len(runs)} | " + " | ".join(cells) + f" | {wall} |")
        lines.append("")
    lines.append(
        f"Mean ± sample standard deviation over seeds. Train seconds: the fine-tuning steps "
        f"(data, E^(0) encoding, compilation and evaluation not included). "
        f"{meta['device']} ({meta['cpu_count']} cores, one per run), jax {meta['jax']}; "
        f"`{meta['command']}`"
    )
    write_results(args.out, {"meta": meta, "table": table}, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
