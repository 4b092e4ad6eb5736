"""kgjax.data.subgraphs: JAKET's random-walk roots, fan-out neighbourhoods, budgets, full graph.

Hand-made graphs check exact behaviour (walk direction, the worst case, uniform draws without
replacement from a hub); the embedded UMLS checks, over many steps and both edge layouts, that
every sampled edge is a training edge in the GAT's direction, that fan-outs hold per node and
hop, that padding and budgets are right, and that a step's draw depends on (seed, step) only.
"""

import dataclasses
import itertools

import numpy as np
import pytest

from kgjax.data import catalog
from kgjax.data.subgraphs import (
    Adjacency,
    Budget,
    BudgetError,
    Subgraph,
    SubgraphSampler,
    full_graph,
)

# Hand-made graph, (head, relation, tail); the edge of a triple is tail -> head. V = 9, R = 3.
# Entity 0 is a hub with 6 in-edges; 1 has 2, 2 and 3 one each; 4..7 none; 8 is in no triple.
# The last triple repeats the first (dropped by the adjacency).
HAND_TRIPLES = np.array(
    [
        [0, 0, 1],
        [0, 1, 2],
        [0, 0, 3],
        [0, 2, 4],
        [0, 1, 5],
        [0, 0, 6],
        [1, 0, 2],
        [1, 1, 3],
        [2, 2, 7],
        [3, 0, 0],
        [0, 0, 1],
    ]
)
HAND_V, HAND_R = 9, 3


@pytest.fixture(scope="module")
def umls():
    return catalog.load_dataset("umls", download=False)


def in_edges(adjacency, v):
    rows = slice(adjacency.offsets[v], adjacency.offsets[v + 1])
    return sorted(
        zip(adjacency.senders[rows].tolist(), adjacency.relations[rows].tolist(), strict=True)
    )


def real_edges(graph: Subgraph):
    """(global sender, relation, global receiver) of each real edge."""
    mask = graph.edge_mask
    ids = graph.entity_ids
    return list(
        zip(
            ids[graph.senders[mask]].tolist(),
            graph.relations[mask].tolist(),
            ids[graph.receivers[mask]].tolist(),
            strict=True,
        )
    )


def graph_edges(triples, num_relations, inverse):
    """The (sender, relation, receiver) edges a triple set stands for, as the GAT reads them."""
    edges = {(t, r, h) for h, r, t in triples.tolist()}
    if inverse:
        edges |= {(h, r + num_relations, t) for h, r, t in triples.tolist()}
    return edges


def hops(graph: Subgraph, num_hops):
    """Hop of every real node: roots 0, then senders into hop k - 1 not reached before."""
    hop = np.full(len(graph.entity_ids), -1)
    hop[graph.root_mask] = 0
    senders, receivers = graph.senders[graph.edge_mask], graph.receivers[graph.edge_mask]
    for k in range(1, num_hops + 1):
        reached = senders[hop[receivers] == k - 1]
        hop[reached[hop[reached] < 0]] = k
    return hop


def check_structure(graph: Subgraph, num_roots):
    """Masks are prefixes, roots first, ids in range, padding zeroed, nodes distinct."""
    num_nodes, num_edges = int(graph.node_mask.sum()), int(graph.edge_mask.sum())
    positions = np.arange(len(graph.entity_ids))
    assert (graph.node_mask == (positions < num_nodes)).all()
    assert (graph.root_mask == (positions < num_roots)).all()
    assert graph.edge_mask[:num_edges].all() and not graph.edge_mask[num_edges:].any()
    for field in (graph.entity_ids, graph.senders, graph.receivers, graph.relations):
        assert field.dtype == np.int32
    assert not graph.entity_ids[num_nodes:].any()
    for field in (graph.senders, graph.receivers, graph.relations):
        assert not field[num_edges:].any()
    assert len(set(graph.entity_ids[:num_nodes].tolist())) == num_nodes
    assert graph.senders[:num_edges].max(initial=0) < num_nodes
    assert graph.receivers[:num_edges].max(initial=0) < num_nodes


