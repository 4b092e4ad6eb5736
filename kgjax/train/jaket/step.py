"""The jitted side of KG-only training: the state, the three losses, the multi-step call.

  L = category_weight * L_c + relation_weight * L_r + link_weight * L_l
  L_c: cross-entropy of the category head on the roots with a pre-training label (mean);
  L_r: cross-entropy over relations of the pair head on the step's target pairs (mean);
  L_l: link prediction with the knowledge module as encoder (CompGCN-style): a KGE
    interaction (the decoder) scores each target pair's queries (h, r, ?) and (t, r^-1, ?)
    from E^KM against every node of the subgraph, cross-entropy over the nodes with the
    other known answers filtered out (`batches.link_filter`); mean over queries.

The decoder's own parameters are `params["link"]`, trained with the model: "relation" (2R
rows: r, then the inverses r + R), TuckER's and ConvE's "interaction" weights, and ConvE's
per-entity score bias "entity_bias" [V]; the entity side is E^KM itself. The decoder's
dropouts draw from (seed, step), so a resumed run draws what the uninterrupted run drew.

The entity context memory E^(0) [V, D] and the relation vectors R [R, D] are part of the
state: under `params["memory"]` (trained with the model) when `memory.trainable`, else
under `frozen["memory"]`, where no gradient reaches them.
"""

from __future__ import annotations

from collections.abc import Callable

import flax
import jax
import jax.numpy as jnp
import optax

from kgjax.models.jaket import KnowledgePretraining
from kgjax.models.kge import KGEModel
from kgjax.train.jaket.batches import Batch


@flax.struct.dataclass
class TrainState:
    """step: int32 scalar; params: {"model": ..., "memory"?: ..., "link"?: {"relation":
    [2R, Dr]}} (what the optimizer trains); frozen: {"memory"?: {"entity": [V, D], "relation": [R, D]}}; opt_state."""

    step: jax.Array
    params: dict
    frozen: dict
    opt_state: optax.OptState


def memory_of(state_params: dict, frozen: dict) -> dict:
    """{"entity": [V, D], "relation": [R, D]}, wherever the state keeps it."""
    return state_params["memory"] if "memory" in state_params else frozen["memory"]


def forward(
    model: KnowledgePretraining,
    model_params: dict,
    memory: dict,
    graph,
    pair_heads: jax.Array,
    pair_tails: jax.Array,
    **apply_kwargs,
):
    """The model on a padded graph whose node i is entity `graph.entity_ids[i]`, its E^(0)
    rows read from `memory`; returns `KnowledgePretraining`'s (E^KM, category logits,
    relation logits) (and the mutable collections with `mutable=`)."""
    return model.apply(
        {"params": model_params},
        memory["entity"][graph.entity_ids],
        memory["relation"],
        graph.senders,
        graph.receivers,
        graph.relations,
        graph.edge_mask,
        pair_heads,
        pair_tails,
        **apply_kwargs,
    )


def _masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
    mask = mask.astype(values.dtype)
    return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def decoder_vectors(link_params: dict, entities: jax.Array, entity_ids: jax.Array) -> jax.Array:
    """The decoder's entity vectors: E^KM [N, D], or [E^KM | b] [N, D + 1] for ConvE, whose
    score adds a bias per candidate entity (`entity_ids` [N] index the bias table)."""
    if "entity_bias" not in link_params:
        return entities
    return jnp.concatenate([entities, link_params["entity_bias"][entity_ids][:, None]], axis=-1)


