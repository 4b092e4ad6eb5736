"""MMRNS's entity representations: knowledge-guided cross-modal attention and the structural gate.

Xu et al., "Relation-enhanced Negative Sampling for Multimodal Knowledge Graph Completion",
ACM MM 2022 (reference code: github.com/quqxui/MMRNS, `KCA_model.py`). Given an entity's
textual features T (L_t sentence vectors) and visual features I (L_i region vectors) and a
relation embedding r:

  T' = LeakyReLU(T W_t + b_t)   [L_t, A]        I' = LeakyReLU(I W_i + b_i)   [L_i, A]
  M  = I' T'^T                  [L_i, L_t]      the cross-modal matrix
  (1) text-guided visual attention       softmax_regions(M)^T I'          [L_t, A]
  (2) relation+text-guided visual        (M * sigmoid(r W_gi))^T I'       [L_t, A]
  (3) relation+image-guided textual      (M * sigmoid(r W_gt)) T'         [L_i, A]
  (4) image-guided textual attention     softmax_sentences(M) T'          [L_i, A]
  visual = Dense(flatten(Norm(1) + Norm(2)))    textual = Dense(flatten(Norm(3) + Norm(4)))

with one LayerNorm shared by all branches, as in the reference. The structural branch gates
the KGE model's own embedding of the entity e: structure = e * sigmoid(MLP([e; r])).

Entities without visual features (no image data ships with kgjax) use the textual branches
with the text as its own guide: M = T' T'^T, branches (3) and (4) only.

Unlike the reference, padding is masked: padded sentences and regions (rows a dataset pads
to L_t or L_i) take no attention weight and their rows are zero before the output Dense, so
an entity's representation does not depend on how far it was padded.

Shapes: B batch, N entities, G relation rows, L_t sentences, L_i regions, A attention width,
O output width, D_t and D_i feature widths, De entity width, Dr relation width, H hidden.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct

Params = dict
_LEAKY_SLOPE = 0.1  # the reference's nn.LeakyReLU(0.1)
_NORM_EPSILON = 1e-5  # torch LayerNorm's default


@struct.dataclass
class EntityTerms:
    """The relation-free part of KCA for a set of entities (computed once per entity).

    Attributes:
      text: [..., L_t, A] projected sentence vectors T'.
      guide: [..., L_g, A] the guiding modality: projected regions I', or T' itself.
      cross: [..., L_g, L_t] M = guide text^T, zero where either side is padding.
      text_mask: bool [..., L_t].
      guide_mask: bool [..., L_g].
      textual: [..., L_g, A] Norm of branch (4), zero on padded rows.
      visual: [..., L_t, A] Norm of branch (1), zero on padded rows; None without visual input.
    """

    text: jax.Array
    guide: jax.Array
    cross: jax.Array
    text_mask: jax.Array
    guide_mask: jax.Array
    textual: jax.Array
    visual: jax.Array | None


def _dense_init(key, fan_in: int, fan_out: int) -> dict:
    # The reference initialises every Linear weight with xavier_normal_.
    std = (2.0 / (fan_in + fan_out)) ** 0.5
    return {
        "kernel": std * jax.random.normal(key, (fan_in, fan_out), jnp.float32),
        "bias": jnp.zeros((fan_out,), jnp.float32),
    }


def _dense(params: dict, x: jax.Array) -> jax.Array:
    return x @ params["kernel"] + params["bias"]


def _leaky_relu(x: jax.Array) -> jax.Array:
    return jax.nn.leaky_relu(x, _LEAKY_SLOPE)


def _layer_norm(params: dict, x: jax.Array) -> jax.Array:
    mean = jnp.mean(x, axis=-1, keepdims=True)
    variance = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(variance + _NORM_EPSILON) * params["scale"] + params["bias"]


def _masked_softmax(logits: jax.Array, mask: jax.Array) -> jax.Array:
    """Softmax over the last axis restricted to `mask`; all-zero where nothing is allowed."""
    weights = jax.nn.softmax(jnp.where(mask, logits, -1e30), axis=-1)
    return jnp.where(mask, weights, 0.0)


@dataclasses.dataclass(frozen=True)
class KCA:
    """Knowledge-guided cross-modal attention plus the structural gate (module docstring).

    Attributes:
      text_width: D_t, the width of a sentence vector; 0 for no textual features.
      num_sentences: L_t.
      visual_width: D_i, the width of a region vector; 0 for no visual features.
      num_regions: L_i.
      entity_width: De of the KGE model's entity vectors.
      relation_width: Dr of the KGE model's relation vectors.
      attention_dim: A (the reference: 50).
      output_dim: O (the reference: 50).
      structure_hidden: H of the structural gate's MLP (the reference: 100).
    """

    text_width: int
    num_sentences: int
    visual_width: int
    num_regions: int
    entity_width: int
    relation_width: int
    attention_dim: int = 50
    output_dim: int = 50
    structure_hidden: int = 100

    def __post_init__(self):
        if self.visual_width and not self.text_width:
            raise ValueError("KCA: visual features need textual features to guide them")
        if self.text_width and self.num_sentences < 1:
            raise ValueError(f"KCA: num_sentences must be positive, got {self.num_sentences}")
        if self.visual_width and self.num_regions < 1:
            raise ValueError(f"KCA: num_regions must be positive, got {self.num_regions}")

    @property
    def modalities(self) -> tuple[str, ...]:
        """The feature modalities KCA represents, besides the structure."""
        return ("text",) * bool(self.text_width) + ("visual",) * bool(self.visual_width)

    @property
    def guide_length(self) -> int:
        """L_g: the rows of the guiding modality (regions, or sentences without images)."""
        return self.num_regions if self.visual_width else self.num_sentences

    def init(self, key: jax.Array) -> Params:
        """Fresh parameters: xavier-normal kernels, zero biases, unit LayerNorm scale."""
        keys = iter(jax.random.split(key, 8))
        attention, length = self.attention_dim, self.guide_length * self.num_sentences
        params = {
            "structure": {
                "hidden": _dense_init(
                    next(keys), self.entity_width + self.relation_width, self.structure_hidden
                ),
                "gate": _dense_init(next(keys), self.structure_hidden, self.entity_width),
            }
        }
        if self.text_width:
            params["text_in"] = _dense_init(next(keys), self.text_width, attention)
            params["text_guide"] = _dense_init(next(keys), self.relation_width, length)
            params["text_out"] = _dense_init(
                next(keys), self.guide_length * attention, self.output_dim
            )
            params["norm"] = {
                "scale": jnp.ones((attention,), jnp.float32),
                "bias": jnp.zeros((attention,), jnp.float32),
            }
        if self.visual_width:
            params["visual_in"] = _dense_init(next(keys), self.visual_width, attention)
            params["visual_guide"] = _dense_init(next(keys), self.relation_width, length)
            params["visual_out"] = _dense_init(
                next(keys), self.num_sentences * attention, self.output_dim
            )
        return params

    def entity_terms(
        self,
        params: Params,
        text: jax.Array,
        text_mask: jax.Array,
        visual: jax.Array | None = None,
        visual_mask: jax.Array | None = None,
    ) -> EntityTerms:
        """The relation-free part of KCA: projections, M, and branches (1) and (4).

        Args:
          text: [..., L_t, D_t] sentence vectors.
          text_mask: bool [..., L_t], False on padding.
          visual: [..., L_i, D_i] region vectors, or None when visual_width is 0.
          visual_mask: bool [..., L_i].

        Returns:
          EntityTerms with leading shape [...].
        """
        text_h = _leaky_relu(_dense(params["text_in"], text))
        if self.visual_width:
            guide_h = _leaky_relu(_dense(params["visual_in"], visual))
            guide_mask = visual_mask
        else:
            guide_h, guide_mask = text_h, text_mask
        pair_mask = guide_mask[..., :, None] & text_mask[..., None, :]  # [..., L_g, L_t]
        cross = jnp.where(pair_mask, guide_h @ jnp.swapaxes(text_h, -1, -2), 0.0)
        # (4) each guide row attends over the sentences.
        textual = _masked_softmax(cross, pair_mask) @ text_h
        textual = jnp.where(guide_mask[..., None], _layer_norm(params["norm"], textual), 0.0)
        visual_terms = None
        if self.visual_width:
            # (1) each sentence attends over the regions.
            attended = _masked_softmax(jnp.swapaxes(cross, -1, -2), jnp.swapaxes(pair_mask, -1, -2))
            visual_terms = jnp.where(
                text_mask[..., None], _layer_norm(params["norm"], attended @ guide_h), 0.0
            )
        return EntityTerms(text_h, guide_h, cross, text_mask, guide_mask, textual, visual_terms)

    def represent(
        self, params: Params, terms: EntityTerms, relation: jax.Array
    ) -> dict[str, jax.Array]:
        """Adds the relation-guided branches (2) and (3) and projects each modality.

        Every entity is represented under every relation; `represent_pairs` pairs them.

        Args:
          terms: from `entity_terms` for N entities (leading shape [N]).
          relation: [G, Dr] KGE relation vectors.

        Returns:
          {"text": [G, N, O]} and, with visual features, {"visual": [G, N, O]}.
        """
        length = (self.guide_length, self.num_sentences)
        gate = jax.nn.sigmoid(_dense(params["text_guide"], relation)).reshape(-1, *length)
        guided_weights = terms.cross[None] * gate[:, None]  # [G, N, L_g, L_t]
        # (3), contracted with N as the batch dimension: G * L_g rows per entity, one matmul
        # each, rather than G * N products of L_g x L_t matrices.
        guided = jnp.einsum("gnij,nja->gnia", guided_weights, terms.text)
        textual = terms.textual[None] + _layer_norm(params["norm"], guided)
        textual = jnp.where(terms.guide_mask[None, ..., None], textual, 0.0)
        out = {"text": _dense(params["text_out"], textual.reshape(*textual.shape[:2], -1))}
        if self.visual_width:
            gate = jax.nn.sigmoid(_dense(params["visual_guide"], relation)).reshape(-1, *length)
            guided_weights = terms.cross[None] * gate[:, None]
            guided = jnp.einsum("gnij,nia->gnja", guided_weights, terms.guide)  # (2)
            visual = terms.visual[None] + _layer_norm(params["norm"], guided)
            visual = jnp.where(terms.text_mask[None, ..., None], visual, 0.0)
            out["visual"] = _dense(params["visual_out"], visual.reshape(*visual.shape[:2], -1))
        return out

    def represent_pairs(
        self, params: Params, terms: EntityTerms, relation: jax.Array
    ) -> dict[str, jax.Array]:
        """`represent` of entity b under relation b, for B pairs.

        Args:
          terms: from `entity_terms` for B entities.
          relation: [B, Dr].

        Returns:
          {modality: [B, O]}.
        """

        def one(terms, relation):
            single = self.represent(params, jax.tree.map(lambda x: x[None], terms), relation[None])
            return jax.tree.map(lambda x: x[0, 0], single)

        return jax.vmap(one)(terms, relation)

    def structure(self, params: Params, entity: jax.Array, relation: jax.Array) -> jax.Array:
        """The structural representation e * sigmoid(MLP([e; r])).

        `entity` and `relation` broadcast against each other in their leading dimensions:
        entity [1, N, De] with relation [G, 1, Dr] gives every pair, [G, N, De].

        Args:
          entity: [...e, De] KGE entity vectors.
          relation: [...r, Dr] KGE relation vectors.

        Returns:
          [..., De].
        """
        hidden_params = params["structure"]["hidden"]
        kernel = hidden_params["kernel"]
        # [e; r] W = e W_e + r W_r: each side is projected once, not once per pair.
        hidden = (
            entity @ kernel[: self.entity_width]
            + relation @ kernel[self.entity_width :]
            + hidden_params["bias"]
        )
        gate = jax.nn.sigmoid(_dense(params["structure"]["gate"], _leaky_relu(hidden)))
        return entity * gate
