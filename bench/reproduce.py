"""A long reproduction run that fits into short commands: train in slices, resume, finish.

Run (GPU machine; each command stops before `--budget_minutes` and the next one resumes):
  python bench/reproduce.py --config=configs/rotate.py:fb15k237 --workdir=runs/repro_rotate_fb15k237
  python bench/reproduce.py --config=configs/rotate.py:wn18rr --workdir=runs/repro_rotate_wn18rr

Each slice calls `kgjax.train.kge.trainer.train` with `num_steps` raised by `--slice_steps` (a
resumable key: the learning-rate schedule stays that of the full config), so the run ends
with exactly the parameters of one uninterrupted run. When the config's full `num_steps`
is reached, results.json and the last lines of metrics.jsonl are copied to
`--results_dir`/<workdir name>/ (default bench/results).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="e.g. configs/rotate.py:fb15k237")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--slice_steps", type=int, default=10_000)
    parser.add_argument("--budget_minutes", type=float, default=8.0)
    parser.add_argument("--results_dir", default=os.path.join(REPO, "bench", "results"))
    args = parser.parse_args()

    from kgjax import config as config_lib
    from kgjax.checkpoints import Checkpointer
    from kgjax.train.kge.trainer import train

    config = config_lib.from_file(os.path.join(REPO, args.config))
    target = config.num_steps
    started = time.perf_counter()
    checkpoints = os.path.join(args.workdir, "checkpoints")
    done = Checkpointer(checkpoints).latest_step() if os.path.isdir(checkpoints) else None
    done = done or 0
    slice_seconds = None
    while done < target:
        elapsed = time.perf_counter() - started
        if slice_seconds and elapsed + 1.2 * slice_seconds > 60 * args.budget_minutes:
            print(json.dumps({"stopped_at_step": done, "of": target, "resume": "run again"}))
            return
        config.num_steps = min(target, done + args.slice_steps)
        slice_started = time.perf_counter()
        train(config, args.workdir, progress=False)
        slice_seconds = time.perf_counter() - slice_started
        done = config.num_steps
        print(json.dumps({"step": done, "of": target, "slice_seconds": round(slice_seconds, 1)}))

    out = os.path.join(args.results_dir, os.path.basename(os.path.normpath(args.workdir)))
    os.makedirs(out, exist_ok=True)
    shutil.copy(os.path.join(args.workdir, "results.json"), os.path.join(out, "results.json"))
    with open(os.path.join(args.workdir, "metrics.jsonl")) as f:
        tail = f.readlines()[-200:]
    with open(os.path.join(out, "metrics_tail.jsonl"), "w") as f:
        f.writelines(tail)
    print(json.dumps({"finished": target, "results": out}))


if __name__ == "__main__":
    main()
