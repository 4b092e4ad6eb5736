"""kgjax.evaluation.diagnostics: own-entity answers and per-relation MRR, checked by hand."""

import numpy as np
import pytest

from kgjax.evaluation import diagnostics

# Five entities, five queries; each row: scores, answer, own entity, filter (ids, mask).
SCORES = np.array(
    [
        [5, 1, 3, 4, 0],  # own 0 scores best; 3 is another known answer, filtered
        [0, 2, 2, 1, 3],  # the answer is best; the padded filter entry names the own entity
        [1, 0, 0, 9, 0],  # the own entity is a known answer: filtered, no rank
        [0, 0, 5, 0, 0],  # a known self-loop: the own entity is the answer
        [1, 4, 0, 4, 0],  # own 3 ties entity 1 for the top: the lower id wins
    ],
    np.float32,
)
ANSWERS = np.array([2, 4, 0, 2, 0])
OWN = np.array([0, 1, 3, 2, 3])
FILTER_IDS = np.array([[2, 3], [4, 1], [0, 3], [2, 0], [0, 0]])
FILTER_MASK = np.array([[True, True], [True, False], [True, True], [True, False], [True, False]])


def test_own_entity_by_hand():
    top1, rank = diagnostics.own_entity(SCORES, ANSWERS, OWN, FILTER_IDS, FILTER_MASK)
    np.testing.assert_array_equal(top1, [True, False, False, False, False])
    np.testing.assert_array_equal(rank, [1.0, 2.0, np.nan, np.nan, 1.0])


def test_own_entity_matches_a_per_query_reference():
    rng = np.random.default_rng(0)
    num_queries, num_entities, budget = 64, 12, 4
    # Few distinct scores, so ties are common.
    scores = rng.integers(0, 4, (num_queries, num_entities)).astype(np.float32)
    answers = rng.integers(0, num_entities, num_queries)
    own = rng.integers(0, num_entities, num_queries)
    filter_ids = rng.integers(0, num_entities, (num_queries, budget))
    filter_ids[:, 0] = answers
    filter_mask = rng.random((num_queries, budget)) < 0.5
    filter_mask[:, 0] = True
    top1, rank = diagnostics.own_entity(scores, answers, own, filter_ids, filter_mask)
    for q in range(num_queries):
        known = set(filter_ids[q][filter_mask[q]].tolist())
        row = scores[q].astype(np.float64)
        row[[e for e in known if e != answers[q]]] = -np.inf
        assert top1[q] == (int(np.argmax(row)) == own[q] != answers[q])
        expected = np.nan if own[q] in known else 1 + np.sum(row > row[own[q]])
        np.testing.assert_equal(rank[q], expected)


def test_per_relation_mrr_by_hand():
    count, mrr = diagnostics.per_relation_mrr(
        np.array([1.0, 2.0, 4.0, 1.0]), np.array([0, 2, 0, 2]), num_relations=4
    )
    np.testing.assert_array_equal(count, [2, 0, 2, 0])
    np.testing.assert_allclose(mrr, [0.625, np.nan, 0.75, np.nan])


def test_self_prediction_metrics_by_hand():
    metrics = diagnostics.self_prediction_metrics(
        np.array([1.0, 2.0, 4.0, 1.0]),
        np.array([True, False, False, False]),
        np.array([1.0, 2.0, np.nan, np.nan]),
    )
    assert metrics["queries"] == 4
    assert metrics["mrr"] == pytest.approx((1 + 0.5 + 0.25 + 1) / 4)
    assert metrics["hits@1"] == 0.5
    assert metrics["own_top1"] == 0.25
    assert metrics["own_rank_median"] == 1.5


def test_self_prediction_metrics_without_a_ranked_own_entity():
    metrics = diagnostics.self_prediction_metrics(
        np.array([1.0]), np.array([False]), np.array([np.nan])
    )
    assert np.isnan(metrics["own_rank_median"]) and metrics["own_top1"] == 0.0
