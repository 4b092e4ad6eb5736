"""Interactions with weights of their own: TuckER and ConvE.

Their parameters beyond the two tables live in the model's params dict under
"interaction" ({"entity", "relation", "interaction": {...}}), which `Layout` replicates (no
rule names it), orbax saves and the optimizer trains like any other entry. A call site binds
them once, `bound = model.bind(params, key)`, and then calls `tail_query`, `head_query`,
`match` and `match_all` on vectors as for any model; `key` (the step's) turns the dropouts
on, None (evaluation) leaves them off, so evaluation is deterministic. `match` is the plain
dot product of a 1-N scorer and needs no weights, so samplers that only match keep working.

Batch norm (`batch_norm=True`, the papers' layers): the references normalise the head
entity (TuckER's bn0, ConvE's bn0 on the stacked image) and the intermediates (TuckER's bn1
on the query; ConvE's bn1 after the convolution and bn2 after the projection) with the
batch's statistics in training and running averages in evaluation. The affine parameters
train like any weight; the running averages live beside them in
params["interaction"]["batch_stats"], get no gradient (training never reads them), and the
train step overwrites them after each update with those `tail_query_with_stats` returns
for the batch's tail queries, so orbax saves them and a resumed run continues them. Batch
norm needs reciprocal relations (every query a tail query, as in both papers): a head query
raises ConfigError. The JAKET link decoders build these models without it.

What differs from the papers' code, plainly:
  * Batch norm is flax's `nn.BatchNorm` with PyTorch's momentum (0.1) and epsilon (1e-5);
    its running variance averages the biased batch variance where PyTorch's averages the
    unbiased one (a factor B / (B - 1): 1.008 at B = 128).
  * ConvE's per-entity bias is the last column of the entity table (De = D + 1) and its
    tail query carries a trailing 1, so that score = [q | 1] . [e | b] = q . e + b stays one
    dot product and the bias is split, read and updated with its entity's row.

Shapes: B batch, V entities, R relations, D the entity width of the papers (`dim`), Dr the
relation width (TuckER's `relation_dim`; ConvE's is D), C ConvE's channels, Hh x Ww the 2D
shape of an embedding (`height` x D / `height`), De the stored entity width.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from kgjax.config import ConfigError
from kgjax.models.kge.base import (
    BilinearInteraction,
    KGEModel,
    Params,
    QueriesThroughInteraction,
)

_BOUND = {"bound": True}  # interaction fields set by `bind`, not by the model


def _xavier_normal(key: jax.Array, shape: tuple[int, int]) -> jax.Array:
    """PyTorch's xavier_normal_ on a [rows, cols] table: Normal(0, sqrt(2 / (rows + cols)))."""
    return jnp.sqrt(2.0 / (shape[0] + shape[1])) * jax.random.normal(key, shape, jnp.float32)


# PyTorch's BatchNorm defaults, which both references keep: the running statistics move 0.1
# of the way to each batch's (flax counts the other way: 0.9 kept), 1e-5 under the root.
_BATCH_NORM = {"momentum": 0.9, "epsilon": 1e-5}


def _batch_norm_init(width: int) -> tuple[Params, Params]:
    """A fresh batch-norm layer over `width` features, as flax initialises it (the same layer
    `_batch_norm` applies): ({"scale", "bias"}, {"mean", "var"})."""
    variables = nn.BatchNorm(use_running_average=True, **_BATCH_NORM).init(
        jax.random.key(0), jnp.zeros((1, width), jnp.float32)
    )  # deterministic initialisers: the key draws nothing
    return variables["params"], variables["batch_stats"]


def _batch_norm(x: jax.Array, weights: Params, stats: Params, training: bool):
    """Batch norm over the last axis of [..., F] (every other axis is the batch).

    Returns:
      (normalised x, the running statistics after this batch: unchanged in evaluation).
    """
    layer = nn.BatchNorm(use_running_average=not training, **_BATCH_NORM)
    y, updated = layer.apply({"params": weights, "batch_stats": stats}, x, mutable=["batch_stats"])
    return y, updated["batch_stats"]


def _dropout(key: jax.Array | None, x: jax.Array, rate: float, shape=None) -> jax.Array:
    """Inverted dropout; the identity without a key (evaluation) or at rate 0."""
    if key is None or not rate:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape if shape is None else shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0)


