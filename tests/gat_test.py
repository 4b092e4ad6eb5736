"""kgjax.ops.segment and kgjax.models.graph.gat: segment reductions and JAKET's relational GAT.

The segment ops are checked against NumPy under jit, with empty segments, padding, ids out of
range, huge logits and non-finite padding; the layer against a NumPy transcription of JAKET's
equations with explicit loops over nodes and their neighbours, on a graph with duplicate
edges, a self-loop, a node without in-edges and padded edges pointing at it.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kgjax.models import graph
from kgjax.ops import segment

# Segment-op fixture: 9 members over 5 segments. Segment 3 has no member; segment 4 only a
# masked one; member 7 has an id out of range and member 8 a negative one (both dropped).
SEGMENT_IDS = np.array([0, 2, 0, 1, 2, 4, 0, 5, -1])
SEGMENT_MASK = np.array([True, True, True, True, True, False, False, True, True])
NUM_SEGMENTS = 5

# The graph: N = 6 nodes, R = 3 relations. Edge (u, v, r) carries f(E_u, R_r) to v. Edges 1
# and 2 are duplicates, edge 6 a self-loop; node 5 sends but receives nothing; edges 10 and 11
# are padding, one of them aimed at node 5.
SENDERS = np.array([1, 2, 2, 3, 0, 4, 2, 0, 1, 5, 3, 0])
RECEIVERS = np.array([0, 0, 0, 0, 1, 2, 2, 3, 4, 4, 5, 0])
EDGE_RELATIONS = np.array([0, 1, 1, 2, 0, 2, 1, 1, 0, 2, 1, 0])
EDGE_MASK = np.array([True] * 10 + [False] * 2)
NUM_NODES, NUM_RELATIONS, WIDTH = 6, 3, 8
ISOLATED = 5
NORM_EPSILON = 1e-5  # the layer's (RoBERTa's)


def kept(ids, mask, num_segments):
    return mask & (ids >= 0) & (ids < num_segments)


def numpy_segment_softmax(logits, ids, mask, num_segments):
    """Per segment and column: exp / sum exp over its kept members; 0 elsewhere."""
    logits = np.asarray(logits, np.float64)
    weights = np.zeros_like(logits)
    keep = kept(ids, mask, num_segments)
    for s in range(num_segments):
        members = np.flatnonzero(keep & (ids == s))
        if members.size:
            shifted = logits[members] - logits[members].max(axis=0)
            weights[members] = np.exp(shifted) / np.exp(shifted).sum(axis=0)
    return weights


@functools.partial(jax.jit, static_argnames="num_segments")
def jitted_softmax(logits, ids, num_segments, mask):
    return segment.segment_softmax(logits, ids, num_segments, mask)


def test_segment_sum_count_and_mean_match_numpy():
    data = np.random.default_rng(0).normal(size=(len(SEGMENT_IDS), 3)).astype(np.float32)
    keep = kept(SEGMENT_IDS, SEGMENT_MASK, NUM_SEGMENTS)
    sums = np.zeros((NUM_SEGMENTS, 3))
    counts = np.zeros(NUM_SEGMENTS, int)
    for e in np.flatnonzero(keep):
        sums[SEGMENT_IDS[e]] += data[e]
        counts[SEGMENT_IDS[e]] += 1
    means = sums / np.maximum(counts, 1)[:, None]

    @functools.partial(jax.jit, static_argnums=2)
    def reduce(data, ids, num_segments, mask):
        return (
            segment.segment_sum(data, ids, num_segments, mask),
            segment.segment_count(ids, num_segments, mask),
            segment.segment_mean(data, ids, num_segments, mask),
        )

    got_sums, got_counts, got_means = reduce(data, SEGMENT_IDS, NUM_SEGMENTS, SEGMENT_MASK)
    np.testing.assert_allclose(got_sums, sums, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(got_counts, [2, 1, 2, 0, 0])
    np.testing.assert_array_equal(got_counts, counts)
    np.testing.assert_allclose(got_means, means, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(got_means[3:], 0.0)  # empty segments: 0, not 0 / 0
    # Without a mask, only the out-of-range ids are dropped.
    unmasked = segment.segment_count(SEGMENT_IDS, NUM_SEGMENTS)
    np.testing.assert_array_equal(unmasked, [3, 1, 2, 0, 1])


def test_segment_max_fills_empty_segments_and_ignores_padding():
    data = np.array([1.0, 2.0, -3.0, 4.0, 5.0, 1e9, 1e9, 1e9, 1e9], np.float32)
    maxima = jax.jit(segment.segment_max, static_argnums=2)(
        data, SEGMENT_IDS, NUM_SEGMENTS, SEGMENT_MASK
    )
    np.testing.assert_array_equal(maxima, [1.0, 4.0, 5.0, 0.0, 0.0])
    filled = segment.segment_max(data, SEGMENT_IDS, NUM_SEGMENTS, SEGMENT_MASK, fill_value=-7.0)
    np.testing.assert_array_equal(filled, [1.0, 4.0, 5.0, -7.0, -7.0])
    # Integers fill with the fill value too, not the integer minimum.
    ints = segment.segment_max(data.astype(np.int32), SEGMENT_IDS, NUM_SEGMENTS, SEGMENT_MASK)
    np.testing.assert_array_equal(ints, [1, 4, 5, 0, 0])
    # A segment whose members are all -inf keeps its true maximum; an empty one is filled.
    negative = segment.segment_max(jnp.array([-jnp.inf, 2.0]), jnp.array([0, 1]), 3)
    np.testing.assert_array_equal(negative, [-np.inf, 2.0, 0.0])
    # Columns reduce separately: [E, H] -> [N, H].
    columns = segment.segment_max(
        jnp.stack([data, -data], 1), SEGMENT_IDS, NUM_SEGMENTS, SEGMENT_MASK
    )
    np.testing.assert_array_equal(columns[:, 1], [3.0, -4.0, -2.0, 0.0, 0.0])


@pytest.mark.parametrize("num_heads", [None, 3])
def test_segment_softmax_matches_numpy_and_sums_to_one(num_heads):
    shape = (len(SEGMENT_IDS),) if num_heads is None else (len(SEGMENT_IDS), num_heads)
    # Logits hundreds apart: without the per-segment shift, exp overflows float32.
    logits = 300.0 * np.random.default_rng(1).normal(size=shape).astype(np.float32)
    weights = np.asarray(jitted_softmax(logits, SEGMENT_IDS, NUM_SEGMENTS, SEGMENT_MASK))
    expected = numpy_segment_softmax(logits, SEGMENT_IDS, SEGMENT_MASK, NUM_SEGMENTS)
    assert weights.shape == shape
    assert np.isfinite(weights).all()
    np.testing.assert_allclose(weights, expected, rtol=1e-5, atol=1e-7)
    keep = kept(SEGMENT_IDS, SEGMENT_MASK, NUM_SEGMENTS)
    assert (weights[~keep] == 0.0).all()  # exactly: padding and dropped ids weigh nothing
    sums = np.asarray(segment.segment_sum(weights, SEGMENT_IDS, NUM_SEGMENTS, SEGMENT_MASK))
    np.testing.assert_allclose(sums[:3], 1.0, rtol=1e-6)  # the non-empty segments
    np.testing.assert_array_equal(sums[3:], 0.0)


def test_segment_softmax_gradients_are_finite_and_exact_despite_garbage_padding():
    rng = np.random.default_rng(2)
    logits = (3.0 * rng.normal(size=(len(SEGMENT_IDS), 2))).astype(np.float32)
    # Padding holds whatever its buffer held: none of it may reach a value or a gradient.
    logits[5] = [np.inf, np.nan]
    logits[6] = [1e30, -np.inf]
    logits[8] = [np.nan, np.nan]
    cotangent = rng.normal(size=logits.shape).astype(np.float32)

    def loss(logits):
        weights = jitted_softmax(logits, SEGMENT_IDS, NUM_SEGMENTS, SEGMENT_MASK)
        return jnp.sum(weights * cotangent)

    value, grad = jax.value_and_grad(loss)(logits)
    grad = np.asarray(grad)
    assert np.isfinite(value) and np.isfinite(grad).all()
    # d/dl_e sum_j w_j c_j = w_e (c_e - sum_{j in seg(e)} w_j c_j), and 0 off the kept members.
    weights = numpy_segment_softmax(np.nan_to_num(logits), SEGMENT_IDS, SEGMENT_MASK, NUM_SEGMENTS)
    expected = np.zeros_like(weights)
    keep = kept(SEGMENT_IDS, SEGMENT_MASK, NUM_SEGMENTS)
    for s in range(NUM_SEGMENTS):
        members = np.flatnonzero(keep & np.equal(SEGMENT_IDS, s))
        average = (weights[members] * cotangent[members]).sum(axis=0)
        expected[members] = weights[members] * (cotangent[members] - average)
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-6)


def test_segment_softmax_with_every_member_masked_is_zero_with_zero_gradients():
    logits = jnp.array([[1.0, jnp.inf], [2.0, 0.0], [jnp.nan, 3.0]])
    ids = jnp.array([0, 1, 1])
    mask = jnp.zeros(3, bool)
    weights = jitted_softmax(logits, ids, 4, mask)
    np.testing.assert_array_equal(weights, 0.0)
    grad = jax.grad(lambda x: jnp.sum(jitted_softmax(x, ids, 4, mask)))(logits)
    np.testing.assert_array_equal(grad, 0.0)
    # One member alone in its segment takes all the weight, whatever its logit.
    single = jitted_softmax(jnp.array([-1e30, 50.0, 1e30]), jnp.array([0, 1, 2]), 4, None)
    np.testing.assert_array_equal(single, 1.0)


# ---- the layer ---------------------------------------------------------------------------


def graph_inputs(seed=0):
    rng = np.random.default_rng(seed)
    nodes = rng.normal(size=(NUM_NODES, WIDTH)).astype(np.float32)
    relations = rng.normal(size=(NUM_RELATIONS, WIDTH)).astype(np.float32)
    return nodes, relations, SENDERS, RECEIVERS, EDGE_RELATIONS, EDGE_MASK


def init_layer(layer, inputs, seed=0):
    """The module's parameters, with a random LayerNorm scale and bias so the test sees them."""
    params = layer.init(jax.random.key(seed), *inputs)["params"]
    rng = np.random.default_rng(seed + 100)
    norm = {
        "scale": jnp.asarray(rng.uniform(0.5, 1.5, WIDTH), jnp.float32),
        "bias": jnp.asarray(rng.normal(size=WIDTH), jnp.float32),
    }
    return {**params, "norm": norm}


