"""A run's working directory: its file names, atomic JSON writes, the resume check.

<workdir>/
  config.json      the config that ran (with the command that runs it)
  vocab.json       entity and relation names, id order (KGE runs)
  checkpoints/     orbax checkpoints, one folder per step
  metrics.jsonl    one JSON object per log, eval or stop event
  tensorboard/     TensorBoard event files
  results.json     final metrics, speed
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import jax
import ml_collections

from kgjax import config as config_lib

CHECKPOINT_DIR = "checkpoints"
CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.json"
RESULTS_FILE = "results.json"


def write_json(path: str, payload) -> None:
    """Writes JSON atomically (temporary file, then rename)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def claim(
    workdir: str,
    config: ml_collections.ConfigDict,
    load: Callable[[str], ml_collections.ConfigDict],
    differences: Callable[[ml_collections.ConfigDict, ml_collections.ConfigDict], list[str]],
) -> None:
    """Creates `workdir`, or checks that the run it holds has the same config; saves it.

    Every process checks; only process 0 writes.

    Args:
      load, differences: the family's config reader and comparison (its added and
        resumable keys).

    Raises:
      ConfigError: the workdir holds a run with a different config, naming the keys.
    """
    os.makedirs(workdir, exist_ok=True)
    config_path = os.path.join(workdir, CONFIG_FILE)
    if os.path.isfile(config_path):
        changed = differences(load(config_path), config)
        if changed:
            raise config_lib.ConfigError(
                f"{workdir} holds a run with a different config; use a new --workdir or the "
                f"same settings. Changed: {'; '.join(changed)}"
            )
    if jax.process_index() == 0:
        config_lib.save(config, config_path)
