"""The ComplEx-N3 CPU reproductions' table: bench/results/complex_n3_cpu.{json,md}.

Run after the two `bench/reproduce.py` runs (each copies its results.json and metrics log
to bench/results/<workdir name>/):
  python bench/reproduce.py --config=configs/complex_n3.py:fb15k237_cpu \
      --workdir=runs/complex_n3_fb15k237_cpu --slice_steps=1000000 --budget_minutes=600
  python bench/reproduce.py --config=configs/complex_n3.py:wn18rr_cpu \
      --workdir=runs/complex_n3_wn18rr_cpu --slice_steps=1000000 --budget_minutes=600
  python bench/complex_n3_report.py
"""

from __future__ import annotations

import json
import os

from kgjax import config as config_lib

from common import write_results

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = {
    "fb15k237_cpu": ("FB15k-237", 0.348, 0.37),  # LibKGE's ComplEx; kbc's ComplEx-N3 (rank 1000)
    "wn18rr_cpu": ("WN18RR", 0.479, 0.48),  # (kbc: rank 2000)
}

# What the logs of a particular run show about its timing (metrics_tail.jsonl's stamps).
RUN_NOTES = {
    "fb15k237_cpu": "its train minutes include a 15-minute pause (the process was stopped "
    "while bench/suite.py measured on its core: epoch 5-6 took 1,080 s against about 180 s "
    "for the others), so about 67 minutes of training, on one core (both for its first 7 "
    "minutes) at times shared with tests",
    "wn18rr_cpu": "10 epochs (stop 24; the earlier 3-epoch cut reached 0.355), run without "
    "`taskset` on both cores of a machine otherwise idle but for tests at low priority in its "
    "first minutes",
}


def main() -> None:
    rows = []
    for row, (dataset, libkge, kbc) in RUNS.items():
        folder = os.path.join(REPO, "bench", "results", f"complex_n3_{row}")
        path = os.path.join(folder, "results.json")
        if not os.path.isfile(path):
            print(f"{path}: not there yet (run bench/reproduce.py first)")
            continue
        with open(path) as f:
            results = json.load(f)
        with open(os.path.join(folder, "metrics_tail.jsonl")) as f:
            curve = [
                (e["step"], e["valid/both/mrr"])
                for e in map(json.loads, f)
                if e["event"] == "eval" and "valid/both/mrr" in e
            ]
        config = config_lib.from_file(os.path.join(REPO, f"configs/complex_n3.py:{row}"))
        steps_per_epoch = 2 * results["dataset"]["num_triples"]["train"] // config.batch_size
        test = results["test"]["both"]
        rows.append(
            {
                "config": f"configs/complex_n3.py:{row}",
                "dataset": dataset,
                "rank": config.model.dim,
                "batch_size": config.batch_size,
                "epochs": results["steps"] // steps_per_epoch,
                "steps": results["steps"],
                "train_seconds": results["train_seconds"],
                "test": test,
                "valid_mrr": results["valid"]["both"]["mrr"],
                "valid_curve": curve,
                "libkge_mrr": libkge,
                "kbc_mrr": kbc,
                "device": results["device"],
                "jax": results["jax_version"],
            }
        )
    lines = [
        "| config | rank | batch | epochs | train min | test MRR | Hits@1 | Hits@10 | valid MRR "
        "| LibKGE ComplEx | kbc ComplEx-N3 (full rank) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| `{r['config']}` | {r['rank']} | {r['batch_size']} | {r['epochs']} "
            f"| {r['train_seconds'] / 60:.0f} | {r['test']['mrr']:.3f} "
            f"| {r['test']['hits@1']:.3f} | {r['test']['hits@10']:.3f} | {r['valid_mrr']:.3f} "
            f"| {r['libkge_mrr']:.3f} | {r['kbc_mrr']:.2f} |"
        )
    lines += [
        "",
        "Test: filtered, realistic ranks, both sides. Valid is filtered with train + valid only "
        "(the test triples count as wrong answers), as everywhere in kgjax. One seed each: a "
        "CPU-sized cut on this machine (the cores each run used are in its note below), not a "
        "tuned run.",
        *sorted({f"Device: {r['device']}, jax {r['jax']}." for r in rows}),
    ]
    for row in RUNS:
        if row in RUN_NOTES and any(r["config"].endswith(f":{row}") for r in rows):
            lines.append(f"`{row}`: {RUN_NOTES[row]}.")
    for r in rows:
        curve = ", ".join(f"{step}: {mrr:.3f}" for step, mrr in r["valid_curve"])
        lines.append(f"Valid MRR by step, {r['dataset']}: {curve or 'only the final one'}.")
    write_results(
        os.path.join(REPO, "bench", "results", "complex_n3_cpu"),
        {"rows": rows, "command": "python bench/complex_n3_report.py"},
        "\n".join(lines) + "\n",
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
