"""Runs configs/test.py on meshes of 1, 2, 4 and 8 fake CPU devices; writes what it saw.

Not a test module: `sharding_test.py` starts it in a subprocess (JAX must see 8 devices
before it starts, and the rest of the suite runs on 1) and asserts on the JSON it writes.
It also starts a two-process run (`multihost_run.py`) and compiles the AOT check.

  python tests/sharded_runs.py OUT.json WORKDIR
"""

import json
import os
import socket
import subprocess
import sys
import time

if __name__ == "__main__":
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    ).strip()

import jax  # noqa: E402
import numpy as np  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests"))
sys.path.insert(0, os.path.join(REPO, "launch"))

import aot_check  # noqa: E402
from train_test import test_config  # noqa: E402

from kgjax import runs  # noqa: E402
from kgjax.checkpoints import Checkpointer  # noqa: E402
from kgjax.evaluation.link_prediction import Evaluator, score_all  # noqa: E402
from kgjax.train.kge import build  # noqa: E402
from kgjax.train.kge.trainer import train  # noqa: E402
from kgjax.train.workdir import CHECKPOINT_DIR  # noqa: E402

# Devices -> mesh. 8 splits both tables 8 ways: UMLS's 135 entities and 46 relations pad
# to 136 and 48 rows.
MESHES = {
    1: (("data", 1), ("model", 1)),
    2: (("data", 1), ("model", 2)),
    4: (("data", 2), ("model", 2)),
    8: (("data", 1), ("model", 8)),
}
STEPS = 20


def config(devices: int, num_steps: int = STEPS):
    c = test_config(
        num_steps=num_steps,
        log_every_steps=10,
        eval_every_steps=STEPS,
        checkpoint_every_steps=10,
        steps_per_call=10,
    )
    c.mesh.axes = MESHES[devices]
    c.mesh.shard_relations = True
    return c


