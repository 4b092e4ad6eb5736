"""Negative sampling on the device.

Shapes: B batch, K negatives per positive, C candidates drawn before filtering.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from kgjax.ops.triple_index import CSRSide

HEAD_BATCH = 0  # corrupt the head: negatives are (h', r, t)
TAIL_BATCH = 1  # corrupt the tail: negatives are (h, r, t')


def known_corruptions(
    positives: jax.Array, mode: jax.Array, candidates: jax.Array, tails: CSRSide, heads: CSRSide
) -> jax.Array:
    """Whether corrupting each positive's side (`mode`) with a candidate gives a known triple.

    Args:
      positives: int [B, 3] (head, relation, tail).
      mode: scalar int, HEAD_BATCH ((c, r, t) is looked up) or TAIL_BATCH ((h, r, c)).
      candidates: int [B, C], or any shape broadcasting against [B, 1] (e.g. a shared [1, C]).
      tails, heads: the two sides of the triple index.

    Returns:
      bool [B, C].
    """
    h, r, t = (positives[:, i : i + 1] for i in range(3))
    return jax.lax.cond(
        mode == HEAD_BATCH,
        lambda: heads.contains(t, r, candidates),
        lambda: tails.contains(h, r, candidates),
    )


def uniform_negatives(key: jax.Array, batch_size: int, num_negatives: int, num_entities: int):
    """Entity ids drawn uniformly with replacement: int32 [B, K]."""
    return jax.random.randint(key, (batch_size, num_negatives), 0, num_entities, jnp.int32)


def filtered_uniform_negatives(
    key: jax.Array,
    positives: jax.Array,
    mode: jax.Array,
    num_negatives: int,
    num_entities: int,
    tails: CSRSide,
    heads: CSRSide,
    oversample: float = 2.0,
):
    """Uniform negatives that avoid known true triples, as the RotatE reference draws them.

    The reference rejects known positives and redraws until it has K; here C = ceil(K *
    oversample) candidates are drawn at once and the first K that are not known positives
    are kept, so the shape is static. If fewer than K survive (a query with most entities
    true), the remaining slots keep rejected candidates and are reported in `false_rate`.

    Args:
      key: PRNG key.
      positives: int [B, 3] (head, relation, tail).
      mode: scalar int, HEAD_BATCH or TAIL_BATCH.
      num_negatives: K.
      num_entities: V.
      tails, heads: the two sides of the training triple index.
      oversample: C / K.

    Returns:
      (negatives int32 [B, K], false_rate float32 scalar: fraction of the K that are known
      positives).
    """
    batch_size = positives.shape[0]
    num_candidates = max(num_negatives, math.ceil(num_negatives * oversample))
    candidates = uniform_negatives(key, batch_size, num_candidates, num_entities)
    is_true = known_corruptions(positives, mode, candidates, tails, heads)
    # Stable order: kept candidates first in draw order, then rejected ones.
    order_key = jnp.where(is_true, num_candidates, 0) + jnp.arange(num_candidates)[None, :]
    _, keep = jax.lax.top_k(-order_key, num_negatives)
    negatives = jnp.take_along_axis(candidates, keep, axis=1)
    false_rate = jnp.mean(jnp.take_along_axis(is_true, keep, axis=1).astype(jnp.float32))
    return negatives, false_rate


def shared_negatives(
    key: jax.Array,
    positives: jax.Array,
    mode: jax.Array,
    num_negatives: int,
    num_entities: int,
    chunk_size: int,
    tails: CSRSide | None = None,
    heads: CSRSide | None = None,
):
    """K uniform negatives per chunk of `chunk_size` positives (DGL-KE's chunked sampling).

    Every positive of a chunk is corrupted with the same K entities, so a step reads
    B / chunk_size * K rows instead of B * K. A shared negative can be a known true triple
    for some positives of its chunk and not for others, so instead of redrawing, those
    (positive, negative) pairs are reported in `known` for the loss to leave out.

    Args:
      key: PRNG key.
      positives: int [B, 3] (head, relation, tail); B a multiple of `chunk_size`.
      mode: scalar int, HEAD_BATCH or TAIL_BATCH.
      num_negatives: K.
      num_entities: V.
      chunk_size: positives per chunk.
      tails, heads: the training triple index; None: nothing is known (`known` all False).

    Returns:
      (negatives int32 [B / chunk_size, K], known bool [B, K]: negative k of positive b
      makes a known training triple).
    """
    batch_size = positives.shape[0]
    if batch_size % chunk_size:
        raise ValueError(f"batch size {batch_size} is not a multiple of chunk size {chunk_size}")
    negatives = uniform_negatives(key, batch_size // chunk_size, num_negatives, num_entities)
    if tails is None or heads is None:
        return negatives, jnp.zeros((batch_size, num_negatives), bool)
    per_positive = jnp.repeat(negatives, chunk_size, axis=0)
    return negatives, known_corruptions(positives, mode, per_positive, tails, heads)
