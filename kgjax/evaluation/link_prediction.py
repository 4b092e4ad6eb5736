"""Filtered link prediction, batched on the device, with tables split over devices.

For each evaluation triple the true tail is ranked among all entities given (h, r), and
the true head given (r, t), with every other known true triple filtered out. All batches
run in one device call (lax.map inside a shard_map); only the [4, n] ranks come back.

On a mesh (see `kgjax.parallel.layout`) the evaluation triples are split along "data" and the
entity table along "model": each device scores its batch slice against its own entity rows
only, counts how many of them beat the true answer (`ops.ranking.filtered_rank_counts`),
and a psum over "model" adds the counts. The [B, V] score matrix is never assembled, the
padding rows are never candidates, and on one device this is the plain computation.

Shapes: B batch, V entities, W filter budget, n evaluation triples, Xm model-axis size.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from kgjax.data.triples import KGDataset
from kgjax.evaluation.metrics import link_prediction_metrics
from kgjax.models.kge.base import KGEModel, Params
from kgjax.ops.ranking import filtered_rank_counts, ranks_from_counts
from kgjax.ops.triple_index import DeviceTripleIndex
from kgjax.parallel.layout import TABLES, Layout, shard_map


def _true_scores(layout: Layout, scores, true_ids, offset):
    """Inside shard_map: each true answer's score, taken from its owner's column and shared."""
    local = true_ids - offset
    owned = (local >= 0) & (local < scores.shape[1])
    picked = jnp.take_along_axis(scores, jnp.clip(local, 0, scores.shape[1] - 1)[:, None], 1)
    # Exactly one shard owns each answer and the others add 0, so the sum is exact (and on
    # one shard the psum is free).
    return jax.lax.psum(jnp.where(owned, picked[:, 0], 0.0), layout.mesh_axes("entity"))


def rank_shard(
    model: KGEModel, layout: Layout, params: Params, batch, index, inverse_offset: int | None
):
    """Inside shard_map: filtered ranks of one batch slice, counted over this shard's rows.

    Args:
      params: this device's shards {"entity": [V' / Xm, De], "relation": [R' / Xm, Dr]}
        (V', R': padded rows).
      batch: int32 [B, 3] (head, relation, tail), the same on every device of a model group.
      index: the known true triples to filter (replicated).
      inverse_offset: R for a model with reciprocal relations (relation r + R is r's
        inverse): heads of (?, r, t) are ranked as tails of (t, r + R, ?). None: by
        `head_query`.

    Returns:
      float32 [4, B]: head optimistic, head pessimistic, tail optimistic, tail pessimistic.
    """
    model = model.bind(params)  # TuckER's and ConvE's own weights; no dropout
    entity, relation = params["entity"], params["relation"]
    h, r, t = batch[:, 0], batch[:, 1], batch[:, 2]
    head = layout.gather_in_group(entity, h, "entity")
    rel = layout.gather_in_group(relation, r, "relation")
    tail = layout.gather_in_group(entity, t, "entity")
    offset = layout.shard_offset("entity", entity.shape[0])
    num_entities = layout.num_entities
    padded = layout.entity_rows > num_entities

    def ranks(query, true_ids, filter_ids, filter_mask):
        scores = model.match_all(query, entity)  # [B, V' / Xm]: this shard's columns only
        true_score = _true_scores(layout, scores, true_ids, offset)
        counts = filtered_rank_counts(
            scores,
            true_score,
            true_ids,
            filter_ids,
            filter_mask,
            offset,
            num_entities if padded else None,
        )
        counts = jax.lax.psum(counts, layout.mesh_axes("entity"))
        return ranks_from_counts(counts, true_score, num_entities)

    tail_ranks = ranks(model.tail_query(head, rel), t, *index.tails.answers(h, r))
    if inverse_offset is None:
        head_query = model.head_query(rel, tail)
    else:
        inverse = layout.gather_in_group(relation, r + inverse_offset, "relation")
        head_query = model.tail_query(tail, inverse)
    head_ranks = ranks(head_query, h, *index.heads.answers(t, r))
    return jnp.stack([*head_ranks, *tail_ranks])


def _param_specs(layout: Layout, params: Params):
    return {key: layout.spec(key, "embed") if key in TABLES else P() for key in params}


@functools.partial(jax.jit, static_argnames=("model", "layout", "inverse_offset"))
def rank_all(model, layout, params, batches, index, inverse_offset=None):
    """Filtered ranks of every evaluation triple, each model shard scoring its own rows.

    Args:
      params: the tables as the layout holds them (`layout.place_params`).
      batches: int32 [n_batches, B, 3] triples, padded, split along "eval_batch".
      index: the filter's `DeviceTripleIndex`, replicated.
      inverse_offset: see `rank_shard`.

    Returns:
      The `filtered_rank_counts` of each triple, [n_batches, 4, B], replicated.
    """
    batch_axis = layout.spec(None, "eval_batch")[1]

    def body(params, batches, index):
        return jax.lax.map(
            lambda b: rank_shard(model, layout, params, b, index, inverse_offset), batches
        )

    ranks = shard_map(
        body,
        mesh=layout.mesh,
        in_specs=(_param_specs(layout, params), P(None, batch_axis, None), P()),
        out_specs=P(None, None, batch_axis),
    )(params, batches, index)
    # The ranks are small: every host gets all of them.
    return jax.lax.with_sharding_constraint(ranks, layout.replicated)


def filtered_ranks(
    model: KGEModel,
    params: Params,
    triples: np.ndarray,
    index: DeviceTripleIndex,
    batch_size: int,
    layout: Layout | None = None,
    inverse_offset: int | None = None,
) -> np.ndarray:
    """The filtered rank of each triple's head and tail among all entities.

    Args:
      params: the tables, either as the model made them ([V, De], [R, Dr]) or padded and
        split as `layout` lays them out (a training state's parameters).
      triples: int [n, 3] to rank.
      index: every known true triple (train + valid + test for the test split).
      batch_size: triples per batch (rounded up to a multiple of the data-axis size); the
        last batch is padded and its padding dropped.
      layout: the mesh and table sizes; default one device.
      inverse_offset: R for a model trained with reciprocal relations (see `rank_shard`).

    Returns:
      float [4, n] on the host: head optimistic, head pessimistic, tail optimistic, tail
      pessimistic (1 = best).

    Raises:
      ValueError: no triples.
    """
    layout = layout or Layout.single_device(model.num_entities, model.num_relations)
    triples = np.asarray(triples, np.int32)
    n = len(triples)
    if n == 0:
        raise ValueError("no triples to evaluate")
    batch_size = layout.padded(min(batch_size, n), "eval_batch")
    padded = np.concatenate([triples, np.repeat(triples[:1], (-n) % batch_size, axis=0)])
    batches = layout.put(padded.reshape(-1, batch_size, 3), None, "eval_batch", None)
    ranks = rank_all(
        model,
        layout,
        layout.place_params(params),
        batches,
        layout.replicate(index),
        inverse_offset,
    )
    ranks = layout.fetch(ranks)  # [nb, 4, B]
    return ranks.transpose(1, 0, 2).reshape(4, -1)[:, :n]


def evaluate(model, params, triples, index, batch_size, layout=None, inverse_offset=None) -> dict:
    """Filtered MR, MRR and Hits@k of `triples` (see `link_prediction_metrics`).

    Args: as for `filtered_ranks`.
    """
    return link_prediction_metrics(
        *filtered_ranks(model, params, triples, index, batch_size, layout, inverse_offset)
    )


@functools.partial(jax.jit, static_argnames=("model", "layout", "predict_tails", "inverse_offset"))
def _score_all(model, layout, params, anchors, relations, predict_tails, inverse_offset):
    def body(params, anchors, relations):
        bound, entity = model.bind(params), params["entity"]
        anchor = layout.gather_in_group(entity, anchors, "entity")
        if predict_tails or inverse_offset is None:
            rel = layout.gather_in_group(params["relation"], relations, "relation")
            query = (
                bound.tail_query(anchor, rel) if predict_tails else bound.head_query(rel, anchor)
            )
        else:
            inverse = relations + inverse_offset
            query = bound.tail_query(
                anchor, layout.gather_in_group(params["relation"], inverse, "relation")
            )
        return bound.match_all(query, entity)

    scores = shard_map(
        body,
        mesh=layout.mesh,
        in_specs=(_param_specs(layout, params), P(), P()),
        out_specs=layout.spec(None, "entity"),
    )(params, anchors, relations)
    return jax.lax.with_sharding_constraint(scores[:, : layout.num_entities], layout.replicated)


def score_all(
    model: KGEModel,
    params: Params,
    anchors: np.ndarray,
    relations: np.ndarray,
    predict_tails: bool,
    layout: Layout | None = None,
    inverse_offset: int | None = None,
) -> np.ndarray:
    """Scores of every entity as the tail of (anchor, relation) or the head of (relation, anchor).

    The same numbers as `model.score_t` / `model.score_h`, computed shard by shard on a
    split table (each device scores its own rows) for a few queries at a time.

    Args:
      params, layout: as for `evaluate`.
      anchors, relations: int [B] ids.
      predict_tails: True for tails of (anchor, relation, ?), False for heads of (?, relation,
        anchor).
      inverse_offset: R for a model trained with reciprocal relations (see `rank_shard`).

    Returns:
      float32 [B, V] on the host.
    """
    layout = layout or Layout.single_device(model.num_entities, model.num_relations)
    anchors, relations = (
        layout.put(np.asarray(x, np.int32).reshape(-1)) for x in (anchors, relations)
    )
    scores = _score_all(
        model, layout, layout.place_params(params), anchors, relations, predict_tails,
        inverse_offset,
    )  # fmt: skip
    return layout.fetch(scores)


@functools.partial(jax.jit, static_argnames=("model",))
def _score_batches(model, params, batches):
    # Plain jit over the split tables: the compiler gathers each triple's rows from their
    # shards (padding rows are never indexed).
    return jax.lax.map(lambda b: model.score_hrt(params, b[:, 0], b[:, 1], b[:, 2]), batches)


def score_triples(
    model: KGEModel,
    params: Params,
    triples: np.ndarray,
    batch_size: int,
    layout: Layout | None = None,
) -> np.ndarray:
    """`model.score_hrt` of each triple, batch by batch in one device call.

    Args:
      params, layout: as for `filtered_ranks`.
      triples: int [n, 3] (head, relation, tail).
      batch_size: triples per batch (rounded up to a multiple of the data-axis size).

    Returns:
      float32 [n] on the host.
    """
    layout = layout or Layout.single_device(model.num_entities, model.num_relations)
    triples = np.asarray(triples, np.int32).reshape(-1, 3)
    n = len(triples)
    if n == 0:
        return np.zeros(0, np.float32)
    batch_size = layout.padded(min(batch_size, n), "eval_batch")
    padded = np.concatenate([triples, np.repeat(triples[:1], (-n) % batch_size, axis=0)])
    batches = layout.put(padded.reshape(-1, batch_size, 3), None, "eval_batch", None)
    scores = _score_batches(model, layout.place_params(params), batches)
    return layout.fetch(scores).reshape(-1)[:n]


class Evaluator:
    """Evaluates a model on a dataset's valid and test splits with the right filters.

    Validation filters train + valid; test filters train + valid + test. The filter indices
    are built once and copied to every device of the layout.
    """

    def __init__(
        self,
        model: KGEModel,
        dataset: KGDataset,
        batch_size: int,
        layout: Layout | None = None,
        inverse_offset: int | None = None,
    ):
        """Args: inverse_offset: R for a model trained with reciprocal relations."""
        self.model = model
        self.dataset = dataset
        self.batch_size = batch_size
        self.layout = layout or Layout.single_device(model.num_entities, model.num_relations)
        self.inverse_offset = inverse_offset
        self._indices: dict[str, DeviceTripleIndex] = {}

    def index(self, split: str) -> DeviceTripleIndex:
        if split not in self._indices:
            splits = ("train", "valid") if split == "valid" else ("train", "valid", "test")
            host = DeviceTripleIndex.from_host(self.dataset.triple_index(splits))
            self._indices[split] = self.layout.replicate(host)
        return self._indices[split]

    def ranks(self, params: Params, split: str) -> np.ndarray:
        """float [4, n]: `filtered_ranks` of the split's triples."""
        return filtered_ranks(
            self.model,
            params,
            self.dataset.splits[split],
            self.index(split),
            self.batch_size,
            self.layout,
            self.inverse_offset,
        )

    def __call__(self, params: Params, split: str) -> dict:
        """`link_prediction_metrics` of the split."""
        return link_prediction_metrics(*self.ranks(params, split))
