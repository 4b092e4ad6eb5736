"""JAKET's knowledge module, pre-trained on the graph alone, on the shared host loop.

  config -> validate -> dataset, categories (split: pre-training / held out) -> memory E^(0)
  and R from text (or random) -> subgraph sampler and budgets -> workdir
  -> host_loop.run(family) -> evaluation on the whole training graph -> results.json

Evaluation propagates the knowledge module over the whole training graph (every entity a
node: `subgraphs.full_graph`) and reports category accuracy on the held-out labelled
entities (and on the pre-training ones, and the majority-class accuracy beside them), and
relation prediction on the valid and test triples (accuracy and the mean reciprocal rank of
the true relation), none of whose edges are in the graph; with link prediction on, filtered
link prediction of the valid and test triples (both sides, realistic ranks, every entity a
candidate) by the decoder over the whole graph's E^KM, as a KGE run evaluates.

One device for now: the memory and the model are replicated (a `mesh` section comes with
the FB15k-237-sized runs).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from tqdm import tqdm

from kgjax.checkpoints import Checkpointer
from kgjax.config import ConfigError
from kgjax.data import categories as categories_lib
from kgjax.data import subgraphs
from kgjax.data.triples import KGDataset
from kgjax.evaluation.link_prediction import Evaluator
from kgjax.models import kge
from kgjax.models.jaket import KnowledgePretraining
from kgjax.text import init as text_init
from kgjax.train import host_loop
from kgjax.train import workdir as workdir_lib
from kgjax.train.jaket import batches as batches_lib
from kgjax.train.jaket import config as km_config
from kgjax.train.jaket.step import (
    TrainState,
    decoder_vectors,
    forward,
    make_train_chunk,
    memory_of,
)
from kgjax.train.optimizers import make_optimizer

__all__ = ["train"]


def load_categories(config: ml_collections.ConfigDict, dataset: KGDataset):
    """(Categories or None, pre-training entity ids, held-out entity ids)."""
    if config.categories.source == "none":
        return None, np.zeros(0, np.int32), np.zeros(0, np.int32)
    section = config.categories
    if section.source == "file":
        labels = categories_lib.read_category_file(
            section.path, dataset.entities.names, min_count=section.min_count
        )
    else:
        labels = categories_lib.load_categories(
            dataset.name,
            dataset.entities.names,
            config.data.data_dir or None,
            min_count=section.min_count,
        )
    held_out_fraction = section.held_out_fraction
    pretrain, held_out = categories_lib.split_labelled(
        labels, (1 - held_out_fraction, held_out_fraction), seed=config.seed
    )
    return labels, pretrain, held_out


def initial_memory(
    config: ml_collections.ConfigDict, dataset: KGDataset, progress: bool
) -> dict[str, np.ndarray]:
    """E^(0) float32 [V, D] and R [R, D]: LM1 over descriptions, or random rows (ablation).

    Random rows are standard normal, the scale of LayerNorm outputs, `memory.width` wide
    (default MiniLM's 384), so that the ablation changes the content only.
    """
    memory = config.memory
    if memory.init == "random":
        rng = np.random.default_rng([config.seed, 0xE0])
        return {
            "entity": rng.standard_normal((dataset.num_entities, memory.width), np.float32),
            "relation": rng.standard_normal((dataset.num_relations, memory.width), np.float32),
        }
    vectors, _ = text_init.entity_text_vectors(memory, config.data, dataset, progress)
    relation_vectors = text_init.relation_text_vectors(memory, config.data, dataset, progress)
    return {"entity": vectors.astype(np.float32), "relation": relation_vectors}


def link_decoder(
    config: ml_collections.ConfigDict, num_entities: int, num_relations: int, width: int
) -> kge.KGEModel | None:
    """The link-prediction decoder over V entities and 2R relations (r, then the inverses),
    its entity vectors E^KM's `width`; None when link prediction is off.

    Raises:
      ConfigError: the decoder cannot read vectors of that width.
    """
    if config.loss.link_weight <= 0:
        return None
    name = config.model.decoder
    complex_entities = kge.MODELS[name].interaction_class.complex_entities
    if complex_entities and width % 2:
        raise ConfigError(f"config.model.decoder: {name} needs an even width; E^KM is {width}")
    options = {"height": config.model.decoder_height} if name == "conve" else {}
    try:
        decoder = kge.get(
            name,
            num_entities,
            2 * num_relations,
            dim=width // 2 if complex_entities else width,
            gamma=config.model.decoder_gamma,
            **options,
        )
    except ValueError as error:  # ConvE's 2D shape
        raise ConfigError(f"config.model.decoder_height: {error}") from None
    # ConvE's entity vectors carry a score bias as one more column (`step.decoder_vectors`).
    if decoder.entity_width != width + (name == "conve"):
        raise ConfigError(
            f"config.model.decoder: {name} reads entity vectors {decoder.entity_width} wide; "
            f"E^KM is {width}"
        )
    return decoder


@dataclasses.dataclass(frozen=True)
class Graph:
    """A JAKET run's graph side: the dataset, its categories split into pre-training and
    held-out entities, the training adjacency and each entity's category target (int32 [V],
    -1 where none: held-out, unlabelled)."""

    dataset: KGDataset
    labels: object
    pretrain: np.ndarray
    held_out: np.ndarray
    adjacency: subgraphs.Adjacency
    train_labels: np.ndarray


def load_graph(config: ml_collections.ConfigDict, progress: bool) -> Graph:
    """Loads `config.data` and `config.categories` (after the config validated).

    Raises:
      DataError: missing or malformed data.
    """
    from kgjax.data import catalog  # deferred: tensorflow-datasets is slow to import

    dataset = catalog.load_section(config.data)
    if progress:
        tqdm.write(dataset.summary(), file=sys.stderr)
    labels, pretrain, held_out = load_categories(config, dataset)
    adjacency = subgraphs.Adjacency.build(
        dataset.train, dataset.num_entities, dataset.num_relations, config.model.inverse_edges
    )
    train_labels = np.full(dataset.num_entities, -1, np.int32)
    if labels is not None:
        train_labels[pretrain] = labels.labels[pretrain]
    return Graph(dataset, labels, pretrain, held_out, adjacency, train_labels)


def graph_sampler(
    config: ml_collections.ConfigDict, adjacency: subgraphs.Adjacency, pretrain: np.ndarray
) -> subgraphs.SubgraphSampler:
    """The KM tasks' subgraph sampler (`config.sampler`), with budgets proposed from draws.

    Raises:
      ConfigError: the sampler's settings do not fit the graph.
    """
    section = config.sampler
    sampler = subgraphs.SubgraphSampler(
        adjacency,
        num_roots=section.num_roots,
        fanouts=tuple(section.fanouts),
        walk_length=section.walk_length,
        seed=config.seed,
        starts=pretrain if section.roots_from == "labelled" else None,
    )
    try:
        budgets = sampler.propose_budgets(num_draws=section.budget_draws)
    except ValueError as error:
        raise ConfigError(f"config.sampler: {error}") from None
    return dataclasses.replace(sampler, budgets=budgets)


def knowledge_module(
    config: ml_collections.ConfigDict, labels, num_relations: int, width: int
) -> KnowledgePretraining:
    """The knowledge module and its heads (`config.model`) over memory rows `width` wide.

    Raises:
      ConfigError: the heads do not divide the width.
    """
    if width % config.model.num_heads:
        raise ConfigError(
            f"config.model.num_heads: {config.model.num_heads} does not divide the memory "
            f"width {width}"
        )
    return KnowledgePretraining(
        num_categories=len(labels.names) if labels is not None else 0,
        num_relations=num_relations,
        num_layers=config.model.num_layers,
        num_heads=config.model.num_heads,
        composition=config.model.composition,
        aggregation=config.model.aggregation,
        inverse_relations=config.model.inverse_edges,
    )


def init_knowledge_module(
    model: KnowledgePretraining,
    config: ml_collections.ConfigDict,
    sampler,
    train_labels: np.ndarray,
    memory: dict,
) -> dict:
    """Fresh parameters of `model` (key from config.seed), shaped by step 0's batch."""
    num_relations = memory["relation"].shape[0]
    stacked = batches_lib.chunk(sampler, [0], train_labels, config.loss.num_pairs, num_relations)
    batch = jax.tree.map(lambda x: x[0], stacked)
    return jax.jit(model.init)(
        jax.random.key(config.seed),
        memory["entity"][batch.graph.entity_ids],
        memory["relation"],
        batch.graph.senders,
        batch.graph.receivers,
        batch.graph.relations,
        batch.graph.edge_mask,
        batch.pair_heads,
        batch.pair_tails,
    )["params"]