@dataclasses.dataclass(frozen=True)
class BoundModel(QueriesThroughInteraction):
    """A model with its interaction's weights and dropout key bound (`KGEModel.bind`).

    Calls the interaction's functions through the bound interaction and hands everything
    else (num_entities, entity_width, score_*, ...) to the model.
    """

    model: KGEModel
    interaction: Any

    def __getattr__(self, name):
        if name in ("model", "interaction"):  # not set yet (copying, unpickling)
            raise AttributeError(name)
        return getattr(self.model, name)

    def bind(self, params: Params, key: jax.Array | None = None) -> BoundModel:
        return self.model.bind(params, key)


class _WeightedModel(KGEModel):
    """A model whose interaction has weights under params["interaction"] (mixin)."""

    def bind(self, params: Params, key: jax.Array | None = None) -> BoundModel:
        interaction = dataclasses.replace(self.interaction, weights=params["interaction"], key=key)
        return BoundModel(self, interaction)


@dataclasses.dataclass(frozen=True)
class TuckERInteraction(BilinearInteraction):
    """TuckER (Balazevic et al., EMNLP 2019): score(h, r, t) = W x1 h x2 r x3 t
    = sum_ijk W_ijk h_i r_j t_k, with a core tensor W [D, Dr, D] shared by all relations.

    The tail query is q_k = sum_ij h_i r_j W_ijk and the head query sum_jk W_ijk r_j t_k,
    both [..., D], matched by the dot product. Dropouts and batch norm as the reference
    (github.com/ibalazevic/TuckER, model.py) places them, on the tail side's: bn0 on the
    anchor entity, then `input_dropout`; the relation's matrix W_r = W x2 r
    (`hidden_dropout1`); bn1 on the query, then `hidden_dropout2`.

    Attributes:
      relation_dim: Dr.
      batch_norm: bn0 and bn1 as the paper (tail queries only; see the module docstring).
      weights: {"core": [D, Dr, D]} (+ "bn0", "bn1": {"scale", "bias"} and "batch_stats":
        {"bn0", "bn1": {"mean", "var"}} with batch norm), set by `bind`.
      key: the dropouts' PRNG key, set by `bind`; None: no dropout.
    """

    relation_dim: int = 30
    input_dropout: float = 0.3
    hidden_dropout1: float = 0.4
    hidden_dropout2: float = 0.5
    batch_norm: bool = False
    weights: Any = dataclasses.field(default=None, compare=False, metadata=_BOUND)
    key: Any = dataclasses.field(default=None, compare=False, metadata=_BOUND)

    @property
    def relation_width(self) -> int:
        return self.relation_dim

    def _normalise(self, layer: str, x: jax.Array):
        """Batch norm `layer` ("bn0", "bn1") on x: (x normalised, the layer's running
        statistics after this batch)."""
        stats = self.weights["batch_stats"][layer]
        return _batch_norm(x, self.weights[layer], stats, training=self.key is not None)

    def _keys(self):
        if self.key is None:
            return (None, None, None)
        return tuple(jax.random.split(self.key, 3))

    def _relation_matrix(self, relation, key):
        """W_r = W x2 r: [..., Dr] -> [..., D, D], with hidden dropout 1."""
        matrix = jnp.einsum("...j,ijk->...ik", relation, self.weights["core"])
        return _dropout(key, matrix, self.hidden_dropout1)

    def tail_query_with_stats(self, head, relation):
        """(query [..., D], batch-norm running statistics after this batch, or None)."""
        k_in, k_w, k_out = self._keys()
        stats = {}
        if self.batch_norm:
            head, stats["bn0"] = self._normalise("bn0", head)
        head = _dropout(k_in, head, self.input_dropout)
        query = jnp.einsum("...i,...ik->...k", head, self._relation_matrix(relation, k_w))
        if self.batch_norm:
            query, stats["bn1"] = self._normalise("bn1", query)
        return _dropout(k_out, query, self.hidden_dropout2), (stats or None)

    def tail_query(self, head, relation):
        return self.tail_query_with_stats(head, relation)[0]

    def head_query(self, relation, tail):
        if self.batch_norm:
            raise ConfigError(
                "TuckER with model.batch_norm scores tails only (its layers normalise the "
                "tail query): set training.reciprocal=True"
            )
        k_in, k_w, k_out = self._keys()
        tail = _dropout(k_in, tail, self.input_dropout)
        query = jnp.einsum("...ik,...k->...i", self._relation_matrix(relation, k_w), tail)
        return _dropout(k_out, query, self.hidden_dropout2)


