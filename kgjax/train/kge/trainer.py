"""The KGE trainer: negative-sampling training of a KGE model on the shared host loop.

  config -> validate -> dataset -> build (model, layout, sampler, optimizer, any distillation
  teacher) -> workdir
  -> host_loop.run(family) -> final filtered evaluation (+ inductive) -> results.json

The run spans the mesh of `config.mesh` (see `kgjax.parallel`): the state is created or
restored directly into its shards, and with `config.mesh.distributed` (or
`KGJAX_DISTRIBUTED=1`) every host runs this same trainer as one process of a multi-host
run; process 0 writes the workdir's files, all of them write the checkpoints together.
"""

from __future__ import annotations

import json
import os
import sys

import jax
import ml_collections
from tqdm import tqdm

from kgjax.config import ConfigError
from kgjax.data.triples import KGDataset
from kgjax.evaluation.inductive import inductive_results
from kgjax.evaluation.metrics import link_prediction_metrics
from kgjax.evaluation.relation_categories import relation_results
from kgjax.evaluation.triple_classification import triple_classification_results
from kgjax.parallel.layout import initialize_distributed
from kgjax.text import init as text_init
from kgjax.train import host_loop
from kgjax.train import workdir as workdir_lib
from kgjax.train.host_loop import TrainingDiverged
from kgjax.train.kge import build as build_lib
from kgjax.train.kge import config as kge_config
from kgjax.train.writer import flatten_metrics

__all__ = ["TrainingDiverged", "train"]


def _check_vocabulary(workdir: str, dataset: KGDataset) -> None:
    """A resumed run must see the entities it was trained on; process 0 records them."""
    path = os.path.join(workdir, workdir_lib.VOCAB_FILE)
    if os.path.isfile(path):
        with open(path) as f:
            vocab = json.load(f)
        if tuple(vocab["entities"]) != dataset.entities.names:
            raise ConfigError(f"{workdir}: the dataset's entities differ from the run's")
    if jax.process_index() == 0:
        workdir_lib.write_json(
            path,
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
      The results: {"valid": metrics, "test": metrics, "per_relation" and "per_category"
      (test; `relation_categories.relation_results`), "triple_classification" (when the
      dataset has labelled negatives), "inductive" (with `text.inductive`), "steps",
      "train_seconds", "steps_per_second", "dataset": ..., "mesh": ...}.

    Raises:
      ConfigError, DataError: bad config or data (before anything is written).
      TrainingDiverged: the loss became NaN or Inf.
    """
    kge_config.validate(config)
    initialize_distributed(config.mesh)
    progress = progress and jax.process_index() == 0
    dataset = build_lib.load_dataset(config.data)
    if progress:
        tqdm.write(dataset.summary(), file=sys.stderr)
    if config.batch_size > len(dataset.train):
        raise ConfigError(
            f"config.batch_size: {config.batch_size} exceeds the {len(dataset.train)} "
            f"training triples of {dataset.name}"
        )
    parts = build_lib.build(config, dataset.num_entities, dataset.num_relations, devices)
    layout = parts.layout
    if config.batch_size % layout.size("batch"):
        raise ConfigError(
            f"config.batch_size: {config.batch_size} does not split over the "
            f"{layout.size('batch')} devices of mesh {dict(layout.mesh.shape)}"
        )
    parts.distillation(dataset)  # a missing or mismatched teacher fails before any write
    workdir_lib.claim(workdir, config, kge_config.load, kge_config.differences)
    _check_vocabulary(workdir, dataset)

    init_key, train_key = jax.random.split(jax.random.key(config.seed))
    checkpointer = host_loop.open_checkpointer(workdir, config.checkpoint.max_to_keep)
    writer = host_loop.open_writer(workdir)
    try:
        length = kge_config.chunk_length(config)
        data = parts.train_data(dataset)
        run_chunk = parts.train_chunk(length)
        evaluator = parts.evaluator(dataset)

        def initial_state():
            state = parts.initial_state(init_key)
            return text_init.initialise(
                config.text, config.data, config.seed, dataset, parts.model, state, progress
            )

        split = config.evaluation.during_training_split
        family = host_loop.Family(
            initial_state=initial_state,
            abstract_state=parts.abstract_state,
            train_chunk=lambda state: run_chunk(state, data, train_key),
            chunk_length=length,
            evaluations={
                "link_prediction": lambda state: flatten_metrics(
                    split, evaluator(state.params, split)
                )
            },
            fetch=layout.fetch,
        )
        outcome = host_loop.run(family, kge_config.cadence(config), checkpointer, writer, progress)

        params = outcome.state.params
        test_ranks = evaluator.ranks(params, "test")
        results = {
            "valid": evaluator(params, "valid"),
            "test": link_prediction_metrics(*test_ranks),
        }
        results.update(
            inductive_results(
                config.text,
                config.data,
                config.seed,
                dataset,
                parts.model,
                params,
                evaluator,
                results,
                progress,
            )  # fmt: skip
        )
        results.update(
            steps=int(outcome.step),
            train_seconds=outcome.train_seconds,
            steps_per_second=outcome.steps_per_second,
            dataset={
                "name": dataset.name,
                "num_entities": dataset.num_entities,
                "num_relations": dataset.num_relations,
                "num_triples": {name: len(triples) for name, triples in dataset.splits.items()},
                "entities_absent_from_train": dataset.unseen_entities,
            },
            device=str(layout.mesh.devices.flat[0].device_kind),
            jax_version=jax.__version__,
            mesh=layout.describe(),
        )
        results.update(
            triple_classification_results(
                parts.model, params, dataset, config.evaluation.batch_size, layout
            )
        )
        results.update(
            relation_results(test_ranks, dataset.test, dataset.train, dataset.relations.names)
        )
        for name in ("valid", "test"):
            writer.write(outcome.step, "final", flatten_metrics(name, results[name]))
        if jax.process_index() == 0:
            workdir_lib.write_json(os.path.join(workdir, workdir_lib.RESULTS_FILE), results)
        return results
    finally:
        checkpointer.close()
        writer.close()