@pytest.mark.parametrize("inverse", [False, True])
def test_adjacency_holds_each_entitys_in_edges(inverse):
    adjacency = Adjacency.build(HAND_TRIPLES, HAND_V, HAND_R, inverse_edges=inverse)
    expected = graph_edges(HAND_TRIPLES, HAND_R, inverse)
    for v in range(HAND_V):
        assert in_edges(adjacency, v) == sorted((u, r) for u, r, w in expected if w == v)
    assert adjacency.num_edges == len(expected)  # the repeated triple counted once
    assert adjacency.num_relation_ids == (2 * HAND_R if inverse else HAND_R)
    assert adjacency.entities.tolist() == list(range(8))  # 8 is in no triple
    assert adjacency.in_degrees[0] == (6 + 1 if inverse else 6)
    with pytest.raises(ValueError, match="entity ids"):
        Adjacency.build(np.array([[0, 0, 9]]), HAND_V, HAND_R)
    with pytest.raises(ValueError, match="relation ids"):
        Adjacency.build(np.array([[0, 3, 1]]), HAND_V, HAND_R)


@pytest.mark.parametrize("inverse", [False, True])
def test_sampled_edges_are_training_edges_with_fanouts_per_hop(umls, inverse):
    adjacency = Adjacency.build(umls.train, umls.num_entities, umls.num_relations, inverse)
    training = graph_edges(umls.train, umls.num_relations, inverse)
    fanouts = (4, 2)
    sampler = SubgraphSampler(
        adjacency, num_roots=8, fanouts=fanouts, walk_length=3, budgets=[(135, 4000)], seed=1
    )
    degree = adjacency.in_degrees
    saw_truncated_hop = [False, False]
    for step in range(20):
        graph = sampler(step)
        check_structure(graph, num_roots=8)
        edges = real_edges(graph)
        assert set(edges) <= training
        assert len(set(edges)) == len(edges)  # no edge sampled twice
        hop = hops(graph, len(fanouts))
        num_nodes = int(graph.node_mask.sum())
        assert (hop[:num_nodes] >= 0).all()  # every node reached from the roots
        received = np.bincount(graph.receivers[graph.edge_mask], minlength=num_nodes)
        for v in range(num_nodes):
            entity = graph.entity_ids[v]
            if hop[v] == len(fanouts):
                assert received[v] == 0
            else:
                assert received[v] == min(degree[entity], fanouts[hop[v]])
                saw_truncated_hop[hop[v]] |= bool(degree[entity] > fanouts[hop[v]])
    assert all(saw_truncated_hop)  # the fan-outs did cut neighbourhoods at both hops


def test_hub_edges_drawn_uniformly_without_replacement():
    adjacency = Adjacency.build(HAND_TRIPLES, HAND_V, HAND_R)
    # One root, the hub 0 (6 in-edges), 3 of them per draw.
    sampler = SubgraphSampler(
        adjacency, num_roots=1, fanouts=(3,), walk_length=0, budgets=[(8, 8)], starts=[0]
    )
    counts, subsets = {}, set()
    num_draws = 600
    for step in range(num_draws):
        edges = real_edges(sampler(step))
        assert len(edges) == len(set(edges)) == 3 and all(w == 0 for _, _, w in edges)
        subsets.add(frozenset(edges))
        for edge in edges:
            counts[edge] = counts.get(edge, 0) + 1
    assert set(counts) == {(u, r, 0) for u, r in in_edges(adjacency, 0)}
    # Each edge is in half the draws: 300 +- 12.2 (one sd); 4 sd either side.
    assert all(250 <= c <= 350 for c in counts.values()), counts
    assert len(subsets) == 20  # every 3-subset of 6 occurs