def link_scores(
    decoder: KGEModel,
    link_params: dict,
    entities: jax.Array,
    batch: Batch,
    key: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Scores of each target pair's two queries against every node of the subgraph.

    Args:
      decoder: the KGE model whose interaction scores (its tables are not used).
      link_params: {"relation": float [2R, Dr] (relation r + R the inverse of r),
        "interaction"?: the decoder's weights, "entity_bias"?: [V]}.
      entities: float [N, D] E^KM of the subgraph's nodes.
      batch: with `link_filter`.
      key: the decoder's dropout key (training); None: no dropout.

    Returns:
      (scores float [2P, N] with excluded candidates at -inf, targets int [2P]); rows 0..P-1
      answer (h, r, ?), rows P..2P-1 (t, r^-1, ?).
    """
    bound = decoder.bind(link_params, key)  # TuckER's core, ConvE's layers; else itself
    relation_table = link_params["relation"]
    vectors = decoder_vectors(link_params, entities, batch.graph.entity_ids)
    num_relations = relation_table.shape[0] // 2
    relations = batch.pair_relations
    queries = jnp.concatenate(
        [
            bound.tail_query(vectors[batch.pair_heads], relation_table[relations]),
            bound.tail_query(vectors[batch.pair_tails], relation_table[relations + num_relations]),
        ]
    )
    scores = bound.match_all(queries, vectors)
    excluded = batch.link_filter | ~batch.graph.node_mask[None, :]
    targets = jnp.concatenate([batch.pair_tails, batch.pair_heads])
    return jnp.where(excluded, -jnp.inf, scores), targets


def losses(
    model: KnowledgePretraining,
    params: dict,
    frozen: dict,
    batch: Batch,
    weights: tuple[float, float, float],
    decoder: KGEModel | None = None,
    key: jax.Array | None = None,
) -> tuple[jax.Array, dict]:
    """The weighted loss of one step's batch and its parts.

    Args:
      weights: (category, relation, link).
      decoder: the link-prediction decoder (with `params["link"]` and `batch.link_filter`);
        None: no link prediction.
      key: the decoder's dropout key.

    Returns:
      (loss, metrics {"loss", "category_loss", "relation_loss", "link_loss",
      "category_accuracy", "relation_accuracy", "link_accuracy" (with a decoder),
      "category_targets", "relation_targets"}).
    """
    entities, category_logits, relation_logits = forward(
        model,
        params["model"],
        memory_of(params, frozen),
        batch.graph,
        batch.pair_heads,
        batch.pair_tails,
    )
    zero = jnp.float32(0.0)
    metrics = {}
    category_mask = batch.labels >= 0
    if category_logits is not None:
        labels = jnp.maximum(batch.labels, 0)
        per_node = optax.softmax_cross_entropy_with_integer_labels(category_logits, labels)
        category_loss = _masked_mean(per_node, category_mask)
        hits = (jnp.argmax(category_logits, -1) == labels).astype(jnp.float32)
        metrics["category_accuracy"] = _masked_mean(hits, category_mask)
    else:
        category_loss = zero
    per_pair = optax.softmax_cross_entropy_with_integer_labels(
        relation_logits, batch.pair_relations
    )
    relation_loss = _masked_mean(per_pair, batch.pair_mask)
    hits = (jnp.argmax(relation_logits, -1) == batch.pair_relations).astype(jnp.float32)
    metrics["relation_accuracy"] = _masked_mean(hits, batch.pair_mask)
    if decoder is not None:
        scores, targets = link_scores(decoder, params["link"], entities, batch, key)
        query_mask = jnp.concatenate([batch.pair_mask, batch.pair_mask])
        per_query = optax.softmax_cross_entropy_with_integer_labels(scores, targets)
        per_query = jnp.where(query_mask, per_query, 0.0)  # padded rows: never inf * 0
        link_loss = _masked_mean(per_query, query_mask)
        hits = (jnp.argmax(scores, -1) == targets).astype(jnp.float32)
        metrics["link_accuracy"] = _masked_mean(hits, query_mask)
    else:
        link_loss = zero
    category_weight, relation_weight, link_weight = weights
    loss = category_weight * category_loss + relation_weight * relation_loss
    if decoder is not None:
        loss = loss + link_weight * link_loss
    metrics.update(
        loss=loss,
        category_loss=category_loss,
        relation_loss=relation_loss,
        link_loss=link_loss,
        category_targets=jnp.sum(category_mask).astype(jnp.float32),
        relation_targets=jnp.sum(batch.pair_mask).astype(jnp.float32),
    )
    return loss, metrics


def make_train_chunk(
    model: KnowledgePretraining,
    optimizer: optax.GradientTransformation,
    weights: tuple[float, float, float],
    decoder: KGEModel | None = None,
    seed: int = 0,
) -> Callable[[TrainState, Batch], tuple[TrainState, dict]]:
    """A jitted call running one step per leading row of a stacked `Batch` (lax.scan).

    Args: weights, decoder: as for `losses`; seed: of the decoder's dropout keys.

    Returns:
      (state, batches [S, ...]) -> (state, metrics {name: [S]}); the state is donated.
    """

    def one_step(state: TrainState, batch: Batch):
        grad_fn = jax.value_and_grad(losses, argnums=1, has_aux=True)
        (_, metrics), grads = grad_fn(model, state.params, state.frozen, batch, weights, decoder)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

    def run(state: TrainState, batches: Batch):
        return jax.lax.scan(one_step, state, batches)

    return jax.jit(run, donate_argnums=(0,))
