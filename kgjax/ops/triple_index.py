"""Membership and range queries on the known-true triples, on the device.

The host builds a `kgjax.data.triples.TripleIndex` (CSR by anchor entity, rows sorted by
(relation, other entity)); `DeviceTripleIndex.from_host` uploads it. Lookups are vectorised
binary searches with a static number of steps, so they jit once and never sync with the host.

Shapes: B batch, K candidates, W filter budget (most true answers of one query).
"""

from __future__ import annotations

import math
from typing import Protocol

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct


class HostIndex(Protocol):
    """What `DeviceTripleIndex.from_host` reads: the CSR arrays of a host index, NumPy
    (`kgjax.data.triples.TripleIndex` has them; ops never imports the data room)."""

    tail_offsets: np.ndarray
    tail_relation: np.ndarray
    tail_entity: np.ndarray
    max_tails: int
    head_offsets: np.ndarray
    head_relation: np.ndarray
    head_entity: np.ndarray
    max_heads: int


@struct.dataclass
class CSRSide:
    """One side of the index: for each anchor entity, its sorted (relation, entity) rows."""

    offsets: jax.Array  # [V + 1] int32
    relation: jax.Array  # [n] int32
    entity: jax.Array  # [n] int32
    search_steps: int = struct.field(pytree_node=False)  # ceil(log2(longest anchor run + 1))
    max_answers: int = struct.field(pytree_node=False)  # most rows of one (anchor, relation)

    def lower_bound(self, anchor, relation, entity):
        """First row of `anchor`'s block whose (relation, entity) >= the key (elementwise)."""
        lo = self.offsets[anchor]
        hi = self.offsets[anchor + 1]
        last = max(self.relation.shape[0] - 1, 0)

        def step(_, bounds):
            lo, hi = bounds
            active = lo < hi
            mid = (lo + hi) // 2
            at = jnp.clip(mid, 0, last)
            rel_mid, ent_mid = self.relation[at], self.entity[at]
            before = (rel_mid < relation) | ((rel_mid == relation) & (ent_mid < entity))
            lo = jnp.where(active & before, mid + 1, lo)
            hi = jnp.where(active & ~before, mid, hi)
            return lo, hi

        lo, _ = jax.lax.fori_loop(0, self.search_steps, step, (lo, hi))
        return lo

    def contains(self, anchor, relation, entity):
        """Whether (anchor, relation, entity) is a known row; broadcastable int arrays."""
        anchor, relation, entity = jnp.broadcast_arrays(anchor, relation, entity)
        if self.relation.shape[0] == 0:
            return jnp.zeros(anchor.shape, bool)
        at = self.lower_bound(anchor, relation, entity)
        safe = jnp.clip(at, 0, self.relation.shape[0] - 1)
        return (
            (at < self.offsets[anchor + 1])
            & (self.relation[safe] == relation)
            & (self.entity[safe] == entity)
        )

    def answers(self, anchor, relation, budget: int | None = None):
        """All known answers of (anchor, relation), padded to a static budget.

        Args:
          anchor, relation: int [B].
          budget: W, at least `max_answers` for an exact result (default: `max_answers`).

        Returns:
          (entities int32 [B, W], mask bool [B, W]).
        """
        budget = self.max_answers if budget is None else budget
        start = self.lower_bound(anchor, relation, jnp.full_like(relation, -1))
        stop = self.lower_bound(anchor, relation + 1, jnp.full_like(relation, -1))
        rows = start[:, None] + jnp.arange(max(budget, 1))[None, :]
        mask = rows < stop[:, None]
        entities = self.entity[jnp.clip(rows, 0, max(self.entity.shape[0] - 1, 0))]
        return jnp.where(mask, entities, 0), mask


@struct.dataclass
class DeviceTripleIndex:
    """Both sides of the known-true triples on the device.

    `tails` answers (head, relation) -> tails; `heads` answers (tail, relation) -> heads.
    """

    tails: CSRSide
    heads: CSRSide

    @classmethod
    def from_host(cls, index: HostIndex) -> DeviceTripleIndex:
        def side(offsets, relation, entity, max_answers):
            longest = int(np.diff(offsets).max()) if len(offsets) > 1 else 0
            return CSRSide(
                offsets=jnp.asarray(offsets, jnp.int32),
                relation=jnp.asarray(relation, jnp.int32),
                entity=jnp.asarray(entity, jnp.int32),
                search_steps=max(1, math.ceil(math.log2(longest + 1))),
                max_answers=max_answers,
            )

        return cls(
            tails=side(index.tail_offsets, index.tail_relation, index.tail_entity, index.max_tails),
            heads=side(index.head_offsets, index.head_relation, index.head_entity, index.max_heads),
        )
