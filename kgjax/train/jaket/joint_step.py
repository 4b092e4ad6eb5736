"""JAKET's language-side losses, with the knowledge module inside the language model.

Yu et al. (AAAI 2022), "Language Module" and "Pre-training": LM1 encodes a text; the
knowledge module (KM) turns the mentioned entities' context-memory rows into E^KM over their
graph neighbourhood; at every token of a kept mention the merge adds E^KM of its entity and
normalises (`kgjax.models.lm.encoder.Encoder.merge`); LM2 continues. Two losses read LM2's
output Z:

  L_t  masked token prediction: BERT's corruption (`kgjax.text.masking`), a tied MLM head
       (`kgjax.models.lm.heads.MaskedTokenHead`), cross-entropy over the vocabulary;
  L_e  masked entity prediction: the dropped mentions (15%, not merged) predict their entity
       from q = g((Z_s + Z_o) / 2) against candidates from the memory
       (`kgjax.train.jaket.masked_entities`).

Gradients of both reach the KM through the merge: this is how the language module teaches
the knowledge module. The KM tasks (category and relation prediction on subgraphs around
random-walk roots) are `kgjax.train.jaket.step`'s.

Shapes: B texts, L tokens, S kept-mention slots, M dropped-mention slots, P masked-token
slots, K entity candidates, N nodes of the mentions' subgraph, D the shared width (the
encoder's hidden size = the memory's = the KM's).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from kgjax.data.subgraphs import Subgraph
from kgjax.models.jaket import KnowledgePretraining, MaskedEntityHead
from kgjax.models.lm import encoder as encoder_lib
from kgjax.models.lm.heads import MaskedTokenHead, gather_positions
from kgjax.train.jaket import masked_entities
from kgjax.train.jaket.batches import Batch
from kgjax.train.jaket.step import TrainState, forward, losses, memory_of

__all__ = ["JointWeights", "TextBatch", "joint_losses", "language_losses", "make_train_chunk"]


class TextBatch(NamedTuple):
    """One step's texts (a pytree; NumPy or device arrays).

    Attributes:
      ids: int32 [B, L] corrupted token ids (`kgjax.text.masking.mask_tokens`).
      mask: int32 [B, L], 1 on real tokens.
      token_positions, token_targets, token_weights: [B, P] the masked-token slots.
      spans: int32 [B, S, 2] (first, last) token of each kept mention.
      span_nodes: int32 [B, S] each kept mention's entity as a node of `graph`.
      span_mask: bool [B, S], False on padded slots.
      dropped_spans: int32 [B, M, 2] the dropped mentions' tokens.
      candidates: int32 [B, M, K] their candidate entities (the true one first).
      candidate_mask: bool [B, M, K].
      dropped_mask: bool [B, M], False on padded slots.
      graph: the subgraph around the kept mentions' entities (they are its roots).
    """

    ids: jax.Array
    mask: jax.Array
    token_positions: jax.Array
    token_targets: jax.Array
    token_weights: jax.Array
    spans: jax.Array
    span_nodes: jax.Array
    span_mask: jax.Array
    dropped_spans: jax.Array
    candidates: jax.Array
    candidate_mask: jax.Array
    dropped_mask: jax.Array
    graph: Subgraph


def merged_hidden(
    encoder_params: dict,
    encoder_config: encoder_lib.EncoderConfig,
    km: KnowledgePretraining,
    km_params: dict,
    memory: dict,
    batch: TextBatch,
) -> jax.Array:
    """Z = LM2(merge(LM1(ids), E^KM at the kept mentions)): float [B, L, D]."""
    no_pairs = jnp.zeros(1, jnp.int32)  # the KM's pair head is not used here
    entities, _, _ = forward(km, km_params, memory, batch.graph, no_pairs, no_pairs)
    vectors = entities[batch.span_nodes]  # [B, S, D]
    hidden = encoder_lib.lower(encoder_params, batch.ids, batch.mask, config=encoder_config)
    additions, injected = encoder_lib.span_additions(
        vectors, batch.spans, batch.span_mask, batch.ids.shape[1]
    )
    hidden = encoder_lib.merge(encoder_params, hidden, additions, injected, config=encoder_config)
    return encoder_lib.upper(encoder_params, hidden, batch.mask, config=encoder_config)


def language_losses(
    params: dict,
    encoder_config: encoder_lib.EncoderConfig,
    km: KnowledgePretraining,
    memory: dict,
    batch: TextBatch,
) -> dict[str, jax.Array]:
    """L_t and L_e of one batch of texts.

    Args:
      params: {"encoder", "model" (the KM), "token_head", "entity_head"}.
      memory: {"entity": [V, D], "relation": [R, D]} the entity context memory.

    Returns:
      {"token_loss", "token_accuracy", "entity_loss", "entity_accuracy"} scalars: means over
      the batch's masked tokens and dropped mentions, whose counts are "token_targets" and
      "entity_targets" (a batch may have none: its means are then 0).
    """
    z = merged_hidden(params["encoder"], encoder_config, km, params["model"], memory, batch)
    words = params["encoder"]["embeddings"]["word_embeddings"]["embedding"]
    logits = MaskedTokenHead(encoder_config.layer_norm_eps).apply(
        {"params": params["token_head"]}, gather_positions(z, batch.token_positions), words
    )
    per_token = optax.softmax_cross_entropy_with_integer_labels(logits, batch.token_targets)
    weights = batch.token_weights.astype(z.dtype)
    count = jnp.maximum(jnp.sum(weights), 1.0)
    hits = (jnp.argmax(logits, -1) == batch.token_targets).astype(z.dtype)

    batch_size, slots = batch.dropped_mask.shape
    flat = jnp.arange(batch_size)[:, None]
    starts = z[flat, batch.dropped_spans[..., 0]]  # [B, M, D]
    ends = z[flat, batch.dropped_spans[..., 1]]
    queries = MaskedEntityHead(memory["entity"].shape[-1]).apply(
        {"params": params["entity_head"]}, starts, ends
    )
    entity_loss, entity_accuracy = masked_entities.loss(
        queries.reshape(batch_size * slots, -1),
        memory["entity"],
        batch.candidates.reshape(batch_size * slots, -1),
        batch.candidate_mask.reshape(batch_size * slots, -1),
        batch.dropped_mask.reshape(-1),
    )
    return {
        "token_loss": jnp.sum(per_token * weights) / count,
        "token_accuracy": jnp.sum(hits * weights) / count,
        "token_targets": jnp.sum(weights),
        "entity_loss": entity_loss,
        "entity_accuracy": entity_accuracy,
        "entity_targets": jnp.sum(batch.dropped_mask).astype(z.dtype),
    }


class JointWeights(NamedTuple):
    """The four tasks' weights: L = c L_c + r L_r + t L_t + e L_e."""

    category: float = 1.0
    relation: float = 1.0
    token: float = 1.0
    entity: float = 1.0