# The parts of a pre-trained run that carry to another graph: the GAT layers and the map
# giving inverse relations their vectors. The heads are the new graph's own (its categories
# and relations).
TRANSFERRED = ("km", "inverse")


def pretrained_encoder(workdir: str) -> dict:
    """The transferable parameters of another jaket_km run's latest checkpoint.

    Raises:
      ConfigError: the folder holds no checkpoint.
    """
    checkpointer = Checkpointer(os.path.join(workdir, workdir_lib.CHECKPOINT_DIR))
    try:
        saved = checkpointer.read()
    except FileNotFoundError:
        raise ConfigError(f"config.model.init_from: {workdir} holds no checkpoint") from None
    finally:
        checkpointer.close()
    model = saved["params"]["model"]
    return {name: model[name] for name in TRANSFERRED if name in model}


def with_encoder(model_params: dict, encoder: dict, source: str) -> dict:
    """`model_params` with the pre-trained `encoder` parts in place of fresh ones.

    Raises:
      ConfigError: a part is missing or shaped otherwise (layers, heads or width differ).
    """  # model_params may be abstract (jax.ShapeDtypeStruct): only shapes are compared
    fresh_shapes = jax.tree.map(
        np.shape, {k: model_params[k] for k in TRANSFERRED if k in model_params}
    )
    saved_shapes = jax.tree.map(np.shape, encoder)
    if fresh_shapes != saved_shapes:
        raise ConfigError(
            f"config.model.init_from: {source}'s knowledge module does not fit this one "
            f"(same num_layers, num_heads, composition, inverse_edges and memory width needed): "
            f"{saved_shapes} vs {fresh_shapes}"
        )
    return {**model_params, **jax.tree.map(jnp.asarray, encoder)}


