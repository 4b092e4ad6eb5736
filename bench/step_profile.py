"""Where a KGE training step's time goes: the same step with one thing changed at a time.

Run:
  python bench/step_profile.py --mode=gpu --out=bench/results/step_profile_gpu   # GPU machine
  python bench/step_profile.py --mode=cpu --out=/tmp/step_profile_cpu             # a check
  python bench/step_profile.py --mode=cpu --dataset=fb15k237 --set=batch_size=1024 \
      --set=negatives.num_negatives=256 --set=model.dim=200 --models=rotate \
      --variants=reference,autodiff_distance --steps=10 --calls=10   # larger shapes on CPU

Every variant is `kgjax.train.kge.step.make_train_chunk` on the real data (FB15k-237 with the
RotatE repository's config on the GPU; UMLS-sized widths on CPU), compiled once, then timed
over `--calls` calls of `--steps` steps (after a warm-up call); ms/step is the median call.

  reference           the config as it is: filtered self-adversarial negatives, one set per
                      positive, dense Adam; TransE/RotatE distances with the recomputing
                      backward of `kgjax.models.kge.base` (`l1_distance`, `complex_distance`)
  autodiff_distance   the interaction's distance differentiated by plain autodiff (the
                      residuals the recomputing backward avoids)
  unfiltered          negatives not checked against the training triples
  uniform_weights     no self-adversarial weights (`negatives.sampler=uniform`)
  shared              each chunk of `--shared_chunk_size` positives shares its negatives
  row_sparse          `optimizer.row_sparse`: per-row table gradients, no dense Adam pass
  shared_row_sparse   both

Writes <out>.json (every variant: ms/step, steps/s, compile seconds, peak device memory where
the backend reports it, final loss) and <out>.md, with the device and versions.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import time

import jax
import jax.numpy as jnp

from kgjax import config as config_lib
from kgjax.models.kge import base
from kgjax.models.kge.translational import (
    RotatE,
    RotatEInteraction,
    TransE,
    TransEInteraction,
)
from kgjax.train.kge import config as kge_config_lib
from kgjax.train.kge.build import load_dataset, make_model

from common import machine, peak_memory_bytes, single_device_chunk, write_results

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODES = {
    "gpu": dict(dataset="fb15k237", overrides={}),
    "cpu": dict(
        dataset="umls",
        overrides={"model.dim": 32, "batch_size": 128, "negatives.num_negatives": 32},
    ),
}


@dataclasses.dataclass(frozen=True)
class AutodiffRotatEInteraction(RotatEInteraction):
    """RotatE's distance differentiated by plain autodiff (a guarded modulus: the bare
    sqrt's gradient is NaN at 0)."""

    def match(self, query, candidate):
        re_q, im_q = base.split_complex(query)
        re_c, im_c = base.split_complex(candidate)
        squared = (re_q - re_c) ** 2 + (im_q - im_c) ** 2
        positive = squared > 0
        modulus = jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0)
        return self.gamma - jnp.sum(modulus, axis=-1)


@dataclasses.dataclass(frozen=True)
class AutodiffTransEInteraction(TransEInteraction):
    """TransE's distance differentiated by plain autodiff."""

    def match(self, query, candidate):
        return self.gamma - jnp.sum(jnp.abs(query - candidate), axis=-1)


@dataclasses.dataclass(frozen=True)
class AutodiffRotatE(RotatE):
    interaction_class = AutodiffRotatEInteraction


@dataclasses.dataclass(frozen=True)
class AutodiffTransE(TransE):
    interaction_class = AutodiffTransEInteraction


AUTODIFF = {"rotate": AutodiffRotatE, "transe": AutodiffTransE}


def variants(shared_chunk_size: int) -> dict[str, dict]:
    return {
        "reference": {},
        "autodiff_distance": {"autodiff": True},
        "unfiltered": {"negatives.filtered": False},
        "uniform_weights": {"negatives.sampler": "uniform"},
        "shared": {"negatives.shared_chunk_size": shared_chunk_size},
        "row_sparse": {"optimizer.row_sparse": True},
        "shared_row_sparse": {
            "negatives.shared_chunk_size": shared_chunk_size,
            "optimizer.row_sparse": True,
        },
    }


