"""Host-side batches of KG-only pre-training: a subgraph, its category targets and the entity
pairs whose relation is predicted, stacked per device call.

Each step s draws, from (seed, s) alone (so a resumed run draws what the uninterrupted run
drew): the subgraph (`kgjax.data.subgraphs.SubgraphSampler`), then up to P of its forward
edges (relation < R), whose (head, tail) pairs become relation-prediction targets. Every edge
joining a target pair, in either direction and under any relation, is hidden from message
passing (its mask set False): otherwise the message f(E_t, R_r) would hand the answer to h.
Category targets are the roots' labels in the pre-training part (-1 elsewhere: held-out,
unlabelled and padded nodes add nothing to the loss).

The same pairs are the link-prediction targets when that task is on (a `TripleIndex` of the
training triples given): each pair (h, r, t) asks two queries, (h, r, ?) -> t and
(t, r^-1, ?) -> h, whose candidates are the subgraph's nodes. `link_filter` marks, per query,
the other nodes that are known true answers in the training graph (a tail of (h, r) that is
not t): the loss leaves them out, as filtered ranking does, instead of pushing a true triple
down.

Shapes: S steps of a device call, N nodes and E edges of the call's budget, P pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from kgjax.data.subgraphs import Subgraph, SubgraphSampler
from kgjax.data.triples import TripleIndex

_PAIR_STREAM = 0x9A12  # salts the pair draws apart from the subgraph's own stream


class Batch(NamedTuple):
    """One step's inputs (NumPy; a pytree), or S steps' with a leading axis.

    Attributes:
      graph: the subgraph, target pairs' edges hidden (`edge_mask`).
      labels: int32 [N] category of each root in the pre-training part, else -1.
      pair_heads, pair_tails: int32 [P] local node ids of the target pairs.
      pair_relations: int32 [P] their relation, in [0, R).
      pair_mask: bool [P], False on padding (a subgraph with fewer than P forward edges).
      link_filter: bool [2P, N] (link prediction on; else None): True where node n is a known
        true answer of query q other than its target; queries 0..P-1 are (h, r, ?), P..2P-1
        (t, r^-1, ?).
    """

    graph: Subgraph
    labels: np.ndarray
    pair_heads: np.ndarray
    pair_tails: np.ndarray
    pair_relations: np.ndarray
    pair_mask: np.ndarray
    link_filter: np.ndarray | None = None


def known_answers(
    index: TripleIndex, anchors: np.ndarray, relations: np.ndarray, tails: bool
) -> list[np.ndarray]:
    """Global ids of the training answers of each query (anchor, relation): tails of
    (anchor, relation, ?) when `tails`, else heads of (?, relation, anchor)."""
    offsets, relation_of, entity_of = (
        (index.tail_offsets, index.tail_relation, index.tail_entity)
        if tails
        else (index.head_offsets, index.head_relation, index.head_entity)
    )
    answers = []
    for anchor, relation in zip(anchors, relations, strict=True):
        start, stop = offsets[anchor], offsets[anchor + 1]
        answers.append(entity_of[start:stop][relation_of[start:stop] == relation])
    return answers


def link_filter(
    graph: Subgraph,
    heads: np.ndarray,
    relations: np.ndarray,
    tails: np.ndarray,
    num_pairs: int,
    index: TripleIndex,
) -> np.ndarray:
    """bool [2P, N]: the other known answers of each pair's two queries among the nodes.

    Args:
      graph: the step's subgraph.
      heads, tails: int [n <= P] local node ids of the target pairs; relations: int [n].
      num_pairs: P.
      index: the training triples.
    """
    real = np.flatnonzero(graph.node_mask)  # local ids of the real nodes
    order = np.argsort(graph.entity_ids[real])
    sorted_ids = graph.entity_ids[real][order]
    filtered = np.zeros((2 * num_pairs, len(graph.entity_ids)), bool)
    global_heads, global_tails = graph.entity_ids[heads], graph.entity_ids[tails]
    for offset, answers, targets in (
        (0, known_answers(index, global_heads, relations, tails=True), tails),
        (num_pairs, known_answers(index, global_tails, relations, tails=False), heads),
    ):
        if not answers:
            continue
        queries = np.repeat(np.arange(len(answers)), [len(known) for known in answers])
        known = np.concatenate(answers)
        found = np.minimum(np.searchsorted(sorted_ids, known), len(sorted_ids) - 1)
        present = sorted_ids[found] == known
        filtered[offset + queries[present], real[order[found[present]]]] = True
        filtered[offset + np.arange(len(targets)), targets] = False
    return filtered


def with_targets(
    graph: Subgraph,
    labels: np.ndarray,
    num_pairs: int,
    num_relations: int,
    rng: np.random.Generator,
    index: TripleIndex | None = None,
) -> Batch:
    """One step's batch from its subgraph.

    Args:
      graph: one padded subgraph (no leading axis).
      labels: int [V] each entity's category in the pre-training part, -1 otherwise.
      num_pairs: P.
      num_relations: R (edges with relation >= R are inverse edges: never targets).
      rng: the step's pair generator.
      index: the training triples, when link prediction is on (see `link_filter`).
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
    relations = graph.relations[chosen]
    return Batch(
        graph=graph._replace(edge_mask=graph.edge_mask & ~hidden),
        labels=node_labels,
        pair_heads=padded(heads),
        pair_tails=padded(tails),
        pair_relations=padded(relations),
        pair_mask=np.arange(num_pairs) < count,
        link_filter=None
        if index is None
        else link_filter(graph, heads, relations, tails, num_pairs, index),
    )


def chunk(
    sampler: SubgraphSampler,
    steps: Sequence[int],
    labels: np.ndarray,
    num_pairs: int,
    num_relations: int,
    index: TripleIndex | None = None,
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
            index,
        )
        for i, step in enumerate(steps)
    ]
    graph = Subgraph(*(np.stack(field) for field in zip(*(b.graph for b in batches), strict=True)))
    rest = (
        None if field[0] is None else np.stack(field)
        for field in list(zip(*batches, strict=True))[1:]
    )
    return Batch(graph, *rest)
