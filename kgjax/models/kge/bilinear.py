"""Bilinear (semantic matching) models: DistMult and ComplEx.

Both score by a dot product of a query with the candidate, so scoring against all entities
is one matrix product. Scoring follows the RotatE reference implementation.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from kgjax.models.kge.base import KGEModel, split_complex


@dataclasses.dataclass(frozen=True)
class DistMult(KGEModel):
    """DistMult (Yang et al., ICLR 2015): score = sum_i h_i r_i t_i."""

    name = "distmult"

    def tail_query(self, head, relation):
        return head * relation

    def head_query(self, relation, tail):
        return relation * tail

    def match(self, query, candidate):
        return jnp.sum(query * candidate, axis=-1)

    def match_all(self, query, candidates):
        return query @ candidates.T


@dataclasses.dataclass(frozen=True)
class ComplEx(KGEModel):
    """ComplEx (Trouillon et al., ICML 2016): score = Re(sum_i h_i r_i conj(t_i)).

    Entities and relations are complex, stored as [re | im] halves.
    """

    name = "complex"
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

    def match(self, query, candidate):
        # With [re | im] layout, Re(q conj(c)) is the plain dot product.
        return jnp.sum(query * candidate, axis=-1)

    def match_all(self, query, candidates):
        return query @ candidates.T
