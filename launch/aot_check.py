"""Ahead-of-time check: does a config's training (and evaluation) call compile, and fit, on N devices?

Run (from the repository root), before paying for the devices:
  python launch/aot_check.py --config=configs/rotate.py:fb15k237 --num_devices=8 \
      --config.mesh.axes='[["data",1],["model",8]]' --device_memory_gb=80
  python launch/aot_check.py --config=configs/rotate.py:fb15k237 --num_devices=64 \
      --config.mesh.axes='[["data",1],["model",-1]]' --num_entities=86054151 \
      --num_relations=14824 --num_triples=338586276 --device_memory_gb=16   # Freebase, v5e-64
  python launch/aot_check.py ... --topology=v5e:8x8    # a TPU target, where libtpu is installed

Lowers `jax.jit(train chunk).lower(...).compile()` for the target mesh from abstract inputs
(`jax.ShapeDtypeStruct`s with their shardings: nothing is allocated, so a Freebase-sized
table checks on a laptop), then the evaluation call, and prints XLA's per-device memory:
arguments (state and data shards), temporaries, and the peak against `--device_memory_gb`.
Exits 1 when the peak does not fit.

Without `--topology` (or when JAX cannot build that TPU topology: no libtpu here) the target
is `--num_devices` fake CPU devices in the same mesh: sharding, collectives and buffer sizes
are the target's; TPU memory tiling can add a little. The sizes default to the config's
dataset (which must then be readable here); give `--num_entities` etc. to check a graph
you do not have locally (the filter-index budgets then come from `--max_degree` and
`--max_answers`).
"""

from __future__ import annotations

import os
import sys

from absl import app, flags
from ml_collections import config_flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Config file and argument.", lock_config=True)
flags.DEFINE_integer("num_devices", 8, "Devices of the target (fake CPU devices here).")
flags.DEFINE_string("topology", "", "A TPU topology name, e.g. v5e:8x8 (needs libtpu).")
flags.DEFINE_float("device_memory_gb", 80.0, "Memory of one target device.")
flags.DEFINE_integer("num_entities", 0, "V (0: the config's dataset).")
flags.DEFINE_integer("num_relations", 0, "R (0: the config's dataset).")
flags.DEFINE_integer("num_triples", 0, "Training triples (0: the config's dataset).")
flags.DEFINE_integer("num_eval_triples", 20_000, "Evaluation triples, with --num_entities.")
flags.DEFINE_integer("max_degree", 100_000, "Most triples of one entity, with --num_entities.")
flags.DEFINE_integer("max_answers", 10_000, "Most answers of one query, with --num_entities.")

GB = 2**30


def _fake_devices(count: int) -> None:
    """Asks for `count` CPU devices; must run before JAX starts."""
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={count}"
    ).strip()


def target_devices(num_devices: int, topology: str = ""):
    """The devices to compile for: a TPU topology when JAX can build it, else CPU devices."""
    import jax

    if topology:
        try:
            from jax.experimental import topologies

            return list(topologies.get_topology_desc(topology, "tpu").devices), topology
        except Exception as error:  # noqa: BLE001 - any failure means: no TPU compiler here
            print(f"TPU topology {topology!r} unavailable ({error}); using CPU devices")
    devices = jax.devices("cpu")
    if len(devices) < num_devices:
        raise SystemExit(
            f"{len(devices)} CPU devices, {num_devices} needed: run this script directly "
            f"(it sets --xla_force_host_platform_device_count before JAX starts)"
        )
    return devices[:num_devices], f"{num_devices} x cpu (fake)"


def abstract_data(layout, sizes: dict, index_stats: dict, features: dict):
    """The TrainData and evaluation index as ShapeDtypeStructs with their shardings."""
    import jax
    import jax.numpy as jnp

    from kgjax.ops.triple_index import CSRSide, DeviceTripleIndex
    from kgjax.train.kge.state import TrainData

    def sds(shape, dtype, *logical):
        sharding = layout.sharding(*logical) if logical else layout.replicated
        return jax.ShapeDtypeStruct(tuple(shape), dtype, sharding=sharding)

    def side(count, stats):
        return CSRSide(
            offsets=sds([sizes["entities"] + 1], jnp.int32),
            relation=sds([count], jnp.int32),
            entity=sds([count], jnp.int32),
            search_steps=stats[0],
            max_answers=stats[1],
        )

    def index(count, stats):
        return DeviceTripleIndex(
            tails=side(count, stats["tails"]), heads=side(count, stats["heads"])
        )

    rows = layout.padded(sizes["triples"], "triples")
    data = TrainData(
        triples=sds([rows, 3], jnp.int32, "triples", None),
        weights=sds([rows], jnp.float32, "triples"),
        index=index(sizes["triples"], index_stats["train"]),
        features={k: sds(v.shape, v.dtype) for k, v in features.items()},
        num_triples=sizes["triples"],
    )
    return data, index(sizes["all_triples"], index_stats["all"])


def _index_stats(index) -> dict:
    from kgjax.ops.triple_index import DeviceTripleIndex

    device = DeviceTripleIndex.from_host(index)
    return {
        side: (getattr(device, side).search_steps, getattr(device, side).max_answers)
        for side in ("tails", "heads")
    }


