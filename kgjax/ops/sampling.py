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
    h, r, t = (positives[:, i : i + 1] for i in range(3))
    is_true = jax.lax.cond(
        mode == HEAD_BATCH,
        lambda: heads.contains(t, r, candidates),
        lambda: tails.contains(h, r, candidates),
    )
    # Stable order: kept candidates first in draw order, then rejected ones.
    order_key = jnp.where(is_true, num_candidates, 0) + jnp.arange(num_candidates)[None, :]
    _, keep = jax.lax.top_k(-order_key, num_negatives)
    negatives = jnp.take_along_axis(candidates, keep, axis=1)
    false_rate = jnp.mean(jnp.take_along_axis(is_true, keep, axis=1).astype(jnp.float32))
    return negatives, false_rate
