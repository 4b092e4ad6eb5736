"""Scale: per-device memory and steps/s of sharded training as the entity table grows.

Run (from the repository root):
  python bench/scale.py --fake_devices=8                 # CPU: 8 fake devices, shape and memory
  python bench/scale.py --entities=1000000,4000000,16000000,64000000 --dim=200 \
      --batch_size=1024 --num_negatives=256              # the GPU machine: real speed

Each row trains RotatE (Adam, filtered self-adversarial negatives: the reference step) on
a synthetic graph with a Freebase-like degree distribution: `--triples_per_entity` triples
per entity (Freebase: 338M / 86M = 3.93), heads and tails drawn from a Zipf law over
entities (exponent `--zipf`, 0.8: a degree power law of exponent 1 + 1/0.8 = 2.25, about
Freebase's), relations from a Zipf law over `--relations` (Freebase: 14,824). The tables
are split over every device (mesh (("data", 1), ("model", N)); `--model_axis` splits them
over fewer and the batch over the rest); the same table on a single device is the peer row
(`--peer`, while it fits).

Per row:
  table/dev     bytes of this device's shard of the entity table (measured: the live shard).
  state/dev     table + relation table + Adam moments on this device (live shards).
  data/dev      this device's slice of the triples plus the replicated filter index.
  grad/dev      the tables' dense gradients on this device (one shard of each table; none
                for the entity table with --row_sparse, the default; --no-row_sparse
                measures the dense update and writes scale_<device>_dense.json).
  W             the batch working set: the temporaries of the same step with a negligible
                table (`--calibration_entities`) less that table's gradient.
  peak/dev      XLA's buffer assignment for the compiled train call on one device
                (arguments + outputs - aliased + temporaries; `memory_analysis()`); on a GPU
                also the allocator's `peak_bytes_in_use`.
  bar           peak / (state + data + W): the issue's bound "(table + optimizer state)/N +
                batch working set" (<= 1.2 to pass), with the data on both sides;
                "bar w/o data" leaves the data out of both.
  steps/s       after one warm-up call, `--calls` calls of `--steps_per_call` steps.

Fake CPU devices share the host's cores, so their steps/s measure total work, not parallel
speed; their memory figures are exact per-device buffer sizes. Writes
bench/results/scale_<device>.json and prints a Markdown table for BENCHMARKS.md and the
Freebase projection (pod size from the measured bytes per row, time from the fitted step
time; `python bench/scale.py --reprint bench/results/scale_cpu_fake.json` prints them again).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import platform
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]


def _parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fake_devices", type=int, default=0, help="CPU devices (0: real)")
    parser.add_argument("--entities", default="1000000,2000000,4000000")
    parser.add_argument("--triples_per_entity", type=float, default=3.93)
    parser.add_argument("--relations", type=int, default=14824)
    parser.add_argument("--zipf", type=float, default=0.8)
    parser.add_argument("--dim", type=int, default=32, help="RotatE complex dimensions")
    parser.add_argument("--batch_size", type=int, default=1024)
    parser.add_argument("--num_negatives", type=int, default=64)
    parser.add_argument("--steps_per_call", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2)
    parser.add_argument(
        "--model_axis", type=int, default=-1, help="devices splitting the tables (-1: all)"
    )
    parser.add_argument("--peer", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--row_sparse",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="config.optimizer.row_sparse: no table-sized gradient buffer",
    )
    parser.add_argument("--calibration_entities", type=int, default=65536)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(REPO / "bench" / "results"))
    return parser.parse_args()


ARGS = _parse_args() if __name__ == "__main__" and "--reprint" not in sys.argv else None
if ARGS is not None and ARGS.fake_devices:
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + f" --xla_force_host_platform_device_count={ARGS.fake_devices}"
    ).strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(REPO))

from kgjax.data.triples import TripleIndex, subsampling_weights  # noqa: E402
from kgjax.ops.triple_index import DeviceTripleIndex  # noqa: E402
from kgjax.train.kge.build import build  # noqa: E402
from kgjax.train.kge.config import kge_config  # noqa: E402
from kgjax.train.kge.state import TrainData  # noqa: E402

MB = 2**20


def freebase_like(num_entities: int, args, seed: int) -> np.ndarray:
    """A synthetic graph whose degrees follow a power law like Freebase's: int32 [n, 3]."""
    rng = np.random.default_rng(seed)
    n = int(num_entities * args.triples_per_entity)

    def zipf(count, size, exponent):
        cdf = np.cumsum(1.0 / np.arange(1, size + 1, dtype=np.float64) ** exponent)
        return np.searchsorted(cdf / cdf[-1], rng.random(count)).astype(np.int64)

    # Hubs land on random ids, as in a real vocabulary.
    relabel = rng.permutation(num_entities)
    heads = relabel[zipf(n, num_entities, args.zipf)]
    tails = relabel[zipf(n, num_entities, args.zipf)]
    relations = zipf(n, args.relations, 1.0)
    key = (heads * args.relations + relations) * num_entities + tails
    key = np.unique(key)
    tails, rest = key % num_entities, key // num_entities
    triples = np.stack([rest // args.relations, rest % args.relations, tails], axis=1)
    return triples.astype(np.int32)


def per_device_bytes(tree) -> dict:
    """{device: bytes of the tree's shards living there}."""
    out: dict = {}
    for leaf in jax.tree.leaves(tree):
        for shard in leaf.addressable_shards:
            out[shard.device] = out.get(shard.device, 0) + shard.data.nbytes
    return out


def measure(num_entities: int, triples: np.ndarray, devices, args) -> dict:
    """Trains a few steps on `devices` with the tables split over all of them."""
    if args.model_axis > 0:
        axes = (("data", -1), ("model", min(args.model_axis, len(devices))))
    else:
        axes = (("data", 1), ("model", -1))
    config = kge_config(
        command="bench/scale.py", model="rotate", dataset="synthetic", dim=args.dim, gamma=24.0,
        batch_size=args.batch_size, num_negatives=args.num_negatives,
        adversarial_temperature=1.0, lr=1e-4, num_steps=1_000_000,
    )  # fmt: skip
    config.optimizer.schedule = "constant"
    config.optimizer.row_sparse = args.row_sparse
    config.mesh.axes = axes
    parts = build(config, num_entities, args.relations, devices)
    layout = parts.layout
    started = time.perf_counter()
    state = parts.initial_state(jax.random.key(0))
    index = DeviceTripleIndex.from_host(TripleIndex.build(triples, num_entities))
    data = TrainData(
        triples=layout.put(triples, "triples", None),
        weights=layout.put(subsampling_weights(triples), "triples"),
        index=layout.replicate(index),
        features={},
        num_triples=len(triples),
    )
    jax.block_until_ready((state, data))
    setup_seconds = time.perf_counter() - started
    chunk = parts.train_chunk(args.steps_per_call)
    key = jax.random.key(1)
    started = time.perf_counter()
    compiled = chunk.lower(state, data, key).compile()
    compile_seconds = time.perf_counter() - started
    analysis = compiled.memory_analysis()
    peak = (
        analysis.argument_size_in_bytes
        + analysis.output_size_in_bytes
        - analysis.alias_size_in_bytes
        + analysis.temp_size_in_bytes
    )

    device = devices[0]
    table = per_device_bytes(state.params["entity"])
    # Tables whose gradient is dense (all of them, or those row_sparse does not tap).
    tapped = (layout.viewed(state.params) or ("entity",)) if args.row_sparse else ()
    dense = [v for k, v in state.params.items() if k not in tapped]
    gradient_bytes = max(per_device_bytes(dense).values()) if dense else 0
    state_bytes = per_device_bytes(state)
    data_bytes = per_device_bytes(data)
    state, metrics = compiled(state, data, key)  # warm-up
    jax.block_until_ready(state)
    started = time.perf_counter()
    for _ in range(args.calls):
        state, metrics = compiled(state, data, key)
    jax.block_until_ready((state, metrics))
    seconds = time.perf_counter() - started
    loss = float(np.asarray(metrics["loss"])[-1])
    stats = device.memory_stats() or {}
    return {
        "entities": num_entities,
        "triples": len(triples),
        "devices": len(devices),
        "mesh": dict(layout.mesh.shape),
        "entity_rows": layout.entity_rows,
        "table_bytes_total": layout.entity_rows * parts.model.entity_width * 4,
        "table_bytes_per_device": max(table.values()),
        # The dense gradients of the tables (as large as their shards), part of the peak.
        "gradient_bytes_per_device": gradient_bytes,
        "state_bytes_per_device": max(state_bytes.values()),
        "data_bytes_per_device": max(data_bytes.values()),
        "xla_peak_bytes_per_device": int(peak),
        "xla_temp_bytes_per_device": int(analysis.temp_size_in_bytes),
        "allocator_peak_bytes": stats.get("peak_bytes_in_use"),
        "steps_per_second": args.calls * args.steps_per_call / seconds,
        "final_loss": loss,
        "setup_seconds": setup_seconds,
        "compile_seconds": compile_seconds,
    }


def table(rows: list[dict]) -> str:
    """The Markdown table for BENCHMARKS.md, with the bar computed against the smallest row."""
    lines = [
        "| entities | triples | devices | table/dev MB | state/dev MB | data/dev MB "
        "| grad/dev MB | W MB | peak/dev MB | bar | bar w/o data | steps/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['entities']:,} | {row['triples']:,} | {row['devices']} "
            f"| {row['table_bytes_per_device'] / MB:.1f} | {row['state_bytes_per_device'] / MB:.1f} "
            f"| {row['data_bytes_per_device'] / MB:.1f} "
            f"| {row['gradient_bytes_per_device'] / MB:.1f} "
            f"| {row['working_set_bytes'] / MB:.1f} "
            f"| {row['xla_peak_bytes_per_device'] / MB:.1f} | {row['bar']:.2f} "
            f"| {row['bar_without_data']:.2f} | {row['steps_per_second']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    args = ARGS
    devices = jax.devices()
    rows = []
    for num_entities in (int(v) for v in args.entities.split(",")):
        started = time.perf_counter()
        triples = freebase_like(num_entities, args, args.seed)
        graph_seconds = time.perf_counter() - started
        meshes = [devices]
        if args.peer and len(devices) > 1:
            meshes.append(devices[:1])
        for chosen in meshes:
            row = measure(num_entities, triples, chosen, args)
            row["graph_seconds"] = graph_seconds
            rows.append(row)
            print(json.dumps(row), flush=True)
    # The batch working set W: the temporaries of the same step with a negligible table
    # (`--calibration_entities`), less that table's gradient. Each row's peak is then set
    # against the bound, (table + optimizer state)/N + W, with this device's data
    # (its slice of the triples, the replicated filter index) added to both sides.
    for count in {row["devices"] for row in rows}:
        chosen = devices[:count]
        calibration = measure(
            args.calibration_entities, freebase_like(args.calibration_entities, args, 1),
            chosen, args,
        )  # fmt: skip
        work = calibration["xla_temp_bytes_per_device"] - calibration["gradient_bytes_per_device"]
        for row in rows:
            if row["devices"] == count:
                row["working_set_bytes"] = work
                bound = row["state_bytes_per_device"] + row["data_bytes_per_device"] + work
                row["bar"] = row["xla_peak_bytes_per_device"] / bound
                row["bar_without_data"] = (
                    row["xla_peak_bytes_per_device"] - row["data_bytes_per_device"]
                ) / (row["state_bytes_per_device"] + work)

    device = devices[0]
    result = {
        "device": device.device_kind,
        "platform": device.platform,
        "num_devices": len(devices),
        "fake_devices": args.fake_devices,
        "jax": jax.__version__,
        "python": platform.python_version(),
        "host": platform.node(),
        "command": "python " + " ".join(sys.argv),
        "args": vars(args),
        "rows": rows,
    }
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "cpu_fake" if args.fake_devices else device.device_kind.replace(" ", "_").lower()
    name += "" if args.row_sparse else "_dense"
    path = out / f"scale_{name}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\n{len(devices)} x {device.device_kind}, jax {jax.__version__}; wrote {path}\n")
    print(table(rows))
    print("\n" + projection(result))


# Freebase as DGL-KE and PyTorch-BigGraph train it.
FREEBASE = {"entities": 86_054_151, "relations": 14_824, "triples": 338_586_276}
# Memory of one device, GB (decimal), for the pod-size projection.
DEVICE_MEMORY_GB = {"H100 (80 GB)": 80, "TPU v5e (16 GB)": 16, "TPU v4 (32 GB)": 32,
                    "TPU v5p (95 GB)": 95}  # fmt: skip


def projection(result: dict, dim: int = 200, steps: int = 500_000, headroom: float = 0.9) -> str:
    """The Freebase projection from a run's measured rows, with its formula.

    Memory per device, from the measured bytes per table row (the slope of peak/dev less
    data/dev over entities, times the devices), the replicated filter index at Freebase's
    size and the measured working set:
      M(N) = rows_bytes(V) / N + index(n) + W
    Pod size: the smallest N with M(N) <= headroom * device memory.
    Time per step, fitted as t(N) = a + c * (V * De / N) over the rows of this run's device
    count (c: seconds per table element per device: the dense optimizer update), then
      time = steps * t(N).
    """
    rows = [r for r in result["rows"] if r["devices"] == result["num_devices"]]
    rows.sort(key=lambda r: r["entities"])
    if len(rows) < 2:
        return "projection: needs two table sizes on the same devices"
    n_dev = rows[0]["devices"]
    width = 2 * result["args"]["dim"]
    first, last = rows[0], rows[-1]
    # The data (the filter index grows with the triples) is set apart: only the split part.
    split = lambda r: r["xla_peak_bytes_per_device"] - r["data_bytes_per_device"]  # noqa: E731
    row_bytes = (split(last) - split(first)) * n_dev / (last["entities"] - first["entities"])
    per_element = row_bytes / width  # bytes per table element across the state
    # The filter index is replicated: 4 int32 arrays of n plus 2 offset arrays of V + 1.
    index = 16 * FREEBASE["triples"] + 8 * FREEBASE["entities"]
    work = last["working_set_bytes"]
    table_state = per_element * 2 * dim * FREEBASE["entities"]
    seconds = np.array([1.0 / r["steps_per_second"] for r in rows])
    elements = np.array([r["entities"] * width / n_dev for r in rows], np.float64)
    slope, intercept = np.polyfit(elements, seconds, 1)
    if intercept < 0:  # noisy timings: fall back to a fit through the origin
        slope, intercept = float(elements @ seconds / (elements @ elements)), 0.0
    expected = (
        "parameter, Adam mu and nu: 12 expected"
        if result["args"].get("row_sparse")
        else "parameter, Adam mu and nu, dense gradient: 16 expected"
    )
    lines = [
        f"Projection for Freebase ({FREEBASE['entities']:,} entities, "
        f"{FREEBASE['triples']:,} triples), RotatE dim {dim} (De = {2 * dim}), Adam:",
        f"  measured: {row_bytes:,.0f} bytes per entity row of width {width} across devices "
        f"= {per_element:.1f} bytes per table element ({expected})",
        f"  M(N) = {per_element:.1f} B * V * De / N + index 16 B * n + 8 B * V "
        f"({index / 1e9:.2f} GB, replicated) + W ({work / 1e6:.0f} MB)",
        f"       = {table_state / 1e9:,.1f} GB / N + {(index + work) / 1e9:.2f} GB",
    ]
    for name, gigabytes in DEVICE_MEMORY_GB.items():
        room = headroom * gigabytes * 1e9 - index - work
        need = math.ceil(table_state / room) if room > 0 else None
        lines.append(f"  {name}: N >= {need} ({headroom:.0%} of memory usable)")
    # The batch is split over the devices too; communication is not in the fit.
    t_fb = lambda n: (intercept * n_dev + slope * FREEBASE["entities"] * 2 * dim) / n  # noqa: E731
    h100 = math.ceil(table_state / (headroom * 80e9 - index - work))
    lines += [
        f"  t(N) = (a * {n_dev} + c * V * De) / N, a and c fitted as t = a + c * V * De / "
        f"{n_dev} on this run's rows: a = {intercept * 1e3:.2f} ms, "
        f"c = {slope * 1e9:.3f} ns per element ({result['device']}, {result['platform']}, "
        f"{'fake devices sharing the host cores' if result['fake_devices'] else 'real devices'})",
        f"  {steps:,} steps at these rates: N = {n_dev}: "
        f"{steps * t_fb(n_dev) / 3600:,.1f} h; N = {h100} (the H100 pod size above): "
        f"{steps * t_fb(h100) / 3600:,.1f} h (communication not included)",
    ]
    return "\n".join(lines)


def _reprint(path: str) -> None:
    result = json.loads(pathlib.Path(path).read_text())
    print(table(result["rows"]))
    print("\n" + projection(result))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--reprint":
        _reprint(sys.argv[2])
    else:
        main()
