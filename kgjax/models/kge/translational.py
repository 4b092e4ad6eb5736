"""Distance models: TransE, RotatE and PairRE.

Scoring follows the RotatE reference implementation (Sun et al., "RotatE: Knowledge Graph
Embedding by Relational Rotation in Complex Space", ICLR 2019,
github.com/DeepGraphLearning/KnowledgeGraphEmbedding), on which PairRE's repository
(github.com/alipay/KnowledgeGraphEmbeddingsViaPairedRelationVectors_PairRE) adds its score
function: score = gamma - distance.

Shapes: V entities, R relations, D embedding width (`dim`), De and Dr entity and relation
widths, Dq query width.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from kgjax.models.kge.base import (
    DistanceInteraction,
    KGEModel,
    Params,
    complex_distance,
    embedding_range,
    l1_distance,
    split_complex,
    unbroadcast,
)

# torch.nn.functional.normalize's eps: x / max(||x||_2, eps), as PairRE's reference normalises.
_NORMALIZE_EPS = 1e-12


@dataclasses.dataclass(frozen=True)
class TransEInteraction(DistanceInteraction):
    """TransE (Bordes et al., NIPS 2013): score(h, r, t) = gamma - ||h + r - t||_1.

    Vectors are real: h, t [..., D] (De = D), r [..., D] (Dr = D).
    """

    def tail_query(self, head, relation):
        return head + relation

    def head_query(self, relation, tail):
        return tail - relation

    def match(self, query, candidate):
        return self.gamma - l1_distance(query, candidate)


@dataclasses.dataclass(frozen=True)
class RotatEInteraction(DistanceInteraction):
    """RotatE (Sun et al., ICLR 2019): score(h, r, t) = gamma - sum_i |h_i r_i - t_i|
    with |r_i| = 1.

    h, t [..., 2D] are complex as [re | im] halves (De = 2D); r [..., D] (Dr = D) is a phase,
    stored as a real vector and mapped to [-pi, pi] by phase = r / (range / pi) with the
    reference's range (gamma + 2) / D.
    """

    complex_entities = True

    def phase(self, relation: jax.Array) -> jax.Array:
        """[..., D] stored relation -> [..., D] radians."""
        # The reference's literal pi, so phases agree with it bit for bit.
        return relation / (embedding_range(self.gamma, self.dim) / 3.14159265358979323846)

    def tail_query(self, head, relation):
        re_h, im_h = split_complex(head)
        phase = self.phase(relation)
        re_r, im_r = jnp.cos(phase), jnp.sin(phase)
        return jnp.concatenate([re_h * re_r - im_h * im_r, re_h * im_r + im_h * re_r], axis=-1)

    def head_query(self, relation, tail):
        # |h r - t| = |h - conj(r) t| because |r| = 1: the reference's head-batch form.
        re_t, im_t = split_complex(tail)
        phase = self.phase(relation)
        re_r, im_r = jnp.cos(phase), jnp.sin(phase)
        return jnp.concatenate([re_r * re_t + im_r * im_t, re_r * im_t - im_r * re_t], axis=-1)

    def match(self, query, candidate):
        return self.gamma - complex_distance(query, candidate)


def unit_l2(x: jax.Array) -> jax.Array:
    """[..., D] -> [..., D] x / max(||x||_2, 1e-12), torch's F.normalize(x, 2, -1).

    The maximum is taken on the squared norm, so the gradient stays finite at x = 0 (where
    autodiff of a plain norm gives 0 / 0)."""
    squared = jnp.sum(x * x, axis=-1, keepdims=True)
    return x / jnp.sqrt(jnp.maximum(squared, _NORMALIZE_EPS**2))


def _pairre_distance(query: jax.Array, candidate: jax.Array) -> jax.Array:
    first, scale = jnp.split(query, 2, axis=-1)
    return jnp.sum(jnp.abs(first - unit_l2(candidate) * scale), axis=-1)


@jax.custom_vjp
def pairre_distance(query: jax.Array, candidate: jax.Array) -> jax.Array:
    """PairRE's || q_1 - c / ||c|| * q_2 ||_1 for a query [q_1 | q_2].

    The backward pass keeps only the two inputs and recomputes what it needs, as base.py's
    `_recomputing_vjp` does for TransE and RotatE (autodiff keeps the [..., D] unit candidates
    and sign mask of the forward, `jax.ad_checkpoint.print_saved_residuals` shows): the
    gradient autodiff gives, with torch's subgradients (sign(0) = 0 for the L1 norm, I / eps
    through the normalisation of a candidate shorter than eps).

    Args:
      query: [..., 2D].
      candidate: [..., D], broadcastable against `query`'s leading shape.

    Returns:
      [...].
    """
    return _pairre_distance(query, candidate)


def _pairre_distance_forward(query, candidate):
    return _pairre_distance(query, candidate), (query, candidate)


def _pairre_distance_backward(residuals, g):
    query, candidate = residuals
    first, scale = jnp.split(query, 2, axis=-1)
    squared = jnp.sum(candidate * candidate, axis=-1, keepdims=True)
    size = jnp.sqrt(jnp.maximum(squared, _NORMALIZE_EPS**2))
    unit = candidate / size
    d_first = g[..., None].astype(query.dtype) * jnp.sign(first - unit * scale)
    d_unit = -d_first * scale
    # Through c / max(||c||, eps): (I - u u^T) / ||c|| above eps, I / eps below it.
    along = jnp.sum(unit * d_unit, axis=-1, keepdims=True)
    radial = jnp.where(squared > _NORMALIZE_EPS**2, unit * along, 0.0)
    d_query = jnp.concatenate([d_first, -d_first * unit], axis=-1)
    return (
        unbroadcast(d_query, query.shape),
        unbroadcast((d_unit - radial) / size, candidate.shape).astype(candidate.dtype),
    )


pairre_distance.defvjp(_pairre_distance_forward, _pairre_distance_backward)


@dataclasses.dataclass(frozen=True)
class PairREInteraction(DistanceInteraction):
    """PairRE (Chao et al., ACL 2021): score(h, r, t) = gamma - || h o r^H - t o r^T ||_1 with
    h and t normalised to unit L2 norm (||h||_2 = ||t||_2 = 1), o the elementwise product.

    h, t [..., D] are real (De = D); each relation is two vectors, stored as one row
    r = [r^H | r^T] [..., 2D] (Dr = 2D). Entities are normalised inside the score, as the
    reference does (F.normalize, L1 distance), so any vectors can be scored.

    The candidate's transform depends on the relation (t o r^T), so a query carries it: the
    tail query is [h o r^H | r^T] and the head query [t o r^T | r^H], both [..., 2D]
    (Dq = 2De), and match(q, c) = gamma - || q_1 - c / ||c|| o q_2 ||_1 serves both sides
    (||h o r^H - t o r^T|| = ||t o r^T - h o r^H||).
    """

    @property
    def relation_width(self) -> int:
        """Dr = 2D: [r^H | r^T]."""
        return 2 * self.dim

    def tail_query(self, head, relation):
        head_scale, tail_scale = jnp.split(relation, 2, axis=-1)
        moved = unit_l2(head) * head_scale
        return jnp.concatenate([moved, jnp.broadcast_to(tail_scale, moved.shape)], axis=-1)

    def head_query(self, relation, tail):
        head_scale, tail_scale = jnp.split(relation, 2, axis=-1)
        moved = unit_l2(tail) * tail_scale
        return jnp.concatenate([moved, jnp.broadcast_to(head_scale, moved.shape)], axis=-1)

    def match(self, query, candidate):
        return self.gamma - pairre_distance(query, candidate)


@dataclasses.dataclass(frozen=True)
class TransE(KGEModel):
    """TransE on free tables: `TransEInteraction` over `EmbeddingTables`."""

    name = "transe"
    interaction_class = TransEInteraction


@dataclasses.dataclass(frozen=True)
class RotatE(KGEModel):
    """RotatE on free tables: `RotatEInteraction` over `EmbeddingTables`."""

    name = "rotate"
    interaction_class = RotatEInteraction

    def phase(self, relation: jax.Array) -> jax.Array:
        """[..., D] stored relation -> [..., D] radians (`RotatEInteraction.phase`)."""
        return self.interaction.phase(relation)

    def embeddings(self, params: Params) -> dict[str, np.ndarray]:
        """Entities as complex numbers, relations as phases in radians."""
        entity = super().embeddings(params)["entity"]
        phase = np.asarray(params["relation"], np.float64) / (self.embedding_range / math.pi)
        return {"entity": entity, "relation": phase.astype(np.float32)}


@dataclasses.dataclass(frozen=True)
class PairRE(KGEModel):
    """PairRE on free tables: `PairREInteraction` over `EmbeddingTables`.

    Initialised as PairRE's repository (the RotatE reference's code): entity [V, D] and
    relation [R, 2D] tables Uniform(-(gamma + 2) / D, (gamma + 2) / D).
    """

    name = "pairre"
    interaction_class = PairREInteraction

    def embeddings(self, params: Params) -> dict[str, np.ndarray]:
        """Entities as the score sees them, unit L2 norm [V, D]; relations [R, 2, D], r^H
        then r^T."""
        entity = np.asarray(unit_l2(jnp.asarray(params["entity"], jnp.float32)))
        relation = np.asarray(params["relation"], np.float32)
        return {"entity": entity, "relation": relation.reshape(-1, 2, self.dim)}
