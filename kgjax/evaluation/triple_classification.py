"""Triple classification: is (h, r, t) true? Thresholds per relation, chosen on valid.

The protocol of Socher et al. ("Reasoning With Neural Tensor Networks for Knowledge Base
Completion", NIPS 2013) on WN11 and FB13, as TransH and TransR report it: a triple is called
true when its score exceeds its relation's threshold; each relation's threshold maximises the
accuracy over the valid positives and labelled negatives of that relation; relations whose
valid examples are not of both labels use one global threshold, chosen the same way over all
valid examples. Accuracy and F1 (true triples are the positive class) are reported on test,
and on valid, where the thresholds were fitted (an optimistic figure).

Candidate thresholds are the cuts between consecutive distinct scores (at the midpoint) and
below or above all of them (-inf, +inf); tied scores always fall on the same side. Among
equally accurate cuts the lowest wins.

The labelled negatives come with the dataset (`KGDataset.negatives`); the scores are
`model.score_hrt`, computed on the device in batches by `link_prediction.score_triples`.
Everything else is NumPy on the host.

Shapes: n examples, R relations.
"""

from __future__ import annotations

import numpy as np

from kgjax.data.triples import KGDataset
from kgjax.evaluation.link_prediction import score_triples
from kgjax.models.kge.base import KGEModel, Params
from kgjax.parallel.layout import Layout


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """The threshold that classifies `scores` most accurately, and its accuracy.

    Args:
      scores: float [n] (n > 0); a triple is called true when its score is above the threshold.
      labels: bool [n] true triples.

    Returns:
      (threshold, accuracy): a midpoint between two consecutive distinct scores, or -inf (all
      true) or +inf (all false); the lowest of the equally accurate ones.
    """
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels, bool)
    order = np.argsort(scores, kind="stable")
    s, y = scores[order], labels[order]
    n = len(s)
    # Cut k calls the k lowest scores false: correct = negatives below + positives above.
    negatives_below = np.concatenate([[0], np.cumsum(~y)])
    positives_above = y.sum() - np.concatenate([[0], np.cumsum(y)])
    correct = negatives_below + positives_above  # [n + 1]
    allowed = np.ones(n + 1, bool)
    allowed[1:n] = s[:-1] < s[1:]  # never between tied scores
    k = int(np.argmax(np.where(allowed, correct, -1)))
    if k == 0:
        threshold = -np.inf
    elif k == n:
        threshold = np.inf
    else:
        low, high = s[k - 1], s[k]
        middle = low + (high - low) / 2
        # Adjacent floats: the midpoint may round up to `high`, which must stay above.
        threshold = middle if middle < high else low
    return float(threshold), float(correct[k] / n)


def relation_thresholds(
    scores: np.ndarray, labels: np.ndarray, relations: np.ndarray, num_relations: int
) -> tuple[np.ndarray, np.ndarray]:
    """A threshold per relation (`best_threshold` of its examples), else the global one.

    Args:
      scores: float [n] valid scores.
      labels: bool [n] true triples.
      relations: int [n] each example's relation.
      num_relations: R.

    Returns:
      (thresholds float64 [R], own bool [R]: the relation's examples include both labels and
      set its threshold; the others get `best_threshold` of all n examples).
    """
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels, bool)
    relations = np.asarray(relations)
    positives = np.bincount(relations[labels], minlength=num_relations)
    negatives = np.bincount(relations[~labels], minlength=num_relations)
    own = (positives > 0) & (negatives > 0)
    thresholds = np.full(num_relations, best_threshold(scores, labels)[0])
    for r in np.flatnonzero(own):
        chosen = relations == r
        thresholds[r] = best_threshold(scores[chosen], labels[chosen])[0]
    return thresholds, own


def classification_metrics(predicted: np.ndarray, labels: np.ndarray) -> dict:
    """{"accuracy", "f1", "num_positives", "num_negatives"}; true triples are the positive class.

    Args:
      predicted, labels: bool [n] (n > 0).
    """
    predicted = np.asarray(predicted, bool)
    labels = np.asarray(labels, bool)
    true_positives = int(np.sum(predicted & labels))
    errors = int(np.sum(predicted != labels))
    denominator = 2 * true_positives + errors
    return {
        "accuracy": float(np.mean(predicted == labels)),
        "f1": 2 * true_positives / denominator if denominator else 0.0,
        "num_positives": int(labels.sum()),
        "num_negatives": int((~labels).sum()),
    }


def classify(
    valid: tuple[np.ndarray, np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray, np.ndarray],
    num_relations: int,
) -> dict:
    """Fits thresholds on valid, classifies valid and test.

    Args:
      valid, test: (scores float [n], labels bool [n], relations int [n]) of each split.
      num_relations: R.

    Returns:
      {"valid": m, "test": m, "num_relation_thresholds": relations with their own threshold,
       "num_relations": R} with m from `classification_metrics`.
    """
    thresholds, own = relation_thresholds(*valid, num_relations)
    out = {}
    for name, (scores, labels, relations) in (("valid", valid), ("test", test)):
        predicted = np.asarray(scores, np.float64) > thresholds[np.asarray(relations)]
        out[name] = classification_metrics(predicted, labels)
    out["num_relation_thresholds"] = int(own.sum())
    out["num_relations"] = int(num_relations)
    return out


def triple_classification_results(
    model: KGEModel,
    params: Params,
    dataset: KGDataset,
    batch_size: int,
    layout: Layout | None = None,
) -> dict:
    """{"triple_classification": `classify` block} when the dataset has labelled negatives, else {}.

    The positives are the valid and test splits, the negatives `dataset.negatives`.

    Args:
      params, batch_size, layout: as for `link_prediction.score_triples`.
    """
    if not dataset.negatives:
        return {}
    examples = {
        split: np.concatenate([dataset.splits[split], dataset.negatives[split]])
        for split in ("valid", "test")
    }
    # One device call (one compilation) for both splits.
    scores = score_triples(
        model, params, np.concatenate(list(examples.values())), batch_size, layout
    )
    valid_count = len(examples["valid"])
    parts = {}
    for split, split_scores in (("valid", scores[:valid_count]), ("test", scores[valid_count:])):
        labels = np.arange(len(examples[split])) < len(dataset.splits[split])
        parts[split] = (split_scores, labels, examples[split][:, 1])
    return {"triple_classification": classify(parts["valid"], parts["test"], dataset.num_relations)}