def evaluate_graph_tasks(
    model, params, frozen, dataset, full, labels, parts, relations, link
) -> dict:
    """The trained tasks' metrics over `full`: category accuracy per part (`labels` given),
    relation prediction on valid/test (`relations` True), link prediction on valid/test
    (`link`, an `Evaluator` of the decoder, given). An untrained head is not reported."""
    memory = memory_of(params, frozen)

    # One compiled call per split: op by op, the GAT's many small ops each compile.
    apply = jax.jit(functools.partial(forward, model))

    def run(heads, tails):
        heads, tails = jnp.asarray(heads, jnp.int32), jnp.asarray(tails, jnp.int32)
        return apply(params["model"], memory, full, heads, tails)

    results = {}
    for split in ("valid", "test"):
        triples = getattr(dataset, split)
        entities, category_logits, relation_logits = run(triples[:, 0], triples[:, 2])
        if link is not None:  # E^KM of every entity: full's node i is entity i
            vectors = decoder_vectors(params["link"], entities, full.entity_ids)
            weights = {k: v for k, v in params["link"].items() if k != "entity_bias"}
            tables = {**weights, "entity": vectors}
            metrics = link(tables, split)
            results[f"link_prediction/{split}"] = {
                **metrics["both"],
                "head": metrics["head"],
                "tail": metrics["tail"],
                "num_triples": metrics["num_triples"],
            }
        if not relations:
            continue
        logits = np.asarray(relation_logits)
        true = logits[np.arange(len(triples)), triples[:, 1]]
        ranks = 1 + np.sum(logits > true[:, None], axis=1)
        results[f"relation_prediction/{split}"] = {
            "accuracy": float(np.mean(ranks == 1)),
            "mrr": float(np.mean(1.0 / ranks)),
            "num_pairs": len(triples),
        }
    if labels is not None:
        predicted = np.argmax(np.asarray(category_logits), axis=-1)
        majority = int(np.argmax(np.bincount(labels.labels[parts["pretrain"]])))
        for name, ids in parts.items():
            truth = labels.labels[ids]
            results[f"category/{name}"] = {
                "accuracy": float(np.mean(predicted[ids] == truth)),
                "majority_accuracy": float(np.mean(truth == majority)),
                "num_entities": len(ids),
            }
    return results


