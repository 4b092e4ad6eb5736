"""Masked entity prediction's candidates (host) and loss (device).

Each dropped mention of entity e is scored against K candidates: e itself (always column 0),
then up to `num_neighbours` of its graph neighbours, then random entities, as JAKET draws its
negatives (the paper: "the neighbours of e_r and other randomly sampled entities"). A
candidate repeated in a row, or equal to e, is masked: a duplicate would count twice in the
softmax and e must not be its own negative. Draws come from the generator given, which the
trainer seeds from (seed, step) so a resumed run draws the same candidates.

Shapes: M mentions, K candidates, D the memory's width.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from kgjax.data.subgraphs import Adjacency

__all__ = ["candidates", "loss"]


def candidates(
    adjacency: Adjacency,
    entities: np.ndarray,
    num_candidates: int,
    num_neighbours: int,
    rng: np.random.Generator,
    num_entities: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate entities of each mention, the true one first.

    Args:
      adjacency: the training graph (a neighbour is any u with an edge u -> e).
      entities: int [M] the mentions' true entities.
      num_candidates: K (>= 2).
      num_neighbours: at most this many neighbours per row (drawn without replacement when
        e has more); the rest of the row is random entities.
      rng: the generator of this step's draws.
      num_entities: V (random candidates are drawn from [0, V)).

    Returns:
      (int32 [M, K] entity ids, bool [M, K] valid: False on duplicates of an earlier column
      and on negatives equal to the true entity).
    """
    if num_candidates < 2:
        raise ValueError(f"num_candidates must be at least 2, got {num_candidates}")
    entities = np.asarray(entities, np.int64)
    rows = np.empty((len(entities), num_candidates), np.int32)
    valid = np.ones((len(entities), num_candidates), bool)
    for i, entity in enumerate(entities):
        neighbours = np.unique(
            adjacency.senders[adjacency.offsets[entity] : adjacency.offsets[entity + 1]]
        )
        neighbours = neighbours[neighbours != entity]
        take = min(num_neighbours, num_candidates - 1, len(neighbours))
        chosen = rng.choice(neighbours, take, replace=False) if take else neighbours[:0]
        randoms = rng.integers(0, num_entities, num_candidates - 1 - take)
        row = np.concatenate([[entity], chosen, randoms])
        rows[i] = row
        _, first = np.unique(row, return_index=True)
        valid[i] = False
        valid[i, first] = True
        valid[i, 1:] &= row[1:] != entity
    return rows, valid


def loss(
    queries: jax.Array,
    memory: jax.Array,
    candidate_ids: jax.Array,
    candidate_mask: jax.Array,
    mention_mask: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """L_e: cross-entropy of the true entity (column 0) among each row's valid candidates.

    Args:
      queries: float [M, D] q of each mention (`MaskedEntityHead`).
      memory: float [V, D] the entity context memory.
      candidate_ids: int [M, K]; candidate_mask: bool [M, K] (`candidates`).
      mention_mask: bool [M], False on padded mentions.

    Returns:
      (mean loss over real mentions, accuracy: the share whose true entity scores highest).
    """
    scores = jnp.einsum("md,mkd->mk", queries, memory[candidate_ids])
    scores = jnp.where(candidate_mask, scores, -jnp.inf)
    per_mention = optax.softmax_cross_entropy_with_integer_labels(
        scores, jnp.zeros(scores.shape[0], jnp.int32)
    )
    weights = mention_mask.astype(scores.dtype)
    count = jnp.maximum(jnp.sum(weights), 1.0)
    mean = jnp.sum(jnp.where(mention_mask, per_mention, 0.0)) / count
    hits = (jnp.argmax(scores, axis=-1) == 0).astype(scores.dtype)
    return mean, jnp.sum(hits * weights) / count
