"""kgjax.evaluation.relation_categories: categories of a hand-checked graph, metrics by hand."""

import numpy as np

from kgjax.evaluation.metrics import rank_metrics
from kgjax.evaluation.relation_categories import (
    CATEGORIES,
    relation_categories,
    relation_results,
)

A, B, C, D, E, F, G = range(7)
# (head, relation, tail); per relation the counts that decide its category.
TRAIN = np.array(
    [
        # r0: 3 triples, 3 heads, 3 tails: tph 1, hpt 1 -> 1-1
        (A, 0, B), (C, 0, D), (E, 0, F),
        # r1: 4 triples, heads {a, e}, tails {b, c, d, f}: tph 2, hpt 1 -> 1-N
        (A, 1, B), (A, 1, C), (A, 1, D), (E, 1, F),
        # r2: 3 triples (one line twice, counted once), heads {b, c, d}, tail {a}: tph 1,
        # hpt 3 -> N-1
        (B, 2, A), (C, 2, A), (D, 2, A), (B, 2, A),
        # r3: heads {a, b}, tails {c, d}: tph 2, hpt 2 -> N-N
        (A, 3, C), (A, 3, D), (B, 3, C), (B, 3, D),
        # r4: heads {a, d}, tails {b, c, e}: tph exactly 1.5 (counts as N), hpt 1 -> 1-N
        (A, 4, B), (A, 4, C), (D, 4, E),
        # r5: heads {a, d, f}, tails {b, c, e, g}: tph 4/3 (1.5 if averaged over triples
        # instead of (h, r) pairs: (2 + 2 + 1 + 1) / 4), hpt 1 -> 1-1
        (A, 5, B), (A, 5, C), (D, 5, E), (F, 5, G),
        # r6: no training triple
    ]
)  # fmt: skip
EXPECTED = ["1-1", "1-N", "N-1", "N-N", "1-N", "1-1", None]


def test_categories_of_a_hand_checked_graph():
    got = relation_categories(TRAIN, num_relations=7)
    assert [CATEGORIES[c] if c >= 0 else None for c in got] == EXPECTED


def test_relation_results_by_hand():
    names = [f"rel{r}" for r in range(7)]
    # Test triples of r0 (twice), r1 and r3; r2, r4, r5 have none.
    triples = np.array([(A, 0, B), (C, 0, D), (A, 1, E), (A, 3, B)])
    # Optimistic and pessimistic ranks; the realistic rank is their mean.
    head = np.array([[1, 2, 4, 10], [1, 4, 4, 12]], float)  # realistic 1, 3, 4, 11
    tail = np.array([[2, 1, 1, 5], [2, 1, 3, 5]], float)  # realistic 2, 1, 2, 5
    out = relation_results(np.concatenate([head, tail]), triples, TRAIN, names)

    assert list(out["per_relation"]) == ["rel0", "rel1", "rel3"]
    rel0 = out["per_relation"]["rel0"]
    assert rel0["category"] == "1-1" and rel0["num_triples"] == 2
    np.testing.assert_allclose(rel0["mrr"], (1 + 1 / 3 + 1 / 2 + 1) / 4)
    assert rel0["hits@10"] == 1.0
    rel3 = out["per_relation"]["rel3"]
    assert rel3["category"] == "N-N" and rel3["hits@10"] == 0.5
    np.testing.assert_allclose(rel3["mrr"], (1 / 11 + 1 / 5) / 2)

    per_category = out["per_category"]
    assert list(per_category) == list(CATEGORIES)
    assert {c: b["num_relations"] for c, b in per_category.items()} == {
        "1-1": 2,
        "1-N": 2,
        "N-1": 1,
        "N-N": 1,
    }
    assert {c: b["num_triples"] for c, b in per_category.items()} == {
        "1-1": 2,
        "1-N": 1,
        "N-1": 0,
        "N-N": 1,
    }
    assert "head" not in per_category["N-1"]
    assert per_category["1-1"]["head"] == rank_metrics([1, 3])
    assert per_category["1-1"]["tail"] == rank_metrics([2, 1])
    assert per_category["1-1"]["both"] == rank_metrics([1, 3, 2, 1])
    assert per_category["1-N"]["head"] == rank_metrics([4])
    assert per_category["N-N"]["tail"] == rank_metrics([5])