def train(config: ml_collections.ConfigDict, workdir: str, progress: bool = True) -> dict:
    """Pre-trains, evaluates and writes `<workdir>/results.json`; resumes from the workdir.

    Nothing is written before the config and the data validate.

    Returns:
      {"category/held_out": {...}, "category/pretrain": {...}, "relation_prediction/valid",
      "relation_prediction/test", "link_prediction/valid" and "/test" (link prediction on:
      MRR, MR, Hits@1/3/10 of both sides, then "head" and "tail"), "steps", "train_seconds",
      "steps_per_second", "dataset", "num_categories", "budgets"}.

    Raises:
      ConfigError, DataError: bad config or data (before anything is written).
      TrainingDiverged: the loss became NaN or Inf.
    """
    km_config.validate(config)
    graph = load_graph(config, progress)
    dataset, labels, pretrain, held_out = (
        graph.dataset,
        graph.labels,
        graph.pretrain,
        graph.held_out,
    )
    adjacency, train_labels = graph.adjacency, graph.train_labels
    num_relations = dataset.num_relations
    if config.sampler.whole_graph:
        sampler = subgraphs.WholeGraph(adjacency, seed=config.seed)
    else:
        sampler = graph_sampler(config, adjacency, pretrain)
    budgets = sampler.budgets
    memory = initial_memory(config, dataset, progress)
    width = memory["entity"].shape[1]
    decoder = link_decoder(config, dataset.num_entities, num_relations, width)
    train_index = dataset.triple_index(("train",)) if decoder is not None else None
    link = (
        Evaluator(decoder, dataset, config.loss.eval_batch_size, inverse_offset=num_relations)
        if decoder is not None
        else None
    )
    model = knowledge_module(config, labels, num_relations, width)
    optimizer, _ = make_optimizer(config.optimizer, config.num_steps)
    encoder = pretrained_encoder(config.model.init_from) if config.model.init_from else None

    def init_model_params():
        return init_knowledge_module(model, config, sampler, train_labels, memory)

    if encoder is not None:  # a misfit is an error before anything is written
        with_encoder(jax.eval_shape(init_model_params), encoder, config.model.init_from)
    workdir_lib.claim(workdir, config, km_config.load, km_config.differences)

    length = km_config.chunk_length(config)
    weights = (config.loss.category_weight, config.loss.relation_weight, config.loss.link_weight)
    run_chunk = make_train_chunk(model, optimizer, weights, decoder, config.seed)

    def initial_state() -> TrainState:
        model_params = init_model_params()
        if encoder is not None:
            model_params = with_encoder(model_params, encoder, config.model.init_from)
        arrays = jax.tree.map(jnp.asarray, memory)
        params = {"model": model_params}
        if decoder is not None:  # no entity table: E^KM is the entity side
            one_entity = dataclasses.replace(decoder, num_entities=1)
            fresh = one_entity.init(jax.random.fold_in(jax.random.key(config.seed), 0x11))
            params["link"] = {k: v for k, v in fresh.items() if k != "entity"}
            if config.model.decoder == "conve":  # the reference starts its biases at 0
                params["link"]["entity_bias"] = jnp.zeros(dataset.num_entities, jnp.float32)
        frozen = {}
        if config.memory.trainable:
            params["memory"] = arrays
        else:
            frozen["memory"] = arrays
        return TrainState(
            step=jnp.int32(0), params=params, frozen=frozen, opt_state=optimizer.init(params)
        )

    def abstract_state():
        return jax.eval_shape(initial_state)

    full = subgraphs.full_graph(adjacency)
    parts = {"held_out": held_out, "pretrain": pretrain} if labels is not None else {}
    # What the run trains is what it reports.
    trained_labels = labels if config.loss.category_weight > 0 else None
    relations_trained = config.loss.relation_weight > 0

    def evaluate(state) -> dict:
        return evaluate_graph_tasks(
            model, state.params, state.frozen, dataset, full, trained_labels, parts,
            relations_trained, link,
        )  # fmt: skip

    def train_chunk(state):
        start = int(state.step)
        batch = batches_lib.chunk(
            sampler, range(start, start + length), train_labels, config.loss.num_pairs,
            num_relations, train_index,
        )  # fmt: skip
        return run_chunk(state, batch)

    def scalars(results: dict) -> dict[str, float]:
        return {
            f"{name}/{key}": value
            for name, metrics in results.items()
            for key, value in metrics.items()
            if key in ("accuracy", "mrr", "hits@10")
        }

    def evaluation(state):
        return scalars(evaluate(state))

    checkpointer = host_loop.open_checkpointer(workdir, config.checkpoint.max_to_keep)
    writer = host_loop.open_writer(workdir)
    try:
        family = host_loop.Family(
            initial_state=initial_state,
            abstract_state=abstract_state,
            train_chunk=train_chunk,
            chunk_length=length,
            evaluations={"km": evaluation},
        )
        outcome = host_loop.run(family, km_config.cadence(config), checkpointer, writer, progress)
        state = outcome.state
        results = evaluate(state)
        writer.write(outcome.step, "final", scalars(results))
        results.update(
            steps=int(outcome.step),
            train_seconds=outcome.train_seconds,
            steps_per_second=outcome.steps_per_second,
            dataset={
                "name": dataset.name,
                "num_entities": dataset.num_entities,
                "num_relations": dataset.num_relations,
            },
            num_categories=len(labels.names) if labels is not None else 0,
            categories=list(labels.names) if labels is not None else [],
            budgets=[list(budget) for budget in budgets],
            device=str(jax.devices()[0].device_kind),
            jax_version=jax.__version__,
        )
        workdir_lib.write_json(os.path.join(workdir, workdir_lib.RESULTS_FILE), results)
        return results
    finally:
        checkpointer.close()
        writer.close()
