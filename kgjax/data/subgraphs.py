"""JAKET's mini-batches: subgraphs sampled around random-walk roots, padded to static budgets.

Yu, Zhu, Yang, Zeng, "JAKET", AAAI 2022. The knowledge module follows GraphSAGE's mini-batch
setting (Hamilton, Ying, Leskovec, NeurIPS 2017): given a set of input entities, it samples
their multi-hop neighbourhood and updates only those entities; each pre-training step first
samples a batch of root entities and performs random-walk sampling from each, and the sampled
entities are fed into the KM (paraphrased). The paper gives no more detail; this module draws,
per step:

1. Roots from walks: walk starts drawn uniformly, with replacement, from the start entities
   (by default every entity of the training triples: the paper's root entities); each walk
   takes `walk_length` steps, a step moving from v to the sender of one of v's in-edges drawn
   uniformly (so to a neighbour in proportion to the edges joining them), restart-free: a walk
   that reaches a node without in-edges ends there. Walks run in rounds of `num_roots`; the
   visited entities, walk by walk and step by step, are deduplicated keeping first visits,
   until `num_roots` distinct entities: these are the roots of the subgraph, the entities
   whose KM outputs the losses read (the paper's sampled entities). Consecutive entities of a
   walk are neighbours, so the roots hold related pairs for relation prediction;
   `walk_length=0` gives distinct uniform roots.
2. Neighbourhoods (GraphSAGE, one fan-out per hop): hop k (k = 1..K, K = len(fanouts)) takes,
   for every node first reached at hop k - 1 (the roots at hop 1), all of its in-edges if it
   has at most `fanouts[k-1]`, else `fanouts[k-1]` of them drawn uniformly without
   replacement. The senders not reached before are the nodes of hop k. Every in-edge is
   sampled at most once, so the subgraph repeats no edge; nodes of the last hop receive none.
   With K layers of message passing over it, the roots' outputs depend on exactly the sampled
   K-hop neighbourhood; all layers share one graph, the union of the hops (GraphSAGE's
   minibatch algorithm with each node's neighbours drawn once, not once per layer).
3. Relabelling and padding: local ids number the roots first (0..num_roots-1, in walk order),
   then each hop's new nodes in order of first appearance; the arrays are padded to the
   smallest of a few static budgets (max_nodes, max_edges) that fits, so that each budget
   compiles once. A draw that fits no budget is an error naming its sizes (`BudgetError`);
   `SubgraphSampler.propose_budgets` derives budgets from sampled sizes and always adds the
   worst case, which every draw fits.

Edges follow `kgjax.models.graph.gat`: edge (sender u, receiver v, relation r) carries
f(E_u, R_r) to v, and a training triple (h, r, t) is the edge t -> h (h hears its tail). With
`inverse_edges` the adjacency also holds h -> t under r + R (CompGCN's inverse relations, the
relation table then has 2R rows): the model must then not add them again (`with_inverse_edges`).

Randomness: each step's draw comes from `np.random.default_rng([seed, step, _STREAM])` alone,
so a run resumed at step s draws what the uninterrupted run drew at s; no global state.

Host side only (NumPy). Shapes: V entities, R relations, N nodes of a subgraph (a budget's
max_nodes), E edges (its max_edges), A edges of the adjacency (training triples, twice that
with inverse edges), S steps stacked by `SubgraphSampler.sample_many`.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

# Salts this module's (seed, step) streams, so another host sampler seeded from the same
# (seed, step) (say, text episodes) draws numbers independent of the subgraphs'.
_STREAM = 0x5B6A
# Walk rounds before concluding that the starts reach fewer than num_roots entities.
_MAX_WALK_ROUNDS = 64


class BudgetError(ValueError):
    """A graph larger than every static budget (its sizes and the budgets named)."""


class Budget(NamedTuple):
    """A static padded size: a subgraph padded to it has [max_nodes] and [max_edges] arrays."""

    max_nodes: int
    max_edges: int


class Subgraph(NamedTuple):
    """A graph padded to a budget (N, E): NumPy arrays, a pytree as it stands.

    Local node i is entity `entity_ids[i]`; padded nodes and edges have masks False and hold id
    0 (any id is allowed there: the GAT ignores masked edges, and losses must mask padded nodes,
    which still get output rows). Roots are the first nodes: `root_mask` is True on a prefix.
    `sample_many` stacks S of them: every field then gains a leading [S] axis.

    Attributes:
      entity_ids: int32 [N], global entity ids of the local nodes.
      node_mask: bool [N], True on real nodes.
      root_mask: bool [N], True on the roots (whose outputs the losses read).
      senders: int32 [E], local ids.
      receivers: int32 [E], local ids.
      relations: int32 [E], in [0, R), or [0, 2R) with inverse edges.
      edge_mask: bool [E], True on real edges.
    """

    entity_ids: np.ndarray
    node_mask: np.ndarray
    root_mask: np.ndarray
    senders: np.ndarray
    receivers: np.ndarray
    relations: np.ndarray
    edge_mask: np.ndarray

    @property
    def budget(self) -> Budget:
        return Budget(self.entity_ids.shape[-1], self.senders.shape[-1])


@dataclasses.dataclass(frozen=True)
class Adjacency:
    """In-edges of every entity (CSR), built once from the training triples.

    The in-edges of entity v are rows `offsets[v]:offsets[v + 1]` of `senders` and `relations`,
    sorted by (relation, sender); duplicate edges are dropped (a duplicate would take twice the
    attention).

    Attributes:
      offsets: int64 [V + 1].
      senders: int32 [A], the u of each edge u -> v.
      relations: int32 [A], in [0, num_relation_ids).
      num_relations: R, the relations of the triples.
      inverse_edges: whether each triple (h, r, t) also gave the edge h -> t under r + R.
      entities: int32 [<= V], sorted: the entities of some triple (the default walk starts).
    """

    offsets: np.ndarray
    senders: np.ndarray
    relations: np.ndarray
    num_relations: int
    inverse_edges: bool
    entities: np.ndarray

    @classmethod
    def build(
        cls,
        triples: np.ndarray,
        num_entities: int,
        num_relations: int,
        inverse_edges: bool = False,
    ) -> Adjacency:
        """The message-passing graph of `triples`: (h, r, t) is the edge t -> h.

        Args:
          triples: int [n, 3] (head, relation, tail), e.g. `KGDataset.train`.
          num_entities: V.
          num_relations: R.
          inverse_edges: also add h -> t under relation r + R for each triple.

        Returns:
          The adjacency.

        Raises:
          ValueError: an entity id outside [0, V) or a relation id outside [0, R).
        """
        triples = np.asarray(triples, np.int64).reshape(-1, 3)
        heads, rels, tails = triples.T
        if len(triples) and (
            min(heads.min(), tails.min()) < 0 or max(heads.max(), tails.max()) >= num_entities
        ):
            raise ValueError(f"triples hold entity ids outside [0, {num_entities})")
        if len(triples) and (rels.min() < 0 or rels.max() >= num_relations):
            raise ValueError(f"triples hold relation ids outside [0, {num_relations})")
        senders, receivers = tails, heads
        if inverse_edges:
            senders = np.concatenate([tails, heads])
            receivers = np.concatenate([heads, tails])
            rels = np.concatenate([rels, rels + num_relations])
        edges = np.unique(np.stack([receivers, rels, senders], axis=1), axis=0)  # CSR order
        receivers, rels, senders = edges.T
        offsets = np.zeros(num_entities + 1, np.int64)
        np.add.at(offsets, receivers + 1, 1)
        return cls(
            offsets=np.cumsum(offsets),
            senders=senders.astype(np.int32),
            relations=rels.astype(np.int32),
            num_relations=num_relations,
            inverse_edges=inverse_edges,
            entities=np.unique(triples[:, [0, 2]]).astype(np.int32),
        )

    @property
    def num_entities(self) -> int:
        return len(self.offsets) - 1

    @property
    def num_edges(self) -> int:
        return len(self.senders)

    @property
    def num_relation_ids(self) -> int:
        """Rows of the relation table the edges index: R, or 2R with inverse edges."""
        return 2 * self.num_relations if self.inverse_edges else self.num_relations

    @property
    def in_degrees(self) -> np.ndarray:
        """int64 [V]: in-edges per entity."""
        return np.diff(self.offsets)


def full_graph(adjacency: Adjacency, budgets: Sequence[tuple[int, int]] = ()) -> Subgraph:
    """The whole training graph in the mini-batch structure, for full-graph propagation.

    Every entity is a node and a root, with local id = global id (so the outputs index like the
    entity table), isolated entities included; the edges are all of the adjacency's, in its CSR
    order (grouped by receiver).

    Args:
      adjacency: the graph.
      budgets: (max_nodes, max_edges) pairs; the smallest that fits is used. Default: none,
        the exact sizes (V, A).

    Returns:
      The graph: N = V and E = A, or the chosen budget.

    Raises:
      BudgetError: no budget fits (V, A).
      ValueError: budgets that are not a chain (see `SubgraphSampler.budgets`).
    """
    num_nodes = adjacency.num_entities
    entity_ids = np.arange(num_nodes, dtype=np.int32)
    receivers = np.repeat(entity_ids, adjacency.in_degrees)
    budget = (
        _smallest_fitting(_chain(budgets), num_nodes, adjacency.num_edges, "the full graph")
        if budgets
        else Budget(num_nodes, adjacency.num_edges)
    )
    return _pad(entity_ids, num_nodes, adjacency.senders, receivers, adjacency.relations, budget)


@dataclasses.dataclass(frozen=True)
class WholeGraph:
    """Full-graph propagation for graphs that fit: the whole training graph at every step.

    The mini-batch interface of `SubgraphSampler` (`__call__`, `sample_many`, `seed`), so a
    trainer takes either: every entity is a node and a root (`full_graph`), one static shape.

    Attributes:
      adjacency: the training graph.
      seed: the run's seed (the trainer's per-step draws, target pairs say, use it).
    """

    adjacency: Adjacency
    seed: int = 0

    @functools.cached_property
    def graph(self) -> Subgraph:
        return full_graph(self.adjacency)

    @property
    def budgets(self) -> tuple[Budget, ...]:
        return (Budget(len(self.graph.entity_ids), len(self.graph.senders)),)

    def __call__(self, step: int) -> Subgraph:
        del step
        return self.graph

    def sample_many(self, steps: Sequence[int]) -> Subgraph:
        """The graph stacked len(steps) times: every field [S, ...]."""
        return Subgraph(*(np.stack([field] * len(steps)) for field in self.graph))


@dataclasses.dataclass(frozen=True)
class SubgraphSampler:
    """Random-walk roots and their fan-out neighbourhoods, padded (the module docstring's 1-3).

    Built from a config section: `SubgraphSampler(adjacency, seed=config.seed, **section)`.
    Calling it with a step returns that step's `Subgraph`, a function of (seed, step) only.

    Attributes:
      adjacency: the training graph.
      num_roots: distinct roots per subgraph.
      fanouts: the most in-edges sampled per node at hops 1, 2, ... (one per message-passing
        layer that the roots' outputs should see).
      walk_length: steps per walk (0: the walk starts are the roots).
      budgets: (max_nodes, max_edges) pairs forming a chain (each at least as large as the
        previous in both sizes, in any order given); a draw is padded to the smallest that fits.
        Empty: a call raises `BudgetError`; `propose_budgets` works.
      seed: the run's seed.
      starts: int [any], the entities walks may start from (say, the entities with a category
        label); default `adjacency.entities`.
    """

    adjacency: Adjacency
    num_roots: int
    fanouts: tuple[int, ...]
    walk_length: int = 2
    budgets: tuple[Budget, ...] = ()
    seed: int = 0
    starts: np.ndarray | None = None

    def __post_init__(self):
        fanouts = tuple(int(f) for f in self.fanouts)
        if self.num_roots < 1 or self.walk_length < 0 or any(f < 1 for f in fanouts):
            raise ValueError(
                f"need num_roots >= 1, walk_length >= 0 and fan-outs >= 1, got num_roots="
                f"{self.num_roots}, walk_length={self.walk_length}, fanouts={fanouts}"
            )
        starts = self.adjacency.entities if self.starts is None else np.unique(self.starts)
        if len(starts) and (starts[0] < 0 or starts[-1] >= self.adjacency.num_entities):
            raise ValueError(f"start entities outside [0, {self.adjacency.num_entities})")
        if not len(starts):
            raise ValueError("no start entity: the graph has no triple, or `starts` is empty")
        # Frozen: the normalised values are set once, here.
        object.__setattr__(self, "fanouts", fanouts)
        object.__setattr__(self, "budgets", _chain(self.budgets))
        object.__setattr__(self, "starts", starts.astype(np.int32))

    def __call__(self, step: int) -> Subgraph:
        """The subgraph of `step`, padded to the smallest budget that fits it.

        Raises:
          BudgetError: it fits no budget (the sizes and budgets are named).
          ValueError: the walks reach fewer than num_roots distinct entities.
        """
        draw = self._draw(step)
        budget = _smallest_fitting(self.budgets, draw.num_nodes, draw.num_edges, f"step {step}")
        return _pad(*draw, budget)

    def around(self, roots: np.ndarray, step: int) -> Subgraph:
        """The fan-out neighbourhood of given roots (say, the entities a text mentions), padded.

        The same hops as a walk-rooted draw, from `roots` instead of walks; the draws come from
        (seed, step) as for `__call__`, so the trainer's text stream and its resume agree.

        Args:
          roots: int [m <= num_roots], distinct entity ids; they are the first m nodes.
          step: the step whose stream draws the neighbours.

        Raises:
          BudgetError: it fits no budget.
          ValueError: too many, repeated or out-of-range roots.
        """
        draw = self._draw_around(roots, step)
        budget = _smallest_fitting(self.budgets, draw.num_nodes, draw.num_edges, f"step {step}")
        return _pad(*draw, budget)

    def _draw_around(self, roots: np.ndarray, step: int) -> _Draw:
        roots = np.asarray(roots, np.int64).ravel()
        if len(roots) > self.num_roots or len(np.unique(roots)) != len(roots):
            raise ValueError(f"need at most {self.num_roots} distinct roots, got {roots}")
        if len(roots) and (roots.min() < 0 or roots.max() >= self.adjacency.num_entities):
            raise ValueError(f"roots outside [0, {self.adjacency.num_entities})")
        return self._draw(step, roots.astype(np.int32))

    def around_many(self, roots: Sequence[np.ndarray], steps: Sequence[int]) -> Subgraph:
        """`around(roots[i], steps[i])` for each i, stacked (every field [S, ...]) and padded
        to the smallest budget fitting all of them, as `sample_many`.

        Raises:
          BudgetError, ValueError: as `around`.
        """
        draws = [self._draw_around(r, step) for r, step in zip(roots, steps, strict=True)]
        return self._stacked(draws, steps)

    def sample_many(self, steps: Sequence[int]) -> Subgraph:
        """The subgraphs of `steps`, stacked: every field [S, ...], for a `lax.scan` over steps.

        All S share the smallest budget fitting every one of them, so a step's arrays may have
        more padding than `self(step)`'s; the real nodes and edges are the same.

        Raises:
          BudgetError, ValueError: as `__call__`.
        """
        draws = [self._draw(step) for step in steps]
        return self._stacked(draws, steps)

    def _stacked(self, draws: Sequence[_Draw], steps: Sequence[int]) -> Subgraph:
        """The draws padded to the smallest budget fitting all of them, stacked [S, ...]."""
        budget = _smallest_fitting(
            self.budgets,
            max(d.num_nodes for d in draws),
            max(d.num_edges for d in draws),
            f"steps {steps[0]}..{steps[-1]}",
        )
        padded = [_pad(*d, budget) for d in draws]
        return Subgraph(*(np.stack(field) for field in zip(*padded, strict=True)))

    def worst_case(self) -> Budget:
        """The largest possible draw: every budget chain should end at or above it.

        Hop k reaches at most num_roots * f_1 * ... * f_(k-1) nodes that each take at most f_k
        edges; each non-root node is the sender of a sampled edge. Both are capped by the
        graph's size.
        """
        edges, frontier = 0, self.num_roots
        for fanout in self.fanouts:
            edges += frontier * fanout
            frontier *= fanout
        edges = min(edges, self.adjacency.num_edges)
        return Budget(min(self.num_roots + edges, self.adjacency.num_entities), edges)

    def propose_budgets(
        self,
        num_draws: int = 256,
        quantiles: Sequence[float] = (0.99,),
        multiple: int = 64,
        roots_of: Callable[[int], np.ndarray] | None = None,
    ) -> tuple[Budget, ...]:
        """Budgets from the sizes of sampled subgraphs, ending with the worst case.

        Draws the subgraphs of steps 0..num_draws-1; for each quantile takes the node and edge
        counts at that quantile, rounded up to a multiple of `multiple` (shapes XLA tiles
        well). The worst case (`worst_case`, rounded the same way) closes the chain, so no
        step can ever fail; it costs a compilation only if a step needs it.

        Args:
          num_draws: subgraphs drawn.
          quantiles: in (0, 1], one budget each (duplicates after rounding merged).
          multiple: rounding step of both sizes.
          roots_of: step -> the roots of that step's draw (`around`); default random walks.

        Returns:
          A chain of budgets, smallest first, for `dataclasses.replace(sampler, budgets=...)`.
        """
        draws = [
            self._draw(step, None if roots_of is None else roots_of(step))
            for step in range(num_draws)
        ]
        nodes = np.array([d.num_nodes for d in draws])
        edges = np.array([d.num_edges for d in draws])

        def rounded(n: float) -> int:
            return max(multiple, multiple * math.ceil(n / multiple))

        worst = self.worst_case()
        budgets = {
            Budget(
                min(rounded(np.quantile(nodes, q, method="higher")), rounded(worst.max_nodes)),
                min(rounded(np.quantile(edges, q, method="higher")), rounded(worst.max_edges)),
            )
            for q in quantiles
        }
        budgets.add(Budget(rounded(worst.max_nodes), rounded(worst.max_edges)))
        return _chain(budgets)

    def _draw(self, step: int, roots: np.ndarray | None = None) -> _Draw:
        """The unpadded subgraph of `step`, around `roots` (default: random walks' roots)."""
        rng = np.random.default_rng([self.seed, step, _STREAM])
        if roots is None:
            roots = self._walk_roots(rng)
        adjacency = self.adjacency
        nodes, visited, frontier = [roots], np.sort(roots), roots
        senders, receivers, relations = [], [], []
        for fanout in self.fanouts:
            edges, receiver = _sample_in_edges(adjacency, frontier, fanout, rng)
            sender = adjacency.senders[edges]
            senders.append(sender)
            receivers.append(receiver)
            relations.append(adjacency.relations[edges])
            # The hop's new nodes, in order of first appearance among its senders.
            distinct, first = np.unique(sender, return_index=True)
            new = ~np.isin(distinct, visited, assume_unique=True)
            frontier = distinct[new][np.argsort(first[new])]
            nodes.append(frontier)
            visited = np.union1d(visited, frontier)
        entity_ids = np.concatenate(nodes).astype(np.int32)
        # Global -> local through a sort of the (distinct) node ids.
        order = np.argsort(entity_ids, kind="stable")
        sorted_ids = entity_ids[order]

        def local(ids: np.ndarray) -> np.ndarray:
            return order[np.searchsorted(sorted_ids, ids)].astype(np.int32)

        return _Draw(
            entity_ids,
            len(roots),
            local(np.concatenate(senders)),
            local(np.concatenate(receivers)),
            np.concatenate(relations).astype(np.int32),
        )

    def _walk_roots(self, rng: np.random.Generator) -> np.ndarray:
        """int32 [num_roots]: distinct entities in order of first visit by the walks."""
        adjacency, visits = self.adjacency, []
        for _ in range(_MAX_WALK_ROUNDS):
            position = self.starts[rng.integers(0, len(self.starts), size=self.num_roots)]
            alive = np.ones(self.num_roots, bool)
            path = [position]
            for _ in range(self.walk_length):
                start = adjacency.offsets[position]
                degree = adjacency.offsets[position + 1] - start
                alive &= degree > 0
                # Dead walks draw too (from one edge) so the stream's use is the same every
                # round; their draw is discarded and they stay where they ended.
                pick = start + rng.integers(0, np.maximum(degree, 1))
                position = np.where(alive, adjacency.senders[np.where(alive, pick, 0)], position)
                path.append(np.where(alive, position, -1))
            walked = np.stack(path, axis=1).ravel()  # walk by walk, step by step
            visits.append(walked[walked >= 0])
            distinct, first = np.unique(np.concatenate(visits), return_index=True)
            if len(distinct) >= self.num_roots:
                return distinct[np.argsort(first)][: self.num_roots].astype(np.int32)
        raise ValueError(
            f"{_MAX_WALK_ROUNDS} rounds of {self.num_roots} walks from the {len(self.starts)} "
            f"start entities reached only {len(distinct)} distinct entities, fewer than "
            f"num_roots={self.num_roots}"
        )


class _Draw(NamedTuple):
    """An unpadded subgraph: nodes `entity_ids` (the first `num_roots` the roots), edges local."""

    entity_ids: np.ndarray
    num_roots: int
    senders: np.ndarray
    receivers: np.ndarray
    relations: np.ndarray

    @property
    def num_nodes(self) -> int:
        return len(self.entity_ids)

    @property
    def num_edges(self) -> int:
        return len(self.senders)


def _sample_in_edges(
    adjacency: Adjacency, nodes: np.ndarray, fanout: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """At most `fanout` in-edges of each node: all if it has no more, else drawn uniformly
    without replacement.

    Args:
      adjacency: the graph.
      nodes: int [m], distinct global ids.
      fanout: the most edges per node.
      rng: the step's generator.

    Returns:
      (edges, receivers): int64 rows of the adjacency, grouped by node in the order of `nodes`
      and in CSR order within a node, and the global receiver of each.
    """
    start = adjacency.offsets[nodes]
    degree = adjacency.offsets[nodes + 1] - start
    take = np.minimum(degree, fanout)
    owner = np.repeat(np.arange(len(nodes)), take)
    # Position of each taken edge within its node's row: 0..take-1.
    within = np.arange(len(owner)) - np.repeat(np.cumsum(take) - take, take)
    many = degree > fanout
    if many.any():
        chosen = _floyd_subsets(degree[many], fanout, rng)
        row = np.cumsum(many) - 1  # a node's row in `chosen`
        sampled = many[owner]
        within[sampled] = chosen[row[owner[sampled]], within[sampled]]
    return start[owner] + within, nodes[owner]


def _floyd_subsets(sizes: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """int64 [m, k], row i a uniform k-subset of range(sizes[i]), sorted (each size > k).

    Floyd's algorithm, vectorised over rows: O(k^2) per row whatever its size, so a hub with
    thousands of in-edges costs no more than a node with k + 1.
    """
    chosen = np.empty((len(sizes), k), np.int64)
    for i in range(k):
        top = sizes - k + i  # step i adds one of 0..top
        pick = rng.integers(0, top + 1)
        taken = (chosen[:, :i] == pick[:, None]).any(axis=1)
        chosen[:, i] = np.where(taken, top, pick)
    return np.sort(chosen, axis=1)


def _chain(budgets: Sequence[tuple[int, int]]) -> tuple[Budget, ...]:
    """Budgets sorted smallest first; checks that each is at least the previous in both sizes."""
    chain = tuple(sorted({Budget(int(n), int(e)) for n, e in budgets}))
    for smaller, larger in itertools.pairwise(chain):
        if larger.max_edges < smaller.max_edges:
            raise ValueError(
                f"budgets must grow in both sizes (so that 'the smallest that fits' is one "
                f"budget), got {smaller} and {larger}"
            )
    if chain and min(chain[0]) < 1:
        raise ValueError(f"budget sizes must be positive, got {chain[0]}")
    return chain


def _smallest_fitting(
    budgets: tuple[Budget, ...], num_nodes: int, num_edges: int, what: str
) -> Budget:
    for budget in budgets:
        if num_nodes <= budget.max_nodes and num_edges <= budget.max_edges:
            return budget
    raise BudgetError(
        f"{what}: {num_nodes} nodes and {num_edges} edges fit none of the budgets "
        f"(max_nodes, max_edges) {[tuple(b) for b in budgets]}; add a larger one, e.g. from "
        "SubgraphSampler.propose_budgets, whose last is the worst case"
    )


def _pad(
    entity_ids: np.ndarray,
    num_roots: int,
    senders: np.ndarray,
    receivers: np.ndarray,
    relations: np.ndarray,
    budget: Budget,
) -> Subgraph:
    """The arrays padded with 0 to `budget`, with their masks."""
    num_nodes, num_edges = len(entity_ids), len(senders)

    def padded(values: np.ndarray, size: int) -> np.ndarray:
        out = np.zeros(size, np.int32)
        out[: len(values)] = values
        return out

    positions = np.arange(budget.max_nodes)
    return Subgraph(
        entity_ids=padded(entity_ids, budget.max_nodes),
        node_mask=positions < num_nodes,
        root_mask=positions < num_roots,
        senders=padded(senders, budget.max_edges),
        receivers=padded(receivers, budget.max_edges),
        relations=padded(relations, budget.max_edges),
        edge_mask=np.arange(budget.max_edges) < num_edges,
    )
