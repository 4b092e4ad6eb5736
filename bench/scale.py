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
  peak/dev      XLA's buffer assignment for the compiled train call on one device
                (arguments + outputs - aliased + temporaries; `memory_analysis()`); on a GPU
                also the allocator's `peak_bytes_in_use`.
  work          peak - state - data: the step's working set (batch rows, gradients).
  bar           peak / (state + data + work at the smallest table): the issue's bound
                "(table + optimizer state)/N + batch working set", <= 1.2 to pass.
  steps/s       after one warm-up call, `--calls` calls of `--steps_per_call` steps.

Fake CPU devices share the host's cores, so their steps/s measure total work, not parallel
speed; their memory figures are exact per-device buffer sizes. Writes
bench/results/scale_<device>.json and prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
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
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(REPO / "bench" / "results"))
    return parser.parse_args()


ARGS = _parse_args() if __name__ == "__main__" else None
if ARGS is not None and ARGS.fake_devices:
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + f" --xla_force_host_platform_device_count={ARGS.fake_devices}"
    ).strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(REPO))

from kgjax import models  # noqa: E402
from kgjax.data.triples import TripleIndex, subsampling_weights  # noqa: E402
from kgjax.ops.triple_index import DeviceTripleIndex  # noqa: E402
from kgjax.sharding import Layout  # noqa: E402
from kgjax.train.negatives import UniformSampler  # noqa: E402
from kgjax.train.optimizers import make_optimizer  # noqa: E402
from kgjax.train.state import TrainData, TrainState  # noqa: E402
from kgjax.train.steps import StepSettings, make_train_chunk  # noqa: E402

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
    model_axis = min(args.model_axis, len(devices)) if args.model_axis > 0 else -1
    layout = Layout.create(
        num_entities, args.relations, (("data", -1), ("model", model_axis)), devices
    )
    model = models.get("rotate", num_entities, args.relations, dim=args.dim, gamma=24.0)
    sampler = UniformSampler(args.num_negatives)
    optimizer, schedule = make_optimizer(_optimizer_config(), 1_000_000)
    started = time.perf_counter()
    state = TrainState.create_sharded(model, sampler, optimizer, jax.random.key(0), layout)
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

    sharding = jax.tree.map(lambda x: x.sharding, state)
    settings = StepSettings(args.batch_size, 1.0, True, "none", 0.0)
    chunk = make_train_chunk(
        model, sampler, optimizer, schedule, settings, args.steps_per_call, layout, sharding
    )
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
        "table_bytes_total": layout.entity_rows * model.entity_width * 4,
        "table_bytes_per_device": max(table.values()),
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


def _optimizer_config():
    import ml_collections

    return ml_collections.ConfigDict(
        dict(name="adam", lr=1e-4, schedule="constant", decay_steps=0, decay_factor=1.0,
             warmup_steps=0)
    )  # fmt: skip


def table(rows: list[dict]) -> str:
    """The Markdown table for BENCHMARKS.md, with the bar computed against the smallest row."""
    lines = [
        "| entities | triples | devices | table/dev MB | state/dev MB | data/dev MB | "
        "peak/dev MB | work MB | bar | steps/s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['entities']:,} | {row['triples']:,} | {row['devices']} "
            f"| {row['table_bytes_per_device'] / MB:.1f} | {row['state_bytes_per_device'] / MB:.1f} "
            f"| {row['data_bytes_per_device'] / MB:.1f} "
            f"| {row['xla_peak_bytes_per_device'] / MB:.1f} | {row['work_bytes'] / MB:.1f} "
            f"| {row['bar']:.2f} | {row['steps_per_second']:.2f} |"
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
    # The working set: what the step adds beyond the state and the data. The bar compares
    # each row's peak with its state and data plus the working set of the smallest table
    # (with the same batch) on the same number of devices.
    for row in rows:
        row["work_bytes"] = (
            row["xla_peak_bytes_per_device"]
            - row["state_bytes_per_device"]
            - row["data_bytes_per_device"]
        )
    for row in rows:
        smallest = min(
            (r for r in rows if r["devices"] == row["devices"]), key=lambda r: r["entities"]
        )
        bound = (
            row["state_bytes_per_device"] + row["data_bytes_per_device"] + smallest["work_bytes"]
        )
        row["bar"] = row["xla_peak_bytes_per_device"] / bound

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
    path = out / f"scale_{name}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\n{len(devices)} x {device.device_kind}, jax {jax.__version__}; wrote {path}\n")
    print(table(rows))
    print(
        f"\nprojection: entities per device that fit M bytes = (M - data - work) / "
        f"({_bytes_per_row(args.dim)} bytes per row: table + Adam mu, nu + gradient)"
    )


def _bytes_per_row(dim: int) -> int:
    return 4 * 2 * dim * 4  # float32 [re | im] rows: parameter, mu, nu, dense gradient


if __name__ == "__main__":
    main()
