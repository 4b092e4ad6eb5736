"""What the benchmarks share: the one-device training call, finished runs, the machine,
memory peaks, result files.

Benchmarks only call the library; what several of them need lives here, once. The scripts
run as `python bench/<name>.py`, which puts this folder on the path: `from common import ...`.
"""

from __future__ import annotations

import json
import os
import platform
import statistics

import jax

from kgjax.train.kge.build import build
from kgjax.train.workdir import RESULTS_FILE


def single_device_chunk(config, dataset, length: int, model=None):
    """The training call of `config` on the first device (`kgjax.train.kge.build`).

    Args:
      config: a KGE training config.
      dataset: its loaded `KGDataset`.
      length: steps per call.
      model: a model to train instead of the config's (variants of the same widths).

    Returns:
      (jitted chunk(state, data, key) -> (state, metrics), the initial state, the TrainData).
    """
    parts = build(
        config, dataset.num_entities, dataset.num_relations, [jax.devices()[0]], model=model
    )
    return (
        parts.train_chunk(length),
        parts.initial_state(jax.random.key(0)),
        parts.train_data(dataset),
    )


def finished_results(workdir: str) -> dict | None:
    """The results.json of a finished run in `workdir`, or None (no run, or not finished)."""
    path = os.path.join(workdir, RESULTS_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def read_runs_log(path: str, key_fields: tuple[str, ...]) -> dict:
    """The runs a previous invocation appended to a `<out>.runs.jsonl` log, keyed by the
    values of `key_fields`: {(value, ...): run}; {} without a log."""
    done = {}
    if os.path.isfile(path):
        with open(path) as f:
            for line in f:
                if line.strip():
                    run = json.loads(line)
                    done[tuple(run[field] for field in key_fields)] = run
    return done


def machine() -> dict:
    """What a result was measured on: device kind and count, CPU cores, versions."""
    return {
        "device": jax.devices()[0].device_kind,
        "num_devices": jax.device_count(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "python": platform.python_version(),
    }


def peak_memory_bytes() -> int | None:
    """The first device's peak bytes in use, where the backend reports it (GPU, TPU)."""
    stats = jax.local_devices()[0].memory_stats()
    return int(stats["peak_bytes_in_use"]) if stats and "peak_bytes_in_use" in stats else None


def write_results(out: str, payload: dict, markdown: str) -> None:
    """Writes `<out>.json` (NumPy scalars as floats) and `<out>.md`, creating the folder."""
    os.makedirs(os.path.dirname(os.path.abspath(out)) or ".", exist_ok=True)
    with open(f"{out}.json", "w") as f:
        json.dump(payload, f, indent=2, default=float)
        f.write("\n")
    with open(f"{out}.md", "w") as f:
        f.write(markdown)


def context(text: str, start: int, end: int, width: int) -> str:
    """A span (a mention) marked [[...]] with about `width` characters each side, for a table cell."""
    left, right = max(0, start - width), min(len(text), end + width)
    snippet = (
        ("…" if left else "")
        + text[left:start]
        + "[["
        + text[start:end]
        + "]]"
        + text[end:right]
        + ("…" if right < len(text) else "")
    )
    return snippet.replace("|", "\\|")


def mean_sd(values: list[float]) -> dict:
    """{"mean", "sd" (sample; 0 for one value), "n", "values"}: a figure over seeds."""
    return {
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        "n": len(values),
        "values": values,
    }
