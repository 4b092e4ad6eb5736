"""Segment reductions over the edges of a padded graph, with a static number of segments.

Message passing in the style of jraph: each edge e carries a value data[e] to the segment
segment_ids[e] (its receiving node), and a reduction combines the values of each segment.
Every function takes `num_segments` as a Python int, so the output shape is static and a jitted
caller compiles once per graph budget; and an optional `mask` (False on padded edges), so that
padding contributes nothing whatever ids or values it holds.

Written on `jax.ops.segment_sum` / `jax.ops.segment_max` rather than taken from jraph, which
is archived and whose `segment_max` no longer runs on current JAX.

Shapes: E edges (segment members), N segments (nodes), [...] trailing feature axes (heads H,
width D).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# Scatters drop ids outside [0, num_segments): masked edges are sent to id `num_segments`, so
# they leave no trace in any segment, nor (the gather that transposes the scatter fills with 0)
# in any gradient. Spelled out rather than left to jax.ops' default.
_DROP = jax.lax.GatherScatterMode.FILL_OR_DROP


def _kept_ids(segment_ids: jax.Array, num_segments: int, mask: jax.Array | None) -> jax.Array:
    """segment_ids, with masked members moved to the dropped id `num_segments`."""
    if mask is None:
        return segment_ids
    return jnp.where(mask, segment_ids, num_segments)


def _expand(values: jax.Array, like: jax.Array) -> jax.Array:
    """[E] or [N] values with trailing unit axes, to broadcast against `like` [E or N, ...]."""
    return values.reshape(values.shape + (1,) * (like.ndim - values.ndim))


def segment_sum(
    data: jax.Array, segment_ids: jax.Array, num_segments: int, mask: jax.Array | None = None
) -> jax.Array:
    """Sums the members of each segment.

    Args:
      data: [E, ...] member values.
      segment_ids: int [E] each member's segment; ids outside [0, N) are dropped.
      num_segments: N, a Python int.
      mask: optional bool [E], False for members to leave out (padding).

    Returns:
      [N, ...]; 0 for a segment without (unmasked) members.
    """
    ids = _kept_ids(segment_ids, num_segments, mask)
    return jax.ops.segment_sum(data, ids, num_segments, mode=_DROP)


def segment_count(
    segment_ids: jax.Array, num_segments: int, mask: jax.Array | None = None
) -> jax.Array:
    """The number of (unmasked) members of each segment: a node's in-degree.

    Args:
      segment_ids: int [E]; ids outside [0, N) are dropped.
      num_segments: N, a Python int.
      mask: optional bool [E], False for members to leave out.

    Returns:
      int32 [N].
    """
    ones = jnp.ones(segment_ids.shape, jnp.int32)
    return segment_sum(ones, segment_ids, num_segments, mask)


def segment_mean(
    data: jax.Array, segment_ids: jax.Array, num_segments: int, mask: jax.Array | None = None
) -> jax.Array:
    """Averages the members of each segment (GCN-style mean aggregation).

    Args:
      data: float [E, ...] member values.
      segment_ids: int [E]; ids outside [0, N) are dropped.
      num_segments: N, a Python int.
      mask: optional bool [E], False for members to leave out.

    Returns:
      [N, ...]; 0 for a segment without members (never 0 / 0).
    """
    sums = segment_sum(data, segment_ids, num_segments, mask)
    counts = segment_count(segment_ids, num_segments, mask)
    return sums / _expand(jnp.maximum(counts, 1), sums).astype(sums.dtype)


def segment_max(
    data: jax.Array,
    segment_ids: jax.Array,
    num_segments: int,
    mask: jax.Array | None = None,
    fill_value: float = 0.0,
) -> jax.Array:
    """The largest member of each segment.

    Args:
      data: [E, ...] member values.
      segment_ids: int [E]; ids outside [0, N) are dropped.
      num_segments: N, a Python int.
      mask: optional bool [E], False for members to leave out.
      fill_value: the value of a segment without members.

    Returns:
      [N, ...]. A member's gradient is the segment's, split evenly among tied maxima
      (`jax.ops.segment_max`'s rule); an empty segment passes no gradient on.
    """
    maxima = jax.ops.segment_max(data, _kept_ids(segment_ids, num_segments, mask), num_segments)
    # jax.ops fills an empty segment with the identity of max (-inf, or the integer minimum),
    # which would leak into anything computed from it. Emptiness is read from the counts, not
    # from the -inf, so that a segment whose members are all -inf keeps its true maximum.
    empty = _expand(segment_count(segment_ids, num_segments, mask) == 0, maxima)
    return jnp.where(empty, jnp.asarray(fill_value, maxima.dtype), maxima)


def segment_softmax(
    logits: jax.Array, segment_ids: jax.Array, num_segments: int, mask: jax.Array | None = None
) -> jax.Array:
    """Softmax of the logits within each segment: attention weights over a node's in-edges.

    weights[e] = exp(logits[e] - max_s) / sum_{e' in s} exp(logits[e'] - max_s), s the segment
    of e and max_s its largest logit, so that no exponent exceeds 0 and the denominator is at
    least 1 (the maximum's own term).

    Args:
      logits: float [E] or [E, H] (one softmax per head), finite on unmasked members; masked
        members may hold anything, inf and NaN included.
      segment_ids: int [E]; members with ids outside [0, N) are dropped (weight 0).
      num_segments: N, a Python int.
      mask: optional bool [E], False for members to leave out (padding).

    Returns:
      float, the shape of `logits`: each non-empty segment's weights sum to 1; masked members
      weigh exactly 0; nothing is NaN, and neither is any gradient, empty segments and
      all-masked inputs included.
    """
    kept = (segment_ids >= 0) & (segment_ids < num_segments)
    if mask is not None:
        kept &= mask
    ids = _kept_ids(segment_ids, num_segments, kept)
    # Each member's row of a per-segment result; the left-out members read an arbitrary row,
    # whose value they discard.
    rows = jnp.minimum(ids, num_segments - 1)
    # The shift cancels in the softmax, so its exact gradient is 0: stopping it is exact and
    # skips scatter-max's backward pass (a gather and a count of tied maxima). The scatter
    # drops the left-out members, inf and NaN with them. An empty segment's -inf is no harm
    # here (no kept member reads it), so `segment_max`'s fill and its count are not needed.
    maxima = jax.lax.stop_gradient(jax.ops.segment_max(logits, ids, num_segments, mode=_DROP))
    # Left-out members take exp(-inf) = 0 through a select, never a product with 0: their
    # logits (inf, NaN) reach neither a value nor, as 0 * inf, a gradient.
    kept = _expand(kept, logits)
    exps = jnp.exp(jnp.where(kept, logits - maxima[rows], -jnp.inf))
    sums = segment_sum(exps, ids, num_segments)
    # A kept member's segment sums to at least 1; a left-out member's may be empty (0), and
    # its 0 / 0 would poison the gradient even though the forward value is discarded.
    return exps / jnp.where(kept, sums[rows], 1.0)
