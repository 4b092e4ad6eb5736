"""The jitted side of KG-only pre-training: the state, the two losses, the multi-step call.

  L = category_weight * L_c + relation_weight * L_r
  L_c: cross-entropy of the category head on the roots with a pre-training label (mean);
  L_r: cross-entropy over relations of the pair head on the step's target pairs (mean).

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
from kgjax.train.jaket.batches import Batch


@flax.struct.dataclass
class TrainState:
    """step: int32 scalar; params: {"model": ..., "memory"?: ...} (what the optimizer
    trains); frozen: {"memory"?: {"entity": [V, D], "relation": [R, D]}}; opt_state."""

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


def losses(
    model: KnowledgePretraining,
    params: dict,
    frozen: dict,
    batch: Batch,
    weights: tuple[float, float],
) -> tuple[jax.Array, dict]:
    """The weighted loss of one step's batch and its parts.

    Returns:
      (loss, metrics {"loss", "category_loss", "relation_loss", "category_accuracy",
      "relation_accuracy", "category_targets", "relation_targets"}).
    """
    _, category_logits, relation_logits = forward(
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
    category_weight, relation_weight = weights
    loss = category_weight * category_loss + relation_weight * relation_loss
    metrics.update(
        loss=loss,
        category_loss=category_loss,
        relation_loss=relation_loss,
        category_targets=jnp.sum(category_mask).astype(jnp.float32),
        relation_targets=jnp.sum(batch.pair_mask).astype(jnp.float32),
    )
    return loss, metrics


def make_train_chunk(
    model: KnowledgePretraining,
    optimizer: optax.GradientTransformation,
    weights: tuple[float, float],
) -> Callable[[TrainState, Batch], tuple[TrainState, dict]]:
    """A jitted call running one step per leading row of a stacked `Batch` (lax.scan).

    Returns:
      (state, batches [S, ...]) -> (state, metrics {name: [S]}); the state is donated.
    """

    def one_step(state: TrainState, batch: Batch):
        grad_fn = jax.value_and_grad(losses, argnums=1, has_aux=True)
        (_, metrics), grads = grad_fn(model, state.params, state.frozen, batch, weights)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

    def run(state: TrainState, batches: Batch):
        return jax.lax.scan(one_step, state, batches)

    return jax.jit(run, donate_argnums=(0,))
