"""Relation categories (1-1, 1-N, N-1, N-N) and link-prediction metrics per relation and category.

Bordes et al. ("Translating Embeddings for Modeling Multi-relational Data", NIPS 2013,
section 4.4) sort relations by how many heads a (relation, tail) pair has and how many tails
a (head, relation) pair has; Wang et al. ("Knowledge Graph Embedding by Translating on
Hyperplanes", AAAI 2014, section 4.1) fixed the rule used since. For relation r, over its
distinct training triples:

  tph(r) = #triples of r / #distinct heads of r   (tails per head: the mean over its
                                                   (h, r) pairs of their tails)
  hpt(r) = #triples of r / #distinct tails of r   (heads per tail)

A side is "1" when its mean is below 1.5 and "N" otherwise: 1-1 (hpt < 1.5, tph < 1.5),
1-N (hpt < 1.5, tph >= 1.5: one head, many tails), N-1 (hpt >= 1.5, tph < 1.5), N-N.

The metrics use the realistic filtered ranks of `link_prediction.filtered_ranks`; "head" is
predicting the head of (?, r, t), "tail" the tail of (h, r, ?).

Host side, NumPy. Shapes: n triples, R relations.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kgjax.evaluation.metrics import rank_metrics

CATEGORIES = ("1-1", "1-N", "N-1", "N-N")
THRESHOLD = 1.5


def relation_categories(
    train: np.ndarray, num_relations: int, threshold: float = THRESHOLD
) -> np.ndarray:
    """Each relation's category, from its training triples.

    Args:
      train: int [n, 3] (head, relation, tail); repeated triples count once.
      num_relations: R.
      threshold: the mean at or above which a side is "N".

    Returns:
      int [R]: an index into `CATEGORIES`, -1 for a relation without training triples.
    """
    triples = np.unique(np.asarray(train, np.int64).reshape(-1, 3), axis=0)
    h, r, t = triples.T
    count = np.bincount(r, minlength=num_relations)
    heads = np.bincount(np.unique(np.stack([r, h], 1), axis=0)[:, 0], minlength=num_relations)
    tails = np.bincount(np.unique(np.stack([r, t], 1), axis=0)[:, 0], minlength=num_relations)
    with np.errstate(invalid="ignore", divide="ignore"):
        many_tails = count / heads >= threshold
        many_heads = count / tails >= threshold
    return np.where(count > 0, 2 * many_heads + many_tails, -1)


def relation_results(
    ranks: np.ndarray, triples: np.ndarray, train: np.ndarray, relation_names: Sequence[str]
) -> dict:
    """{"per_category": ..., "per_relation": ...} blocks of results.json for one split.

    Args:
      ranks: float [4, n] filtered ranks of `triples` (head optimistic, head pessimistic,
        tail optimistic, tail pessimistic), as `link_prediction.filtered_ranks` returns them.
      triples: int [n, 3] the ranked triples.
      train: int [m, 3] the training triples, which set the categories.
      relation_names: the R names, in id order.

    Returns:
      {"per_category": {category: {"num_relations", "num_triples"[, "head", "tail", "both":
       `rank_metrics`]}} for each of `CATEGORIES`, the metrics where the split has triples of
       that category ("num_relations" counts the category's relations in train);
       "per_relation": {name: {"category", "num_triples", "mrr", "hits@10"}} over both sides,
       for the relations with triples in the split}.
    """
    ranks = np.asarray(ranks, np.float64)
    head, tail = (ranks[0] + ranks[1]) / 2, (ranks[2] + ranks[3]) / 2
    relations = np.asarray(triples)[:, 1]
    categories = relation_categories(train, len(relation_names))

    per_relation = {}
    for r in np.unique(relations):
        chosen = relations == r
        both = rank_metrics(np.concatenate([head[chosen], tail[chosen]]))
        per_relation[relation_names[r]] = {
            "category": CATEGORIES[categories[r]] if categories[r] >= 0 else None,
            "num_triples": int(chosen.sum()),
            "mrr": both["mrr"],
            "hits@10": both["hits@10"],
        }

    per_category = {}
    for c, name in enumerate(CATEGORIES):
        chosen = categories[relations] == c
        block = {"num_relations": int((categories == c).sum()), "num_triples": int(chosen.sum())}
        if chosen.any():
            block["head"] = rank_metrics(head[chosen])
            block["tail"] = rank_metrics(tail[chosen])
            block["both"] = rank_metrics(np.concatenate([head[chosen], tail[chosen]]))
        per_category[name] = block
    return {"per_category": per_category, "per_relation": per_relation}