class ConvEQuery(nn.Module):
    """ConvE's query network: [h; r] as a 2D image -> 3x3 convolution -> ReLU -> dense -> ReLU,
    with the reference's batch norms (image, feature maps, projection) if `shape.batch_norm`.

    Attributes:
      shape: the `ConvEInteraction` whose sizes and dropout rates it takes: D, the height Hh
        of each embedding's 2D shape (D = Hh x Ww; [h; r] is 2Hh x Ww), C channels, the
        square kernel, and the reference's dropouts on the image, the feature maps (whole
        channels, as Dropout2d) and the projection.
    """

    shape: Any

    @nn.compact
    def __call__(self, head, relation, deterministic: bool = True):
        """[B, D], [B, D] -> [B, D]."""
        c = self.shape
        width = c.dim // c.height
        image = jnp.concatenate(
            [head.reshape(-1, c.height, width, 1), relation.reshape(-1, c.height, width, 1)],
            axis=1,
        )  # [B, 2Hh, Ww, 1]

        def normalise(x):  # bn0, bn1, bn2 of the reference (ConvE's model.py), in order
            if not c.batch_norm:
                return x
            return nn.BatchNorm(use_running_average=deterministic, **_BATCH_NORM)(x)

        x = nn.Dropout(c.input_dropout, deterministic=deterministic)(normalise(image))
        x = nn.Conv(c.channels, (c.kernel_size, c.kernel_size), padding="VALID")(x)
        x = nn.relu(normalise(x))
        # Dropout2d: one draw per (example, channel).
        x = nn.Dropout(c.feature_dropout, broadcast_dims=(1, 2), deterministic=deterministic)(x)
        x = nn.Dense(c.dim)(x.reshape(x.shape[0], -1))
        x = nn.Dropout(c.hidden_dropout, deterministic=deterministic)(x)
        return nn.relu(normalise(x))


@dataclasses.dataclass(frozen=True)
class ConvEInteraction(BilinearInteraction):
    """ConvE (Dettmers et al., AAAI 2018): score(h, r, t) = f(vec(f([h; r] * w)) W) t + b_t,
    f = ReLU, * a 2D convolution of the stacked 2D-reshaped h and r (`ConvEQuery`).

    Entity rows are [e | b] (De = D + 1, b the per-entity bias); the tail query is
    [q | 1], so the score is one dot product. Tails only: there is no head query, heads are
    ranked as tails of the inverse relation (reciprocal relations).

    Attributes:
      height: the rows of an embedding's 2D shape; D must be a multiple of it.
      batch_norm: the reference's three batch norms (see the module docstring).
      weights: the query network's linen parameters (+ "batch_stats": its batch-norm
        running statistics, with batch norm), set by `bind`.
      key: the dropouts' PRNG key, set by `bind`; None: no dropout.
    """

    tails_only: ClassVar[bool] = True

    height: int = 20
    channels: int = 32
    kernel_size: int = 3
    input_dropout: float = 0.2
    feature_dropout: float = 0.2
    hidden_dropout: float = 0.3
    batch_norm: bool = False
    weights: Any = dataclasses.field(default=None, compare=False, metadata=_BOUND)
    key: Any = dataclasses.field(default=None, compare=False, metadata=_BOUND)

    def __post_init__(self):
        super().__post_init__()
        width = self.dim // self.height if self.dim % self.height == 0 else 0
        if width < self.kernel_size or 2 * self.height < self.kernel_size:
            raise ValueError(
                f"ConvE: dim {self.dim} must be height {self.height} x a width of at least "
                f"kernel_size {self.kernel_size}"
            )

    @property
    def entity_width(self) -> int:
        """De = D + 1: the vector and its bias."""
        return self.dim + 1

    @property
    def network(self) -> ConvEQuery:
        """The query network, sized by this interaction (without its bound weights)."""
        return ConvEQuery(dataclasses.replace(self, weights=None, key=None))

    def tail_query_with_stats(self, head, relation):
        """([..., D + 1] query [q | 1], batch-norm running statistics after this batch or
        None)."""
        head = head[..., : self.dim]
        lead = jnp.broadcast_shapes(head.shape[:-1], relation.shape[:-1])
        head = jnp.broadcast_to(head, (*lead, self.dim)).reshape(-1, self.dim)
        relation = jnp.broadcast_to(relation, (*lead, self.dim)).reshape(-1, self.dim)
        training = self.key is not None
        rngs = {"dropout": self.key} if training else None
        variables = dict(params=dict(self.weights))
        if self.batch_norm:
            variables["batch_stats"] = variables["params"].pop("batch_stats")
        query, updated = self.network.apply(
            variables, head, relation, not training, rngs=rngs, mutable=["batch_stats"]
        )
        query = jnp.concatenate([query, jnp.ones_like(query[:, :1])], axis=-1)
        return query.reshape(*lead, self.dim + 1), updated.get("batch_stats")

    def tail_query(self, head, relation):
        """[..., D + 1], [..., D] -> [..., D + 1]: [q | 1]."""
        return self.tail_query_with_stats(head, relation)[0]

    def head_query(self, relation, tail):
        raise ConfigError(
            "ConvE scores tails only: set training.reciprocal=True, so that heads are "
            "ranked as tails of the inverse relations"
        )


