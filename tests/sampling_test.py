"""Device triple-index lookups and negative samplers against Python sets."""

import jax
import jax.numpy as jnp
import numpy as np

from kgjax.data.triples import TripleIndex
from kgjax.ops import sampling
from kgjax.ops.triple_index import DeviceTripleIndex

V, R = 25, 3


def random_graph(seed, n=300):
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, V, n), rng.integers(0, R, n), rng.integers(0, V, n)], 1)


def test_contains_and_answers_match_sets():
    triples = random_graph(0)
    index = DeviceTripleIndex.from_host(TripleIndex.build(triples, V))
    known = set(map(tuple, triples))
    rng = np.random.default_rng(1)
    queries = np.stack(
        [rng.integers(0, V, 600), rng.integers(0, R, 600), rng.integers(0, V, 600)], 1
    )
    q = jnp.asarray(queries)
    tails = np.asarray(jax.jit(index.tails.contains)(q[:, 0], q[:, 1], q[:, 2]))
    heads = np.asarray(jax.jit(index.heads.contains)(q[:, 2], q[:, 1], q[:, 0]))
    want = np.array([tuple(x) in known for x in queries])
    assert want.any() and not want.all()
    np.testing.assert_array_equal(tails, want)
    np.testing.assert_array_equal(heads, want)

    entities, mask = index.tails.answers(q[:, 0], q[:, 1])
    for i, (h, r, _) in enumerate(queries):
        got = set(np.asarray(entities[i])[np.asarray(mask[i])].tolist())
        assert got == {t for (a, b, t) in known if (a, b) == (h, r)}


def test_filtered_negatives_avoid_known_triples_in_both_modes():
    triples = random_graph(2)
    index = DeviceTripleIndex.from_host(TripleIndex.build(triples, V))
    known = set(map(tuple, triples))
    positives = jnp.asarray(triples[:64])
    draw = jax.jit(sampling.filtered_uniform_negatives, static_argnums=(3, 4, 7))
    for mode in (sampling.HEAD_BATCH, sampling.TAIL_BATCH):
        negatives, false_rate = draw(
            jax.random.key(mode), positives, mode, 8, V, index.tails, index.heads, 3.0
        )
        negatives = np.asarray(negatives)
        assert negatives.shape == (64, 8)
        for (h, r, t), row in zip(triples[:64], negatives, strict=True):
            for e in row:
                assert ((e, r, t) if mode == sampling.HEAD_BATCH else (h, r, e)) not in known
        assert float(false_rate) == 0.0


def test_filtered_negatives_report_when_too_few_survive():
    # Every entity is a true tail of (0, 0): no clean negative exists.
    triples = np.stack([np.zeros(V, int), np.zeros(V, int), np.arange(V)], 1)
    index = DeviceTripleIndex.from_host(TripleIndex.build(triples, V))
    _, false_rate = sampling.filtered_uniform_negatives(
        jax.random.key(0),
        jnp.asarray(triples[:4]),
        sampling.TAIL_BATCH,
        5,
        V,
        index.tails,
        index.heads,
    )
    assert float(false_rate) == 1.0


def test_uniform_negatives_cover_the_range():
    negatives = np.asarray(sampling.uniform_negatives(jax.random.key(0), 50, 40, V))
    assert negatives.min() == 0 and negatives.max() == V - 1
