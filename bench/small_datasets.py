"""Accuracy and wall time of the small-dataset configs on this machine (CPU is fine).

Run:
  python bench/small_datasets.py                       # every model on umls
  python bench/small_datasets.py --models=rotate --datasets=umls,nations,kinships
  python bench/small_datasets.py --models=rotate --set=negatives.shared_chunk_size=64 \
      --out=bench/results/small_datasets_shared64

Trains each `configs/<model>.py:<dataset>` from scratch in a fresh temporary workdir and
writes bench/results/small_datasets.{json,md}: test metrics (filtered, realistic ranks, both
sides), wall seconds for the whole `train` call (data, compile, training, evaluation),
steady-state steps/s, device and versions.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

from kgjax import config as config_lib
from kgjax.train.kge.trainer import train

from common import machine, write_results

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_config(model: str, dataset: str, overrides: list[str] = ()):
    """configs/<model>.py:<dataset> with `key=value` overrides (values as Python literals)."""
    return config_lib.from_file(
        os.path.join(REPO, f"configs/{model}.py:{dataset}"), config_lib.parse_overrides(overrides)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="rotate,transe,distmult,complex")
    parser.add_argument("--datasets", default="umls")
    parser.add_argument("--set", action="append", default=[], help="key=value config override")
    parser.add_argument("--out", default=os.path.join(REPO, "bench", "results", "small_datasets"))
    args = parser.parse_args()

    rows = []
    for dataset in args.datasets.split(","):
        for model in args.models.split(","):
            config = load_config(model, dataset, args.set)
            with tempfile.TemporaryDirectory() as workdir:
                started = time.perf_counter()
                results = train(config, workdir, progress=False)
                wall = time.perf_counter() - started
            test = results["test"]["both"]
            rows.append(
                {
                    "config": f"configs/{model}.py:{dataset}",
                    "steps": results["steps"],
                    "wall_seconds": round(wall, 1),
                    "steps_per_second": round(results["steps_per_second"] or 0.0, 1),
                    **{f"test_{key}": round(value, 4) for key, value in test.items()},
                }
            )
            print(json.dumps(rows[-1]), flush=True)

    meta = {
        **machine(),
        "command": "python bench/small_datasets.py "
        f"--models={args.models} --datasets={args.datasets}"
        + "".join(f" --set={override}" for override in args.set),
    }
    header = "| config | steps | wall s | steps/s | MRR | MR | Hits@1 | Hits@3 | Hits@10 |"
    lines = [header, "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| `{row['config']}` | {row['steps']} | {row['wall_seconds']} | "
            f"{row['steps_per_second']} | {row['test_mrr']:.3f} | {row['test_mr']:.2f} | "
            f"{row['test_hits@1']:.3f} | {row['test_hits@3']:.3f} | {row['test_hits@10']:.3f} |"
        )
    lines.append("")
    lines.append(
        f"{meta['device']} ({meta['cpu_count']} cores), jax {meta['jax']}, Python "
        f"{meta['python']}; `{meta['command']}`"
    )
    write_results(args.out, {"meta": meta, "rows": rows}, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
