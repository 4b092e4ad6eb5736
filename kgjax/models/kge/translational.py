"""Translational distance models: TransE and RotatE.

Scoring follows the RotatE reference implementation (Sun et al., "RotatE: Knowledge Graph
Embedding by Relational Rotation in Complex Space", ICLR 2019,
github.com/DeepGraphLearning/KnowledgeGraphEmbedding): score = gamma - distance.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from kgjax.models.kge.base import KGEModel, Params, complex_distance, l1_distance, split_complex


@dataclasses.dataclass(frozen=True)
class TransE(KGEModel):
    """TransE (Bordes et al., NIPS 2013): score = gamma - ||h + r - t||_1."""

    name = "transe"

    def tail_query(self, head, relation):
        return head + relation

    def head_query(self, relation, tail):
        return tail - relation

    def match(self, query, candidate):
        return self.gamma - l1_distance(query, candidate)


@dataclasses.dataclass(frozen=True)
class RotatE(KGEModel):
    """RotatE (Sun et al., ICLR 2019): score = gamma - sum_i |h_i r_i - t_i|, |r_i| = 1.

    Entities are complex ([re | im] halves); a relation is a phase, stored as a real vector
    and mapped to [-pi, pi] by phase = r / (range / pi) as in the reference.
    """

    name = "rotate"
    complex_entities = True

    def phase(self, relation: jax.Array) -> jax.Array:
        # The reference's literal pi, so phases agree with it bit for bit.
        return relation / (self.embedding_range / 3.14159265358979323846)

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

    def embeddings(self, params: Params) -> dict[str, np.ndarray]:
        """Entities as complex numbers, relations as phases in radians."""
        entity = super().embeddings(params)["entity"]
        phase = np.asarray(params["relation"], np.float64) / (self.embedding_range / math.pi)
        return {"entity": entity, "relation": phase.astype(np.float32)}
