"""JAKET part 2's pieces: the memory's refresh schedule and momentum, masked entity prediction
(candidates, head, loss) against the paper's formulas written out in NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kgjax.data import subgraphs
from kgjax.models.jaket import MaskedEntityHead
from kgjax.train.jaket import masked_entities
from kgjax.train.jaket.memory import RefreshSchedule, momentum_update


def test_refresh_intervals_follow_the_papers_sequence():
    schedule = RefreshSchedule()  # I_init 10, a 2, r 3, I_max 500
    intervals = [schedule.interval(i) for i in range(24)]
    expected = [10] * 3 + [20] * 3 + [40] * 3 + [80] * 3 + [160] * 3 + [320] * 3 + [500] * 6
    assert intervals == expected
    assert schedule.steps(100) == [10, 20, 30, 50, 70, 90]


def test_a_resumed_run_refreshes_where_the_uninterrupted_run_does():
    schedule = RefreshSchedule(initial=3, growth=1.5, repeats=2, maximum=40)
    full = schedule.steps(1000)
    for stop in (1, 7, 33, 250):
        # Steps done before the interruption, then the rest: the same refresh steps.
        before = [s for s in range(1, stop + 1) if schedule.is_refresh_step(s)]
        after = [s for s in range(stop + 1, 1001) if schedule.is_refresh_step(s)]
        assert before + after == full
        assert schedule.refreshes_done(stop) == len(before)
    with pytest.raises(ValueError, match="maximum"):
        RefreshSchedule(initial=10, maximum=5)


def test_momentum_update():
    rng = np.random.default_rng(0)
    old, new = rng.standard_normal((2, 5, 4)).astype(np.float32)
    out = momentum_update(jnp.asarray(old), new, 0.8)
    np.testing.assert_allclose(np.asarray(out), 0.8 * old + 0.2 * new, rtol=1e-6)
    with pytest.raises(ValueError, match="momentum"):
        momentum_update(jnp.asarray(old), new, 1.0)


def tiny_graph():
    triples = np.array([[0, 0, 1], [0, 1, 2], [0, 0, 3], [4, 0, 0], [2, 1, 1]], np.int32)
    return subgraphs.Adjacency.build(triples, 6, 2, inverse_edges=True)


def test_candidates_put_the_entity_first_then_neighbours_then_random_ones():
    adjacency = tiny_graph()
    entities = np.array([0, 5, 1])
    rows, valid = masked_entities.candidates(
        adjacency, entities, 5, 2, np.random.default_rng(1), num_entities=6
    )
    again = masked_entities.candidates(
        adjacency, entities, 5, 2, np.random.default_rng(1), num_entities=6
    )
    np.testing.assert_array_equal(rows, again[0])
    np.testing.assert_array_equal(rows[:, 0], entities)
    # Entity 0's neighbours (both directions): 1, 2, 3, 4; two of them follow it.
    assert set(rows[0, 1:3]) <= {1, 2, 3, 4} and rows[0, 1] != rows[0, 2]
    # Entity 5 is isolated: all negatives random.
    for i in range(3):
        seen = set()
        for k in range(5):
            entity = int(rows[i, k])
            expected = entity not in seen and (k == 0 or entity != entities[i])
            assert valid[i, k] == expected, (i, k)
            seen.add(entity)


def test_masked_entity_loss_and_head_match_numpy():
    rng = np.random.default_rng(2)
    memory = rng.standard_normal((6, 4)).astype(np.float32)
    starts, ends = rng.standard_normal((2, 3, 8)).astype(np.float32)
    head = MaskedEntityHead(width=4)
    params = head.init(jax.random.key(0), starts, ends)["params"]
    queries = np.asarray(head.apply({"params": params}, starts, ends))

    def gelu(x):  # tanh approximation, flax's default
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))

    w1, w2 = params["w1"], params["w2"]
    hidden = gelu((starts + ends) / 2 @ np.asarray(w1["kernel"]) + np.asarray(w1["bias"]))
    expected = hidden @ np.asarray(w2["kernel"]) + np.asarray(w2["bias"])
    np.testing.assert_allclose(queries, expected, rtol=1e-4, atol=1e-5)

    ids = np.array([[0, 1, 2, 2], [3, 4, 5, 0], [1, 0, 2, 3]], np.int32)
    mask = np.array([[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 1]], bool)
    mentions = np.array([True, True, False])
    value, accuracy = masked_entities.loss(
        jnp.asarray(queries), jnp.asarray(memory), ids, mask, mentions
    )
    losses, hits = [], []
    for m in range(2):  # the third mention is padding
        scores = np.array([queries[m] @ memory[e] for e in ids[m, mask[m]]])
        losses.append(np.log(np.sum(np.exp(scores - scores.max()))) + scores.max() - scores[0])
        hits.append(np.argmax(scores) == 0)
    np.testing.assert_allclose(float(value), np.mean(losses), rtol=1e-5)
    assert float(accuracy) == pytest.approx(np.mean(hits))