def numpy_compose(kind, x, y, params):
    if kind == "add":
        return x + y
    if kind == "mult":
        return x * y
    if kind == "corr":  # [x * y]_k = sum_i x_i y_{(i + k) mod D}
        width = len(x)
        return np.array(
            [sum(x[i] * y[(i + k) % width] for i in range(width)) for k in range(width)]
        )
    hidden, output = params["compose"]["hidden"], params["compose"]["output"]
    h = np.concatenate([x, y]) @ hidden["kernel"] + hidden["bias"]
    return np.maximum(h, 0.0) @ output["kernel"] + output["bias"]


def numpy_layer(params, inputs, composition="add", aggregation="attention"):
    """JAKET's layer, one node, one head and one neighbour at a time.

    Returns (E' [N, D], alpha [E, H] with 0 on padding).
    """
    params = jax.tree.map(lambda p: np.asarray(p, np.float64), params)
    nodes, relations, senders, receivers, edge_relations, edge_mask = (
        np.asarray(x, np.float64) if np.issubdtype(x.dtype, np.floating) else np.asarray(x)
        for x in inputs
    )
    kernel = params["project"]["kernel"]  # [D, H, Dh]
    num_heads, head_width = kernel.shape[1:]
    output = np.zeros_like(nodes)
    alpha = np.zeros((len(senders), num_heads))
    for v in range(len(nodes)):
        edges = [e for e in range(len(senders)) if edge_mask[e] and receivers[e] == v]
        composed = [
            numpy_compose(composition, nodes[senders[e]], relations[edge_relations[e]], params)
            for e in edges
        ]
        heads = []
        for k in range(num_heads):
            w = kernel[:, k, :].T  # W_k [Dh, D]
            if aggregation == "attention":
                a = params["attention"][k]
                scores = [a @ np.concatenate([w @ nodes[v], w @ m]) for m in composed]
                leaky = [s if s > 0 else 0.2 * s for s in scores]
                exps = [np.exp(s - max(leaky)) for s in leaky]
                weights = [x / sum(exps) for x in exps]
            else:
                weights = [1.0 / len(edges) for _ in edges]
            total = np.zeros(head_width)
            for e, m, weight in zip(edges, composed, weights, strict=True):
                total += weight * (w @ m)
                alpha[e, k] = weight
            heads.append(np.where(total > 0, total, np.expm1(total)))  # ELU
        x = np.concatenate(heads) + nodes[v]
        normalized = (x - x.mean()) / np.sqrt(x.var() + NORM_EPSILON)
        output[v] = normalized * params["norm"]["scale"] + params["norm"]["bias"]
    return output, alpha


