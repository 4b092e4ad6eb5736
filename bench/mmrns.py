"""MMRNS against uniform and self-adversarial negatives: equal steps, equal wall time, cost.

Run:
  # 2 CPU cores: UMLS, a few hundred steps.
  KGJAX_DATA_DIR=../shared/data python bench/mmrns.py --smoke
  # WN18RR on 2 CPU cores: configs/mmrns.py's reference settings cut to a CPU run (README).
  KGJAX_DATA_DIR=../shared/data python bench/mmrns.py --dataset=wn18rr --seeds=0 \
      --num_steps=3000 --set=model.dim=100 --set=batch_size=256 \
      --set=negatives.num_negatives=64 --set=optimizer.lr=1e-3 --set=evaluation.batch_size=64
  # FB15k-237 on the GPU machine, which has no MiniLM package (and 88 MB would not travel):
  # first, here, the text features as a float16 file beside a copy of the triples ...
  KGJAX_DATA_DIR=../shared/data python bench/mmrns.py --dataset=fb15k237 \
      --export_text=data/mmrns/mmrns_fb15k237_text.npz
  mkdir -p data/mmrns/fb15k-237 && cp ../shared/data/fb15k-237/{train,valid,test}.txt data/mmrns/fb15k-237/
  # ... then there (carry data/mmrns and .whl, see CONTRIBUTING.md). Finished runs are read
  # back and unfinished ones resume from their checkpoints, so the same command can be
  # repeated across 10-minute device calls while the machine stays warm.
  KGJAX_DATA_DIR=data/mmrns python bench/mmrns.py --dataset=fb15k237 --seeds=0,1,2 \
      --set=negatives.mmrns.text=data/mmrns/mmrns_fb15k237_text.npz \
      --workdir=/tmp/bench_mmrns --out=$OUT/mmrns_fb15k237

Three phases, for every model (RotatE, TransE) and sampler (uniform, self_adversarial, mmrns)
on `configs/mmrns.py:<model>_<dataset>` (the sampler overridden):
  overhead     milliseconds per training step of a jitted `lax.scan` chunk, after compiling,
               on the real data and shapes; the ratio to uniform is MMRNS's cost per step.
  equal steps  every sampler and seed trains `--num_steps` steps; filtered test metrics.
  equal time   the budget is uniform's training time at `--num_steps` (from its steady
               steps/s, mean over seeds); every other sampler trains for the steps it runs in
               that budget at its own steps/s (rounded to 10 or 100 steps; within 2% counts
               as equal), with its schedule (the step decay at half) scaled to that length.
A later call with --phases=equal_steps,equal_time skips the timing; --set=key=value (repeatable,
e.g. --set=negatives.mmrns.epsilon0=1.0) overrides the config of every run, in workdirs of
their own.
Writes <out>.json (every run: config overrides, metrics, steps/s, device, versions) and
<out>.md (means and standard deviations over seeds).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time

import jax
import numpy as np

from kgjax import config as config_lib
from kgjax.train.kge.build import build, load_dataset
from kgjax.train.kge.trainer import train

from common import finished_results, machine, single_device_chunk, write_results

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLERS = ("uniform", "self_adversarial", "mmrns")
MODELS_FOR_EXPORT = "rotate"  # the text features do not depend on the model
METRICS = ("mrr", "hits@1", "hits@3", "hits@10")


def step_quantum(num_steps: int) -> int:
    """The granularity of step counts and cadences (a host call runs this many steps)."""
    return 100 if num_steps >= 10_000 else 10


def load_config(model: str, dataset: str, sampler: str, seed: int, num_steps: int, overrides=()):
    config = config_lib.from_file(os.path.join(REPO, f"configs/mmrns.py:{model}_{dataset}"))
    config.negatives.sampler = sampler
    config.seed = seed
    quantum = step_quantum(num_steps)
    config.num_steps = num_steps
    config.optimizer.decay_steps = num_steps // 2
    config.steps_per_call = config.log_every_steps = quantum
    config.eval_every_steps = config.checkpoint_every_steps = (
        max(num_steps // (10 * quantum), 1) * quantum
    )
    for dotted, value in overrides:
        config_lib.override(config, dotted, value)
    return config


def overhead(
    model_name: str, dataset: str, sampler_name: str, steps: int, repeats: int, overrides
) -> dict:
    """Milliseconds per training step (chunks of `steps` steps, best of `repeats`)."""
    config = load_config(model_name, dataset, sampler_name, 0, 1000, overrides)
    chunk, state, data = single_device_chunk(config, load_dataset(config.data), steps)
    started = time.perf_counter()
    state, metrics = chunk(state, data, jax.random.key(1))
    jax.block_until_ready(metrics)
    compile_seconds = time.perf_counter() - started
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        state, metrics = chunk(state, data, jax.random.key(1))
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - started)
    return {
        "model": model_name,
        "sampler": sampler_name,
        "ms_per_step": 1000 * min(times) / steps,
        "first_call_seconds": compile_seconds,
    }


def export_text(dataset: str, path: str) -> None:
    """Writes the dataset's MMRNS text features as float16 {"features", "mask"} arrays.

    The GPU machine has no copy of the MiniLM package (and 88 MB would not travel): encode
    here, send the file, and point `negatives.mmrns.text` at it.
    """
    config = load_config(MODELS_FOR_EXPORT, dataset, "mmrns", 0, 100)
    data_set = load_dataset(config.data)
    parts = build(config, data_set.num_entities, data_set.num_relations, jax.devices()[:1])
    features = parts.features(data_set)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    np.savez(path, features=features["text"].astype(np.float16), mask=features["text_mask"])
    print(path, features["text"].shape, f"{features['text_mask'].sum(1).mean():.2f} sentences")


def run(config, workdir: str) -> dict:
    """Trains (or resumes, or reads back) one run; returns its results.json."""
    return finished_results(workdir) or train(config, workdir, progress=False)


def summary(results: dict) -> dict:
    return {
        "steps": results["steps"],
        "steps_per_second": results["steps_per_second"],
        "train_seconds": results["train_seconds"],
        **{key: results["test"]["both"][key] for key in METRICS},
    }


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def table(rows: list[dict], title: str) -> list[str]:
    lines = [
        f"### {title}",
        "",
        "| model | sampler | steps | steps/s | " + " | ".join(f"test {m}" for m in METRICS) + " |",
        "|---" * (4 + len(METRICS)) + "|",
    ]
    keys = sorted(
        {(r["model"], r["sampler"]) for r in rows}, key=lambda k: (k[0], SAMPLERS.index(k[1]))
    )
    for model, sampler in keys:
        group = [r for r in rows if (r["model"], r["sampler"]) == (model, sampler)]
        cells = [mean_std([r[m] for r in group]) for m in METRICS]
        steps = sorted({r["steps"] for r in group})
        speed = statistics.mean(r["steps_per_second"] or 0.0 for r in group)
        lines.append(
            f"| {model} | {sampler} | {'/'.join(map(str, steps))} | {speed:.1f} | "
            + " | ".join(cells)
            + " |"
        )
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="fb15k237", help="fb15k237, wn18rr or umls")
    parser.add_argument("--models", default="rotate,transe")
    parser.add_argument("--samplers", default=",".join(SAMPLERS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--num_steps", type=int, default=None, help="default: the config's")
    parser.add_argument("--overhead_steps", type=int, default=20, help="steps per timed chunk")
    parser.add_argument("--phases", default="overhead,equal_steps,equal_time")
    parser.add_argument("--workdir", default=None, help="default: runs/bench_mmrns_<dataset>")
    parser.add_argument("--out", default=None, help="default: bench/results/mmrns_<dataset>")
    parser.add_argument("--set", action="append", default=[], help="config override, key=value")
    parser.add_argument("--smoke", action="store_true", help="UMLS, 400 steps, seeds 0,1,2")
    parser.add_argument(
        "--export_text", default=None, help="only write the text features to this .npz, float16"
    )
    args = parser.parse_args()
    if args.export_text:
        export_text(args.dataset, args.export_text)
        return
    if args.smoke:
        args.dataset, args.num_steps = "umls", args.num_steps or 400
    models = args.models.split(",")
    samplers = args.samplers.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    phases = args.phases.split(",")
    workdir = args.workdir or os.path.join(REPO, "runs", f"bench_mmrns_{args.dataset}")
    out = args.out or os.path.join(REPO, "bench", "results", f"mmrns_{args.dataset}")
    num_steps = args.num_steps or load_config(models[0], args.dataset, "uniform", 0, 1).num_steps
    quantum = step_quantum(num_steps)
    if num_steps % quantum:
        raise config_lib.ConfigError(f"--num_steps: a multiple of {quantum}")
    overrides = list(config_lib.parse_overrides(args.set).items())
    # Runs with other overrides live in other workdirs.
    tag = re.sub(r"[^\w.-]", "-", "".join(f"_{k.split('.')[-1]}{v}" for k, v in overrides))

    report = {
        "command": "python bench/mmrns.py " + " ".join(sys.argv[1:]),
        **machine(),
        "dataset": args.dataset,
        "num_steps": num_steps,
        "overrides": dict(overrides),
        "overhead": [],
        "equal_steps": [],
        "equal_time": [],
    }
    if "overhead" in phases:
        for model in models:
            for sampler in samplers:
                report["overhead"].append(
                    overhead(model, args.dataset, sampler, args.overhead_steps, 3, overrides)
                )
                print(report["overhead"][-1], flush=True)

    def train_all(phase: str, steps_of) -> None:
        for model in models:
            for sampler in samplers:
                for seed in seeds:
                    steps = steps_of(model, sampler)
                    config = load_config(model, args.dataset, sampler, seed, steps, overrides)
                    name = f"{model}_{sampler}_seed{seed}_steps{steps}{tag}"
                    row = {"model": model, "sampler": sampler, "seed": seed}
                    row.update(summary(run(config, os.path.join(workdir, name))))
                    report[phase].append(row)
                    print(phase, row, flush=True)

    if "equal_steps" in phases or "equal_time" in phases:
        train_all("equal_steps", lambda model, sampler: num_steps)
    if "equal_time" in phases:
        speed = {
            key: statistics.mean(
                r["steps_per_second"]
                for r in report["equal_steps"]
                if (r["model"], r["sampler"]) == key
            )
            for key in {(r["model"], r["sampler"]) for r in report["equal_steps"]}
        }

        def steps_in_budget(model, sampler):
            steps = num_steps * speed[(model, sampler)] / speed[(model, "uniform")]
            # Within 2% of the equal-steps run (timing noise): reuse that run.
            if abs(steps - num_steps) <= 0.02 * num_steps:
                return num_steps
            return max(quantum, round(steps / quantum) * quantum)

        train_all("equal_time", steps_in_budget)
        for model in models:
            report.setdefault("budget_seconds", {})[model] = num_steps / speed[(model, "uniform")]

    lines = [
        f"## MMRNS on {args.dataset} ({report['device']}, jax {report['jax']})",
        "",
        f"`{report['command']}`",
        "",
    ]
    if report["overhead"]:
        base = {
            r["model"]: r["ms_per_step"] for r in report["overhead"] if r["sampler"] == "uniform"
        }
        lines += ["| model | sampler | ms/step | vs uniform |", "|---|---|---|---|"]
        for r in report["overhead"]:
            ratio = r["ms_per_step"] / base[r["model"]] if r["model"] in base else float("nan")
            lines.append(
                f"| {r['model']} | {r['sampler']} | {r['ms_per_step']:.2f} | {ratio:.2f}x |"
            )
        lines.append("")
    if report["equal_steps"]:
        lines += table(
            report["equal_steps"], f"Equal steps ({num_steps}), mean ± std over seeds {seeds}"
        )
    if report["equal_time"]:
        budgets = ", ".join(f"{m} {s:.0f} s" for m, s in report["budget_seconds"].items())
        lines += table(
            report["equal_time"], f"Equal wall time (uniform's training time: {budgets})"
        )
    write_results(out, report, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
