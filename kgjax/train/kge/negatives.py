"""Negative samplers: where the negatives of a training step come from.

A sampler is a frozen dataclass of static settings with three methods:

  features(num_entities, seed, sentences) -> {name: np.ndarray [V, ...]} fixed per-entity
      arrays it reads (loaded on the host once; they reach it as context.data.features);
      `sentences(L)` gives the entities' description sentence vectors when it needs them
  init(rng, model) -> sampler params, a pytree trained jointly with the model ({} if none)
  __call__(sampler_params, params, model, context) -> (negative scores [B, K], extra loss
      scalar added to the KGE loss, metrics dict of scalars)

It returns *scores*, not ids, so a learned sampler (MMRNS: Gumbel top-k with a
straight-through one-hot) can let gradients reach its own parameters through the
negatives' embeddings. Self-adversarial weighting is a property of the loss
(`negatives.adversarial_temperature`), not of the sampler.

Shapes: B batch, K negatives, De entity width.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct

from kgjax.models.kge.base import KGEModel, Params
from kgjax.ops import sampling
from kgjax.train.kge import mmrns as mmrns_sampler


@struct.dataclass
class SampleContext:
    """What a sampler may use at one step.

    Attributes:
      key: PRNG key of this step's negatives.
      step: int32 scalar, the step being taken.
      mode: int32 scalar, sampling.HEAD_BATCH or sampling.TAIL_BATCH.
      positives: int32 [B, 3] (head, relation, tail).
      query: float [B, De], the model's query for the corrupted side: negatives are
        scored as model.match(query[:, None], candidate embeddings).
      data: the TrainData (training triples, their index, and any features).
    """

    key: jax.Array
    step: jax.Array
    mode: jax.Array
    positives: jax.Array
    query: jax.Array
    data: object


# The score given to a negative the loss must leave out: log sigmoid(-s) is 0 and its
# self-adversarial weight exp(s) is 0, without the NaN an infinity would bring.
_EXCLUDED_SCORE = -1e30


@dataclasses.dataclass(frozen=True)
class UniformSampler:
    """Entities drawn uniformly, optionally rejecting known training triples (the reference).

    With `shared_chunk_size` > 1, each chunk of that many positives shares one draw of K
    negatives (DGL-KE's chunked sampling): the rows read per step shrink by that factor and
    the scores are one batched `match_all` per chunk (a matrix product for the bilinear
    models). Known training triples among the shared negatives are not redrawn: their score
    is set to `_EXCLUDED_SCORE`, so they add nothing to the loss and get no self-adversarial
    weight (with uniform weights the mean still divides by K).
    """

    num_negatives: int
    filtered: bool = True
    oversample: float = 2.0
    shared_chunk_size: int = 0  # 0 or 1: every positive its own negatives

    def features(self, num_entities, seed, sentences=None) -> dict:
        del num_entities, seed, sentences
        return {}

    def init(self, rng: jax.Array, model: KGEModel) -> Params:
        del rng, model
        return {}

    def __call__(self, sampler_params, params: Params, model: KGEModel, context: SampleContext):
        del sampler_params
        if self.shared_chunk_size > 1:
            return self._shared(params, model, context)
        batch_size = context.positives.shape[0]
        if self.filtered:
            ids, false_rate = sampling.filtered_uniform_negatives(
                context.key,
                context.positives,
                context.mode,
                self.num_negatives,
                model.num_entities,
                context.data.index.tails,
                context.data.index.heads,
                self.oversample,
            )
        else:
            ids = sampling.uniform_negatives(
                context.key, batch_size, self.num_negatives, model.num_entities
            )
            false_rate = jnp.float32(jnp.nan)
        scores = model.match(context.query[:, None, :], params["entity"][ids])
        return scores, jnp.float32(0.0), {"negatives_false_rate": false_rate}

    def _shared(self, params: Params, model: KGEModel, context: SampleContext):
        index = context.data.index if self.filtered else None
        ids, known = sampling.shared_negatives(
            context.key,
            context.positives,
            context.mode,
            self.num_negatives,
            model.num_entities,
            self.shared_chunk_size,
            index.tails if index is not None else None,
            index.heads if index is not None else None,
        )
        batch_size, width = context.query.shape
        rows = params["entity"][ids]  # [B / chunk, K, De]
        queries = context.query.reshape(-1, self.shared_chunk_size, width)
        scores = jax.vmap(model.match_all)(queries, rows).reshape(batch_size, -1)
        scores = jnp.where(known, _EXCLUDED_SCORE, scores)
        false_rate = jnp.mean(known.astype(jnp.float32)) if self.filtered else jnp.nan
        return scores, jnp.float32(0.0), {"negatives_false_rate": jnp.float32(false_rate)}


def with_self_negative(
    negative_scores: jax.Array,
    model: KGEModel,
    context: SampleContext,
    head: jax.Array,
    tail: jax.Array,
) -> jax.Array:
    """The sampler's negatives plus the query's own entity: [B, K] -> [B, K + 1].

    SimKGC's self-negative (Wang et al., ACL 2022): tail-batch rows also score (h, r, h),
    head-batch rows (t, r, t). When entities start near their neighbours (a text-initialised
    table), relations can drift to the identity and every query answers itself; uniform
    negatives almost never draw the query's own entity, so nothing stops it. A self-loop that
    is a known training triple gets `_EXCLUDED_SCORE` (no loss, no self-adversarial weight).

    Args:
      head, tail: float [B, De], the positives' entity rows (already read by the step).
    """
    head_batch = context.mode == sampling.HEAD_BATCH
    # The side that is not corrupted, as rows and as ids.
    own = jnp.where(head_batch, tail, head)
    own_ids = jnp.where(head_batch, context.positives[:, 2], context.positives[:, 0])
    scores = model.match(context.query, own)  # [B]
    index = context.data.index
    known = sampling.known_corruptions(
        context.positives, context.mode, own_ids[:, None], index.tails, index.heads
    )[:, 0]
    scores = jnp.where(known, _EXCLUDED_SCORE, scores)
    return jnp.concatenate([negative_scores, scores[:, None].astype(negative_scores.dtype)], 1)


def from_config(negatives):
    """The sampler a run's `negatives` section names ("uniform", "self_adversarial", "mmrns")."""
    if negatives.sampler in ("uniform", "self_adversarial"):
        return UniformSampler(
            negatives.num_negatives,
            negatives.filtered,
            negatives.oversample,
            negatives.shared_chunk_size,
        )
    if negatives.sampler == "mmrns":
        return mmrns_sampler.from_config(negatives)
    raise ValueError(f"config.negatives.sampler: unknown sampler {negatives.sampler!r}")
