"""Accuracy and wall time of the small-dataset configs on this machine (CPU is fine).

Run:
  python bench/small_datasets.py                       # every model on umls, 3 seeds
  python bench/small_datasets.py --models=rotate --datasets=umls,nations,kinships
  python bench/small_datasets.py --models=rotate --set=negatives.shared_chunk_size=64 \
      --out=bench/results/small_datasets_shared64
  python bench/small_datasets.py --models=all --datasets=umls,nations,kinships \
      --regimes=negative_sampling,1vsAll,KvsAll --out=bench/results/small_datasets_regimes
  python bench/small_datasets.py --models=tucker,conve --datasets=umls,nations,kinships \
      --regimes=KvsAll --variant=none:model.batch_norm=False \
      --variant=batch_norm:model.batch_norm=True --out=bench/results/small_datasets_batch_norm

Trains each `configs/<model>.py:<dataset>` from scratch in a fresh temporary workdir, once
per seed (`seed=`) and per training regime (`training.regime=`; `config` keeps the config's
own), and writes <out>.{json,md}: test metrics (filtered, realistic ranks, both sides) as
mean and sample standard deviation over the seeds, wall seconds of the whole `train` call
(data, compile, training, evaluation), steady-state steps/s, device and versions.

Every finished run is appended to <out>.runs.jsonl first: a killed grid run again with the
same arguments skips the runs it already has. `--variant=NAME:key=value[,key=value]` (repeated)
trains every cell once per variant, in the same invocation, so that an ablation and its
baseline share data, budget, seeds and machine state.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
import time

import numpy as np

from kgjax import config as config_lib
from kgjax.train.kge.trainer import train

from common import machine, read_runs_log, write_results

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALL_MODELS = "rotate,transe,distmult,complex,pairre,rescal,tucker,conve"
METRICS = ("mrr", "mr", "hits@1", "hits@3", "hits@10")


def load_config(model: str, dataset: str, overrides: list[str] = ()):
    """configs/<model>.py:<dataset> with `key=value` overrides (values as Python literals)."""
    return config_lib.from_file(
        os.path.join(REPO, f"configs/{model}.py:{dataset}"), config_lib.parse_overrides(overrides)
    )


def run_once(model: str, dataset: str, overrides: list[str]) -> dict:
    """One training run in a temporary workdir: its test metrics, steps and timings."""
    config = load_config(model, dataset, overrides)
    with tempfile.TemporaryDirectory() as workdir:
        started = time.perf_counter()
        results = train(config, workdir, progress=False)
        wall = time.perf_counter() - started
    return {
        "steps": results["steps"],
        "regime": config.training.regime,
        "reciprocal": bool(config.training.reciprocal),
        "wall_seconds": round(wall, 2),
        "steps_per_second": round(results["steps_per_second"] or 0.0, 2),
        **{f"test_{key}": float(value) for key, value in results["test"]["both"].items()},
    }


def summarise(runs: list[dict]) -> dict:
    """Mean and sample standard deviation (ddof 1; 0 for one run) of each number."""
    summary = {key: runs[0][key] for key in ("steps", "regime", "reciprocal")}
    for key in ("wall_seconds", "steps_per_second", *(f"test_{m}" for m in METRICS)):
        values = np.array([run[key] for run in runs], np.float64)
        summary[key] = float(values.mean())
        summary[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    summary["seeds"] = len(runs)
    return summary


def read_done(path: str) -> dict:
    """The runs a previous invocation finished: {(model, dataset, variant, seed): run}; the
    variant is the regime, or "<regime>/<--variant name>"."""
    return read_runs_log(path, ("model", "dataset", "variant", "seed"))


def pivot(rows: list[dict], num_seeds: int = 3) -> list[str]:
    """Test MRR (mean ± std) with a model per line and a (dataset, regime) per column; a
    cell with fewer than `num_seeds` runs says how many it has."""
    columns = list(dict.fromkeys((r["config"].split(":")[1], _column(r)) for r in rows))
    models = list(dict.fromkeys(r["config"].split(":")[0] for r in rows))
    cells = {(r["config"].split(":")[0], r["config"].split(":")[1], _column(r)): r for r in rows}
    lines = [
        "Test MRR by regime:",
        "",
        "| model | " + " | ".join(f"{d} {regime}" for d, regime in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for model in models:
        values = []
        for dataset, regime in columns:
            row = cells.get((model, dataset, regime))
            values.append(f"{row['test_mrr']:.3f} ± {row['test_mrr_std']:.3f}" if row else "n/a")
        name = model.removeprefix("configs/").removesuffix(".py")
        lines.append(f"| {name} | " + " | ".join(values) + " |")
    return lines


def _column(row: dict) -> str:
    """A row's regime, with its --variant name if it has one."""
    return row["regime"] + (f" {row['variant']}" if row.get("variant") else "")


