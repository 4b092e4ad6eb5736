"""JAKET's joint pre-training: the knowledge module and the language model teach each other.

Yu et al. (AAAI 2022). Every step trains four tasks at once:
  - on a subgraph around random-walk roots, the knowledge module's (KM) entity category and
    relation prediction over E^(0) rows of the entity context memory (`step.losses`);
  - on B linked description texts, masked token prediction and masked entity prediction
    from LM2's output, after the merge has added E^KM of each kept mention's entity at its
    tokens (`joint_step.language_losses`). Their gradients reach the KM through the merge.
Between device calls the host refreshes the memory with the current LM1 on JAKET's schedule
(a `host_loop.Hook`), blended in with momentum; the memory is part of the checkpointed state,
and the schedule is a function of the step, so a resumed run refreshes where the
uninterrupted run would.

  config -> validate -> dataset, categories -> encoder (LM1 | LM2) -> descriptions tokenised
  once, E^(0) and R by LM1 -> linked corpus (train / held-out texts) -> samplers, batchers
  -> workdir -> host_loop.run(family, refresh hook) -> evaluation -> results.json

Evaluation: the KM's tasks over the whole training graph with the final memory (as
`trainer.evaluate_graph_tasks`), and the language losses on held-out texts (seeded, fixed
batches): masked-token loss, accuracy and perplexity, masked-entity loss and accuracy.

Devices (`config.mesh.axes`): with ("model", Xm) the memory's entity rows are split Xm ways
(`memory.MemoryPlacement`, each device V/Xm rows, padded), the encoder, the KM and the step
replicated; the joint step itself is not data-parallel yet. A checkpoint resumes on another
Xm (its memory rows re-padded).
"""

from __future__ import annotations

import dataclasses
import math
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from kgjax.config import ConfigError
from kgjax.data import descriptions, linking, subgraphs
from kgjax.models.jaket import MaskedEntityHead
from kgjax.models.lm import pretrained
from kgjax.models.lm.heads import MaskedTokenHead
from kgjax.text import encode
from kgjax.text import init as text_init
from kgjax.train import host_loop
from kgjax.train import workdir as workdir_lib
from kgjax.train.jaket import batches as batches_lib
from kgjax.train.jaket import pretraining_config as pt_config
from kgjax.train.jaket.joint_step import JointWeights, language_losses, make_train_chunk
from kgjax.train.jaket.memory import MemoryPlacement, memory_mesh, momentum_update
from kgjax.train.jaket.step import TrainState, memory_of
from kgjax.train.jaket.text_batches import TextBatcher, TokenisedCorpus, tokenise
from kgjax.train.jaket.trainer import (
    Graph,
    evaluate_graph_tasks,
    graph_sampler,
    init_knowledge_module,
    knowledge_module,
    load_graph,
    pretrained_encoder,
    with_encoder,
)
from kgjax.train.optimizers import two_rate_optimizer

__all__ = ["train"]

_HELD_OUT_STREAM = 0xC0  # salts the held-out texts' choice apart from every other draw
# Parameters that learn at optimizer.encoder_lr: the language model and its token head.
_LANGUAGE_PARAMS = ("encoder", "token_head")


def load_corpus(config: ml_collections.ConfigDict, folder) -> list[linking.LinkedText]:
    """The linked texts, their mentions limited to `corpus.rules`.

    Raises:
      DataError: a missing or malformed corpus or dataset file (named).
    """
    if config.corpus.path:
        texts = linking.read_jsonl(config.corpus.path)
    else:
        texts, _ = linking.link_folder(folder, config.memory.source or None)
    rules = set(config.corpus.rules)
    return [
        dataclasses.replace(t, mentions=tuple(m for m in t.mentions if m.rule in rules))
        for t in texts
    ]


