"""JAKET's knowledge module on seen and unseen graphs, with its ablations (CPU-sized).

Run (each group a separate invocation; pin one per core with `taskset -c N`):
  python bench/jaket_km.py --rows=wn18rr --out=bench/results/jaket_km_wn18rr
  python bench/jaket_km.py --rows=fb15k237 --out=bench/results/jaket_km_fb15k237
  python bench/jaket_km.py --rows=wn18rr_1pct,wn18rr_10pct --variants=scratch,from_fb15k237 \
      --out=bench/results/jaket_km_transfer   # after the fb15k237 group's `full` runs
  python bench/jaket_km.py --rows=wn18rr_lp \
      --variants=scratch,from_pretrained,random_init,no_gat,mean_agg \
      --out=bench/results/jaket_km_wn18rr_lp  # from_pretrained: after the wn18rr group
  kgjax split --dataset=fb15k237 --out=runs/fb15k237_inductive   # 10% of entities held out
  python bench/jaket_km.py --rows=fb15k237_lp --variants=scratch --label=_inductive \
      --set=data.path=$PWD/runs/fb15k237_inductive --set=eval_every_steps=2000 \
      --out=bench/results/jaket_km_fb15k237_inductive_lp

Trains `configs/jaket_km.py:<row>` once per seed and per variant, each in its own workdir
under --workdirs (kept: a killed grid run again with the same arguments resumes the
unfinished run from its checkpoint and skips the finished ones; the transfer variant reads
the FB15k-237 `full` run of the same seed from there). Variants, all on the same data, steps
and sampled subgraphs:

  full           the row as configured (text E^(0) from MiniLM's first layers, 2 GAT layers)
  random_init    memory.init=random: standard-normal E^(0) and R, no text
  no_gat         model.num_layers=0: the heads read E^(0) directly
  mean_agg       model.aggregation=mean: GCN-style mean over neighbours, no attention
  scratch        the row from a fresh knowledge module (no pre-training)
  from_fb15k237  model.init_from the FB15k-237 `full` run of the same seed: the GAT layers
                 and the inverse-relation map carry over; the heads are the new graph's
  from_pretrained  model.init_from the `full` run of the same seed of the row's own graph
                 (wn18rr_lp from wn18rr): link prediction after the pre-training tasks

Writes <out>.{json,md} (mean and sample standard deviation over the seeds of held-out
category accuracy, relation prediction on test, wall seconds and steps/s) and appends every
finished run to <out>.runs.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

from common import finished_results, machine, read_runs_log, write_results

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "configs", "jaket_km.py")
VARIANTS = {
    "full": [],
    "random_init": ["--config.memory.init=random"],
    "no_gat": ["--config.model.num_layers=0"],
    "mean_agg": ["--config.model.aggregation=mean"],
    "scratch": [],
    "from_fb15k237": None,  # init_from: filled per seed
    "from_pretrained": None,
}
# What a row of the table shows: (label, results key, metric).
COLUMNS = (
    ("held-out category acc", "category/held_out", "accuracy"),
    ("majority", "category/held_out", "majority_accuracy"),
    ("relation acc (test)", "relation_prediction/test", "accuracy"),
    ("relation MRR (test)", "relation_prediction/test", "mrr"),
    ("link MRR (test)", "link_prediction/test", "mrr"),
    ("link Hits@1", "link_prediction/test", "hits@1"),
    ("link Hits@10", "link_prediction/test", "hits@10"),
)


def workdir_of(workdirs: str, row: str, variant: str, seed: int) -> str:
    return os.path.join(workdirs, f"{row}_{variant}_s{seed}")


def run_once(
    row: str, variant: str, seed: int, workdirs: str, extra: list[str], label: str = ""
) -> dict:
    """Trains (or resumes) one run in its kept workdir; returns its results.json."""
    workdir = workdir_of(workdirs, row + label, variant, seed)
    results = finished_results(workdir)
    if results is None:
        flags = VARIANTS[variant]
        if flags is None:
            source_row = "fb15k237" if variant == "from_fb15k237" else row.removesuffix("_lp")
            source = workdir_of(workdirs, source_row, "full", seed)
            if finished_results(source) is None:
                sys.exit(f"{variant}: {source} has no finished run; run --rows={source_row} first")
            flags = [f"--config.model.init_from={source}"]
        command = [
            sys.executable, "-m", "kgjax.cli", "train", f"--config={CONFIG}:{row}",
            f"--workdir={workdir}", f"--config.seed={seed}", "--noprogress", *flags, *extra,
        ]  # fmt: skip
        started = time.perf_counter()
        subprocess.run(command, check=True, cwd=REPO)
        wall = time.perf_counter() - started
        results = finished_results(workdir)
        results["wall_seconds"] = round(wall, 1)  # of this call; a resumed run counts its last
    return results


def summarise(runs: list[dict]) -> dict:
    """Mean and sample standard deviation (ddof 1) of each column over the runs."""
    summary = {"seeds": len(runs), "steps": runs[0]["steps"]}
    for label, section, metric in COLUMNS:
        values = [run[section][metric] for run in runs if section in run]
        if values:
            summary[label] = float(np.mean(values))
            summary[f"{label} std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    for key in ("wall_seconds", "steps_per_second"):
        values = [run[key] for run in runs if run.get(key) is not None]
        summary[key] = float(np.mean(values)) if values else None
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="wn18rr")
    parser.add_argument("--variants", default="full,random_init,no_gat,mean_agg")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--set", action="append", default=[], help="key=value config override")
    parser.add_argument("--workdirs", default=os.path.join(REPO, "runs", "bench_jaket_km"))
    parser.add_argument("--out", default=os.path.join(REPO, "bench", "results", "jaket_km"))
    parser.add_argument("--note", default="", help="a sentence for the table's footer")
    parser.add_argument(
        "--label", default="", help="appended to the row's name (its workdirs, its table rows)"
    )
    parser.add_argument("--report_only", action="store_true", help="tabulate the log only")
    args = parser.parse_args()
    variants = args.variants.split(",")
    unknown = [variant for variant in variants if variant not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; one of {list(VARIANTS)}")
    seeds = [int(seed) for seed in args.seeds.split(",")]
    extra = [f"--config.{override}" for override in args.set]

    log_path = f"{args.out}.runs.jsonl"
    os.makedirs(os.path.dirname(os.path.abspath(log_path)) or ".", exist_ok=True)
    done = read_runs_log(log_path, ("row", "variant", "seed"))
    rows = []
    for row in args.rows.split(","):
        for variant in variants:
            runs = []
            for seed in seeds:
                key = (row + args.label, variant, seed)
                if key not in done and args.report_only:
                    continue
                if key not in done:
                    results = run_once(row, variant, seed, args.workdirs, extra, args.label)
                    kept = {k: v for k, v in results.items() if k not in ("categories",)}
                    done[key] = {"row": key[0], "variant": variant, "seed": seed, **kept}
                    with open(log_path, "a") as f:
                        f.write(json.dumps(done[key]) + "\n")
                    print(json.dumps({k: done[key][k] for k in ("row", "variant", "seed")}))
                runs.append(done[key])
            if runs:
                rows.append({"row": row + args.label, "variant": variant, **summarise(runs)})

    meta = {
        **machine(),
        "seeds": seeds,
        "command": f"python bench/jaket_km.py --rows={args.rows} --variants={args.variants} "
        f"--seeds={args.seeds}"
        + (f" --label={args.label}" if args.label else "")
        + "".join(f" --set={override}" for override in args.set),
    }
    # Only the columns some row has: a group trains some of the tasks.
    labels = [label for label, _, _ in COLUMNS if any(label in row for row in rows)]
    lines = [
        "| row | variant | steps | " + " | ".join(labels) + " | wall s | steps/s |",
        "|---|---|---|" + "---|" * (len(labels) + 2),
    ]
    for row in rows:
        cells = []
        for label in labels:
            if label in row:
                cells.append(f"{row[label]:.3f} ± {row[label + ' std']:.3f}")
            else:
                cells.append("n/a")
        wall = f"{row['wall_seconds']:.0f}" if row["wall_seconds"] else "n/a"
        speed = f"{row['steps_per_second']:.1f}" if row["steps_per_second"] else "n/a"
        seeds_note = "" if row["seeds"] == len(seeds) else f" ({row['seeds']} seeds)"
        lines.append(
            f"| `{row['row']}` | {row['variant']}{seeds_note} | {row['steps']} | "
            + " | ".join(cells)
            + f" | {wall} | {speed} |"
        )
    lines.append("")
    lines.append(
        f"Mean ± sample standard deviation over seeds {args.seeds}. Held-out category "
        "accuracy: entities whose labels no run saw, classified after propagating over the "
        "whole training graph; majority: the most frequent pre-training class. Relation "
        "prediction: the true relation's rank among all relations for each test pair, whose "
        "edge is not in the graph. Link prediction: filtered, realistic ranks among all "
        "entities, both sides, the decoder over the whole graph's E^KM. Wall seconds: the `kgjax train` call (data, E^(0) from the "
        f"encoding cache, compile, training, evaluation). {meta['device']} "
        f"({meta['cpu_count']} cores, one per run), jax {meta['jax']}, Python "
        f"{meta['python']}; `{meta['command']}`" + (f" {args.note}" if args.note else "")
    )
    write_results(args.out, {"meta": meta, "rows": rows}, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