def parse_variants(specs: list[str]) -> list[tuple[str, list[str]]]:
    """--variant values "NAME:key=value,key=value" -> [(NAME, ["key=value", ...])]; none:
    one unnamed variant without overrides."""
    variants = []
    for spec in specs:
        name, _, overrides = spec.partition(":")
        if not name or not overrides:
            raise SystemExit(f"--variant={spec!r}: expected NAME:key=value[,key=value]")
        variants.append((name, overrides.split(",")))
    return variants or [("", [])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="rotate,transe,distmult,complex", help="or all")
    parser.add_argument("--datasets", default="umls")
    parser.add_argument(
        "--regimes", default="config", help="config (as configured) or training.regime values"
    )
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--set", action="append", default=[], help="key=value config override")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="NAME:key=value[,key=value]: train every cell once per variant (repeat the flag)",
    )
    parser.add_argument("--out", default=os.path.join(REPO, "bench", "results", "small_datasets"))
    parser.add_argument("--note", default="", help="a sentence for the table's footer")
    parser.add_argument(
        "--report_only",
        action="store_true",
        help="train nothing: tabulate the runs the log holds (cells with none are left out)",
    )
    args = parser.parse_args()
    models = (ALL_MODELS if args.models == "all" else args.models).split(",")
    seeds = [int(seed) for seed in args.seeds.split(",")]

    log_path = f"{args.out}.runs.jsonl"
    os.makedirs(os.path.dirname(os.path.abspath(log_path)) or ".", exist_ok=True)
    done = read_done(log_path)
    variants = parse_variants(args.variant)
    rows = []
    for dataset in args.datasets.split(","):
        for model in models:
            for regime_name, (name, settings) in itertools.product(
                args.regimes.split(","), variants
            ):
                regime = [] if regime_name == "config" else [f"training.regime={regime_name!r}"]
                variant = regime_name + (f"/{name}" if name else "")
                runs = []
                for seed in seeds:
                    key = (model, dataset, variant, seed)
                    if key not in done and args.report_only:
                        continue
                    if key not in done:
                        overrides = [*args.set, *regime, *settings, f"seed={seed}"]
                        run = run_once(model, dataset, overrides)
                        done[key] = {
                            "model": model, "dataset": dataset, "variant": variant,
                            "seed": seed, **run,
                        }  # fmt: skip
                        with open(log_path, "a") as f:
                            f.write(json.dumps(done[key]) + "\n")
                        print(json.dumps(done[key]), flush=True)
                    runs.append(done[key])
                if runs:
                    row = {"config": f"configs/{model}.py:{dataset}", **summarise(runs)}
                    rows.append({**row, "variant": name} if name else row)

    meta = {
        **machine(),
        "seeds": seeds,
        "command": "python bench/small_datasets.py "
        f"--models={args.models} --datasets={args.datasets} --regimes={args.regimes} "
        f"--seeds={args.seeds}"
        + "".join(f" --set={override}" for override in args.set)
        + "".join(f" --variant={spec}" for spec in args.variant),
    }
    header = "| config | regime | steps | wall s | steps/s | MRR | MR | Hits@1 | Hits@3 | Hits@10 |"
    lines = [header, "|---|---|---|---|---|---|---|---|---|---|"]

    def cell(row, key, digits):
        return f"{row[key]:.{digits}f} ± {row[key + '_std']:.{digits}f}"

    for row in rows:
        regime = row["regime"] + (" + reciprocal" if row["reciprocal"] else "")
        regime += f", {row['variant']}" if row.get("variant") else ""
        if row["seeds"] < len(seeds):
            regime += f" ({row['seeds']} of {len(seeds)} seeds)"
        lines.append(
            f"| `{row['config']}` | {regime} | {row['steps']} | {cell(row, 'wall_seconds', 1)} | "
            f"{row['steps_per_second']:.0f} | {cell(row, 'test_mrr', 3)} | "
            f"{cell(row, 'test_mr', 2)} | {cell(row, 'test_hits@1', 3)} | "
            f"{cell(row, 'test_hits@3', 3)} | {cell(row, 'test_hits@10', 3)} |"
        )
    lines += ["", *pivot(rows, len(seeds))]
    lines.append("")
    lines.append(
        f"Mean ± sample standard deviation over seeds {args.seeds}; test, filtered, realistic "
        "ranks, both sides. Wall seconds: the whole `train` call (data, compile, training, "
        f"evaluation). {meta['device']} ({meta['cpu_count']} cores), jax {meta['jax']}, "
        f"Python {meta['python']}; `{meta['command']}`" + (f" {args.note}" if args.note else "")
    )
    write_results(args.out, {"meta": meta, "rows": rows}, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
