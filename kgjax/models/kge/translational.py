"""Translational distance models: TransE and RotatE.

Scoring follows the RotatE reference implementation (Sun et al., "RotatE: Knowledge Graph
Embedding by Relational Rotation in Complex Space", ICLR 2019,
github.com/DeepGraphLearning/KnowledgeGraphEmbedding): score = gamma - distance.

Shapes: V entities, D embedding width (`dim`), De and Dr entity and relation widths.
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
)


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
