"""The training loop on the host: data, state, resume, device calls, logs, checkpoints.

The device runs `chunk_length(config)` steps per call; the host only looks at the chunk's
metrics (for the NaN check and logs), saves checkpoints and evaluates at the cadences.

The run spans the mesh of `config.mesh` (see `kgjax.parallel.layout`): the state is created or
restored directly into its shards, and with `config.mesh.distributed` (or
`KGJAX_DISTRIBUTED=1`) every host runs this same loop as one process of a multi-host run;
process 0 writes the workdir's files, all of them write the checkpoints together.
"""

from __future__ import annotations

import json
import os
import sys
import time

import jax
import ml_collections
import numpy as np
from tqdm import tqdm

from kgjax import config as config_lib
from kgjax import runs
from kgjax.checkpoints import Checkpointer
from kgjax.evaluation.link_prediction import Evaluator
from kgjax.parallel import layout as sharding
from kgjax.text import init as text_init
from kgjax.train.kge import config as kge_config_lib
from kgjax.train.kge import negatives
from kgjax.train.kge.state import TrainData, TrainState
from kgjax.train.kge.step import StepSettings, make_train_chunk
from kgjax.train.optimizers import make_optimizer
from kgjax.train.writer import MetricsWriter, flatten_metrics


def _mean_ignoring_nan(values: np.ndarray) -> float:
    """Mean of the finite-or-inf values; NaN when there are none (e.g. an unused metric)."""
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or Inf; training stopped, the last good checkpoint is kept."""


class _NoWriter:
    """The metrics writer of processes other than 0: they log nothing."""

    def write(self, step, event, scalars) -> None:
        del step, event, scalars

    def close(self) -> None:
        pass


def single_device_chunk(config, dataset, length: int, model=None):
    """The training call of `config` on one device, outside the loop (for benchmarks).

    Args:
      config: a training config.
      dataset: its loaded `KGDataset`.
      length: steps per call.
      model: the KGE model to train (default: the config's).

    Returns:
      (jitted chunk(state, data, key) -> (state, metrics), the initial state, the TrainData).
    """
    model = model or runs.build_model(config, dataset.num_entities, dataset.num_relations)
    sampler = negatives.from_config(config)
    optimizer, schedule = make_optimizer(config.optimizer, config.num_steps)
    state = jax.jit(lambda: TrainState.create(model, sampler, optimizer, jax.random.key(0)))()
    data = TrainData.from_dataset(
        dataset, config.loss.subsampling, sampler.features(config, dataset)
    )
    chunk = make_train_chunk(
        model, sampler, optimizer, schedule, StepSettings.from_config(config), length
    )
    return chunk, state, data


def _prepare_workdir(config, workdir: str, dataset) -> None:
    """Creates the workdir, or checks that a resumed run uses the same config and data.

    Every process checks; only process 0 writes.
    """
    os.makedirs(workdir, exist_ok=True)
    config_path = os.path.join(workdir, runs.CONFIG_FILE)
    vocab_path = os.path.join(workdir, runs.VOCAB_FILE)
    if os.path.isfile(config_path):
        changed = kge_config_lib.differences(kge_config_lib.load(config_path), config)
        if changed:
            raise config_lib.ConfigError(
                f"{workdir} holds a run with a different config; use a new --workdir or the "
                f"same settings. Changed: {'; '.join(changed)}"
            )
    if os.path.isfile(vocab_path):
        with open(vocab_path) as f:
            vocab = json.load(f)
        if tuple(vocab["entities"]) != dataset.entities.names:
            raise config_lib.ConfigError(f"{workdir}: the dataset's entities differ from the run's")
    if jax.process_index() != 0:
        return
    config_lib.save(config, config_path)
    runs.write_json(
        vocab_path,
        {
            "dataset": dataset.name,
            "entities": list(dataset.entities.names),
            "relations": list(dataset.relations.names),
        },
    )


def train(
    config: ml_collections.ConfigDict,
    workdir: str,
    progress: bool = True,
    devices: list | None = None,
) -> dict:
    """Trains, evaluates and writes `<workdir>/results.json`; resumes from the workdir.

    Nothing is written before the config and the data validate.

    Args:
      devices: the devices the mesh spans (default: all of them, on every host).

    Returns:
      The results: {"valid": metrics, "test": metrics, "steps", "train_seconds",
      "steps_per_second", "dataset": ..., "mesh": ...}.

    Raises:
      ConfigError, DataError: bad config or data (before anything is written).
      TrainingDiverged: the loss became NaN or Inf.
    """
    kge_config_lib.validate(config)
    sharding.initialize_distributed(config.mesh)
    progress = progress and jax.process_index() == 0
    dataset = runs.load_dataset(config.data)
    if progress:
        tqdm.write(dataset.summary(), file=sys.stderr)
    if config.batch_size > len(dataset.train):
        raise config_lib.ConfigError(
            f"config.batch_size: {config.batch_size} exceeds the {len(dataset.train)} "
            f"training triples of {dataset.name}"
        )
    model = runs.build_model(config, dataset.num_entities, dataset.num_relations)
    layout = runs.build_layout(config, model, devices)
    if config.batch_size % layout.size("batch"):
        raise config_lib.ConfigError(
            f"config.batch_size: {config.batch_size} does not split over the "
            f"{layout.size('batch')} devices of mesh {dict(layout.mesh.shape)}"
        )
    _prepare_workdir(config, workdir, dataset)

    optimizer, schedule = make_optimizer(config.optimizer, config.num_steps)
    root_key = jax.random.key(config.seed)
    init_key, train_key = jax.random.split(root_key)
    checkpointer = Checkpointer(
        os.path.join(workdir, runs.CHECKPOINT_DIR), config.checkpoint.max_to_keep
    )
    writer = MetricsWriter(workdir) if jax.process_index() == 0 else _NoWriter()
    try:
        return _train(
            config, workdir, dataset, model, layout, optimizer, schedule, init_key, train_key,
            checkpointer, writer, progress,
        )  # fmt: skip
    finally:
        checkpointer.close()
        writer.close()


def _train(
    config, workdir, dataset, model, layout, optimizer, schedule, init_key, train_key,
    checkpointer, writer, progress,
):  # fmt: skip
    sampler = negatives.from_config(config)
    abstract = TrainState.abstract(model, sampler, optimizer, layout)
    state_sharding = jax.tree.map(lambda x: x.sharding, abstract)
    start_step = checkpointer.latest_step()
    if start_step is None:
        # Drawn straight into its shards: no device ever holds a whole table.
        state = TrainState.create_sharded(model, sampler, optimizer, init_key, layout)
        state = text_init.initialise(config, dataset, model, state, progress)
        start_step = 0
    else:
        state = checkpointer.restore(abstract, start_step)
        if progress:
            tqdm.write(f"resuming from the checkpoint at step {start_step}", file=sys.stderr)
        writer.write(start_step, "resume", {})

    data = TrainData.from_dataset(
        dataset, config.loss.subsampling, sampler.features(config, dataset), layout
    )
    length = kge_config_lib.chunk_length(config)
    run_chunk = make_train_chunk(
        model, sampler, optimizer, schedule, StepSettings.from_config(config), length,
        layout, state_sharding,
    )  # fmt: skip
    evaluator = Evaluator(model, dataset, config.evaluation.batch_size, layout)

    step = start_step
    window: list[dict[str, np.ndarray]] = []
    train_seconds = 0.0
    steady_seconds, steady_steps = 0.0, 0  # excluding the first call, which compiles
    bar = tqdm(total=config.num_steps, initial=step, disable=not progress, unit="step")
    while step < config.num_steps:
        started = time.perf_counter()
        state, metrics = run_chunk(state, data, train_key)
        metrics = jax.tree.map(layout.fetch, metrics)  # replicated: every host has them
        elapsed = time.perf_counter() - started
        train_seconds += elapsed
        if step > start_step:
            steady_seconds += elapsed
            steady_steps += length
        losses = metrics["loss"]
        if not np.all(np.isfinite(losses)):
            bad = int(np.flatnonzero(~np.isfinite(losses))[0])
            last = checkpointer.latest_step()
            writer.write(step + bad, "diverged", {"train/loss": losses[bad]})
            raise TrainingDiverged(
                f"the training loss became {losses[bad]} at step {step + bad + 1}; training "
                f"stopped. The last good checkpoint is step {last} in {checkpointer.directory}"
                if last is not None
                else f"the training loss became {losses[bad]} at step {step + bad + 1}; "
                "training stopped before any checkpoint was saved"
            )
        step += length
        window.append(metrics)
        bar.update(length)
        bar.set_postfix(loss=f"{float(losses[-1]):.4f}")

        if step % config.log_every_steps == 0 or step == config.num_steps:
            means = {
                f"train/{key}": _mean_ignoring_nan(np.concatenate([w[key] for w in window]))
                for key in window[0]
            }
            means["train/steps_per_second"] = (
                steady_steps / steady_seconds if steady_seconds else 0.0
            )
            writer.write(step, "train", means)
            window = []
        if step % config.checkpoint_every_steps == 0 or step == config.num_steps:
            checkpointer.save(step, state)
        if step % config.eval_every_steps == 0 and step != config.num_steps:
            split = config.evaluation.during_training_split
            writer.write(step, "eval", flatten_metrics(split, evaluator(state.params, split)))
    bar.close()
    checkpointer.wait()

    results = {split: evaluator(state.params, split) for split in ("valid", "test")}
    results.update(
        text_init.inductive_results(
            config, dataset, model, state.params, evaluator, results, progress
        )
    )
    results.update(
        steps=int(step),
        train_seconds=train_seconds,
        steps_per_second=steady_steps / steady_seconds if steady_seconds else None,
        dataset={
            "name": dataset.name,
            "num_entities": dataset.num_entities,
            "num_relations": dataset.num_relations,
            "num_triples": {split: len(triples) for split, triples in dataset.splits.items()},
            "entities_absent_from_train": dataset.unseen_entities,
        },
        device=str(layout.mesh.devices.flat[0].device_kind),
        jax_version=jax.__version__,
        mesh=layout.describe(),
    )
    for split in ("valid", "test"):
        writer.write(step, "final", flatten_metrics(split, results[split]))
    if jax.process_index() == 0:
        runs.write_json(os.path.join(workdir, runs.RESULTS_FILE), results)
    return results
