"""JAKET's memory split by rows on 4 fake CPU devices, in a process of its own (JAX fixes its
device count when it starts); `jaket_pretraining_test.py` starts it and asserts on the JSON
it writes.

  python tests/jaket_mesh_run.py OUT.json placement
      a state placed by `MemoryPlacement` (30 entity rows padded to 32, 8 per device), the
      masked-entity loss and the rows read under jit against NumPy, a refresh's momentum
      update placed back (CI)
  python tests/jaket_mesh_run.py OUT.json resume DATASET_FOLDER WORKDIR
      resumes the test's tiny pre-training run at its step-20 checkpoint (written on one
      device) on the 4-device mesh, through the refresh at step 30 to step 40
"""

import json
import os
import pathlib
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests"))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from kgjax.train.jaket import masked_entities  # noqa: E402
from kgjax.train.jaket.memory import MemoryPlacement, memory_mesh, momentum_update  # noqa: E402
from kgjax.train.jaket.step import TrainState  # noqa: E402

AXES = (("data", 1), ("model", 4))


def placement_report() -> dict:
    rng = np.random.default_rng(0)
    entity = rng.standard_normal((30, 8)).astype(np.float32)
    placement = MemoryPlacement(memory_mesh(AXES), 30)
    state = placement.place(
        TrainState(
            step=jnp.int32(0),
            params={"w": jnp.ones(3)},
            frozen={"memory": {"entity": placement.pad(entity), "relation": jnp.ones((5, 8))}},
            opt_state=(),
        )
    )
    memory = state.frozen["memory"]["entity"]
    queries = rng.standard_normal((6, 8)).astype(np.float32)
    ids = rng.integers(0, 30, (6, 4)).astype(np.int32)
    mask = np.ones((6, 4), bool)
    loss, accuracy = jax.jit(masked_entities.loss)(queries, memory, ids, mask, np.ones(6, bool))
    scores = np.einsum("md,mkd->mk", queries, entity[ids])
    shifted = scores - scores.max(1, keepdims=True)
    expected_loss = float(np.mean(np.log(np.exp(shifted).sum(1)) - shifted[:, 0]))
    fresh = placement.pad(rng.standard_normal((30, 8)).astype(np.float32))
    updated = jax.device_put(momentum_update(memory, fresh, 0.8), placement.memory_rows)
    return {
        "devices": jax.device_count(),
        "rows_per_device": [int(s.data.shape[0]) for s in memory.addressable_shards],
        "padding_zero": bool(not np.any(np.asarray(memory)[30:])),
        "replicated_rows": [
            int(s.data.shape[0]) for s in state.frozen["memory"]["relation"].addressable_shards
        ],
        "rows_read_exact": bool(
            np.array_equal(np.asarray(jax.jit(lambda m, i: m[i])(memory, ids)), entity[ids])
        ),
        "loss": float(loss),
        "expected_loss": expected_loss,
        "accuracy": float(accuracy),
        "expected_accuracy": float(np.mean(scores.argmax(1) == 0)),
        "updated_rows_per_device": [int(s.data.shape[0]) for s in updated.addressable_shards],
        "updated_max_error": float(
            np.abs(np.asarray(updated) - (0.8 * np.asarray(memory) + 0.2 * np.asarray(fresh))).max()
        ),
    }


def resume_report(folder: str, workdir: str) -> dict:
    from jaket_pretraining_test import tiny_config  # noqa: PLC0415  (imports pytest)

    from kgjax.train.jaket.pretraining import train  # noqa: PLC0415

    config = tiny_config(pathlib.Path(folder), **{"mesh.axes": AXES})
    return {"devices": jax.device_count(), "results": train(config, workdir, progress=False)}


if __name__ == "__main__":
    out, mode, *rest = sys.argv[1:]
    report = placement_report() if mode == "placement" else resume_report(*rest)
    with open(out, "w") as f:
        json.dump(report, f)