def load_config(model: str, dataset: str, overrides: dict):
    config = config_lib.from_file(os.path.join(REPO, f"configs/{model}.py:{dataset}"), overrides)
    kge_config_lib.validate(config)
    return config


def measure(config, dataset, autodiff: bool, steps: int, calls: int) -> dict:
    model = None
    if autodiff:
        if config.model.name not in AUTODIFF:
            return {"skipped": f"{config.model.name} has no recomputing backward"}
        model = AUTODIFF[config.model.name](
            **make_model(config.model, dataset.num_entities, dataset.num_relations).hparams()
        )
    chunk, state, data = single_device_chunk(config, dataset, steps, model)
    key = jax.random.key(1)
    started = time.perf_counter()
    state, metrics = chunk(state, data, key)
    jax.block_until_ready(metrics)
    compile_seconds = time.perf_counter() - started
    seconds = []
    for _ in range(calls):
        started = time.perf_counter()
        state, metrics = chunk(state, data, key)
        jax.block_until_ready(metrics)
        seconds.append(time.perf_counter() - started)
    per_step = statistics.median(seconds) / steps
    return {
        "ms_per_step": per_step * 1e3,
        "steps_per_second": 1.0 / per_step,
        "compile_seconds": compile_seconds,
        "peak_memory_bytes": peak_memory_bytes(),
        "final_loss": float(metrics["loss"][-1]),
    }


def markdown(report: dict) -> str:
    lines = [
        f"Device: {report['device']}; jax {report['jax']}; Python {report['python']}",
        f"Command: `{report['command']}`",
        "",
        "| model | variant | ms/step | steps/s | vs reference | peak MiB | final loss |",
        "|---|---|---|---|---|---|---|",
    ]
    for model, rows in report["results"].items():
        reference = rows.get("reference", {}).get("ms_per_step")
        for name, row in rows.items():
            if "skipped" in row:
                lines.append(f"| {model} | {name} | {row['skipped']} | | | | |")
                continue
            peak = row["peak_memory_bytes"]
            lines.append(
                f"| {model} | {name} | {row['ms_per_step']:.2f} | {row['steps_per_second']:.1f} "
                f"| {reference / row['ms_per_step']:.2f}x | "
                f"{'n/a' if peak is None else f'{peak / 2**20:.0f}'} | {row['final_loss']:.4f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=sorted(MODES), default="cpu")
    parser.add_argument("--dataset", default="", help="instead of the mode's dataset")
    parser.add_argument(
        "--set", action="append", default=[], help="key=value over the mode's overrides"
    )
    parser.add_argument("--models", default="rotate,transe")
    parser.add_argument("--variants", default="", help="comma-separated subset (default all)")
    parser.add_argument("--shared_chunk_size", type=int, default=0, help="0: num_negatives")
    parser.add_argument("--steps", type=int, default=20, help="steps per device call")
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--out", default=os.path.join(REPO, "bench", "results", "step_profile"))
    args = parser.parse_args()

    mode = dict(MODES[args.mode])
    mode["dataset"] = args.dataset or mode["dataset"]
    mode["overrides"] = {**mode["overrides"], **config_lib.parse_overrides(args.set)}
    report = {
        **machine(),
        "command": "python bench/step_profile.py "
        + " ".join(
            f"--{k}={v}" for k, v in vars(args).items() if k not in ("out", "set") and v != ""
        )
        + "".join(f" --set={text}" for text in args.set),
        "results": {},
    }
    for model in args.models.split(","):
        base_config = load_config(model, mode["dataset"], mode["overrides"])
        dataset = load_dataset(base_config.data)
        chunk = args.shared_chunk_size or base_config.negatives.num_negatives
        chunk = min(chunk, base_config.batch_size)
        chosen = variants(chunk)
        if args.variants:
            chosen = {k: v for k, v in chosen.items() if k in args.variants.split(",")}
        rows = report["results"].setdefault(model, {})
        for name, change in chosen.items():
            change = dict(change)
            autodiff = change.pop("autodiff", False)
            config = load_config(model, mode["dataset"], {**mode["overrides"], **change})
            rows[name] = {
                "change": change,
                **measure(config, dataset, autodiff, args.steps, args.calls),
            }
            print(json.dumps({"model": model, "variant": name, **rows[name]}), flush=True)
    table = markdown(report)
    write_results(args.out, report, table)
    print(table)


if __name__ == "__main__":
    main()
