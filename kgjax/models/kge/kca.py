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

Shapes: B batch, P entities represented together (a pool), G relation rows, L_t sentences,
L_i regions, A attention width, O output width, D_t and D_i feature widths, De entity width,
Dr relation width, Dh the structural gate's hidden width.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn
from flax import struct, traverse_util

Params = dict
_LEAKY_SLOPE = 0.1  # the reference's nn.LeakyReLU(0.1)
_NORM_EPSILON = 1e-5  # torch LayerNorm's default
# The feature layers in the order `KCA.init_params` draws their kernels.
_FEATURE_LAYERS = ("text_in", "text_guide", "text_out", "visual_in", "visual_guide", "visual_out")


def xavier_normal(key: jax.Array, shape: tuple[int, int], dtype=jnp.float32) -> jax.Array:
    """torch's xavier_normal_, with which the reference initialises every Linear weight.

    Written out rather than `nn.initializers.xavier_normal` (a truncated normal) or
    `variance_scaling(1, "fan_avg", "normal")` (whose float32 sqrt of the variance may round
    differently), so that a key draws the values kgjax's KCA has always drawn.
    """
    fan_in, fan_out = shape
    std = (2.0 / (fan_in + fan_out)) ** 0.5
    return std * jax.random.normal(key, shape, dtype)


def _dense(features: int, use_bias: bool = True, name: str | None = None) -> nn.Dense:
    return nn.Dense(features, use_bias=use_bias, kernel_init=xavier_normal, name=name)


def _leaky_relu(x: jax.Array) -> jax.Array:
    return nn.leaky_relu(x, _LEAKY_SLOPE)


def _masked_softmax(logits: jax.Array, mask: jax.Array) -> jax.Array:
    """Softmax over the last axis restricted to `mask`; all-zero where nothing is allowed."""
    weights = jax.nn.softmax(jnp.where(mask, logits, -1e30), axis=-1)
    return jnp.where(mask, weights, 0.0)


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


class ScaledLayerNorm(nn.Module):
    """LayerNorm over the last axis, rounded as kgjax's KCA has always rounded it.

    flax's `nn.LayerNorm` computes (x - mean) * (rsqrt(var + eps) * scale) + bias; the order
    here is ((x - mean) * rsqrt(var + eps)) * scale + bias, which gives other last bits once
    the scale has trained, and so other training metrics than the runs recorded before KCA
    became a linen module. The normalisation is flax's; only its affine part is applied here.

    Attributes:
      epsilon: added to the variance.
    """

    epsilon: float = _NORM_EPSILON

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """[..., F] -> [..., F]."""
        normalized = nn.LayerNorm(
            epsilon=self.epsilon, use_bias=False, use_scale=False, use_fast_variance=False
        )(x)
        scale = self.param("scale", nn.initializers.ones_init(), (x.shape[-1],))
        bias = self.param("bias", nn.initializers.zeros_init(), (x.shape[-1],))
        return normalized * scale + bias


