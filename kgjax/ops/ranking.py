"""Filtered ranks from scores, without building a [B, V] filter mask.

rank = 1 + #{e : s_e beats s_true} - #{known true answers f != true : s_f beats s_true}

where "beats" is > for the optimistic rank and >= for the pessimistic one; the realistic
rank is their mean (ties are split evenly). Subtracting the filtered answers' own counts
needs only their scores, gathered at [B, W], so memory stays O(B V + B W).

The four counts add up over blocks of candidate columns, so a table split by rows over
devices is ranked shard by shard: each shard counts over its own columns
(`filtered_rank_counts` with its column offset), a psum adds the counts, and
`ranks_from_counts` finishes. No device ever holds the full score matrix.

Shapes: B batch, V entities, Vb entity columns of one block, W filter budget.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def filtered_rank_counts(
    scores: jax.Array,
    true_score: jax.Array,
    true_ids: jax.Array,
    filter_ids: jax.Array,
    filter_mask: jax.Array,
    column_offset: jax.Array | int = 0,
    num_candidates: int | None = None,
) -> jax.Array:
    """The counts behind filtered ranks, over one block of candidate columns.

    Args:
      scores: float [B, C] scores of the candidates `column_offset .. column_offset + C - 1`.
      true_score: float [B] the true answer's score, the very value its own column holds.
      true_ids: int [B] the true answer's global id.
      filter_ids: int [B, W] global ids of known true answers (may include the true answer,
        repeat nothing; padded entries are masked). Only those inside the block count here.
      filter_mask: bool [B, W] which entries of `filter_ids` are real.
      column_offset: int scalar (may be traced), the global id of column 0.
      num_candidates: global ids at or above this are not candidates (the padding rows of a
        split table); default: every column is one.

    Returns:
      int32 [4, B]: candidates scoring > the true score, candidates scoring >=, and the same
      two counts over the filtered answers (other than the true one) inside the block.
    """
    num_columns = scores.shape[1]
    threshold = true_score[:, None]
    if num_candidates is None:
        greater = jnp.sum(scores > threshold, axis=1)
        greater_equal = jnp.sum(scores >= threshold, axis=1)
    else:
        column_valid = column_offset + jnp.arange(num_columns) < num_candidates
        greater = jnp.sum((scores > threshold) & column_valid, axis=1)
        greater_equal = jnp.sum((scores >= threshold) & column_valid, axis=1)

    local = filter_ids - column_offset
    inside = (local >= 0) & (local < num_columns)
    filter_scores = jnp.take_along_axis(scores, jnp.clip(local, 0, num_columns - 1), axis=1)
    others = filter_mask & inside & (filter_ids != true_ids[:, None])
    filtered_greater = jnp.sum(others & (filter_scores > threshold), axis=1)
    filtered_greater_equal = jnp.sum(others & (filter_scores >= threshold), axis=1)
    counts = [greater, greater_equal, filtered_greater, filtered_greater_equal]
    return jnp.stack(counts).astype(jnp.int32)


def ranks_from_counts(
    counts: jax.Array, true_score: jax.Array, num_candidates: int
) -> tuple[jax.Array, jax.Array]:
    """Optimistic and pessimistic ranks from the counts summed over all columns.

    Args:
      counts: int [4, B] from `filtered_rank_counts`, summed over every block.
      true_score: float [B]; a NaN true score ranks last.
      num_candidates: V, the worst rank.

    Returns:
      (optimistic, pessimistic): float32 [B] ranks, 1 = best.
    """
    greater, greater_equal, filtered_greater, filtered_greater_equal = counts
    optimistic = 1 + greater - filtered_greater
    pessimistic = greater_equal - filtered_greater_equal  # the true answer itself is the +1
    # A NaN score compares false everywhere and would rank first: rank it last instead.
    nan = jnp.isnan(true_score)
    worst = jnp.full_like(optimistic, num_candidates)
    optimistic = jnp.where(nan, worst, optimistic)
    pessimistic = jnp.where(nan, worst, pessimistic)
    return optimistic.astype(jnp.float32), pessimistic.astype(jnp.float32)


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
      filter_ids: int [B, W] known true answers to filter (may include the true answer
        itself and repeat nothing; padded entries are masked).
      filter_mask: bool [B, W] which entries of `filter_ids` are real.
      num_candidates: only columns below this are candidates (padding rows of a sharded
        table lie above it); default all V.

    Returns:
      (optimistic, pessimistic): float32 [B] ranks, 1 = best. A NaN true score ranks last.
    """
    num_columns = scores.shape[1]
    if num_candidates is not None and num_candidates >= num_columns:
        num_candidates = None
    true_score = jnp.take_along_axis(scores, true_ids[:, None], axis=1)[:, 0]
    counts = filtered_rank_counts(
        scores, true_score, true_ids, filter_ids, filter_mask, 0, num_candidates
    )
    return ranks_from_counts(counts, true_score, num_candidates or num_columns)
