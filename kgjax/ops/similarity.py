"""Similarities with shape contracts: cosines, and cosines of rows against grouped pools.

Shapes: B rows (batch), P pool entities, G groups (relations), D width.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

_COSINE_DELTA = 1e-8  # the paper's delta, so a zero vector has cosine 0, not NaN
# `grouped_cosine` multiplies against every group up to this many: the matmul costs G times the
# gather's arithmetic, but the gather runs far below matmul speed (on CPU, WN18RR's 11
# relations: a 917 ms RotatE step became 263 ms, bench/results/mmrns_wn18rr*.md) and on a GPU
# is bound by reading [B, P, D].
MATMUL_MAX_GROUPS = 32


def norm(x: jax.Array) -> jax.Array:
    """|x| over the last axis, with a finite gradient at 0."""
    squared = jnp.sum(x * x, axis=-1)
    # sqrt has an infinite derivative at 0; a zero vector's cosine is 0 whatever its norm.
    return jnp.sqrt(jnp.maximum(squared, 1e-30))


def cosine(a: jax.Array, b: jax.Array) -> jax.Array:
    """a . b / (|a| |b| + delta) over the last axis (broadcasting); 0 for zero vectors."""
    return jnp.sum(a * b, axis=-1) / (norm(a) * norm(b) + _COSINE_DELTA)


def row_blocks(fn, rows, chunk_size: int) -> jax.Array:
    """fn over the batch rows in checkpointed blocks of `chunk_size` rows.

    The backward pass recomputes a block's [chunk, P, D] intermediates instead of keeping
    [B, P, D].

    Args:
      fn: one row's leaves -> [P].
      rows: a tuple of [B, ...] arrays.
    """
    batch = rows[0].shape[0]
    return jax.lax.map(jax.checkpoint(fn), rows, batch_size=min(chunk_size, batch))


def grouped_cosine(
    pool: jax.Array, row_group: jax.Array, anchors: jax.Array, chunk_size: int
) -> jax.Array:
    """cosine(pool[row_group[b], n], anchors[b]) for every row b and pool entity n.

    Args:
      pool: float [G, P, D] the pool's representations under each group (relation).
      row_group: int [B] each row's group.
      anchors: float [B, D].
      chunk_size: rows per block of the gathered form (below).

    Returns:
      float [B, P].

    With few groups (`MATMUL_MAX_GROUPS`) the dot products are one matmul against every group,
    [G, P, D] x [B, D], and each row keeps its group's: G times the arithmetic of the rows' own
    products, but no [B, P, D] gather, which XLA runs at a fraction of matmul speed. With many
    groups, blocks of rows gather their group's [P, D] (`row_blocks`).
    """
    num_groups = pool.shape[0]
    if num_groups <= MATMUL_MAX_GROUPS:
        every = jnp.einsum("gnd,bd->gbn", pool, anchors)  # [G, B, P]
        dots = jnp.take_along_axis(every, row_group[None, :, None], axis=0)[0]
    else:
        dots = row_blocks(lambda row: pool[row[0]] @ row[1], (row_group, anchors), chunk_size)
    norms = norm(pool)[row_group] * norm(anchors)[:, None]  # [B, P]
    return dots / (norms + _COSINE_DELTA)
