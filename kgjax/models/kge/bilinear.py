"""Bilinear (semantic matching) models: DistMult, ComplEx and RESCAL.

All score by a dot product of a query with the candidate, so scoring against all entities
is one matrix product. DistMult and ComplEx follow the RotatE reference implementation,
RESCAL LibKGE's (github.com/uma-pi1/kge, kge/model/rescal.py).

Shapes: V entities, R relations, D embedding width (`dim`), De and Dr entity and relation
widths.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from kgjax.models.kge.base import (
    BilinearInteraction,
    EmbeddingTables,
    KGEModel,
    Params,
    split_complex,
)


@dataclasses.dataclass(frozen=True)
class DistMultInteraction(BilinearInteraction):
    """DistMult (Yang et al., ICLR 2015): score(h, r, t) = sum_i h_i r_i t_i.

    Vectors are real: h, t [..., D] (De = D), r [..., D] (Dr = D).
    """

    def tail_query(self, head, relation):
        return head * relation

    def head_query(self, relation, tail):
        return relation * tail


@dataclasses.dataclass(frozen=True)
class ComplExInteraction(BilinearInteraction):
    """ComplEx (Trouillon et al., ICML 2016): score(h, r, t) = Re(sum_i h_i r_i
    conj(t_i)).

    h, r, t [..., 2D] are complex as [re | im] halves (De = Dr = 2D); with that layout
    Re(q conj(c)) is the plain dot product of query and candidate.
    """

    complex_entities = True
    complex_relations = True

    def tail_query(self, head, relation):
        re_h, im_h = split_complex(head)
        re_r, im_r = split_complex(relation)
        return jnp.concatenate([re_h * re_r - im_h * im_r, re_h * im_r + im_h * re_r], axis=-1)

    def head_query(self, relation, tail):
        # Re(h r conj(t)) = Re(h conj(conj(r) t)): the query for heads is conj(r) t.
        re_r, im_r = split_complex(relation)
        re_t, im_t = split_complex(tail)
        return jnp.concatenate([re_r * re_t + im_r * im_t, re_r * im_t - im_r * re_t], axis=-1)


@dataclasses.dataclass(frozen=True)
class RESCALInteraction(BilinearInteraction):
    """RESCAL (Nickel et al., ICML 2011): score(h, r, t) = h^T M_r t
    = sum_ij h_i M_r[i, j] t_j, with M_r a full D x D matrix per relation.

    h, t [..., D] are real (De = D); M_r is stored row-major as one relation row r
    [..., D * D] (Dr = D^2, M_r[i, j] = r[i * D + j], LibKGE's layout). The tail query is
    h^T M_r and the head query M_r t, both [..., D], so a candidate is matched by the dot
    product and all entities by one matrix product.
    """

    @property
    def relation_width(self) -> int:
        """Dr = D^2."""
        return self.dim * self.dim

    def matrix(self, relation: jax.Array) -> jax.Array:
        """[..., D * D] stored relation -> [..., D, D] M_r."""
        return relation.reshape(*relation.shape[:-1], self.dim, self.dim)

    def tail_query(self, head, relation):
        return jnp.einsum("...i,...ij->...j", head, self.matrix(relation))

    def head_query(self, relation, tail):
        return jnp.einsum("...ij,...j->...i", self.matrix(relation), tail)


@dataclasses.dataclass(frozen=True)
class DistMult(KGEModel):
    """DistMult on free tables: `DistMultInteraction` over `EmbeddingTables`."""

    name = "distmult"
    interaction_class = DistMultInteraction


@dataclasses.dataclass(frozen=True)
class ComplEx(KGEModel):
    """ComplEx on free tables: `ComplExInteraction` over `EmbeddingTables`."""

    name = "complex"
    interaction_class = ComplExInteraction


@dataclasses.dataclass(frozen=True)
class RESCAL(KGEModel):
    """RESCAL on free tables: `RESCALInteraction` over `EmbeddingTables`.

    Initialised by LibKGE's RESCAL `auto_initialization` rule (kge/model/rescal.py): entries
    of both tables Normal(0, D^(-1/3)), so that h^T M_r t has unit variance at the start
    (Var = D^2 std^6). (LibKGE's published runs searched the initialisation instead; PyKEEN
    draws Uniform(0, 1): all-positive scores of about D^2 / 8, which saturate the sigmoid and
    softmax losses.) `gamma` plays no part: RESCAL has no margin, and
    `embedding_range` (the scale `text.init=text` projects entities to) is sqrt(3) std, the
    half-width of a uniform distribution with the tables' spread.
    """

    name = "rescal"
    interaction_class = RESCALInteraction

    @property
    def std(self) -> float:
        """The tables' initial standard deviation: D^(-1/3), or `init_std` where set."""
        return self.init_std or self.dim ** (-1.0 / 3.0)

    @property
    def embedding_range(self) -> float:
        return math.sqrt(3.0) * self.std

    @property
    def tables(self) -> EmbeddingTables:
        return dataclasses.replace(super().tables, std=self.std)

    def embeddings(self, params: Params) -> dict[str, np.ndarray]:
        """Entity vectors [V, D] and relation matrices [R, D, D]."""
        entity = np.asarray(params["entity"], np.float32)
        relation = np.asarray(params["relation"], np.float32)
        return {"entity": entity, "relation": relation.reshape(-1, self.dim, self.dim)}