def diff(a: dict, b: dict) -> float:
    return max(float(np.max(np.abs(np.asarray(a[k]) - np.asarray(b[k])))) for k in a)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def start_multihost(root: str) -> tuple[list, str, str]:
    """Two processes of 4 devices each, training config(8) as one 8-device mesh."""
    port, workdir, out = free_port(), os.path.join(root, "multihost"), os.path.join(root, "mh")
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    script = os.path.join(REPO, "tests", "multihost_run.py")
    processes = [
        subprocess.Popen(
            [sys.executable, script, str(i), str(port), workdir, out],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    return processes, workdir, out


def main(out_path: str, root: str) -> None:
    # Identical programs (a resumed run, a restore onto a mesh seen before) compile once.
    jax.config.update("jax_compilation_cache_dir", os.path.join(root, "jax_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    devices = jax.devices()
    report = {"num_devices": len(devices), "runs": {}, "seconds": {}}
    started = time.perf_counter()

    def lap(name):
        report["seconds"][name] = round(time.perf_counter() - started, 1)

    # Training and evaluation on each mesh, from the same seed.
    params = {}
    for n in MESHES:
        workdir = os.path.join(root, f"d{n}")
        results = train(config(n), workdir, progress=False, devices=devices[:n])
        run = runs.restore(workdir, devices=devices[:n])
        params[n] = run.params
        report["runs"][n] = {
            "test": results["test"],
            "valid": results["valid"],
            "mesh": results["mesh"],
            "param_diff_vs_1": diff(run.params, params[1]),
            "param_shapes": {k: list(v.shape) for k, v in run.sharded_params.items()},
            "entity_shards": len(run.sharded_params["entity"].addressable_shards),
            "entity_shard_rows": run.sharded_params["entity"].addressable_shards[0].data.shape[0],
        }
        lap(f"train_{n}")

    # The padded 8-device run: padding rows and their optimizer state never moved from 0.
    run8 = runs.restore(os.path.join(root, "d8"), devices=devices)
    model, layout = run8.model, run8.layout
    c8 = config(8)
    abstract = build.build(
        c8, model.num_entities, model.num_relations, layout=layout
    ).abstract_state()
    checkpointer = Checkpointer(os.path.join(root, "d8", CHECKPOINT_DIR))
    state = checkpointer.restore(abstract)
    checkpointer.close()
    adam = state.opt_state[0]
    padding = {}
    for table in ("entity", "relation"):
        real = layout.rows(table)[0]
        for name, tree in (
            ("param", state.params),
            ("mu", adam.mu["model"]),
            ("nu", adam.nu["model"]),
        ):
            rows = np.asarray(tree[table])[real:]
            padding[f"{table}/{name}"] = {"rows": len(rows), "max_abs": float(np.abs(rows).max())}
    report["padding"] = padding

    # Padding is never ranked: a padding row equal to a test query scores the maximum
    # (gamma) for that query, above its true answer, yet no rank changes.
    dataset = build.load_dataset(c8.data)
    evaluator = Evaluator(model, dataset, c8.evaluation.batch_size, layout)
    h, r, t = dataset.test[0]
    entity = np.asarray(run8.params["entity"])
    query = np.asarray(model.tail_query(entity[h], np.asarray(run8.params["relation"])[r]))
    poisoned = dict(state.params)
    table = np.asarray(state.params["entity"]).copy()
    table[model.num_entities :] = query
    poisoned["entity"] = jax.device_put(table, state.params["entity"].sharding)
    report["poison"] = {
        "padding_score": float(model.match(query, table[-1])),
        "true_score": float(model.match(query, entity[t])),
        "clean": evaluator(state.params, "test"),
        "poisoned": evaluator(poisoned, "test"),
    }
    scores = score_all(model, poisoned, np.array([h]), np.array([r]), True, layout)
    report["poison"]["score_all_columns"] = int(scores.shape[1])

    # Save on 8, restore on 1, 2 and 4: the same parameters and the same metrics.
    report["restore"] = {}
    for n in (1, 2, 4):
        restored = runs.restore(os.path.join(root, "d8"), devices=devices[:n])
        metrics = Evaluator(model, dataset, c8.evaluation.batch_size, restored.layout)(
            restored.sharded_params, "test"
        )
        report["restore"][n] = {
            "mesh": dict(restored.layout.mesh.shape),
            "entity_rows": int(restored.sharded_params["entity"].shape[0]),
            "param_diff_vs_8": diff(restored.params, run8.params),
            "test": metrics,
        }

    # Half the steps on 8 devices, the rest resumed on 4: the parameters of a 4-device run.
    workdir = os.path.join(root, "resumed")
    train(config(8, num_steps=STEPS // 2), workdir, progress=False, devices=devices)
    resumed = train(config(4), workdir, progress=False, devices=devices[:4])
    report["resume"] = {
        "param_diff_vs_4": diff(runs.restore(workdir, devices=devices[:4]).params, params[4]),
        "test": resumed["test"],
    }
    lap("restore_resume")

    # Row-sparse updates (no table-sized gradient) reach the dense update's parameters.
    sparse = config(8)
    sparse.optimizer.row_sparse = True
    workdir = os.path.join(root, "row_sparse")
    results = train(sparse, workdir, progress=False, devices=devices)
    report["row_sparse"] = {
        "param_diff_vs_1": diff(runs.restore(workdir, devices=devices).params, params[1]),
        "test": results["test"],
    }
    lap("row_sparse")

    # The ahead-of-time check compiles the same calls from abstract inputs.
    report["aot"] = aot_check.check(config(8), devices, None, device_memory=2**30)
    lap("aot")

    # Two processes ("hosts") of 4 devices each train config(8) as one mesh.
    processes, workdir, out = start_multihost(root)
    errors = [p.communicate(timeout=600)[1] for p in processes]
    codes = [p.returncode for p in processes]
    if any(codes):
        raise RuntimeError(f"multi-host run failed {codes}: {errors[0][-2000:]}{errors[1][-2000:]}")
    hosts = []
    for i in range(2):
        with open(f"{out}.{i}") as f:
            hosts.append(json.load(f))
    report["multihost"] = {
        "processes": hosts,
        "param_diff_vs_8": diff(runs.restore(workdir, devices=devices).params, params[8]),
    }
    lap("multihost")

    with open(out_path, "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
