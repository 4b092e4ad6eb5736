"""Few-shot relation classification: entity-start features and a prototypical classifier.

Features (`relation_features`): the encoder's final hidden states at the first token of the
head and of the tail mention, concatenated ([Z_h; Z_t], 2D wide), as FewRel's BERT baselines
and JAKET's few-shot experiments represent an instance. With a knowledge module, vectors are
merged into LM1's output at the mention tokens before LM2 (`encoder.merge`); without any, the
features are the plain encoder's.

Classifier (`prototypical_accuracy`, Snell et al., NeurIPS 2017): each way's prototype is the
mean of its K support features; a query goes to the nearest prototype in squared Euclidean
distance. No parameter is trained: the episodes measure what the representation already
separates, the same for every system.

Shapes: n instances, L tokens, D hidden width, F = 2D feature width, E episodes, N ways,
K shots, Q queries per way.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from kgjax.data.fewrel import Episodes
from kgjax.models.lm import encoder as encoder_lib

__all__ = ["prototypical_accuracy", "relation_features"]


@functools.partial(jax.jit, static_argnames=("config",))
def relation_features(
    params: dict,
    ids: jax.Array,
    mask: jax.Array,
    spans: jax.Array,
    vectors: jax.Array,
    vector_mask: jax.Array,
    *,
    config: encoder_lib.EncoderConfig,
) -> jax.Array:
    """[Z_h; Z_t] of each instance: float [B, 2D].

    Args:
      params, config: the encoder's.
      ids, mask: int [B, L] tokens.
      spans: int [B, 2, 2] (first, last) token of the head (row 0) and the tail (row 1).
      vectors: float [B, 2, D] knowledge vectors to merge at the head's and tail's tokens.
      vector_mask: bool [B, 2], False where a mention gets nothing (then, for the whole
        batch, the plain encoder: `merge` leaves every position without a vector untouched).
    """
    hidden = encoder_lib.lower(params, ids, mask, config=config)
    additions, injected = encoder_lib.span_additions(vectors, spans, vector_mask, ids.shape[1])
    hidden = encoder_lib.merge(params, hidden, additions, injected, config=config)
    hidden = encoder_lib.upper(params, hidden, mask, config=config)
    rows = jnp.arange(ids.shape[0])[:, None]
    starts = hidden[rows, spans[..., 0]]  # [B, 2, D]
    return starts.reshape(ids.shape[0], -1)


def prototypical_accuracy(features: np.ndarray, episodes: Episodes) -> np.ndarray:
    """Each episode's query accuracy: float [E].

    Args:
      features: float [n, F] one row per instance.
      episodes: support [E, N, K], query [E, N * Q] indices into `features`, labels.
    """
    features = np.asarray(features, np.float64)
    prototypes = features[episodes.support].mean(axis=2)  # [E, N, F]
    queries = features[episodes.query]  # [E, NQ, F]
    distances = (
        np.sum(queries**2, -1)[..., None]
        - 2 * np.einsum("eqf,enf->eqn", queries, prototypes)
        + np.sum(prototypes**2, -1)[:, None, :]
    )
    predicted = np.argmin(distances, axis=-1)
    return np.mean(predicted == episodes.labels, axis=-1)
