"""Teacher-to-student KGE distillation against the same students trained alone (issue 17, 1).

Run (configs/distillation.py's rows; one invocation per core of this 2-core machine):
  taskset -c 0 python bench/distillation.py --dataset=fb15k237
  taskset -c 1 python bench/distillation.py --dataset=wn18rr
  python bench/distillation.py --dataset=fb15k237 --cut=gpu    # the full rows, on a GPU
  python bench/distillation.py --dataset=umls                  # a few minutes on CPU
  python bench/distillation.py --smoke                         # UMLS, tiny (tests)

For one (dataset, cut): trains the teacher, configs/distillation.py:<dataset>_<cut>_teacher, in
<workdirs>/distillation_<dataset>_<cut>_teacher, or reuses it there if it has finished (a
killed teacher resumes). Then, for every student (--students: <family><width>) and seed, the
student alone and distilled from that teacher (--variants: alone, kd, dualde) at the same
steps, each in a temporary workdir. Writes <out>.{json,md}: test MRR and Hits@10 (filtered,
both sides) as mean and sample standard deviation over the seeds; each model's parameter bytes
(everything `model.init` makes: tables, inverse relations); and its scoring throughput on this
machine, scores/s: a jitted `score_t` of a batch of queries against every entity, best of a
few repeats after a warm-up, in this process (see `machine` in the report for its cores).

Every finished run is appended to <out>.runs.jsonl first: a killed invocation rerun with the
same arguments skips the runs it already has.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import jax
import numpy as np

from kgjax import config as config_lib
from kgjax.train.kge import build as build_lib
from kgjax.train.kge.trainer import train

from common import finished_results, machine, read_runs_log, write_results

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = {"alone": "", "kd": "_kd", "dualde": "_dualde"}  # name: the config row's suffix
STUDENTS = "complex16,complex32,complex64,rotate16,rotate32,rotate64"
METRICS = ("mrr", "hits@1", "hits@10")


def load_config(argument: str, overrides: dict | None = None):
    """configs/distillation.py:<argument> with dotted overrides."""
    return config_lib.from_file(
        os.path.join(REPO, f"configs/distillation.py:{argument}"), overrides
    )


def model_of(config, dataset):
    """The model a config trains on `dataset` (2R relations when reciprocal)."""
    relations = dataset.num_relations * (2 if config.training.reciprocal else 1)
    return build_lib.make_model(config.model, dataset.num_entities, relations)


def parameter_bytes(model) -> int:
    """Bytes of everything `model.init` makes (tables and any interaction weights)."""
    shapes = jax.eval_shape(model.init, jax.random.key(0))
    return int(sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(shapes)))


def scores_per_second(model, num_queries: int = 256, repeats: int = 20) -> float:
    """Scores/s of a jitted `score_t`: `num_queries` (h, r) queries against all V entities,
    the best of `repeats` timed calls after one warm-up call (fresh parameters: the speed does
    not depend on their values)."""
    params = model.init(jax.random.key(0))
    heads = np.arange(num_queries) % model.num_entities
    relations = np.arange(num_queries) % model.num_relations
    score = jax.jit(model.score_t)
    score(params, heads, relations).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        score(params, heads, relations).block_until_ready()
        best = min(best, time.perf_counter() - started)
    return num_queries * model.num_entities / best


def run_once(argument: str, overrides: dict) -> dict:
    """One training run of configs/distillation.py:<argument> in a temporary workdir."""
    config = load_config(argument, overrides)
    with tempfile.TemporaryDirectory() as workdir:
        started = time.perf_counter()
        results = train(config, workdir, progress=False)
        wall = time.perf_counter() - started
    return {
        "steps": results["steps"],
        "wall_seconds": round(wall, 2),
        "train_seconds": round(results["train_seconds"], 2),
        **{f"test_{key}": float(results["test"]["both"][key]) for key in METRICS},
    }


def summarise(runs: list[dict]) -> dict:
    """Mean and sample standard deviation (ddof 1; 0 for one run) of each number."""
    summary = {"steps": runs[0]["steps"], "seeds": len(runs)}
    for key in ("wall_seconds", "train_seconds", *(f"test_{m}" for m in METRICS)):
        values = np.array([run[key] for run in runs], np.float64)
        summary[key] = float(values.mean())
        summary[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return summary


def markdown(report: dict) -> str:
    """The report's table: the teacher, then each student alone and distilled."""
    teacher = report["teacher"]
    lines = [
        f"Teacher-to-student distillation on {report['dataset']} ({report['cut']} cut): "
        "test MRR and Hits@10 (filtered, both sides), mean ± sd over "
        f"{len(report['seeds'])} seed(s), students at equal steps alone and distilled.",
        "",
        "| model | variant | steps | parameter bytes | scores/s | MRR | Hits@10 | ΔMRR vs alone |",
        "|---|---|---|---|---|---|---|---|",
        f"| teacher ({teacher['model']}) | - | {teacher['steps']} | "
        f"{teacher['parameter_bytes']:,} | {teacher['scores_per_second']:.3g} | "
        f"{teacher['test_mrr']:.3f} | {teacher['test_hits@10']:.3f} | |",
    ]
    alone = {row["student"]: row for row in report["rows"] if row["variant"] == "alone"}
    for row in report["rows"]:
        base = alone.get(row["student"])
        delta = (
            f"{row['test_mrr'] - base['test_mrr']:+.3f}"
            if base is not None and row["variant"] != "alone"
            else ""
        )
        lines.append(
            f"| {row['student']} | {row['variant']} | {row['steps']} | "
            f"{row['parameter_bytes']:,} | {row['scores_per_second']:.3g} | "
            f"{row['test_mrr']:.3f} ± {row['test_mrr_std']:.3f} | "
            f"{row['test_hits@10']:.3f} ± {row['test_hits@10_std']:.3f} | {delta} |"
        )
    settings = report["distillation"]
    lines += [
        "",
        f"Distillation: temperature {settings['temperature']}, weight {settings['weight']} "
        "(kd: that weight on every row; dualde: per-row weights from the teacher's agreement "
        "with the hard label, kgjax/train/kge/distillation.py). Scores/s: jitted score_t of "
        "256 queries against every entity, best of 20, in the benchmark's process.",
        f"Machine: {report['machine']['device']}, {report['machine']['cpu_count']} CPU cores "
        f"visible, jax {report['machine']['jax']}. Command: `{report['command']}`.",
    ]
    if report["cut"] != "gpu":
        lines.append(
            "A CPU-sized cut (configs/distillation.py's docstring); the full rows are the "
            "`gpu` cut of the same file."
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="fb15k237")
    parser.add_argument("--cut", default="cpu", help="cpu | gpu | smoke")
    parser.add_argument("--students", default=STUDENTS)
    parser.add_argument("--variants", default="alone,kd,dualde")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--set", action="append", default=[], help="key=value, students only")
    parser.add_argument("--workdirs", default=os.path.join(REPO, "runs"), help="the teacher's")
    parser.add_argument("--out", default="", help="default bench/results/distillation_<dataset>")
    parser.add_argument(
        "--smoke", action="store_true", help="UMLS, tiny teacher, students complex4 and rotate4"
    )
    args = parser.parse_args()
    if args.smoke:
        args.dataset, args.cut, args.students = "umls", "smoke", "complex4,rotate4"
        args.variants, args.seeds = "alone,kd", "0"
    out = args.out or os.path.join(REPO, "bench", "results", f"distillation_{args.dataset}")
    seeds = [int(seed) for seed in args.seeds.split(",")]
    variants = args.variants.split(",")
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"--variants: unknown {sorted(unknown)}; from {list(VARIANTS)}")
    overrides = config_lib.parse_overrides(args.set)

    teacher_row = f"{args.dataset}_{args.cut}_teacher"
    teacher_config = load_config(teacher_row)
    dataset = build_lib.load_dataset(teacher_config.data)
    teacher_dir = os.path.join(args.workdirs, f"distillation_{args.dataset}_{args.cut}_teacher")
    teacher_results = finished_results(teacher_dir)
    reused = teacher_results is not None
    if not reused:
        print(f"training the teacher {teacher_row} in {teacher_dir}", flush=True)
        teacher_results = train(teacher_config, teacher_dir, progress=False)
    teacher_model = model_of(teacher_config, dataset)
    teacher = {
        "config": f"configs/distillation.py:{teacher_row}",
        "workdir": teacher_dir,
        "reused": reused,
        "model": f"{teacher_config.model.name}{teacher_config.model.dim}",
        "steps": teacher_results["steps"],
        "train_seconds": teacher_results["train_seconds"],
        **{f"test_{key}": float(teacher_results["test"]["both"][key]) for key in METRICS},
        "parameter_bytes": parameter_bytes(teacher_model),
        "scores_per_second": scores_per_second(teacher_model),
    }
    print(json.dumps({"teacher": teacher}), flush=True)

    log_path = f"{out}.runs.jsonl"
    os.makedirs(os.path.dirname(os.path.abspath(log_path)) or ".", exist_ok=True)
    done = read_runs_log(log_path, ("student", "variant", "seed"))
    rows = []
    for student in args.students.split(","):
        student_config = load_config(f"{args.dataset}_{args.cut}_{student}")
        model = model_of(student_config, dataset)
        speed = {
            "family": student_config.model.name,
            "width": student_config.model.dim,
            "parameter_bytes": parameter_bytes(model),
            "scores_per_second": scores_per_second(model),
        }
        for variant in variants:
            argument = f"{args.dataset}_{args.cut}_{student}{VARIANTS[variant]}"
            settings = dict(overrides)
            if variant != "alone":
                settings["distillation.teacher_workdir"] = teacher_dir
            runs = []
            for seed in seeds:
                key = (student, variant, seed)
                if key not in done:
                    run = run_once(argument, {**settings, "seed": seed})
                    done[key] = {"student": student, "variant": variant, "seed": seed, **run}
                    with open(log_path, "a") as f:
                        f.write(json.dumps(done[key]) + "\n")
                    print(json.dumps(done[key]), flush=True)
                runs.append(done[key])
            rows.append(
                {
                    "student": student,
                    "variant": variant,
                    "config": f"configs/distillation.py:{argument}",
                    **speed,
                    **summarise(runs),
                }
            )

    command = (
        "python bench/distillation.py --smoke"
        if args.smoke
        else f"python bench/distillation.py --dataset={args.dataset} --cut={args.cut} "
        f"--students={args.students} --variants={args.variants} --seeds={args.seeds}"
        + "".join(f" --set={override}" for override in args.set)
    )
    example = load_config(f"{args.dataset}_{args.cut}_{args.students.split(',')[0]}_kd")
    report = {
        "dataset": args.dataset,
        "cut": args.cut,
        "seeds": seeds,
        "machine": machine(),
        "command": command,
        "distillation": {
            key: overrides.get(f"distillation.{key}", example.distillation[key])
            for key in ("temperature", "weight")
        },
        "teacher": teacher,
        "rows": rows,
    }
    write_results(out, report, markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
