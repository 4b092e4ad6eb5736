"""One process of a two-process (two-"host") training run on fake CPU devices.

Not a test module: `sharded_runs.py` starts two of these, 4 devices each, joined by
`jax.distributed` over localhost (gloo collectives), and compares their run with its own
single-process 8-device run of the same config.

  python tests/multihost_run.py PROCESS_ID PORT WORKDIR OUT.json
"""

import json
import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
os.environ["JAX_PLATFORMS"] = "cpu"
os.environ["JAX_CPU_COLLECTIVES_IMPLEMENTATION"] = "gloo"
os.environ["KGJAX_DISTRIBUTED"] = "1"

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sharded_runs import config  # noqa: E402

from kgjax.train.kge import build  # noqa: E402
from kgjax.train.kge.state import TrainData  # noqa: E402
from kgjax.train.kge.trainer import train  # noqa: E402


def main(process_id: int, port: int, workdir: str, out: str) -> None:
    c = config(8)
    c.mesh.coordinator_address = f"localhost:{port}"
    c.mesh.num_processes = 2
    c.mesh.process_id = process_id
    results = train(c, workdir, progress=False)  # initialises jax.distributed first

    import jax

    dataset = build.load_dataset(c.data)
    parts = build.build(c, dataset.num_entities, dataset.num_relations)
    data = TrainData.from_dataset(dataset, True, {}, parts.layout)
    report = {
        "process_index": jax.process_index(),
        "process_count": jax.process_count(),
        "local_devices": jax.local_device_count(),
        "global_devices": jax.device_count(),
        "triples_rows_global": int(data.triples.shape[0]),
        "triples_rows_here": sum(s.data.shape[0] for s in data.triples.addressable_shards),
        "test": results["test"],
        "mesh": results["mesh"],
    }
    with open(f"{out}.{process_id}", "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
