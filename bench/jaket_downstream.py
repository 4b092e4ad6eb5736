"""JAKET's joint pre-training and its FewRel downstream against plain MiniLM (CPU-sized).

Run (from the repository root; pin one invocation per core with `taskset -c N`):
  KGJAX_DATA_DIR=../shared/data python bench/jaket_downstream.py \
      --systems=minilm,km,mlm,jaket --seeds=0,1,2 --out=bench/results/jaket_fewrel

Systems, each evaluated by `kgjax train --config=configs/jaket_fewrel.py` on the same seeded
FewRel episodes (val_wiki; val_nyt and val_pubmed out of domain):
  minilm  plain MiniLM (all-MiniLM-L6-v2), no knowledge, nothing trained (seed-independent)
  km      MiniLM + the knowledge module of a KG-only `jaket_km` run on FB15k-237 (part 1's
          runs/bench_jaket_km/fb15k237_full_s<seed>, from `bench/jaket_km.py --rows=fb15k237`),
          merged at the linked mentions: the LM with KM but no joint pre-training
  mlm     MiniLM after continued masked-LM pre-training on the same linked FB15k-237 texts and
          budget (`configs/jaket.py:fb15k237_mlm`), no knowledge: more text alone
  jaket   the jointly pre-trained language model, knowledge module and memory
          (`configs/jaket.py:fb15k237`), E^KM merged at the linked mentions
Pre-training runs are kept under --workdirs (runs/jaket_<row>_s<seed>) and FewRel runs as
runs/fewrel_<system>_s<seed>; an invocation skips what is finished and resumes what is not.

Writes <out>.{json,md}: FewRel accuracy per set and setting (mean ± sample standard deviation
over seeds; each run's own 95% interval over its episodes is in the runs log), the share of
mentions that got a knowledge vector, and the pre-training runs' held-out language metrics;
every finished run is appended to <out>.runs.jsonl.
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
PRETRAIN = {"mlm": "fb15k237_mlm", "jaket": "fb15k237"}  # system -> configs/jaket.py row
SYSTEMS = ("minilm", "km", "mlm", "jaket")
SETS = ("val_wiki", "val_nyt", "val_pubmed")


def run(command: list[str], workdir: str) -> dict:
    """Runs `kgjax ...` into `workdir` unless it has finished; its results with wall seconds."""
    results = finished_results(workdir)
    if results is None:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "kgjax.cli", *command], check=True, cwd=REPO)
        results = finished_results(workdir)
        results["wall_seconds"] = round(time.perf_counter() - started, 1)
    return results


def pretrain(system: str, seed: int, workdirs: str) -> tuple[str, dict]:
    row = PRETRAIN[system]
    workdir = os.path.join(workdirs, f"jaket_{row}_s{seed}")
    command = [
        "train", f"--config={REPO}/configs/jaket.py:{row}", f"--workdir={workdir}",
        f"--config.seed={seed}", "--noprogress",
    ]  # fmt: skip
    return workdir, run(command, workdir)


def evaluate(system: str, seed: int, args) -> dict:
    flags = []
    if system == "km":
        source = os.path.join(args.km_workdirs, f"fb15k237_full_s{seed}")
        if finished_results(source) is None:
            sys.exit(f"km: {source} has no finished jaket_km run (bench/jaket_km.py)")
        flags = [f"--config.model.km_from={source}"]
    elif system in PRETRAIN:
        source, _ = pretrain(system, seed, args.workdirs)
        flags = [f"--config.model.init_from={source}"]
        if system == "mlm":
            flags.append("--config.model.merge=False")  # its KM was never trained
    workdir = os.path.join(args.workdirs, f"fewrel_{system}_s{seed}")
    command = [
        "train", f"--config={REPO}/configs/jaket_fewrel.py:{args.episodes}",
        f"--workdir={workdir}", "--noprogress", *flags,
    ]  # fmt: skip
    return run(command, workdir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--workdirs", default=os.path.join(REPO, "runs"))
    parser.add_argument("--km_workdirs", default=os.path.join(REPO, "runs", "bench_jaket_km"))
    parser.add_argument("--out", default=os.path.join(REPO, "bench", "results", "jaket_fewrel"))
    parser.add_argument("--report_only", action="store_true", help="tabulate the log only")
    args = parser.parse_args()
    systems = args.systems.split(",")
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown:
        parser.error(f"unknown systems {unknown}; one of {SYSTEMS}")
    seeds = [int(s) for s in args.seeds.split(",")]

    log_path = f"{args.out}.runs.jsonl"
    os.makedirs(os.path.dirname(os.path.abspath(log_path)) or ".", exist_ok=True)
    done = read_runs_log(log_path, ("system", "seed"))
    for system in systems:
        for seed in [0] if system == "minilm" else seeds:
            if (system, seed) in done or args.report_only:
                continue
            results = evaluate(system, seed, args)
            entry = {"system": system, "seed": seed, "fewrel": results}
            if system in PRETRAIN:
                workdir, pretraining = pretrain(system, seed, args.workdirs)
                entry["pretraining"] = {
                    k: v for k, v in pretraining.items() if k not in ("categories", "budgets")
                }
            done[(system, seed)] = entry
            with open(log_path, "a") as f:
                f.write(json.dumps(entry) + "\n")
            print(json.dumps({"system": system, "seed": seed}), flush=True)

    settings = None
    table = []
    for system in systems:
        runs = [done[key] for key in sorted(done) if key[0] == system]
        if not runs:
            continue
        row = {"system": system, "seeds": [r["seed"] for r in runs]}
        for name in SETS:
            if name not in runs[0]["fewrel"]:
                continue
            settings = settings or [
                k for k in runs[0]["fewrel"][name] if "-" in k and k[0].isdigit()
            ]
            for setting in settings:
                values = [r["fewrel"][name][setting]["accuracy"] for r in runs]
                row[f"{name} {setting}"] = (
                    float(np.mean(values)),
                    float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                )
            counts = runs[0]["fewrel"][name]
            row[f"{name} linked"] = counts["linked_mentions"] / (2 * counts["instances"])
        language = [r["pretraining"]["language/held_out"] for r in runs if "pretraining" in r]
        for key in ("token_accuracy", "entity_accuracy"):
            if language:
                values = [m[key] for m in language]
                row[f"held-out {key}"] = (
                    float(np.mean(values)),
                    float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                )
        table.append(row)

    meta = {
        **machine(),
        "command": f"python bench/jaket_downstream.py --systems={args.systems} --seeds={args.seeds} --episodes={args.episodes}",
    }
    lines = []
    for name in SETS:
        columns = [f"{name} {s}" for s in settings or []]
        present = [r for r in table if columns and columns[0] in r]
        if not present:
            continue
        lines += [
            f"### FewRel {name} (accuracy, {args.episodes} episodes per setting, 5 queries per way)",
            "",
            "| system | seeds | " + " | ".join(settings) + " | mentions with E^KM |",
            "|---|---|" + "---|" * (len(settings) + 1),
        ]
        for r in present:
            cells = [f"{r[c][0]:.4f} ± {r[c][1]:.4f}" for c in columns]
            linked = f"{r[f'{name} linked']:.1%}" if r["system"] in ("km", "jaket") else "none"
            lines.append(
                f"| {r['system']} | {len(r['seeds'])} | " + " | ".join(cells) + f" | {linked} |"
            )
        lines.append("")
    pretrained = [r for r in table if "held-out token_accuracy" in r]
    if pretrained:
        lines += [
            "### Pre-training (held-out linked texts)",
            "",
            "| system | masked-token accuracy | masked-entity accuracy |",
            "|---|---|---|",
        ]
        for r in pretrained:
            t, e = r["held-out token_accuracy"], r["held-out entity_accuracy"]
            # The MLM-only run trains no entity head: its masked-entity accuracy means nothing.
            entity = "not trained" if r["system"] == "mlm" else f"{e[0]:.4f} ± {e[1]:.4f}"
            lines.append(f"| {r['system']} | {t[0]:.4f} ± {t[1]:.4f} | {entity} |")
        lines.append("")
    lines.append(
        f"Mean ± sample standard deviation over seeds (minilm: one run, nothing trained). "
        f"{meta['device']} ({meta['cpu_count']} cores, one per run), jax {meta['jax']}; "
        f"`{meta['command']}`"
    )
    write_results(args.out, {"meta": meta, "table": table}, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
