"""Diagnostics of a trained link predictor: own-entity answers and MRR per relation.

A query's own entity is h for (h, r, ?) and t for (?, r, t). Under the filtered protocol it
is a candidate like any other (unless the self-loop is a known triple), so a model whose
relations collapsed towards the identity ranks it first and loses Hits@1 everywhere while
Hits@10 barely moves. These functions take what the evaluator already has per query (scores
against every entity, the filter of known answers in `kgjax.ops.ranking`'s form, filtered
ranks) and say how often that happens, and which relations carry the MRR.

Host side, NumPy, like `metrics`. Shapes: B queries, V entities, W filter budget, R relations,
n ranked queries (both sides of a split).
"""

from __future__ import annotations

import numpy as np

from kgjax.evaluation.metrics import rank_metrics


def own_entity(
    scores: np.ndarray,
    answers: np.ndarray,
    own: np.ndarray,
    filter_ids: np.ndarray,
    filter_mask: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Whether each query answers with its own entity, and where it ranks that entity.

    Both look at the filtered candidates: every known answer other than the true one is
    removed, as for the true answer's filtered rank.

    Args:
      scores: float [B, V] scores of every candidate (higher = better).
      answers: int [B] the true answer of each query.
      own: int [B] the query's own entity (its head when tails are predicted, else its tail).
      filter_ids: int [B, W] known true answers (may include the true one; padded entries
        are masked), as `kgjax.ops.triple_index.CSRSide.answers` returns them.
      filter_mask: bool [B, W] which entries of `filter_ids` are real.

    Returns:
      (top1 bool [B]: the best filtered candidate is the own entity, and the own entity is
      not the true answer (ties go to the lower id, as `np.argmax`);
      rank float [B]: 1 + the filtered candidates scoring above the own entity, NaN where
      the own entity is a known answer or the true one).
    """
    scores = np.array(scores, np.float64)
    answers, own = np.asarray(answers), np.asarray(own)
    filter_ids, filter_mask = np.asarray(filter_ids), np.asarray(filter_mask, bool)
    others = filter_mask & (filter_ids != answers[:, None])
    rows = np.broadcast_to(np.arange(len(scores))[:, None], filter_ids.shape)
    scores[rows[others], filter_ids[others]] = -np.inf
    best = np.argmax(scores, axis=1)
    top1 = (best == own) & (own != answers)
    own_score = np.take_along_axis(scores, own[:, None], axis=1)
    rank = 1.0 + np.sum(scores > own_score, axis=1)
    known = (own == answers) | np.any(filter_mask & (filter_ids == own[:, None]), axis=1)
    return top1, np.where(known, np.nan, rank)


def per_relation_mrr(
    ranks: np.ndarray, relations: np.ndarray, num_relations: int
) -> tuple[np.ndarray, np.ndarray]:
    """The queries and the mean reciprocal rank of each relation.

    Args:
      ranks: float [n] filtered ranks (1 = best).
      relations: int [n] each query's relation.
      num_relations: R.

    Returns:
      (count int [R], mrr float [R], NaN for a relation without queries).
    """
    relations = np.asarray(relations)
    count = np.bincount(relations, minlength=num_relations)
    total = np.bincount(
        relations, weights=1.0 / np.asarray(ranks, np.float64), minlength=num_relations
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        return count, np.where(count > 0, total / count, np.nan)


def self_prediction_metrics(
    ranks: np.ndarray, top1: np.ndarray, own_rank: np.ndarray
) -> dict[str, float]:
    """`rank_metrics` of the true answers plus the own entity's.

    Args:
      ranks: float [n] the true answers' filtered ranks.
      top1, own_rank: bool [n] and float [n] from `own_entity`.

    Returns:
      `rank_metrics(ranks)` with "queries" (n), "own_top1" (the fraction of queries answered
      with their own entity) and "own_rank_median" (over the queries whose own entity is not
      a known answer; NaN if there are none).
    """
    own_rank = np.asarray(own_rank, np.float64)
    known = np.isnan(own_rank)
    return {
        **rank_metrics(ranks),
        "queries": int(len(ranks)),
        "own_top1": float(np.mean(top1)),
        "own_rank_median": float(np.median(own_rank[~known])) if (~known).any() else float("nan"),
    }