class PairDense(nn.Module):
    """A dense layer over the concatenation [x; y], computed as x W_x + y W_y + b.

    W = [W_x; W_y] is one [Dx + Dy, F] kernel (the reference's Linear over [e; r], and the
    parameter tree of kgjax's earlier KCA checkpoints), but each side is projected on its own,
    so x [...x, Dx] and y [...y, Dy] broadcast against each other: P entities under G
    relations cost P + G projections, never a [G, P, Dx + Dy] concatenation. `nn.Dense` cannot
    take the two sides apart.

    Attributes:
      features: F.
    """

    features: int

    @nn.compact
    def __call__(self, x: jax.Array, y: jax.Array) -> jax.Array:
        """[...x, Dx], [...y, Dy] -> [..., F] with [...] the broadcast of [...x] and [...y]."""
        width = x.shape[-1]
        kernel = self.param("kernel", xavier_normal, (width + y.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        return x @ kernel[:width] + y @ kernel[width:] + bias


class StructureGate(nn.Module):
    """The structural representation e * sigmoid(W_g LeakyReLU([e; r] W_h + b_h) + b_g).

    Attributes:
      entity_width: De.
      hidden_dim: Dh.
    """

    entity_width: int
    hidden_dim: int

    @nn.compact
    def __call__(self, entity: jax.Array, relation: jax.Array) -> jax.Array:
        """Gates `entity` under `relation`; leading dimensions broadcast against each other.

        Args:
          entity: [...e, De] KGE entity vectors.
          relation: [...r, Dr] KGE relation vectors.

        Returns:
          [..., De], where [...] is [...e] broadcast with [...r].
        """
        hidden = PairDense(self.hidden_dim, name="hidden")(entity, relation)
        gate = nn.sigmoid(_dense(self.entity_width, name="gate")(_leaky_relu(hidden)))
        return entity * gate


class KCA(nn.Module):
    """Knowledge-guided cross-modal attention plus the structural gate (module docstring).

    Create parameters with `init_params`; apply a method with
    `kca.apply({"params": params}, ..., method=KCA.represent)`.

    Attributes:
      text_width: D_t, the width of a sentence vector; 0 for no textual features.
      num_sentences: L_t.
      visual_width: D_i, the width of a region vector; 0 for no visual features.
      num_regions: L_i.
      entity_width: De of the KGE model's entity vectors.
      relation_width: Dr of the KGE model's relation vectors.
      attention_dim: A (the reference: 50).
      output_dim: O (the reference: 50).
      structure_hidden: Dh of the structural gate's MLP (the reference: 100).
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
        super().__post_init__()

    @property
    def modalities(self) -> tuple[str, ...]:
        """The feature modalities KCA represents, besides the structure."""
        return ("text",) * bool(self.text_width) + ("visual",) * bool(self.visual_width)

    @property
    def guide_length(self) -> int:
        """L_g: the rows of the guiding modality (regions, or sentences without images)."""
        return self.num_regions if self.visual_width else self.num_sentences

    def setup(self):
        self.structure_gate = StructureGate(
            self.entity_width, self.structure_hidden, name="structure"
        )
        length = self.guide_length * self.num_sentences
        if self.text_width:
            self.text_in = _dense(self.attention_dim)
            self.text_guide = _dense(length)
            self.text_out = _dense(self.output_dim)
            self.norm = ScaledLayerNorm()
        if self.visual_width:
            self.visual_in = _dense(self.attention_dim)
            self.visual_guide = _dense(length)
            self.visual_out = _dense(self.output_dim)

    def __call__(
        self,
        text: jax.Array | None,
        text_mask: jax.Array | None,
        visual: jax.Array | None,
        visual_mask: jax.Array | None,
        entity: jax.Array,
        relation: jax.Array,
    ) -> dict[str, jax.Array]:
        """Every one of P entities under every one of G relations, in every modality.

        Args:
          text, text_mask, visual, visual_mask: as in `entity_terms`, for P entities.
          entity: [P, De] KGE entity vectors.
          relation: [G, Dr] KGE relation vectors.

        Returns:
          {modality: [G, P, O]} for each of `modalities`, and {"structure": [G, P, De]}.
        """
        out = {}
        if self.modalities:
            terms = self.entity_terms(text, text_mask, visual, visual_mask)
            out = self.represent(terms, relation)
        return {**out, "structure": self.structure(entity[None], relation[:, None, :])}

    def init_params(self, key: jax.Array) -> Params:
        """Fresh parameters: xavier-normal kernels, zero biases, unit LayerNorm scale.

        Linen gives the tree; the kernels are drawn from `jax.random.split(key, 8)` in the
        order kgjax's KCA has always drawn them (the structure's [e; r] kernel, its gate,
        then `_FEATURE_LAYERS`), so a seed starts every run where it always did.

        Returns:
          The "params" collection, for `apply({"params": ...})`.
        """
        num = 2
        example = [
            jnp.zeros((num, self.num_sentences, self.text_width)) if self.text_width else None,
            jnp.ones((num, self.num_sentences), bool) if self.text_width else None,
            jnp.zeros((num, self.num_regions, self.visual_width)) if self.visual_width else None,
            jnp.ones((num, self.num_regions), bool) if self.visual_width else None,
            jnp.zeros((num, self.entity_width)),
            jnp.zeros((num, self.relation_width)),
        ]
        flat = traverse_util.flatten_dict(self.init(key, *example)["params"])
        keys = iter(jax.random.split(key, 8))
        drawn = {
            ("structure", "hidden"): xavier_normal(
                next(keys), flat[("structure", "hidden", "kernel")].shape
            ),
            ("structure", "gate"): xavier_normal(
                next(keys), flat[("structure", "gate", "kernel")].shape
            ),
        }
        for layer in _FEATURE_LAYERS:
            if (layer, "kernel") in flat:
                drawn[(layer,)] = xavier_normal(next(keys), flat[(layer, "kernel")].shape)
        kernels = {path[:-1] for path in flat if path[-1] == "kernel"}
        if kernels != drawn.keys():
            raise AssertionError(f"KCA: kernels {sorted(kernels)}, drawn {sorted(drawn)}")
        for layer, kernel in drawn.items():
            flat[(*layer, "kernel")] = kernel
        return traverse_util.unflatten_dict(flat)

    def entity_terms(
        self,
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
        text_h = _leaky_relu(self.text_in(text))
        if self.visual_width:
            guide_h = _leaky_relu(self.visual_in(visual))
            guide_mask = visual_mask
        else:
            guide_h, guide_mask = text_h, text_mask
        pair_mask = guide_mask[..., :, None] & text_mask[..., None, :]  # [..., L_g, L_t]
        cross = jnp.where(pair_mask, guide_h @ jnp.swapaxes(text_h, -1, -2), 0.0)
        # (4) each guide row attends over the sentences.
        textual = _masked_softmax(cross, pair_mask) @ text_h
        textual = jnp.where(guide_mask[..., None], self.norm(textual), 0.0)
        visual_terms = None
        if self.visual_width:
            # (1) each sentence attends over the regions.
            attended = _masked_softmax(jnp.swapaxes(cross, -1, -2), jnp.swapaxes(pair_mask, -1, -2))
            visual_terms = jnp.where(text_mask[..., None], self.norm(attended @ guide_h), 0.0)
        return EntityTerms(text_h, guide_h, cross, text_mask, guide_mask, textual, visual_terms)

    def represent(self, terms: EntityTerms, relation: jax.Array) -> dict[str, jax.Array]:
        """Adds the relation-guided branches (2) and (3) and projects each modality.

        Every entity is represented under every relation; `represent_pairs` pairs them.

        Args:
          terms: from `entity_terms` for P entities (leading shape [P]).
          relation: [G, Dr] KGE relation vectors.

        Returns:
          {"text": [G, P, O]} and, with visual features, {"visual": [G, P, O]}.
        """
        length = (self.guide_length, self.num_sentences)
        gate = nn.sigmoid(self.text_guide(relation)).reshape(-1, *length)
        guided_weights = terms.cross[None] * gate[:, None]  # [G, P, L_g, L_t]
        # (3), contracted with P as the batch dimension: G * L_g rows per entity, one matmul
        # each, rather than G * P products of L_g x L_t matrices.
        guided = jnp.einsum("gnij,nja->gnia", guided_weights, terms.text)
        textual = terms.textual[None] + self.norm(guided)
        textual = jnp.where(terms.guide_mask[None, ..., None], textual, 0.0)
        out = {"text": self.text_out(textual.reshape(*textual.shape[:2], -1))}
        if self.visual_width:
            gate = nn.sigmoid(self.visual_guide(relation)).reshape(-1, *length)
            guided_weights = terms.cross[None] * gate[:, None]
            guided = jnp.einsum("gnij,nia->gnja", guided_weights, terms.guide)  # (2)
            visual = terms.visual[None] + self.norm(guided)
            visual = jnp.where(terms.text_mask[None, ..., None], visual, 0.0)
            out["visual"] = self.visual_out(visual.reshape(*visual.shape[:2], -1))
        return out

    def represent_pairs(self, terms: EntityTerms, relation: jax.Array) -> dict[str, jax.Array]:
        """`represent` of entity b under relation b, for B pairs.

        Args:
          terms: from `entity_terms` for B entities.
          relation: [B, Dr].

        Returns:
          {modality: [B, O]}.
        """

        def one(terms, relation):
            single = self.represent(jax.tree.map(lambda x: x[None], terms), relation[None])
            return jax.tree.map(lambda x: x[0, 0], single)

        return jax.vmap(one)(terms, relation)

    def structure(self, entity: jax.Array, relation: jax.Array) -> jax.Array:
        """The structural representation e * sigmoid(MLP([e; r])) (`StructureGate`).

        `entity` and `relation` broadcast against each other in their leading dimensions:
        entity [1, P, De] with relation [G, 1, Dr] gives every pair, [G, P, De].

        Args:
          entity: [...e, De] KGE entity vectors.
          relation: [...r, Dr] KGE relation vectors.

        Returns:
          [..., De].
        """
        return self.structure_gate(entity, relation)
