"""Losses of negative-sampling KGE training and the regularisers of every regime.

Shapes: B batch, K negatives, D embedding width.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from kgjax.models.kge.base import KGEModel, Params, split_complex


def negative_sampling_loss(
    positive_scores: jax.Array,
    negative_scores: jax.Array,
    weights: jax.Array | None,
    adversarial_temperature: float | None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The RotatE loss: -log sigmoid(s+) - sum_k w_k log sigmoid(-s_k), halved.

    Args:
      positive_scores: float [B].
      negative_scores: float [B, K].
      weights: float [B] subsampling weights, or None for a plain mean over the batch.
      adversarial_temperature: self-adversarial weights w = softmax(temperature * s_k)
        (no gradient through w), or None for uniform weights 1/K.

    Returns:
      (loss scalar, {"positive_loss", "negative_loss"}).
    """
    positive_terms, negative_terms = negative_sampling_terms(
        positive_scores, negative_scores, adversarial_temperature
    )
    if weights is None:
        positive_loss = -jnp.mean(positive_terms)
        negative_loss = -jnp.mean(negative_terms)
    else:
        total = jnp.sum(weights)
        positive_loss = -jnp.sum(weights * positive_terms) / total
        negative_loss = -jnp.sum(weights * negative_terms) / total
    loss = (positive_loss + negative_loss) / 2
    return loss, {"positive_loss": positive_loss, "negative_loss": negative_loss}


def negative_sampling_terms(
    positive_scores: jax.Array,
    negative_scores: jax.Array,
    adversarial_temperature: float | None,
) -> tuple[jax.Array, jax.Array]:
    """Each row's log-likelihoods: log sigmoid(s+) and sum_k w_k log sigmoid(-s_k).

    Args: as `negative_sampling_loss`.

    Returns:
      (positive terms float [B], negative terms float [B]); a row's loss is minus their
      mean.
    """
    if adversarial_temperature is None:
        negative_terms = jnp.mean(jax.nn.log_sigmoid(-negative_scores), axis=1)
    else:
        adversarial = jax.lax.stop_gradient(
            jax.nn.softmax(negative_scores * adversarial_temperature, axis=1)
        )
        negative_terms = jnp.sum(adversarial * jax.nn.log_sigmoid(-negative_scores), axis=1)
    return jax.nn.log_sigmoid(positive_scores), negative_terms


def l3_regularizer(params: Params) -> jax.Array:
    """The RotatE reference's "L3": ||E||_3^3 + ||R||_3^3 over the whole tables."""
    return jnp.sum(jnp.abs(params["entity"]) ** 3) + jnp.sum(jnp.abs(params["relation"]) ** 3)


def n3_regularizer(
    model: KGEModel,
    params: Params,
    positives: jax.Array,
    weights: tuple[float, float] | None = None,
) -> jax.Array:
    """N3 (Lacroix et al., ICML 2018) on the batch: mean_b sum_i |h_i|^3 + |r_i|^3 + |t_i|^3.

    For complex embeddings |.| is the modulus of each complex coordinate. Averaging over the
    batch's rows weighs each entity and relation by how often the batch reads it (LibKGE's
    "weighted" Lp penalty).

    Args:
      positives: int [B, 3].
      weights: (entity, relation) multipliers of the two tables' terms; None: 1 and 1.
    """

    def cubed(x, is_complex):
        if is_complex:
            re, im = split_complex(x)
            return jnp.sum((re * re + im * im) ** 1.5, axis=-1)
        return jnp.sum(jnp.abs(x) ** 3, axis=-1)

    entity, relation = params["entity"], params["relation"]
    head = cubed(entity[positives[:, 0]], model.complex_entities)
    rel = cubed(relation[positives[:, 1]], model.complex_relations)
    tail = cubed(entity[positives[:, 2]], model.complex_entities)
    if weights is not None:
        entity_weight, relation_weight = weights
        head, rel, tail = entity_weight * head, relation_weight * rel, entity_weight * tail
    return jnp.mean(head + rel + tail)
