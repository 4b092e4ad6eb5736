"""Host-side batches of KG-only pre-training: a subgraph, its category targets and the entity
pairs whose relation is predicted, stacked per device call.

Each step s draws, from (seed, s) alone (so a resumed run draws what the uninterrupted run
drew): the subgraph (`kgjax.data.subgraphs.SubgraphSampler`), then up to P of its forward
edges (relation < R), whose (head, tail) pairs become relation-prediction targets. Every edge
joining a target pair, in either direction and under any relation, is hidden from message
passing (its mask set False): otherwise the message f(E_t, R_r) would hand the answer to h.
Category targets are the roots' labels in the pre-training part (-1 elsewhere: held-out,
unlabelled and padded nodes add nothing to the loss).

Shapes: S steps of a device call, N nodes and E edges of the call's budget, P pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from kgjax.data.subgraphs import Subgraph, SubgraphSampler

_PAIR_STREAM = 0x9A12  # salts the pair draws apart from the subgraph's own stream


class Batch(NamedTuple):
    """One step's inputs (NumPy; a pytree), or S steps' with a leading axis.

    Attributes:
      graph: the subgraph, target pairs' edges hidden (`edge_mask`).
      labels: int32 [N] category of each root in the pre-training part, else -1.
      pair_heads, pair_tails: int32 [P] local node ids of the target pairs.
      pair_relations: int32 [P] their relation, in [0, R).
      pair_mask: bool [P], False on padding (a subgraph with fewer than P forward edges).
    """

    graph: Subgraph
    labels: np.ndarray
    pair_heads: np.ndarray
    pair_tails: np.ndarray
    pair_relations: np.ndarray
    pair_mask: np.ndarray


def with_targets(
    graph: Subgraph,
    labels: np.ndarray,
    num_pairs: int,
    num_relations: int,
    rng: np.random.Generator,
) -> Batch:
    """One step's batch from its subgraph.

    Args:
      graph: one padded subgraph (no leading axis).
      labels: int [V] each entity's category in the pre-training part, -1 otherwise.
      num_pairs: P.
      num_relations: R (edges with relation >= R are inverse edges: never targets).
      rng: the step's pair generator.
    """
    forward = np.flatnonzero(graph.edge_mask & (graph.relations < num_relations))
    chosen = rng.choice(forward, min(num_pairs, len(forward)), replace=False)
    heads, tails = graph.receivers[chosen], graph.senders[chosen]  # (h, r, t) is t -> h
    # Hide every edge between a chosen pair, both ways: pairs keyed as min * N + max.
    size = len(graph.entity_ids)
    keys = np.minimum(graph.senders, graph.receivers).astype(np.int64) * size + np.maximum(
        graph.senders, graph.receivers
    )
    hidden = np.isin(keys, keys[chosen]) & graph.edge_mask
    count = len(chosen)

    def padded(values):
        out = np.zeros(num_pairs, np.int32)
        out[:count] = values
        return out

    node_labels = np.where(graph.root_mask, labels[graph.entity_ids], -1).astype(np.int32)
    return Batch(
        graph=graph._replace(edge_mask=graph.edge_mask & ~hidden),
        labels=node_labels,
        pair_heads=padded(heads),
        pair_tails=padded(tails),
        pair_relations=padded(graph.relations[chosen]),
        pair_mask=np.arange(num_pairs) < count,
    )


def chunk(
    sampler: SubgraphSampler,
    steps: Sequence[int],
    labels: np.ndarray,
    num_pairs: int,
    num_relations: int,
) -> Batch:
    """The batches of `steps`, stacked (leading axis S) and padded to one budget."""
    graphs = sampler.sample_many(steps)
    batches = [
        with_targets(
            Subgraph(*(field[i] for field in graphs)),
            labels,
            num_pairs,
            num_relations,
            np.random.default_rng([sampler.seed, step, _PAIR_STREAM]),
        )
        for i, step in enumerate(steps)
    ]
    graph = Subgraph(*(np.stack(field) for field in zip(*(b.graph for b in batches), strict=True)))
    rest = (np.stack(field) for field in list(zip(*batches, strict=True))[1:])
    return Batch(graph, *rest)
