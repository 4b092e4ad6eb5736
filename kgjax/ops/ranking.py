"""Filtered ranks from a score matrix, without building a [B, V] filter mask.

rank = 1 + #{e : s_e beats s_true} - #{known true answers f != true : s_f beats s_true}

where "beats" is > for the optimistic rank and >= for the pessimistic one; the realistic
rank is their mean (ties are split evenly). Subtracting the filtered answers' own counts
needs only their scores, gathered at [B, P], so memory stays O(B V + B P).

Shapes: B batch, V entities, P filter budget.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def filtered_ranks(
    scores: jax.Array,
    true_ids: jax.Array,
    filter_ids: jax.Array,
    filter_mask: jax.Array,
    num_candidates: int | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Optimistic and pessimistic filtered ranks of the true answer (higher score = better).

    Args:
      scores: float [B, V] scores of every candidate.
      true_ids: int [B] the column of the true answer.
      filter_ids: int [B, P] known true answers to filter (may include the true answer
        itself and repeat nothing; padded entries are masked).
      filter_mask: bool [B, P] which entries of `filter_ids` are real.
      num_candidates: only columns below this are candidates (padding rows of a sharded
        table lie above it); default all V.

    Returns:
      (optimistic, pessimistic): float32 [B] ranks, 1 = best. A NaN true score ranks last.
    """
    num_columns = scores.shape[1]
    true_score = jnp.take_along_axis(scores, true_ids[:, None], axis=1)  # [B, 1]
    column_valid = jnp.ones((num_columns,), bool)
    if num_candidates is not None and num_candidates < num_columns:
        column_valid = jnp.arange(num_columns) < num_candidates
    greater = jnp.sum((scores > true_score) & column_valid, axis=1)
    # >= counts the true answer itself; it is removed below along with the filtered ones.
    greater_equal = jnp.sum((scores >= true_score) & column_valid, axis=1)

    filter_scores = jnp.take_along_axis(scores, filter_ids, axis=1)  # [B, P]
    others = filter_mask & (filter_ids != true_ids[:, None])
    filtered_greater = jnp.sum(others & (filter_scores > true_score), axis=1)
    filtered_greater_equal = jnp.sum(others & (filter_scores >= true_score), axis=1)

    optimistic = 1 + greater - filtered_greater
    pessimistic = greater_equal - filtered_greater_equal  # the true answer itself is the +1
    # A NaN score compares false everywhere and would rank first: rank it last instead.
    nan = jnp.isnan(true_score[:, 0])
    worst = jnp.full_like(optimistic, num_candidates or num_columns)
    optimistic = jnp.where(nan, worst, optimistic)
    pessimistic = jnp.where(nan, worst, pessimistic)
    return optimistic.astype(jnp.float32), pessimistic.astype(jnp.float32)
