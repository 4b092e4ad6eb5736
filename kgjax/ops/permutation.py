"""Pseudo-random permutations evaluated at a few positions, in O(positions) per call.

Shapes: n the permutation's size.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# Rounds of the Feistel network behind `shuffled_positions` (4 already make a strong
# pseudo-random permutation; the cost is per batch element, not per triple).
_FEISTEL_ROUNDS = 6


def _mix32(x: jax.Array) -> jax.Array:
    """A 32-bit integer hash (lowbias32): the Feistel round function."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def shuffled_positions(key: jax.Array, positions: jax.Array, n: int) -> jax.Array:
    """The entries at `positions` of a pseudo-random permutation of [0, n) chosen by `key`.

    A keyed Feistel network permutes [0, 4^k) with 4^k >= n, and values >= n are walked
    along their cycle until they land below n (cycle walking), which makes it a permutation
    of [0, n). It costs O(len(positions)) per call, where `jax.random.permutation` sorts all
    n: a batch of a 300M-triple graph costs the same as a batch of UMLS.

    Args:
      key: PRNG key choosing the permutation.
      positions: int [...] in [0, n).
      n: the permutation's size, below 2^32.

    Returns:
      int32 [...]: distinct values in [0, n) for distinct positions.
    """
    bits = max(2, (n - 1).bit_length())
    half = (bits + 1) // 2
    mask = jnp.uint32((1 << half) - 1)
    round_keys = jax.random.bits(key, (_FEISTEL_ROUNDS,), jnp.uint32)

    def encrypt(x):
        left, right = x >> half, x & mask
        for i in range(_FEISTEL_ROUNDS):
            left, right = right, left ^ (_mix32(right ^ round_keys[i]) & mask)
        return (left << half) | right

    limit = jnp.uint32(n)
    walk = lambda x: jnp.where(x >= limit, encrypt(x), x)
    x = encrypt(positions.astype(jnp.uint32))
    x = jax.lax.while_loop(lambda x: jnp.any(x >= limit), walk, x)
    return x.astype(jnp.int32)