def test_walks_follow_in_edges_from_the_starts():
    # A chain: triple (i, 0, i + 1) is the edge i + 1 -> i, so walks from 0 go 0, 1, 2, ...
    chain = np.array([[i, 0, i + 1] for i in range(10)])
    adjacency = Adjacency.build(chain, 11, 1)
    sampler = SubgraphSampler(
        adjacency, num_roots=5, fanouts=(1,), walk_length=4, budgets=[(11, 10)], starts=[0]
    )
    graph = sampler(0)
    assert graph.entity_ids[graph.root_mask].tolist() == [0, 1, 2, 3, 4]
    assert graph.entity_ids[graph.node_mask].tolist() == [0, 1, 2, 3, 4, 5]  # hop 1 adds 5
    # Walks from 0 of 4 steps never reach 6 distinct entities.
    with pytest.raises(ValueError, match="reached only 5 distinct entities"):
        dataclasses.replace(sampler, num_roots=6)(0)
    # Walks end where no in-edge is left: from 8, only 8, 9, 10 exist.
    ending = dataclasses.replace(sampler, num_roots=3, starts=[8])
    assert ending(0).entity_ids[:3].tolist() == [8, 9, 10]


@pytest.mark.parametrize("inverse", [False, True])
def test_roots_are_reachable_from_the_starts_within_the_walk_length(umls, inverse):
    adjacency = Adjacency.build(umls.train, umls.num_entities, umls.num_relations, inverse)
    starts, walk_length = np.array([3, 17, 40]), 2
    reach, frontier = set(starts.tolist()), set(starts.tolist())
    for _ in range(walk_length):
        frontier = {u for v in frontier for u, _ in in_edges(adjacency, v)}
        reach |= frontier
    sampler = SubgraphSampler(
        adjacency,
        num_roots=12,
        fanouts=(2,),
        walk_length=walk_length,
        budgets=[(135, 100)],
        starts=starts,
    )
    everywhere = dataclasses.replace(sampler, starts=None)
    for step in range(10):
        roots = sampler(step).entity_ids[:12]
        assert len(set(roots.tolist())) == 12 and set(roots.tolist()) <= reach
        assert set(everywhere(step).entity_ids[:12].tolist()) <= set(adjacency.entities.tolist())
    # walk_length 0: the roots are distinct uniform starts, so all three here.
    uniform = dataclasses.replace(sampler, num_roots=3, walk_length=0)
    assert sorted(uniform(0).entity_ids[:3].tolist()) == starts.tolist()


def test_budget_is_the_smallest_that_fits_and_none_fitting_is_an_error(umls):
    adjacency = Adjacency.build(umls.train, umls.num_entities, umls.num_relations, True)
    unbounded = SubgraphSampler(
        adjacency, num_roots=6, fanouts=(3, 3), walk_length=2, budgets=[(135, 10_000)]
    )
    sizes = [(int(g.node_mask.sum()), int(g.edge_mask.sum())) for g in map(unbounded, range(30))]
    nodes, edges = np.array(sizes).T
    middle = (int(np.median(nodes)), int(np.median(edges)))
    chain = [(135, 10_000), middle, (int(nodes.min()), int(edges.min()))]  # any order
    sampler = dataclasses.replace(unbounded, budgets=chain)
    assert sampler.budgets == tuple(Budget(*b) for b in sorted(chain))
    picked = set()
    for step, (n, e) in enumerate(sizes):
        graph = sampler(step)
        fits = [b for b in sampler.budgets if n <= b.max_nodes and e <= b.max_edges]
        assert graph.budget == fits[0]
        picked.add(graph.budget)
        # The padding changes nothing real.
        reference = unbounded(step)
        assert real_edges(graph) == real_edges(reference)
        assert (graph.entity_ids[:n] == reference.entity_ids[:n]).all()
    assert len(picked) >= 2
    small = dataclasses.replace(unbounded, budgets=[(6, 5)])
    n, e = sizes[0]
    with pytest.raises(BudgetError, match=f"step 0: {n} nodes and {e} edges fit none"):
        small(0)
    with pytest.raises(ValueError, match="grow in both sizes"):
        dataclasses.replace(unbounded, budgets=[(10, 50), (20, 40)])
    with pytest.raises(BudgetError):
        dataclasses.replace(unbounded, budgets=())(0)