@dataclasses.dataclass(frozen=True)
class TuckER(_WeightedModel):
    """TuckER on free tables: `TuckERInteraction` over {"entity": [V, D], "relation":
    [R, Dr], "interaction": {"core": [D, Dr, D]}}.

    Initialised as the reference: xavier_normal_ tables, core Uniform(-1, 1), batch norms
    at scale 1, shift 0, running mean 0 and variance 1. `gamma` plays no part.
    """

    relation_dim: int = 30
    input_dropout: float = 0.3
    hidden_dropout1: float = 0.4
    hidden_dropout2: float = 0.5
    batch_norm: bool = False

    name = "tucker"
    interaction_class = TuckERInteraction

    def init(self, rng: jax.Array) -> Params:
        keys = jax.random.split(rng, 3)
        shape = (self.dim, self.relation_dim, self.dim)
        interaction = {"core": jax.random.uniform(keys[2], shape, jnp.float32, -1.0, 1.0)}
        if self.batch_norm:
            interaction["batch_stats"] = {}
            for layer in ("bn0", "bn1"):
                interaction[layer], interaction["batch_stats"][layer] = _batch_norm_init(self.dim)
        return {
            "entity": _xavier_normal(keys[0], (self.num_entities, self.dim)),
            "relation": _xavier_normal(keys[1], (self.num_relations, self.relation_dim)),
            "interaction": interaction,
        }

    def embeddings(self, params: Params) -> dict[str, np.ndarray]:
        """The tables, the core tensor [D, Dr, D] and, with batch norm, each layer's
        "bn0_scale", "bn0_bias", "bn0_mean", "bn0_var" (and bn1's) [D]."""
        interaction = params["interaction"]
        out = {
            "entity": np.asarray(params["entity"], np.float32),
            "relation": np.asarray(params["relation"], np.float32),
            "core": np.asarray(interaction["core"], np.float32),
        }
        if self.batch_norm:
            for layer in ("bn0", "bn1"):
                for name, value in (
                    *interaction[layer].items(),
                    *interaction["batch_stats"][layer].items(),
                ):
                    out[f"{layer}_{name}"] = np.asarray(value, np.float32)
        return out


@dataclasses.dataclass(frozen=True)
class ConvE(_WeightedModel):
    """ConvE on free tables: `ConvEInteraction` over {"entity": [V, D + 1] (last column the
    bias), "relation": [R, D], "interaction": the query network's linen parameters}.

    Initialised as the reference: xavier_normal_ tables, zero biases; the convolution and
    dense layers take flax's default initialisers, batch norms flax's (scale 1, shift 0,
    running mean 0, variance 1). Needs reciprocal relations.
    """

    height: int = 20
    channels: int = 32
    kernel_size: int = 3
    input_dropout: float = 0.2
    feature_dropout: float = 0.2
    hidden_dropout: float = 0.3
    batch_norm: bool = False

    name = "conve"
    interaction_class = ConvEInteraction

    def __post_init__(self):
        super().__post_init__()
        self.interaction  # noqa: B018  (checks the 2D shape)

    def init(self, rng: jax.Array) -> Params:
        keys = jax.random.split(rng, 3)
        vectors = _xavier_normal(keys[0], (self.num_entities, self.dim))
        example = jnp.zeros((1, self.dim), jnp.float32)
        network = self.interaction.network
        variables = network.init(keys[2], example, example)
        interaction = dict(variables["params"])
        if self.batch_norm:
            interaction["batch_stats"] = variables["batch_stats"]
        return {
            "entity": jnp.concatenate([vectors, jnp.zeros((self.num_entities, 1))], axis=1),
            "relation": _xavier_normal(keys[1], (self.num_relations, self.dim)),
            "interaction": interaction,
        }

    def embeddings(self, params: Params) -> dict[str, np.ndarray]:
        """Entity vectors [V, D], their biases [V] and relation vectors [R, D]."""
        entity = np.asarray(params["entity"], np.float32)
        return {
            "entity": entity[:, : self.dim],
            "entity_bias": entity[:, self.dim],
            "relation": np.asarray(params["relation"], np.float32),
        }