def split_texts(num_texts: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training text ids, held-out text ids): a seeded `fraction` held out, at least one."""
    order = np.random.default_rng([seed, _HELD_OUT_STREAM]).permutation(num_texts)
    held = max(1, math.ceil(fraction * num_texts))
    return np.sort(order[held:]), np.sort(order[:held])


def corpus_statistics(corpus: TokenisedCorpus) -> dict:
    """Texts, real tokens, mentions and distinct mentioned entities of a tokenised corpus."""
    return {
        "texts": len(corpus.ids),
        "tokens": int(corpus.mask.sum()),
        "mentions": len(corpus.entities),
        "distinct_entities": len(np.unique(corpus.entities)),
        "mentions_dropped": corpus.num_dropped,
    }


def language_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """optimizer.lr for the KM and the entity head, optimizer.encoder_lr for the language
    model and its token head (same optimizer and schedule)."""
    return two_rate_optimizer(config, _LANGUAGE_PARAMS, labels=("km", "language"))


@dataclasses.dataclass(frozen=True)
class Pretraining:
    """Everything a joint pre-training run is built from, before its workdir is touched.

    Attributes:
      config: the run's.
      graph: the dataset, its categories and their split, the adjacency, category targets.
      sampler: the KM tasks' subgraphs; lm: the language model (config, weights, tokenizer).
      tokenised: {"entity": [V, ...], "relation": [R, ...]} descriptions for LM1's pooling.
      memory: {"entity": float32 [V, D], "relation": [R, D]} E^(0) and R.
      corpora: {"train", "held_out"} tokenised linked texts; batcher, held_out_batcher: theirs.
      model: the knowledge module with its heads; km_init: its pre-trained parts, or None.
      placement: the devices, the memory's rows split along "model" (`config.mesh`).
    """

    config: ml_collections.ConfigDict
    graph: Graph
    sampler: subgraphs.SubgraphSampler
    lm: pretrained.Pretrained
    tokenised: dict
    memory: dict
    corpora: dict
    batcher: TextBatcher
    held_out_batcher: TextBatcher
    model: object
    km_init: dict | None
    placement: MemoryPlacement

    def init_model_params(self) -> dict:
        return init_knowledge_module(
            self.model, self.config, self.sampler, self.graph.train_labels, self.memory
        )

    def initial_state(self, optimizer: optax.GradientTransformation) -> TrainState:
        """Step 0: a fresh KM (or `km_init`'s), the pre-trained LM, new heads, E^(0)."""
        config, lm = self.config, self.lm
        model_params = self.init_model_params()
        if self.km_init is not None:
            model_params = with_encoder(model_params, self.km_init, config.model.init_from)
        width = self.memory["entity"].shape[1]
        key = jax.random.fold_in(jax.random.key(config.seed), 0x4E)
        words = lm.params["embeddings"]["word_embeddings"]["embedding"]
        hidden = jnp.zeros((1, 1, width), jnp.float32)
        # Jitted: op by op, every initialiser would compile on its own.
        token_head = jax.jit(MaskedTokenHead(lm.config.layer_norm_eps).init)
        entity_head = jax.jit(MaskedEntityHead(width).init)
        params = {
            "model": model_params,
            # A copy: the first step donates the state, and `lm.params` must outlive it.
            "encoder": jax.tree.map(jnp.array, lm.params),
            "token_head": token_head(key, hidden, words)["params"],
            "entity_head": entity_head(jax.random.fold_in(key, 1), hidden, hidden)["params"],
        }
        memory = {
            "entity": self.placement.pad(self.memory["entity"]),
            "relation": jnp.asarray(self.memory["relation"]),
        }
        state = TrainState(
            step=jnp.int32(0),
            params=params,
            frozen={"memory": memory},
            opt_state=jax.jit(optimizer.init)(params),
        )
        return self.placement.place(state)

    def abstract_state(self, optimizer: optax.GradientTransformation) -> TrainState:
        """The initial state's shapes with their shardings (the restore target)."""
        return self.placement.abstract(jax.eval_shape(lambda: self.initial_state(optimizer)))

    def graph_batches(self, steps) -> batches_lib.Batch:
        """The KM tasks' batches of `steps`, stacked."""
        return batches_lib.chunk(
            self.sampler, steps, self.graph.train_labels, self.config.loss.num_pairs,
            self.graph.dataset.num_relations,
        )  # fmt: skip


def build(config: ml_collections.ConfigDict, progress: bool = True) -> Pretraining:
    """Validates the config and reads, tokenises and encodes what the run needs.

    Raises:
      ConfigError, DataError, CheckpointError: bad config, data or encoder folder.
    """
    pt_config.validate(config)
    try:
        mesh = memory_mesh(config.mesh.axes)
    except ValueError as error:
        raise ConfigError(f"config.mesh.axes: {error}") from None
    graph = load_graph(config, progress)
    dataset, labels, adjacency = graph.dataset, graph.labels, graph.adjacency
    sampler = graph_sampler(config, adjacency, graph.pretrain)

    # The language model, and every description tokenised once for E^(0) and the refreshes.
    lm = pretrained.load_pretrained(
        config.encoder.path or None, split_layer=config.encoder.split_layer
    )
    encoder_config = lm.config
    if not 1 <= config.encoder.split_layer < encoder_config.num_layers:
        raise ConfigError(
            f"config.encoder.split_layer: {config.encoder.split_layer} leaves LM1 or LM2 empty "
            f"({encoder_config.num_layers} layers)"
        )
    folder = text_init.descriptions_folder(config.memory, config.data)
    texts = {
        "entity": descriptions.entity_descriptions(
            folder, dataset.entities.names, config.memory.source or None
        ),
        "relation": descriptions.relation_descriptions(folder, dataset.relations.names),
    }
    tokenised = {
        name: encode.tokenise_texts(
            d.texts,
            d.mentions,
            lm.tokenizer,
            encoder_config.pad_token_id,
            "mention",
            config.memory.max_length,
        )  # fmt: skip
        for name, d in texts.items()
    }
    memory = {  # E^(0) and R: the pre-trained LM1, cached on disk across runs
        name: encode.encode_texts(
            d.texts,
            lm,
            pooling="mention",
            mentions=d.mentions,
            max_length=config.memory.max_length,
            progress=progress,
        )  # fmt: skip
        for name, d in texts.items()
    }
    width = memory["entity"].shape[1]

    # The corpus, split into training and held-out texts, tokenised once.
    # Only the graph's own entities' descriptions: on a graph with entities held out (an
    # inductive split's seen part) their texts and the mentions of them never enter training.
    entity_index = {name: i for i, name in enumerate(dataset.entities.names)}
    linked = [text for text in load_corpus(config, folder) if text.entity in entity_index]
    train_ids, held_ids = split_texts(len(linked), config.corpus.held_out_fraction, config.seed)
    tokenizer = pretrained.fixed_length_tokenizer(
        lm.tokenizer, config.corpus.max_length, encoder_config.pad_token_id
    )
    corpora = {
        part: tokenise([linked[i] for i in ids], entity_index, tokenizer)
        for part, ids in (("train", train_ids), ("held_out", held_ids))
    }
    mask_id = lm.tokenizer.token_to_id("[MASK]")
    if mask_id is None:
        raise ConfigError(f"config.encoder.path: {lm.path}'s tokenizer has no [MASK] token")
    section = config.corpus
    text_sampler = subgraphs.SubgraphSampler(
        adjacency,
        num_roots=section.batch_size * section.max_kept,
        fanouts=tuple(config.sampler.fanouts),
        seed=config.seed,
    )
    batcher = TextBatcher(
        corpus=corpora["train"],
        sampler=text_sampler,
        batch_size=section.batch_size,
        max_kept=section.max_kept,
        max_dropped=section.max_dropped,
        num_candidates=section.num_candidates,
        num_neighbours=section.num_neighbours,
        mask_id=mask_id,
        vocab_size=encoder_config.vocab_size,
        max_predictions=section.max_predictions,
        drop_rate=section.drop_rate,
        merge=section.merge,
        seed=config.seed,
    )
    budgets = text_sampler.propose_budgets(config.sampler.budget_draws, roots_of=batcher.roots)
    batcher = dataclasses.replace(
        batcher, sampler=dataclasses.replace(text_sampler, budgets=budgets)
    )
    # The last budget is the worst case, so the held-out texts' graphs fit too.
    held_out_batcher = dataclasses.replace(batcher, corpus=corpora["held_out"])

    model = knowledge_module(config, labels, dataset.num_relations, width)
    if width != encoder_config.hidden_size:
        raise ConfigError(f"the memory is {width} wide, the encoder {encoder_config.hidden_size}")
    km_init = pretrained_encoder(config.model.init_from) if config.model.init_from else None

    setup = Pretraining(
        config=config, graph=graph, sampler=sampler, lm=lm,
        tokenised=tokenised, memory=memory, corpora=corpora, batcher=batcher,
        held_out_batcher=held_out_batcher, model=model, km_init=km_init,
        placement=MemoryPlacement(mesh, dataset.num_entities),
    )  # fmt: skip
    if km_init is not None:  # a misfit is an error before anything is written
        with_encoder(jax.eval_shape(setup.init_model_params), km_init, config.model.init_from)
    return setup


def train(config: ml_collections.ConfigDict, workdir: str, progress: bool = True) -> dict:
    """Pre-trains jointly, evaluates and writes `<workdir>/results.json`; resumes.

    Nothing is written before the config, the encoder and the data validate.

    Returns:
      {"category/held_out", "category/pretrain", "relation_prediction/valid" and "/test"
      (as `trainer.train`), "language/held_out" {token_loss, token_accuracy,
      token_perplexity, token_targets, entity_loss, entity_accuracy, entity_targets} over
      `eval.num_text_batches` seeded batches of held-out texts, "corpus" {train, held_out
      statistics},
      "refresh_steps", "steps", "train_seconds", "steps_per_second", ...}.

    Raises:
      ConfigError, DataError, CheckpointError: bad config, data or encoder folder.
      TrainingDiverged: the loss became NaN or Inf.
    """
    setup = build(config, progress)
    dataset, labels, model = setup.graph.dataset, setup.graph.labels, setup.model
    encoder_config, tokenised = setup.lm.config, setup.tokenised
    workdir_lib.claim(workdir, config, pt_config.load, pt_config.differences)

    optimizer = language_optimizer(config)
    loss = config.loss
    weights = JointWeights(
        loss.category_weight, loss.relation_weight, loss.token_weight, loss.entity_weight
    )
    placement = setup.placement
    abstract = setup.abstract_state(optimizer)
    run_chunk = make_train_chunk(
        encoder_config, model, optimizer, weights,
        state_shardings=jax.tree.map(lambda leaf: leaf.sharding, abstract),
        metrics_sharding=placement.replicated,
    )  # fmt: skip
    length = pt_config.chunk_length(config)
    schedule = pt_config.schedule(config)

    def train_chunk(state):
        start = int(state.step)
        steps = range(start, start + length)
        return run_chunk(state, setup.graph_batches(steps), setup.batcher.chunk(steps))

    checkpointer = host_loop.open_checkpointer(workdir, config.checkpoint.max_to_keep)
    writer = host_loop.open_writer(workdir)

    def refresh(state: TrainState, step: int) -> TrainState:
        """E <- m E + (1 - m) LM1(descriptions), with the current LM1."""
        old = state.frozen["memory"]
        new = {}
        for name, rows in tokenised.items():
            fresh = encode.pool(
                state.params["encoder"], encoder_config, rows, "mention", config.memory.batch_size
            )
            fresh = placement.pad(fresh) if name == "entity" else fresh
            new[name] = momentum_update(old[name], fresh, config.memory.momentum)
        new = jax.device_put(
            new, {"entity": placement.memory_rows, "relation": placement.replicated}
        )
        change = float(
            jnp.linalg.norm(new["entity"] - old["entity"]) / jnp.linalg.norm(old["entity"])
        )
        writer.write(
            step,
            "refresh",
            {"memory/refreshes": schedule.refreshes_done(step), "memory/relative_change": change},
        )
        return state.replace(frozen={**state.frozen, "memory": new})

    hooks = (host_loop.Hook(schedule.is_refresh_step, refresh),) if config.memory.refresh else ()

    graph = setup.graph
    full = subgraphs.full_graph(graph.adjacency)
    parts = {"held_out": graph.held_out, "pretrain": graph.pretrain} if labels is not None else {}
    trained_labels = labels if config.loss.category_weight > 0 else None
    held_out_batches = setup.held_out_batcher.chunk(range(config.eval.num_text_batches))

    @jax.jit
    def held_out_language(params, frozen, batches):
        memory = memory_of(params, frozen)
        return jax.lax.map(
            lambda b: language_losses(params, encoder_config, model, memory, b), batches
        )

    def evaluate(state) -> dict:
        results = evaluate_graph_tasks(
            model, state.params, state.frozen, dataset, full, trained_labels, parts,
            config.loss.relation_weight > 0, None,
        )  # fmt: skip
        per_batch = jax.tree.map(
            np.asarray, held_out_language(state.params, state.frozen, held_out_batches)
        )
        language = {}
        for task in ("token", "entity"):  # means over all targets, not over batch means
            counts = per_batch[f"{task}_targets"]
            for metric in ("loss", "accuracy"):
                values = per_batch[f"{task}_{metric}"]
                language[f"{task}_{metric}"] = float(np.sum(values * counts) / max(counts.sum(), 1))
            language[f"{task}_targets"] = int(counts.sum())
        language["token_perplexity"] = math.exp(language["token_loss"])
        results["language/held_out"] = language
        return results

    def scalars(results: dict) -> dict[str, float]:
        keep = ("accuracy", "mrr", "token_loss", "token_accuracy", "entity_accuracy")
        return {
            f"{name}/{key}": value
            for name, metrics in results.items()
            for key, value in metrics.items()
            if key in keep
        }

    try:
        family = host_loop.Family(
            initial_state=lambda: setup.initial_state(optimizer),
            abstract_state=lambda: abstract,
            train_chunk=train_chunk,
            chunk_length=length,
            evaluations={"jaket": lambda state: scalars(evaluate(state))},
            hooks=hooks,
        )
        outcome = host_loop.run(family, pt_config.cadence(config), checkpointer, writer, progress)
        results = evaluate(outcome.state)
        writer.write(outcome.step, "final", scalars(results))
        results.update(
            steps=int(outcome.step),
            train_seconds=outcome.train_seconds,
            steps_per_second=outcome.steps_per_second,
            refresh_steps=schedule.steps(outcome.step) if config.memory.refresh else [],
            corpus={part: corpus_statistics(c) for part, c in setup.corpora.items()},
            dataset={
                "name": dataset.name,
                "num_entities": dataset.num_entities,
                "num_relations": dataset.num_relations,
            },
            num_categories=len(labels.names) if labels is not None else 0,
            encoder=str(setup.lm.path),
            device=str(jax.devices()[0].device_kind),
            num_devices=placement.mesh.size,
            # Read off the live state: the memory rows each device holds (V/Xm, padded).
            memory_rows_per_device=[
                int(shard.data.shape[0])
                for shard in outcome.state.frozen["memory"]["entity"].addressable_shards
            ],
            jax_version=jax.__version__,
        )
        workdir_lib.write_json(os.path.join(workdir, workdir_lib.RESULTS_FILE), results)
        return results
    finally:
        checkpointer.close()
        writer.close()