@pytest.mark.parametrize(
    ("composition", "num_heads"),
    [("add", 1), ("add", 4), ("mult", 2), ("corr", 2), ("mlp", 2)],
)
def test_layer_matches_numpy_reference(composition, num_heads):
    inputs = graph_inputs()
    layer = graph.RelationalGATLayer(num_heads, composition)
    params = init_layer(layer, inputs)
    output, state = layer.apply({"params": params}, *inputs, mutable=["intermediates"])
    (attention,) = state["intermediates"]["attention"]
    expected, alpha = numpy_layer(params, inputs, composition)
    np.testing.assert_allclose(output, expected, rtol=1e-5, atol=2e-5)
    np.testing.assert_allclose(attention, alpha, rtol=1e-5, atol=1e-6)
    assert (np.asarray(attention)[~EDGE_MASK] == 0.0).all()
    # The duplicates take equal weight; attention differs between heads when there are several.
    np.testing.assert_array_equal(attention[1], attention[2])
    assert num_heads == 1 or not np.allclose(attention[:, 0], attention[:, 1])


def test_mean_aggregation_matches_numpy_reference():
    inputs = graph_inputs(seed=3)
    layer = graph.RelationalGATLayer(2, "mult", aggregation="mean")
    params = init_layer(layer, inputs, seed=3)
    assert "attention" not in params
    expected, _ = numpy_layer(params, inputs, "mult", aggregation="mean")
    np.testing.assert_allclose(layer.apply({"params": params}, *inputs), expected, atol=2e-5)