def joint_losses(
    params: dict,
    frozen: dict,
    encoder_config: encoder_lib.EncoderConfig,
    km: KnowledgePretraining,
    graph_batch: Batch,
    text_batch: TextBatch,
    weights: JointWeights,
) -> tuple[jax.Array, dict]:
    """JAKET's pre-training loss of one step: the KM tasks on `graph_batch` (a subgraph around
    random-walk roots, `step.losses`) and the language tasks on `text_batch`.

    Returns:
      (loss, metrics: `step.losses`'s and `language_losses`'s, "km_loss" their KM part).
    """
    km_loss, metrics = losses(
        km, params, frozen, graph_batch, (weights.category, weights.relation, 0.0)
    )
    del metrics["link_loss"]  # no link prediction here
    language = language_losses(params, encoder_config, km, memory_of(params, frozen), text_batch)
    loss = (
        km_loss + weights.token * language["token_loss"] + weights.entity * language["entity_loss"]
    )
    return loss, {**metrics, **language, "km_loss": km_loss, "loss": loss}


def make_train_chunk(
    encoder_config: encoder_lib.EncoderConfig,
    km: KnowledgePretraining,
    optimizer: optax.GradientTransformation,
    weights: JointWeights,
    state_shardings=None,
    metrics_sharding=None,
) -> Callable[[TrainState, Batch, TextBatch], tuple[TrainState, dict]]:
    """A jitted call running one joint step per leading row of stacked batches (lax.scan).

    Args:
      state_shardings, metrics_sharding: where the outputs live (a mesh run: the memory's rows
        stay split); None for both: wherever the compiler puts them (one device).

    Returns:
      (state, graph batches [S, ...], text batches [S, ...]) -> (state, metrics {name: [S]});
      the state is donated. The memory (`state.frozen`) is read, never trained: the host
      refreshes it between calls.
    """

    def one_step(state: TrainState, batches):
        graph_batch, text_batch = batches
        grad_fn = jax.value_and_grad(joint_losses, has_aux=True)
        (_, metrics), grads = grad_fn(
            state.params, state.frozen, encoder_config, km, graph_batch, text_batch, weights
        )
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

    def run(state: TrainState, graph_batches: Batch, text_batches: TextBatch):
        return jax.lax.scan(one_step, state, (graph_batches, text_batches))

    if state_shardings is None:
        return jax.jit(run, donate_argnums=(0,))
    return jax.jit(run, donate_argnums=(0,), out_shardings=(state_shardings, metrics_sharding))
