"""Filtered ranks on the device against a brute-force NumPy reference, ties included."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kgjax.data.triples import TripleIndex
from kgjax.evaluation.link_prediction import evaluate
from kgjax.evaluation.metrics import rank_metrics
from kgjax.models import kge as models
from kgjax.ops.ranking import filtered_ranks
from kgjax.ops.triple_index import DeviceTripleIndex


def brute_force_ranks(scores, true_ids, filters):
    """Per row: optimistic and pessimistic rank among unfiltered candidates."""
    optimistic, pessimistic = [], []
    for row, true_id, known in zip(scores, true_ids, filters, strict=True):
        keep = np.array([e == true_id or e not in known for e in range(len(row))])
        others = keep.copy()
        others[true_id] = False
        optimistic.append(1 + np.sum(row[others] > row[true_id]))
        pessimistic.append(1 + np.sum(row[others] >= row[true_id]))
    return np.array(optimistic), np.array(pessimistic)


def test_filtered_ranks_with_ties():
    rng = np.random.default_rng(0)
    batch, num, budget = 40, 17, 6
    scores = rng.integers(0, 4, (batch, num)).astype(np.float32)  # many ties
    true_ids = rng.integers(0, num, batch)
    filters = [
        set(rng.choice(num, rng.integers(0, budget + 1), replace=False)) for _ in range(batch)
    ]
    ids = np.zeros((batch, budget), np.int32)
    mask = np.zeros((batch, budget), bool)
    for i, known in enumerate(filters):
        ids[i, : len(known)] = sorted(known)
        mask[i, : len(known)] = True
    optimistic, pessimistic = jax.jit(filtered_ranks)(scores, true_ids, ids, mask)
    want_opt, want_pess = brute_force_ranks(scores, true_ids, filters)
    np.testing.assert_array_equal(optimistic, want_opt)
    np.testing.assert_array_equal(pessimistic, want_pess)
    assert np.any(want_opt != want_pess)  # the fixture really has ties


def test_nan_true_score_ranks_last():
    scores = jnp.array([[np.nan, 1.0, 2.0]])
    optimistic, pessimistic = filtered_ranks(
        scores, jnp.array([0]), jnp.zeros((1, 1), jnp.int32), jnp.zeros((1, 1), bool)
    )
    assert float(optimistic[0]) == float(pessimistic[0]) == 3


@pytest.mark.parametrize("name", ["distmult", "rotate"])
def test_evaluate_matches_brute_force_on_random_graph(name):
    rng = np.random.default_rng(1)
    num_entities, num_relations, n = 30, 4, 400
    triples = np.unique(
        np.stack(
            [
                rng.integers(0, num_entities, n),
                rng.integers(0, num_relations, n),
                rng.integers(0, num_entities, n),
            ],
            1,
        ),
        axis=0,
    ).astype(np.int32)
    test = triples[:37]  # 37 is no multiple of the batch: the last batch is padded
    model = models.get(name, num_entities, num_relations, dim=4, gamma=2.0)
    params = model.init(jax.random.key(3))
    # Entities sharing one embedding row score exactly alike: ties on purpose.
    params["entity"] = params["entity"][np.arange(num_entities) % 9]
    index = DeviceTripleIndex.from_host(TripleIndex.build(triples, num_entities))
    got = evaluate(model, params, test, index, batch_size=8)

    known = set(map(tuple, triples))
    h, r, t = test.T
    tail_scores = np.asarray(model.score_t(params, h, r))
    head_scores = np.asarray(model.score_h(params, r, t))
    tail_filters = [{e for e in range(num_entities) if (a, b, e) in known} for a, b, _ in test]
    head_filters = [{e for e in range(num_entities) if (e, b, c) in known} for _, b, c in test]
    tail_opt, tail_pess = brute_force_ranks(tail_scores, t, tail_filters)
    head_opt, head_pess = brute_force_ranks(head_scores, h, head_filters)
    assert np.any(tail_opt != tail_pess) or np.any(head_opt != head_pess)
    realistic = np.concatenate([(head_opt + head_pess) / 2, (tail_opt + tail_pess) / 2])
    for key, value in rank_metrics(realistic).items():
        assert got["both"][key] == pytest.approx(value)
    for key, value in rank_metrics(np.concatenate([head_opt, tail_opt])).items():
        assert got["optimistic"]["both"][key] == pytest.approx(value)
    for key, value in rank_metrics(tail_pess).items():
        assert got["pessimistic"]["tail"][key] == pytest.approx(value)
    assert got["num_triples"] == len(test)


def test_rank_metrics_values():
    got = rank_metrics(np.array([1, 2, 4, 10, 11.5]))
    assert got["mr"] == pytest.approx(5.7)
    assert got["mrr"] == pytest.approx(np.mean([1, 1 / 2, 1 / 4, 1 / 10, 1 / 11.5]))
    assert (got["hits@1"], got["hits@3"], got["hits@10"]) == (0.2, 0.4, 0.8)