def test_isolated_node_is_its_own_layer_norm_and_padding_changes_nothing():
    inputs = graph_inputs(seed=4)
    nodes = inputs[0]
    layer = graph.RelationalGATLayer(4)
    params = init_layer(layer, inputs, seed=4)
    output = np.asarray(layer.apply({"params": params}, *inputs))
    x = nodes[ISOLATED].astype(np.float64)
    normalized = (x - x.mean()) / np.sqrt(x.var() + NORM_EPSILON)
    np.testing.assert_allclose(
        output[ISOLATED],
        normalized * params["norm"]["scale"] + params["norm"]["bias"],
        rtol=1e-5,
        atol=1e-5,
    )
    # The same graph without its padding: the same output.
    real = EDGE_MASK
    unpadded = (nodes, inputs[1], *(x[real] for x in inputs[2:]))
    np.testing.assert_allclose(layer.apply({"params": params}, *unpadded), output, atol=1e-6)
    # Padding rewired to ids out of range and to a NaN row of a padded relation table: the
    # same output, bit for bit.
    table = np.concatenate([inputs[1], np.full((1, WIDTH), np.nan, np.float32)])
    rewired = (
        nodes,
        table,
        np.where(real, SENDERS, [4] * 10 + [-1, NUM_NODES]),
        np.where(real, RECEIVERS, [2] * 10 + [NUM_NODES, ISOLATED]),
        np.where(real, EDGE_RELATIONS, NUM_RELATIONS),
        EDGE_MASK,
    )
    np.testing.assert_array_equal(layer.apply({"params": params}, *rewired), output)


def test_gradients_are_finite_with_isolated_nodes_and_with_every_edge_masked():
    inputs = graph_inputs(seed=5)
    layer = graph.RelationalGATLayer(2, "corr")
    params = init_layer(layer, inputs, seed=5)
    cotangent = np.random.default_rng(5).normal(size=(NUM_NODES, WIDTH)).astype(np.float32)

    def loss(params, nodes, relations, mask):
        edges = (SENDERS, RECEIVERS, EDGE_RELATIONS, mask)
        return jnp.sum(layer.apply({"params": params}, nodes, relations, *edges) * cotangent)

    grad = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))
    for mask in (EDGE_MASK, np.zeros_like(EDGE_MASK)):
        grads = grad(params, inputs[0], inputs[1], mask)
        assert all(np.isfinite(g).all() for g in jax.tree.leaves(grads)), mask
        relation_grad = np.abs(grads[2]).sum()
        # Relations reach the output only through real edges.
        assert (relation_grad > 0) == mask.any()


