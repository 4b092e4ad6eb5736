"""JAKET's knowledge module: relational graph attention over a padded graph.

Yu, Zhu, Yang, Zeng, "JAKET: Joint Pre-training of Knowledge Graph and Language
Understanding", AAAI 2022, section "Knowledge Module": GAT (Velickovic et al., ICLR 2018)
with CompGCN's composition of entity and relation embeddings (Vashishth et al., ICLR 2020).
Layer l updates every entity v from its neighbours N_v = {(r, u) | (v, r, u) in the graph}:

  M_{u,r}   = f(E_u, R_r)                                        (composition, f(x, y) = x + y)
  S^k_{u,r} = a_k^T [W_k E_v ; W_k M_{u,r}]                       (one score per head k)
  alpha^k   = softmax over (r, u) in N_v of LeakyReLU(S^k)
  m^k_v     = sigma(sum_{(r, u) in N_v} alpha^k_{v,r,u} W_k M_{u,r})
  E_v'      = LayerNorm(concat_k m^k_v + E_v)

with E = E^(l-1), E' = E^(l), and the relation table R shared by all layers (the layers take
it as an input and own no copy). The paper sets f(x, y) = x + y (TransE's translation) and
allows richer ones; `COMPOSITIONS` also offers CompGCN's x * y and circular correlation, and
an MLP on [x; y]. It names neither sigma nor the LeakyReLU slope: GAT's ELU and 0.2 here.
Each head maps D to Dh = D / H, so that the concatenated heads add back onto E_v.

The graph is a list of edges padded to a static budget. Edge e = (senders[e] = u, receivers[e]
= v, relations[e] = r) carries M_{u,r} to v, so the paper's triple (v, r, u) is the edge u -> v:
pass a triple's tail as sender and its head as receiver. An edge counts once per occurrence (a
duplicate takes twice the attention); N_v is a set only if the edge list has no duplicates.
Padded edges (mask False) carry nothing whatever their ids. A node without in-edges receives
a zero message (ELU(0) = 0), so E_v' = LayerNorm(E_v), never NaN. Whether tails also hear
their heads is the caller's choice: `with_inverse_edges` appends u <- v under relation r + R
(CompGCN's inverse relations), the relation table then having 2R rows.

Shapes: N nodes (entities of the padded subgraph), E edges, R relations (rows of the relation
table given), D width of entities and relations, H heads, Dh = D / H the width of a head.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from kgjax.ops import segment

COMPOSITIONS = ("add", "mult", "corr", "mlp")
# "mean" replaces the attention by GCN-style mean aggregation (the ablation).
AGGREGATIONS = ("attention", "mean")
_LEAKY_SLOPE = 0.2  # GAT's; JAKET does not say
# RoBERTa's, the LM whose vectors JAKET's knowledge module takes as E^(0) and R.
_NORM_EPSILON = 1e-5


def circular_correlation(x: jax.Array, y: jax.Array) -> jax.Array:
    """CompGCN's circular correlation [x * y]_k = sum_i x_i y_{(i + k) mod D}, over the last axis.

    Computed as irfft(conj(rfft(x)) rfft(y)): O(D log D) per pair instead of the sum's O(D^2).

    Args:
      x: float [..., D].
      y: float [..., D], broadcasting against x.

    Returns:
      float [..., D].
    """
    width = x.shape[-1]
    spectrum = jnp.conj(jnp.fft.rfft(x, axis=-1)) * jnp.fft.rfft(y, axis=-1)
    return jnp.fft.irfft(spectrum, n=width, axis=-1).astype(jnp.result_type(x, y))


class Composition(nn.Module):
    """f(E_u, R_r): one vector for an (entity, relation) pair.

    Attributes:
      kind: "add" x + y (JAKET's), "mult" x * y, "corr" `circular_correlation(x, y)`, or "mlp"
        Dense(ReLU(Dense([x; y]))), both layers D wide.
    """

    kind: str = "add"

    def __post_init__(self):
        if self.kind not in COMPOSITIONS:
            raise ValueError(f"composition must be one of {COMPOSITIONS}, got {self.kind!r}")
        super().__post_init__()

    @nn.compact
    def __call__(self, entities: jax.Array, relations: jax.Array) -> jax.Array:
        """[E, D], [E, D] -> [E, D]."""
        if self.kind == "add":
            return entities + relations
        if self.kind == "mult":
            return entities * relations
        if self.kind == "corr":
            return circular_correlation(entities, relations)
        width = entities.shape[-1]
        hidden = nn.Dense(width, name="hidden")(jnp.concatenate([entities, relations], -1))
        return nn.Dense(width, name="output")(nn.relu(hidden))


class RelationalGATLayer(nn.Module):
    """One layer of JAKET's knowledge module: E^(l-1) -> E^(l) (module docstring).

    Parameters: `project` kernel [D, H, Dh] (kernel[:, k, :] is W_k^T, no bias, as in GAT),
    `attention` [H, 2 Dh] (row k is a_k: its first Dh entries score the receiver W_k E_v,
    the rest the message W_k M_{u,r}; absent with mean aggregation), `compose` (the MLP
    composition's, if chosen) and `norm` (the LayerNorm's scale and bias).

    The attention weights alpha [E, H] (0 on padded edges) are sown as the 1-tuple
    `intermediates["attention"]`: `layer.apply(variables, ..., mutable=["intermediates"])`.

    Attributes:
      num_heads: H; must divide D.
      composition: f, one of `COMPOSITIONS`.
      aggregation: "attention" (JAKET's) or "mean" (each in-edge weighs 1 / in-degree).
    """

    num_heads: int
    composition: str = "add"
    aggregation: str = "attention"

    def __post_init__(self):
        if self.num_heads < 1:
            raise ValueError(f"num_heads must be positive, got {self.num_heads}")
        if self.composition not in COMPOSITIONS:
            raise ValueError(f"composition must be one of {COMPOSITIONS}, got {self.composition!r}")
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {self.aggregation!r}")
        super().__post_init__()

    @nn.compact
    def __call__(
        self,
        nodes: jax.Array,
        relations: jax.Array,
        senders: jax.Array,
        receivers: jax.Array,
        edge_relations: jax.Array,
        edge_mask: jax.Array,
    ) -> jax.Array:
        """Updates every node from its in-edges.

        Args:
          nodes: float [N, D] entity embeddings E^(l-1).
          relations: float [R, D] the relation table, shared across layers.
          senders: int [E] u, the entity each edge's message composes.
          receivers: int [E] v, the entity each edge updates.
          edge_relations: int [E] r, a row of `relations`.
          edge_mask: bool [E], False on padding.

        Returns:
          float [N, D] E^(l).

        Raises:
          ValueError: `nodes` and `relations` differ in width, or H does not divide it.
        """
        num_nodes, width = nodes.shape
        if relations.shape[-1] != width:
            raise ValueError(f"entity width {width} != relation width {relations.shape[-1]}")
        if width % self.num_heads:
            raise ValueError(f"width {width} is not divisible by num_heads {self.num_heads}")
        head_width = width // self.num_heads
        project = nn.DenseGeneral(
            (self.num_heads, head_width),
            use_bias=False,
            kernel_init=nn.initializers.glorot_uniform(),  # GAT's
            name="project",
        )

        projected_nodes = project(nodes)  # [N, H, Dh]
        if self.composition == "add":
            # W (E_u + R_r) = W E_u + W R_r: project the N nodes and R relations once and
            # gather, rather than project each of the E >> N + R edges.
            messages = projected_nodes[senders] + project(relations)[edge_relations]
        else:
            composed = Composition(self.composition, name="compose")(
                nodes[senders], relations[edge_relations]
            )
            messages = project(composed)  # [E, H, Dh]

        if self.aggregation == "mean":
            aggregated = segment.segment_mean(messages, receivers, num_nodes, edge_mask)
        else:
            # a_k's halves as [H, Dh] each; Glorot as in GAT, where a_k is a [2 Dh, 1] matrix.
            attention = self.param(
                "attention",
                nn.initializers.variance_scaling(
                    1.0, "fan_avg", "uniform", in_axis=-1, out_axis=(), batch_axis=0
                ),
                (self.num_heads, 2 * head_width),
            )
            receiver_scores = jnp.einsum("nhd,hd->nh", projected_nodes, attention[:, :head_width])
            message_scores = jnp.einsum("ehd,hd->eh", messages, attention[:, head_width:])
            scores = receiver_scores[receivers] + message_scores  # S [E, H]
            weights = segment.segment_softmax(
                nn.leaky_relu(scores, _LEAKY_SLOPE), receivers, num_nodes, edge_mask
            )
            self.sow("intermediates", "attention", weights)
            # The mask again: a padded edge weighs 0, but 0 * a non-finite message is NaN.
            aggregated = segment.segment_sum(
                weights[..., None] * messages, receivers, num_nodes, edge_mask
            )

        # Heads side by side: head k fills columns k Dh .. (k + 1) Dh - 1.
        heads = nn.elu(aggregated).reshape(num_nodes, width)
        # Two-pass variance (as PyTorch's LayerNorm): the one-pass E[x^2] - E[x]^2 cancels
        # digits when the residual sum has a large mean relative to its spread.
        norm = nn.LayerNorm(epsilon=_NORM_EPSILON, use_fast_variance=False, name="norm")
        return norm(heads + nodes)


class KnowledgeModule(nn.Module):
    """JAKET's knowledge module: `num_layers` relational GAT layers sharing the relation table.

    Maps E^(0) (the entity context memory's rows) to E^KM; with no layers it returns E^(0)
    (the "no GAT" ablation). Parameters: `layer_<i>` for each layer, as `RelationalGATLayer`.

    Attributes:
      num_layers: L >= 0.
      num_heads: H of every layer.
      composition: f of every layer, one of `COMPOSITIONS`.
      aggregation: every layer's, one of `AGGREGATIONS`.
    """

    num_layers: int
    num_heads: int
    composition: str = "add"
    aggregation: str = "attention"

    def __post_init__(self):
        if self.num_layers < 0:
            raise ValueError(f"num_layers must be non-negative, got {self.num_layers}")
        super().__post_init__()

    @nn.compact
    def __call__(
        self,
        nodes: jax.Array,
        relations: jax.Array,
        senders: jax.Array,
        receivers: jax.Array,
        edge_relations: jax.Array,
        edge_mask: jax.Array,
    ) -> jax.Array:
        """E^(0) [N, D] -> E^KM [N, D]; the other arguments as `RelationalGATLayer`'s."""
        for index in range(self.num_layers):
            layer = RelationalGATLayer(
                self.num_heads, self.composition, self.aggregation, name=f"layer_{index}"
            )
            nodes = layer(nodes, relations, senders, receivers, edge_relations, edge_mask)
        return nodes


def with_inverse_edges(
    senders: jax.Array,
    receivers: jax.Array,
    relations: jax.Array,
    mask: jax.Array,
    num_relations: int,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Appends every edge's inverse: u -> v under r gains v -> u under r + R.

    With them a triple's head also sends to its tail, under the inverse relation (CompGCN's
    choice); JAKET's N_v alone only lets heads hear their tails.

    Args:
      senders: int [E].
      receivers: int [E].
      relations: int [E], in [0, R).
      mask: bool [E], False on padding (its inverses are padding too).
      num_relations: R; the relation table for the result has 2R rows, inverses after.

    Returns:
      (senders, receivers, relations, mask), each [2E]: the given edges, then their inverses
      in the same order.
    """
    return (
        jnp.concatenate([senders, receivers]),
        jnp.concatenate([receivers, senders]),
        jnp.concatenate([relations, relations + num_relations]),
        jnp.concatenate([mask, mask]),
    )