def check(config, devices, sizes: dict | None = None, device_memory: float = 80 * GB) -> dict:
    """Compiles the training chunk and the evaluation for `devices`; returns the figures.

    Args:
      config: a training config (its mesh, model, batch and negatives).
      devices: the target devices (fake CPU devices or a TPU topology's).
      sizes: {"entities", "relations", "triples", "eval_triples", "max_degree",
        "max_answers"}; None: read the config's dataset.
      device_memory: bytes of one device.
    """
    import math

    import jax
    import jax.numpy as jnp
    import numpy as np

    from kgjax.evaluation import link_prediction
    from kgjax.train.kge import build as build_lib
    from kgjax.train.kge import config as kge_config_lib

    kge_config_lib.validate(config)
    if sizes is None:
        dataset = build_lib.load_dataset(config.data)
        sizes = {
            "entities": dataset.num_entities,
            "relations": dataset.num_relations,
            "triples": len(dataset.train),
            "all_triples": sum(len(t) for t in dataset.splits.values()),
            "eval_triples": len(dataset.test),
        }
        stats = {
            "train": _index_stats(dataset.triple_index(("train",))),
            "all": _index_stats(dataset.triple_index()),
        }
        features = None
    else:
        steps = max(1, math.ceil(math.log2(sizes["max_degree"] + 1)))
        budget = (steps, sizes["max_answers"])
        stats = {
            "train": {"tails": budget, "heads": budget},
            "all": {"tails": budget, "heads": budget},
        }
        sizes = {**sizes, "all_triples": sizes["triples"] + 2 * sizes["eval_triples"]}
        features = {}
    parts = build_lib.build(config, sizes["entities"], sizes["relations"], devices)
    model, layout = parts.model, parts.layout
    if features is None:
        features = parts.features(dataset)
    state = parts.abstract_state()
    data, eval_index = abstract_data(layout, sizes, stats, features)
    key = jax.ShapeDtypeStruct((), jax.random.key(0).dtype, sharding=layout.replicated)
    chunk = parts.train_chunk(kge_config_lib.chunk_length(config))
    train = chunk.lower(state, data, key).compile().memory_analysis()

    batch = layout.padded(min(config.evaluation.batch_size, sizes["eval_triples"]), "eval_batch")
    batches = jax.ShapeDtypeStruct(
        (-(-sizes["eval_triples"] // batch), batch, 3),
        jnp.int32,
        sharding=layout.sharding(None, "eval_batch", None),
    )
    evaluate = (
        link_prediction.rank_all.lower(model, layout, state.params, batches, eval_index)
        .compile()
        .memory_analysis()
    )

    def peak(analysis):
        return int(
            analysis.argument_size_in_bytes
            + analysis.output_size_in_bytes
            - analysis.alias_size_in_bytes
            + analysis.temp_size_in_bytes
        )

    def shard_bytes(tree):
        total = 0
        for leaf in jax.tree.leaves(tree):
            shape = leaf.sharding.shard_shape(leaf.shape)
            total += int(np.prod(shape)) * jnp.dtype(leaf.dtype).itemsize
        return total

    report = {
        "mesh": dict(layout.mesh.shape),
        "sizes": sizes,
        "entity_rows": layout.entity_rows,
        "state_bytes_per_device": shard_bytes(state),
        "data_bytes_per_device": shard_bytes(data),
        "train_peak_bytes_per_device": peak(train),
        "train_temp_bytes_per_device": int(train.temp_size_in_bytes),
        "eval_peak_bytes_per_device": peak(evaluate),
        "device_memory_bytes": int(device_memory),
    }
    report["fits"] = (
        max(report["train_peak_bytes_per_device"], report["eval_peak_bytes_per_device"])
        <= device_memory
    )
    return report


def main(argv) -> int:
    del argv
    sys.path.insert(0, REPO)
    devices, target = target_devices(FLAGS.num_devices, FLAGS.topology)
    sizes = None
    if FLAGS.num_entities:
        sizes = {
            "entities": FLAGS.num_entities,
            "relations": FLAGS.num_relations or 1,
            "triples": FLAGS.num_triples or 4 * FLAGS.num_entities,
            "eval_triples": FLAGS.num_eval_triples,
            "max_degree": FLAGS.max_degree,
            "max_answers": FLAGS.max_answers,
        }
    report = check(FLAGS.config, devices, sizes, FLAGS.device_memory_gb * GB)
    print(f"target: {target}, mesh {report['mesh']}")
    print(f"sizes: {report['sizes']} (entity table rows {report['entity_rows']:,})")
    for key in (
        "state_bytes_per_device",
        "data_bytes_per_device",
        "train_temp_bytes_per_device",
        "train_peak_bytes_per_device",
        "eval_peak_bytes_per_device",
    ):
        print(f"  {key:32s} {report[key] / 2**20:12,.1f} MiB")
    verdict = "fits" if report["fits"] else "DOES NOT FIT"
    print(f"per device: {verdict} in {FLAGS.device_memory_gb} GiB")
    return 0 if report["fits"] else 1


if __name__ == "__main__":
    count = 8
    for argument in sys.argv[1:]:
        if argument.startswith("--num_devices="):
            count = int(argument.split("=", 1)[1])
    _fake_devices(count)
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    app.run(main)