def test_circular_correlation_matches_its_sum_for_odd_and_even_widths():
    rng = np.random.default_rng(6)
    for width in (5, 8):
        x, y = rng.normal(size=(2, 3, width))
        expected = [numpy_compose("corr", a, b, None) for a, b in zip(x, y, strict=True)]
        got = graph.circular_correlation(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32))
        assert got.dtype == jnp.float32
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_with_inverse_edges_appends_reversed_edges_under_inverse_relations():
    senders, receivers, relations, mask = graph.with_inverse_edges(
        SENDERS, RECEIVERS, EDGE_RELATIONS, EDGE_MASK, NUM_RELATIONS
    )
    num_edges = len(SENDERS)
    assert senders.shape == receivers.shape == relations.shape == mask.shape == (2 * num_edges,)
    np.testing.assert_array_equal(senders[:num_edges], SENDERS)
    np.testing.assert_array_equal(receivers[:num_edges], RECEIVERS)
    np.testing.assert_array_equal(relations[:num_edges], EDGE_RELATIONS)
    np.testing.assert_array_equal(senders[num_edges:], RECEIVERS)
    np.testing.assert_array_equal(receivers[num_edges:], SENDERS)
    np.testing.assert_array_equal(relations[num_edges:], EDGE_RELATIONS + NUM_RELATIONS)
    np.testing.assert_array_equal(mask, np.concatenate([EDGE_MASK, EDGE_MASK]))
    # Heads now hear their tails' inverses: node 5, a sender only, receives from node 4.
    nodes, table = graph_inputs(seed=7)[:2]
    table = np.concatenate([table, -table[::-1]])  # 2R rows: inverse relations after
    edges = (senders, receivers, relations, mask)
    layer = graph.RelationalGATLayer(4)
    params = init_layer(layer, (nodes, table, *edges), seed=7)
    expected, alpha = numpy_layer(params, (nodes, table, *edges))
    np.testing.assert_allclose(
        layer.apply({"params": params}, nodes, table, *edges), expected, atol=2e-5
    )
    assert alpha[num_edges + 9].min() == 1.0  # the inverse of 5 -> 4, node 5's only in-edge


def test_knowledge_module_stacks_layers_over_one_relation_table_and_compiles_once():
    inputs = graph_inputs(seed=8)
    module = graph.KnowledgeModule(num_layers=2, num_heads=2, composition="mult")
    variables = module.init(jax.random.key(8), *inputs)
    assert set(variables["params"]) == {"layer_0", "layer_1"}  # no relation table of its own
    traces = []

    @jax.jit
    def forward(variables, *inputs):
        traces.append(1)
        return module.apply(variables, *inputs)

    output = forward(variables, *inputs)
    layer = graph.RelationalGATLayer(2, "mult")
    hidden = layer.apply({"params": variables["params"]["layer_0"]}, *inputs)
    expected = layer.apply({"params": variables["params"]["layer_1"]}, hidden, *inputs[1:])
    np.testing.assert_allclose(output, expected, rtol=1e-5, atol=1e-5)
    # Another graph of the same budget (other nodes, relations, edges, padding) reuses the
    # compiled forward.
    other = graph_inputs(seed=9)[:2] + (
        np.roll(SENDERS, 3),
        np.roll(RECEIVERS, 5),
        np.roll(EDGE_RELATIONS, 1),
        np.roll(EDGE_MASK, 4),
    )
    assert np.isfinite(forward(variables, *other)).all()
    assert len(traces) == 1
    # No layers: E^KM = E^(0).
    identity = graph.KnowledgeModule(num_layers=0, num_heads=2)
    np.testing.assert_array_equal(
        identity.apply(identity.init(jax.random.key(0), *inputs), *inputs), inputs[0]
    )


def test_invalid_settings_raise():
    inputs = graph_inputs()
    with pytest.raises(ValueError, match="composition must be one of"):
        graph.RelationalGATLayer(2, "sub")
    with pytest.raises(ValueError, match="composition must be one of"):
        graph.Composition("sub")
    with pytest.raises(ValueError, match="aggregation must be one of"):
        graph.RelationalGATLayer(2, aggregation="max")
    with pytest.raises(ValueError, match="not divisible by num_heads 3"):
        graph.RelationalGATLayer(3).init(jax.random.key(0), *inputs)
    with pytest.raises(ValueError, match="relation width"):
        graph.RelationalGATLayer(2).init(
            jax.random.key(0), inputs[0], inputs[1][:, :4], *inputs[2:]
        )
    with pytest.raises(ValueError, match="num_layers must be non-negative"):
        graph.KnowledgeModule(num_layers=-1, num_heads=2)
