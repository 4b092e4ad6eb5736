"""Bilinear (semantic matching) models: DistMult and ComplEx.

Both score by a dot product of a query with the candidate, so scoring against all entities
is one matrix product. Scoring follows the RotatE reference implementation.

Shapes: D embedding width (`dim`), De and Dr entity and relation widths.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from kgjax.models.kge.base import BilinearInteraction, KGEModel, split_complex


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
class DistMult(KGEModel):
    """DistMult on free tables: `DistMultInteraction` over `EmbeddingTables`."""

    name = "distmult"
    interaction_class = DistMultInteraction


@dataclasses.dataclass(frozen=True)
class ComplEx(KGEModel):
    """ComplEx on free tables: `ComplExInteraction` over `EmbeddingTables`."""

    name = "complex"
    interaction_class = ComplExInteraction