def test_worst_case_is_exact_on_a_full_tree_and_proposed_budgets_cover_every_draw(umls):
    # Root 0 hears 1..3; each of those hears 3 leaves of its own.
    tree = [[0, 0, c] for c in (1, 2, 3)] + [
        [c, 1, 4 + 3 * (c - 1) + j] for c in (1, 2, 3) for j in range(3)
    ]
    adjacency = Adjacency.build(np.array(tree), 13, 2)
    sampler = SubgraphSampler(
        adjacency, num_roots=1, fanouts=(3, 3), walk_length=0, starts=[0], budgets=[(13, 12)]
    )
    assert sampler.worst_case() == Budget(13, 12)
    graph = sampler(0)
    assert graph.node_mask.all() and graph.edge_mask.all()
    assert sorted(real_edges(graph)) == sorted(graph_edges(np.array(tree), 2, False))

    adjacency = Adjacency.build(umls.train, umls.num_entities, umls.num_relations, True)
    sampler = SubgraphSampler(adjacency, num_roots=8, fanouts=(5, 3), walk_length=2)
    budgets = sampler.propose_budgets(num_draws=100, quantiles=(0.5, 0.9), multiple=32)
    assert len(budgets) >= 2 and all(n % 32 == 0 and e % 32 == 0 for n, e in budgets)
    assert budgets[-1].max_nodes >= sampler.worst_case().max_nodes
    assert budgets[-1].max_edges >= sampler.worst_case().max_edges
    assert list(budgets) == sorted(budgets)
    sampler = dataclasses.replace(sampler, budgets=budgets)
    used = {sampler(step).budget for step in range(100, 160)}  # unseen steps fit too
    assert budgets[0] in used


def test_a_step_is_a_function_of_seed_and_step_only(umls):
    adjacency = Adjacency.build(umls.train, umls.num_entities, umls.num_relations, True)
    config = dict(num_roots=8, fanouts=(4, 2), walk_length=3, budgets=[(135, 1000)], seed=7)
    run = SubgraphSampler(adjacency, **config)
    uninterrupted = [run(step) for step in range(6)]
    # A resumed run: a new sampler whose first call is step 4.
    resumed = SubgraphSampler(Adjacency.build(umls.train, 135, 46, True), **config)
    for step in (4, 5):
        for a, b in zip(resumed(step), uninterrupted[step], strict=True):
            np.testing.assert_array_equal(a, b)
    for a, b in itertools.combinations(uninterrupted, 2):
        assert real_edges(a) != real_edges(b)
    other_seed = dataclasses.replace(run, seed=8)(0)
    assert real_edges(other_seed) != real_edges(uninterrupted[0])
    # Stacked steps hold the same draws, padded to one budget.
    stacked = run.sample_many(range(2, 5))
    assert stacked.senders.shape == (3, 1000) and stacked.entity_ids.shape == (3, 135)
    for i, step in enumerate(range(2, 5)):
        one = Subgraph(*(field[i] for field in stacked))
        for a, b in zip(one, uninterrupted[step], strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("inverse", [False, True])
def test_full_graph_is_the_training_triples(umls, inverse):
    adjacency = Adjacency.build(umls.train, umls.num_entities, umls.num_relations, inverse)
    graph = full_graph(adjacency)
    num_edges = len(umls.train) * (2 if inverse else 1)
    assert graph.budget == Budget(umls.num_entities, num_edges)
    assert graph.entity_ids.tolist() == list(range(umls.num_entities))
    assert graph.node_mask.all() and graph.root_mask.all() and graph.edge_mask.all()
    assert sorted(real_edges(graph)) == sorted(graph_edges(umls.train, umls.num_relations, inverse))

    padded = full_graph(adjacency, budgets=[(200, 20_000), (150, num_edges), (140, 100)])
    assert padded.budget == Budget(150, num_edges)
    check_structure(padded, num_roots=umls.num_entities)
    assert real_edges(padded) == real_edges(graph)
    with pytest.raises(BudgetError, match=f"the full graph: 135 nodes and {num_edges} edges"):
        full_graph(adjacency, budgets=[(135, num_edges - 1)])
