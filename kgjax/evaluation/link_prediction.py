"""Filtered link prediction, batched on the device.

For each evaluation triple the true tail is ranked among all entities given (h, r), and
the true head given (r, t), with every other known true triple filtered out. All batches
run in one device call (lax.map); only the [4, n] ranks come back to the host.

Shapes: B batch, V entities, P filter budget, n evaluation triples.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from kgjax.data.triples import KGDataset
from kgjax.evaluation.metrics import link_prediction_metrics
from kgjax.models.base import KGEModel, Params
from kgjax.ops.ranking import filtered_ranks
from kgjax.ops.triple_index import DeviceTripleIndex


def rank_batch(model: KGEModel, params: Params, batch: jax.Array, index: DeviceTripleIndex):
    """Filtered ranks of one batch.

    Args:
      batch: int32 [B, 3] (head, relation, tail).
      index: the known true triples to filter.

    Returns:
      float32 [4, B]: head optimistic, head pessimistic, tail optimistic, tail pessimistic.
    """
    h, r, t = batch[:, 0], batch[:, 1], batch[:, 2]
    tail_filter, tail_mask = index.tails.answers(h, r)
    tail_ranks = filtered_ranks(model.score_t(params, h, r), t, tail_filter, tail_mask)
    head_filter, head_mask = index.heads.answers(t, r)
    head_ranks = filtered_ranks(model.score_h(params, r, t), h, head_filter, head_mask)
    return jnp.stack([*head_ranks, *tail_ranks])


@functools.partial(jax.jit, static_argnames=("model",))
def _rank_all(model, params, batches, index):
    return jax.lax.map(lambda batch: rank_batch(model, params, batch, index), batches)


def evaluate(
    model: KGEModel,
    params: Params,
    triples: np.ndarray,
    index: DeviceTripleIndex,
    batch_size: int,
) -> dict:
    """Filtered MR, MRR and Hits@k of `triples` (see `link_prediction_metrics`).

    Args:
      triples: int [n, 3] to rank.
      index: every known true triple (train + valid + test for the test split).
      batch_size: triples per batch; the last batch is padded and its padding dropped.
    """
    triples = np.asarray(triples, np.int32)
    n = len(triples)
    if n == 0:
        raise ValueError("no triples to evaluate")
    batch_size = min(batch_size, n)
    padded = np.concatenate([triples, np.repeat(triples[:1], (-n) % batch_size, axis=0)])
    batches = jnp.asarray(padded.reshape(-1, batch_size, 3))
    ranks = np.asarray(_rank_all(model, params, batches, index))  # [nb, 4, B]
    ranks = ranks.transpose(1, 0, 2).reshape(4, -1)[:, :n]
    return link_prediction_metrics(*ranks)


class Evaluator:
    """Evaluates a model on a dataset's valid and test splits with the right filters.

    Validation filters train + valid; test filters train + valid + test.
    """

    def __init__(self, model: KGEModel, dataset: KGDataset, batch_size: int):
        self.model = model
        self.dataset = dataset
        self.batch_size = batch_size
        self._indices: dict[str, DeviceTripleIndex] = {}

    def index(self, split: str) -> DeviceTripleIndex:
        if split not in self._indices:
            splits = ("train", "valid") if split == "valid" else ("train", "valid", "test")
            self._indices[split] = DeviceTripleIndex.from_host(self.dataset.triple_index(splits))
        return self._indices[split]

    def __call__(self, params: Params, split: str) -> dict:
        return evaluate(
            self.model, params, self.dataset.splits[split], self.index(split), self.batch_size
        )
