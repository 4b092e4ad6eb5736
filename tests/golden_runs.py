"""Runs recorded before the house restructure, re-run through the CLI and compared exactly.

Each run is a `kgjax train` command line (the CLI's spelling does not change with the layout
behind it); what it wrote (results.json's valid/test metrics and every train/eval event of
metrics.jsonl, except timings) must equal tests/golden/<name>.json to the last digit.

  python tests/golden_runs.py --record [NAME ...]   # write tests/golden/<name>.json
  python tests/golden_runs.py [NAME ...]             # compare, print differences

`golden_test.py` runs a slice in CI (`LONG` lists the others, among them the README's demo,
~1 min); all of them run with KGJAX_LONG_TESTS=1.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden"
DATA_DIR = pathlib.Path(os.environ.get("KGJAX_DATA_DIR", REPO / ".." / "shared" / "data"))
EIGHT_DEVICES = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}

# name -> (config spec, overrides, extra environment, needs the shared data).
RUNS = {
    "rotate_test": ("configs/test.py", [], {}, False),
    "complex_n3_test": ("configs/test.py:complex", [], {}, False),
    "mmrns_synthetic": (
        "configs/test.py",
        [
            "negatives.sampler=mmrns",
            "negatives.mmrns.text=synthetic",
            "negatives.mmrns.visual=synthetic",
            "negatives.mmrns.num_regions=5",
            "negatives.mmrns.visual_width=12",
            "negatives.mmrns.text_width=16",
            "negatives.mmrns.num_sentences=3",
            "negatives.mmrns.pool_size=100",
            "negatives.mmrns.chunk_size=16",
        ],
        {},
        False,
    ),  # fmt: skip
    "text_init_umls": (
        "configs/test.py",
        [
            "text.init=text",
            "text.inductive=True",
            "text.max_length=32",
            f"text.descriptions_dir={DATA_DIR / 'umls'}",
        ],
        {},
        True,
    ),  # fmt: skip
    "sharded_row_sparse": (
        "configs/test.py",
        ["mesh.axes=(('data',2),('model',4))", "optimizer.row_sparse=True"],
        EIGHT_DEVICES,
        False,
    ),
    "sharded_relations_chunk_shared": (
        "configs/test.py",
        [
            "mesh.axes=(('data',4),('model',2))",
            "mesh.shard_relations=True",
            "negatives.shared_chunk_size=16",
        ],
        EIGHT_DEVICES,
        False,
    ),  # fmt: skip
    "rotate_umls": ("configs/rotate.py:umls", [], {}, False),
}
# Run in full by `python tests/golden_runs.py` and with KGJAX_LONG_TESTS=1; CI runs the rest
# (the plain run; MMRNS's record is CI-checked by golden_test's resume of the old-layout
# MMRNS workdir, which must end on it; sharded row-sparse training is CI-checked by
# sharding_test, whose 8-device row-sparse run of configs/test.py (20 steps) must equal the
# one-device dense run) to stay inside the suite's time budget.
LONG = (
    "rotate_umls",
    "sharded_row_sparse",
    "complex_n3_test",
    "text_init_umls",
    "sharded_relations_chunk_shared",
    "mmrns_synthetic",
)
# Wall-clock figures, which no two runs share.
_TIMINGS = {"train_seconds", "steps_per_second", "train/steps_per_second", "train/seconds", "time"}


def _strip(value):
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in _TIMINGS}
    return value


def run(name: str, workdir: pathlib.Path) -> dict:
    """Trains run `name` into `workdir` through the CLI; returns what the comparison reads."""
    spec, overrides, env, _ = RUNS[name]
    command = [
        sys.executable, "-m", "kgjax.cli", "train", f"--config={REPO / spec}",
        f"--workdir={workdir}", "--noprogress", *(f"--config.{o}" for o in overrides),
    ]  # fmt: skip
    environment = {**os.environ, **env, "KGJAX_CACHE_DIR": str(workdir.parent / "cache")}
    if env:
        # Device flags must be set before JAX starts: a process of its own.
        done = subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{name}: {' '.join(command)} failed:\n{done.stderr[-3000:]}")
    else:
        _main_in_process(command[3:], environment, name)
    results = json.loads((workdir / "results.json").read_text())
    with open(workdir / "metrics.jsonl") as f:
        events = [json.loads(line) for line in f]
    return {
        "command": " ".join(command[1:]),
        "results": _strip({k: results[k] for k in ("valid", "test", "inductive") if k in results}),
        "events": [_strip(e) for e in events if e.get("event") in ("train", "eval", "final")],
    }


def _main_in_process(argv: list[str], environment: dict, name: str) -> None:
    """`kgjax <argv>` in this process (no JAX start-up per run), under `environment`."""
    from kgjax import cli

    saved = dict(os.environ)
    os.environ.update(environment)
    try:
        code = cli.main(["kgjax", *argv])
    finally:
        os.environ.clear()
        os.environ.update(saved)
    if code:
        raise RuntimeError(f"{name}: kgjax {' '.join(argv)} exited with {code}")


def differences(expected, actual, path: str = "") -> list[str]:
    """Every leaf where `actual` differs from `expected` (exact float equality; NaN == NaN)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        out = [f"{path}/{k}: missing" for k in expected if k not in actual]
        out += [f"{path}/{k}: unexpected" for k in actual if k not in expected]
        for k in expected.keys() & actual.keys():
            out += differences(expected[k], actual[k], f"{path}/{k}")
        return out
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{path}: {len(expected)} entries recorded, {len(actual)} now"]
        return [
            d
            for i, (e, a) in enumerate(zip(expected, actual, strict=True))
            for d in differences(e, a, f"{path}[{i}]")
        ]
    both_nan = (
        isinstance(expected, float)
        and isinstance(actual, float)
        and math.isnan(expected)
        and math.isnan(actual)
    )
    return [] if both_nan or expected == actual else [f"{path}: {expected!r} recorded, {actual!r} now"]  # fmt: skip


def _without_data_folder(results: dict) -> dict:
    """The results with the description file's folder dropped from its path: the folder is
    wherever this machine keeps the shared data, not a property of the run."""
    text = results.get("inductive", {}).get("text", {})
    if "source" in text:
        text["source"] = os.path.join(*pathlib.Path(text["source"]).parts[-3:])
    return results


def compare(name: str) -> list[str]:
    recorded = json.loads((GOLDEN / f"{name}.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        now = run(name, pathlib.Path(tmp) / "run")
    return differences(
        _without_data_folder(recorded["results"]), _without_data_folder(now["results"]), "results"
    ) + differences(recorded["events"], now["events"], "metrics.jsonl")


def main(argv: list[str]) -> int:
    record = "--record" in argv
    names = [a for a in argv if not a.startswith("--")] or list(RUNS)
    failed = False
    for name in names:
        if record:
            with tempfile.TemporaryDirectory() as tmp:
                out = run(name, pathlib.Path(tmp) / "run")
            GOLDEN.mkdir(exist_ok=True)
            (GOLDEN / f"{name}.json").write_text(json.dumps(out, indent=1) + "\n")
            print(f"{name}: recorded")
        else:
            diffs = compare(name)
            failed |= bool(diffs)
            print(f"{name}: {'same' if not diffs else f'{len(diffs)} differences'}")
            for d in diffs[:20]:
                print("  ", d)
    return int(failed)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
