"""Device triple-index lookups and negative samplers against Python sets."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kgjax.data.triples import TripleIndex
from kgjax.ops import sampling
from kgjax.ops.triple_index import DeviceTripleIndex

V, R = 25, 3


def random_graph(seed, n=300):
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, V, n), rng.integers(0, R, n), rng.integers(0, V, n)], 1)


def indexed(triples):
    """The device index of int [n, 3] `triples`, and the same triples as a Python set."""
    return DeviceTripleIndex.from_host(TripleIndex.build(triples, V)), set(map(tuple, triples))


def corruptions(positives, negatives, mode):
    """The triple each negative makes with its positive: [B, 3], [B, K] -> B lists of K."""
    return [
        [(e, r, t) if mode == sampling.HEAD_BATCH else (h, r, e) for e in row]
        for (h, r, t), row in zip(
            np.asarray(positives).tolist(), np.asarray(negatives).tolist(), strict=True
        )
    ]


def test_contains_and_answers_match_sets():
    triples = random_graph(0)
    index, known = indexed(triples)
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


@pytest.mark.parametrize("mode", [sampling.HEAD_BATCH, sampling.TAIL_BATCH])
def test_filtered_negatives_avoid_known_triples(mode):
    triples = random_graph(2)
    index, known = indexed(triples)
    draw = jax.jit(sampling.filtered_uniform_negatives, static_argnums=(3, 4, 7))
    negatives, false_rate = draw(
        jax.random.key(mode), triples[:64], mode, 8, V, index.tails, index.heads, 3.0
    )
    assert negatives.shape == (64, 8) and float(false_rate) == 0.0
    assert not any(c in known for row in corruptions(triples[:64], negatives, mode) for c in row)


def test_filtered_negatives_report_when_too_few_survive():
    # Every entity is a true tail of (0, 0): no clean negative exists.
    triples = np.stack([np.zeros(V, int), np.zeros(V, int), np.arange(V)], 1)
    index, _ = indexed(triples)
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


@pytest.mark.parametrize("mode", [sampling.HEAD_BATCH, sampling.TAIL_BATCH])
def test_shared_negatives_mark_exactly_the_known_pairs(mode):
    triples = random_graph(3)
    index, known = indexed(triples)
    negatives, is_known = jax.jit(sampling.shared_negatives, static_argnums=(3, 4, 5))(
        jax.random.key(mode), triples[:48], mode, 10, V, 16, index.tails, index.heads
    )
    assert negatives.shape == (3, 10) and is_known.shape == (48, 10)
    # Each chunk of 16 positives shares one row of negatives.
    shared = np.repeat(np.asarray(negatives), 16, axis=0)
    want = [[c in known for c in row] for row in corruptions(triples[:48], shared, mode)]
    np.testing.assert_array_equal(is_known, want)
    assert np.asarray(is_known).any()  # 25 entities: shared draws do hit known triples


def test_shared_sampler_scores_equal_per_positive_scoring_of_the_shared_rows():
    from kgjax.models import kge as models
    from kgjax.train.kge.negatives import SampleContext, UniformSampler
    from kgjax.train.kge.state import TrainData

    triples = random_graph(4)
    index, _ = indexed(triples)
    data = TrainData(jnp.asarray(triples), jnp.ones(len(triples)), index, {})
    positives = jnp.asarray(triples[:32])
    for name in ("rotate", "distmult"):
        model = models.get(name, V, R, dim=6, gamma=4.0)
        params = model.init(jax.random.key(0))
        query = model.tail_query(
            params["entity"][positives[:, 0]], params["relation"][positives[:, 1]]
        )
        context = SampleContext(jax.random.key(5), 0, sampling.TAIL_BATCH, positives, query, data)
        sampler = UniformSampler(7, filtered=True, shared_chunk_size=8)
        scores, _, metrics = jax.jit(sampler, static_argnums=2)({}, params, model, context)
        ids, is_known = sampling.shared_negatives(
            context.key, positives, sampling.TAIL_BATCH, 7, V, 8, index.tails, index.heads
        )
        per_positive = model.match(query[:, None, :], params["entity"][jnp.repeat(ids, 8, 0)])
        np.testing.assert_allclose(
            np.asarray(scores)[~np.asarray(is_known)],
            np.asarray(per_positive)[~np.asarray(is_known)],
            rtol=1e-5,
            atol=1e-5,
        )
        assert np.all(np.asarray(scores)[np.asarray(is_known)] < -1e29)
        assert float(metrics["negatives_false_rate"]) == float(np.mean(is_known))


def test_self_negative_scores_the_query_entity_and_leaves_out_known_self_loops():
    from kgjax.models import kge as models
    from kgjax.train.kge.negatives import SampleContext, with_self_negative
    from kgjax.train.kge.state import TrainData

    triples = random_graph(6)
    # Self-loops in training: (e, r, e) for the first few positives' own entities.
    loops = np.stack([triples[:6, 0], triples[:6, 1], triples[:6, 0]], 1)
    loops_head = np.stack([triples[6:12, 2], triples[6:12, 1], triples[6:12, 2]], 1)
    graph = np.concatenate([triples, loops, loops_head])
    index, known = indexed(graph)
    data = TrainData(jnp.asarray(graph), jnp.ones(len(graph)), index, {})
    positives = jnp.asarray(triples[:40])
    model = models.get("rotate", V, R, dim=6, gamma=4.0)
    params = model.init(jax.random.key(0))
    entity, relation = params["entity"], params["relation"]
    head, rel, tail = entity[positives[:, 0]], relation[positives[:, 1]], entity[positives[:, 2]]
    sampled = jnp.full((40, 3), 0.5)
    for mode in (sampling.HEAD_BATCH, sampling.TAIL_BATCH):
        head_batch = mode == sampling.HEAD_BATCH
        query = model.head_query(rel, tail) if head_batch else model.tail_query(head, rel)
        context = SampleContext(jax.random.key(1), 0, mode, positives, query, data)
        scores = np.asarray(
            jax.jit(with_self_negative, static_argnums=1)(sampled, model, context, head, tail)
        )
        assert scores.shape == (40, 4)
        np.testing.assert_array_equal(scores[:, :3], 0.5)
        excluded = 0
        for b, (h, r, t) in enumerate(triples[:40]):
            own = t if head_batch else h
            if (own, r, own) in known:
                assert scores[b, 3] < -1e29
                excluded += 1
            else:
                want = model.score_hrt(params, own, r, own)
                np.testing.assert_allclose(scores[b, 3], float(want), rtol=1e-5, atol=1e-5)
        assert 0 < excluded < 40


def test_train_step_adds_the_self_negative_to_the_loss():
    import dataclasses

    import optax

    from kgjax.models import kge as models
    from kgjax.train.kge import step as steps
    from kgjax.train.kge.state import TrainData, TrainState

    @dataclasses.dataclass(frozen=True)
    class ConstantSampler:  # K negatives of score 0 each: log sigmoid(0) = -log 2
        def init(self, rng, model):
            return {}

        def __call__(self, sampler_params, params, model, context):
            return jnp.zeros((context.positives.shape[0], 3)), jnp.float32(0.0), {}

    triples = random_graph(7)
    loops = np.stack([triples[:20, 0], triples[:20, 1], triples[:20, 0]], 1)
    graph = np.concatenate([triples, loops])
    index, known = indexed(graph)
    data = TrainData(jnp.asarray(graph), jnp.ones(len(graph)), index, {})
    model = models.get("transe", V, R, dim=5, gamma=3.0)
    state = TrainState.create(model, ConstantSampler(), optax.sgd(0.0), jax.random.key(0))
    settings = steps.StepSettings(32, None, False, "none", 0.0, self_negative=True)
    for step in (0, 1):  # head batch, then tail batch
        state = state.replace(step=jnp.int32(step))
        _, metrics = steps.train_step(
            state,
            data,
            jax.random.key(3),
            model=model,
            sampler=ConstantSampler(),
            optimizer=optax.sgd(0.0),
            schedule=optax.constant_schedule(0.0),
            settings=settings,
        )
        mode, positives, _ = steps.select_batch(data, jax.random.key(3), state.step, 32, None)
        own = np.asarray(positives)[:, 2 if int(mode) == sampling.HEAD_BATCH else 0]
        r = np.asarray(positives)[:, 1]
        self_scores = np.asarray(model.score_hrt(state.params, own, r, own))
        self_terms = np.where(
            [(e, rr, e) in known for e, rr in zip(own, r, strict=True)],
            0.0,
            np.log(1 / (1 + np.exp(self_scores))),
        )
        expected = -np.mean((3 * np.log(0.5) + self_terms) / 4)
        assert float(metrics["negative_loss"]) == pytest.approx(expected, rel=1e-5)
