"""Ranking metrics: MR, MRR and Hits@k from ranks (host side, NumPy)."""

from __future__ import annotations

import numpy as np

HITS_AT = (1, 3, 10)


def rank_metrics(ranks: np.ndarray) -> dict[str, float]:
    """{"mrr", "mr", "hits@1", "hits@3", "hits@10"} of float ranks (1 = best)."""
    ranks = np.asarray(ranks, np.float64)
    if ranks.size == 0:
        raise ValueError("no ranks to summarise")
    out = {"mrr": float(np.mean(1.0 / ranks)), "mr": float(np.mean(ranks))}
    for k in HITS_AT:
        out[f"hits@{k}"] = float(np.mean(ranks <= k))
    return out


def link_prediction_metrics(
    head_optimistic: np.ndarray,
    head_pessimistic: np.ndarray,
    tail_optimistic: np.ndarray,
    tail_pessimistic: np.ndarray,
) -> dict:
    """Metrics for head, tail and both sides with realistic ranks at the top level.

    The realistic rank is the mean of the optimistic and pessimistic ranks (ties split
    evenly); both are reported beside it under "optimistic" and "pessimistic".

    Returns:
      {"both": m, "head": m, "tail": m, "optimistic": {"both", "head", "tail"},
       "pessimistic": {...}, "num_triples": n} with m from `rank_metrics`.
    """
    head = {"optimistic": head_optimistic, "pessimistic": head_pessimistic}
    tail = {"optimistic": tail_optimistic, "pessimistic": tail_pessimistic}
    for side in (head, tail):
        side["realistic"] = (side["optimistic"] + side["pessimistic"]) / 2

    def sides(kind):
        return {
            "both": rank_metrics(np.concatenate([head[kind], tail[kind]])),
            "head": rank_metrics(head[kind]),
            "tail": rank_metrics(tail[kind]),
        }

    out = sides("realistic")
    out["optimistic"] = sides("optimistic")
    out["pessimistic"] = sides("pessimistic")
    out["num_triples"] = int(len(head_optimistic))
    return out
