"""Knowledge-graph embedding split as PyKEEN splits it: interactions and representations.

An *interaction* (`Interaction`) is a stateless scoring function: a frozen dataclass of static
hyper-parameters whose methods take entity and relation vectors from anywhere (table rows,
text vectors, a GAT's output). Every score is written as a *query* matched against
*candidates*:

  tail prediction:  score(h, r, t) = match(tail_query(h, r), t)
  head prediction:  score(h, r, t) = match(head_query(r, t), h)

so training negatives, filtered ranking against all entities and single-triple scoring all
run through one `match`, the only place a faster kernel needs to go.

A *representation* (`EmbeddingTables`) makes the vectors: here free parameter tables
`{"entity": [V, De], "relation": [R, Dr]}`. A *model* (`KGEModel`, PyKEEN's ERModel) composes
one interaction with the tables and scores triples given as ids. An interaction with weights
of its own (TuckER's core tensor, ConvE's layers: `parametrized.py`) reads them from
`params["interaction"]`; callers bind them first, `model.bind(params, key)`, which for a
two-table model returns the model itself.

Shapes: B batch, K negatives, V entities, R relations, D embedding width, De and Dr the
widths of an entity and a relation vector (2D for a complex one, stored as [re | im]), Dq the
width of a query: De, except where an interaction says otherwise (PairRE's query carries the
relation's candidate-side vector too: Dq = 2De).
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

Params = dict[str, jax.Array]


def embedding_range(gamma: float, dim: int) -> float:
    """The RotatE reference's initialisation range (gamma + epsilon) / dim, epsilon = 2."""
    return (gamma + 2.0) / dim


@dataclasses.dataclass(frozen=True)
class Interaction(abc.ABC):
    """A scoring function of entity and relation vectors; subclasses define the formulas.

    Attributes:
      dim: the embedding size in the paper's sense (complex dimensions for complex models).
    """

    dim: int

    # Whether entity (relation) vectors hold [re | im] halves of complex numbers.
    complex_entities: ClassVar[bool] = False
    complex_relations: ClassVar[bool] = False
    # Whether it scores tails only (no head query): heads then need reciprocal relations.
    tails_only: ClassVar[bool] = False

    def __post_init__(self):
        if self.dim < 1:
            raise ValueError(f"{type(self).__name__}: dim must be positive, got {self.dim}")

    @property
    def entity_width(self) -> int:
        """De."""
        return 2 * self.dim if self.complex_entities else self.dim

    @property
    def relation_width(self) -> int:
        """Dr."""
        return 2 * self.dim if self.complex_relations else self.dim

    @abc.abstractmethod
    def tail_query(self, head: jax.Array, relation: jax.Array) -> jax.Array:
        """What a true tail should match.

        Args:
          head: [..., De].
          relation: [..., Dr], broadcastable against `head`'s leading shape.

        Returns:
          [..., Dq].
        """

    @abc.abstractmethod
    def head_query(self, relation: jax.Array, tail: jax.Array) -> jax.Array:
        """What a true head should match.

        Args:
          relation: [..., Dr].
          tail: [..., De], broadcastable against `relation`'s leading shape.

        Returns:
          [..., Dq].
        """

    def tail_query_with_stats(self, head: jax.Array, relation: jax.Array):
        """`tail_query` in one forward with the running statistics of the interaction's
        batch-norm layers after this batch (TuckER's, ConvE's; the train step stores them).

        Returns:
          ([..., Dq] query, the statistics; None for an interaction without batch norm,
          like every interaction without weights).
        """
        return self.tail_query(head, relation), None

    @abc.abstractmethod
    def match(self, query: jax.Array, candidate: jax.Array) -> jax.Array:
        """Scores queries against candidates.

        Args:
          query: [..., Dq].
          candidate: [..., De], broadcastable against `query`'s leading shape.

        Returns:
          [...] scores, higher for a likelier triple.
        """

    @abc.abstractmethod
    def match_all(self, query: jax.Array, candidates: jax.Array) -> jax.Array:
        """Scores every query against every candidate.

        Args:
          query: [B, Dq].
          candidates: [V, De].

        Returns:
          [B, V].
        """


@dataclasses.dataclass(frozen=True)
class DistanceInteraction(Interaction):
    """An interaction scoring gamma - distance(query, candidate).

    Attributes:
      gamma: the margin.
      entity_chunk_size: candidates scored per block in `match_all`, bounding the
        [B, chunk, De] intermediate.
    """

    gamma: float = 12.0
    entity_chunk_size: int = 4096

    def match_all(self, query: jax.Array, candidates: jax.Array) -> jax.Array:
        """Scores every query against every candidate: [B, Dq], [V, De] -> [B, V].

        The candidates are scored in blocks so that a distance never holds [B, V, De].
        """
        num = candidates.shape[0]
        if num <= self.entity_chunk_size:
            return self.match(query[:, None, :], candidates[None])
        chunk = self.entity_chunk_size
        pad = (-num) % chunk
        blocks = jnp.pad(candidates, ((0, pad), (0, 0))).reshape(-1, chunk, candidates.shape[1])
        scores = jax.lax.map(lambda block: self.match(query[:, None, :], block[None]), blocks)
        return jnp.moveaxis(scores, 0, 1).reshape(query.shape[0], -1)[:, :num]


@dataclasses.dataclass(frozen=True)
class BilinearInteraction(Interaction):
    """An interaction scoring the dot product of query and candidate: all entities in one
    matrix product."""

    def match(self, query: jax.Array, candidate: jax.Array) -> jax.Array:
        return jnp.sum(query * candidate, axis=-1)

    def match_all(self, query: jax.Array, candidates: jax.Array) -> jax.Array:
        return query @ candidates.T


@dataclasses.dataclass(frozen=True)
class EmbeddingTables:
    """Free entity and relation vectors: the representation a plain KGE run trains.

    Attributes:
      num_entities: V.
      num_relations: R.
      entity_width: De.
      relation_width: Dr.
      bound: the initialisation range.
      complex_entities: whether entity rows hold [re | im] halves.
      complex_relations: whether relation rows hold [re | im] halves.
      std: None: Uniform(-bound, bound) tables (the RotatE reference); else Normal(0, std)
        (LibKGE's RESCAL).
    """

    num_entities: int
    num_relations: int
    entity_width: int
    relation_width: int
    bound: float
    complex_entities: bool = False
    complex_relations: bool = False
    std: float | None = None

    def init(self, rng: jax.Array) -> Params:
        """Uniform(-bound, bound) tables, as the RotatE reference initialises them, or
        Normal(0, std) ones where `std` is set.

        Returns:
          {"entity": float32 [V, De], "relation": float32 [R, Dr]}.
        """
        entity_key, relation_key = jax.random.split(rng)
        if self.std is not None:
            return {
                "entity": self.std
                * jax.random.normal(
                    entity_key, (self.num_entities, self.entity_width), jnp.float32
                ),
                "relation": self.std
                * jax.random.normal(
                    relation_key, (self.num_relations, self.relation_width), jnp.float32
                ),
            }
        bound = self.bound
        return {
            "entity": jax.random.uniform(
                entity_key, (self.num_entities, self.entity_width), jnp.float32, -bound, bound
            ),
            "relation": jax.random.uniform(
                relation_key,
                (self.num_relations, self.relation_width),
                jnp.float32,
                -bound,
                bound,
            ),
        }

    def embeddings(self, params: Params) -> dict[str, np.ndarray]:
        """The tables in their mathematical form, as NumPy: complex halves joined.

        Returns:
          {"entity": [V, De] float32, or complex64 [V, De / 2]; "relation" likewise}.
        """
        out = {}
        for key, is_complex in (
            ("entity", self.complex_entities),
            ("relation", self.complex_relations),
        ):
            table = np.asarray(params[key], np.float32)
            out[key] = _to_complex(table) if is_complex else table
        return out


class QueriesThroughInteraction:
    """The interaction's four functions on anything that has an `interaction` (mixin): a
    model, or a model whose interaction has its weights bound (`parametrized.BoundModel`)."""

    def tail_query(self, head: jax.Array, relation: jax.Array) -> jax.Array:
        """[..., De], [..., Dr] -> [..., Dq]: what a true tail should match."""
        return self.interaction.tail_query(head, relation)

    def head_query(self, relation: jax.Array, tail: jax.Array) -> jax.Array:
        """[..., Dr], [..., De] -> [..., Dq]: what a true head should match."""
        return self.interaction.head_query(relation, tail)

    def match(self, query: jax.Array, candidate: jax.Array) -> jax.Array:
        """Scores broadcastable [..., Dq] queries against [..., De] candidates -> [...]."""
        return self.interaction.match(query, candidate)

    def tail_query_with_stats(self, head: jax.Array, relation: jax.Array):
        """(tail query, batch-norm running statistics after this batch or None)."""
        return self.interaction.tail_query_with_stats(head, relation)

    def match_all(self, query: jax.Array, candidates: jax.Array) -> jax.Array:
        """Scores every query against every candidate: [B, Dq], [V, De] -> [B, V]."""
        return self.interaction.match_all(query, candidates)


@dataclasses.dataclass(frozen=True)
class KGEModel(QueriesThroughInteraction):
    """An interaction over embedding tables (PyKEEN's ERModel), scoring triples by ids.

    Subclasses name the interaction; the model's fields are its hyper-parameters, and the
    interaction takes those of them that it declares.

    Attributes:
      num_entities: V.
      num_relations: R.
      dim: the embedding size in the paper's sense (complex dimensions for complex models).
      gamma: the margin of distance models; with the RotatE reference it also sets the
        initialisation range (gamma + 2) / dim for every model but RESCAL.
      entity_chunk_size: candidates scored per block in `score_t`/`score_h` for distance
        models, bounding the [B, chunk, De] intermediate.
      init_std: 0: the reference's Uniform(-range, range) tables; > 0: Normal(0, init_std)
        ones instead (kbc's ComplEx-N3 draws N(0, 1) x 1e-3). Only the draw changes:
        `embedding_range` (RotatE's phase scale, the text projection's scale) does not.
    """

    num_entities: int
    num_relations: int
    dim: int = 100
    gamma: float = 12.0
    entity_chunk_size: int = 4096
    init_std: float = 0.0

    name: ClassVar[str] = "base"
    interaction_class: ClassVar[type[Interaction]]

    def __post_init__(self):
        for field in ("num_entities", "num_relations", "dim"):
            if getattr(self, field) < 1:
                raise ValueError(
                    f"{self.name}: {field} must be positive, got {getattr(self, field)}"
                )
        if self.init_std < 0:
            raise ValueError(f"{self.name}: init_std must be >= 0, got {self.init_std}")

    @property
    def interaction(self) -> Interaction:
        """The scoring function alone, for vectors that do not come from the tables."""
        fields = [f for f in dataclasses.fields(self.interaction_class) if f.init and f.compare]
        return self.interaction_class(**{f.name: getattr(self, f.name) for f in fields})

    @property
    def tables(self) -> EmbeddingTables:
        """The representation: the entity and relation tables the interaction scores."""
        interaction = self.interaction
        return EmbeddingTables(
            num_entities=self.num_entities,
            num_relations=self.num_relations,
            entity_width=interaction.entity_width,
            relation_width=interaction.relation_width,
            bound=self.embedding_range,
            complex_entities=self.complex_entities,
            complex_relations=self.complex_relations,
            std=self.init_std or None,
        )

    @property
    def complex_entities(self) -> bool:
        return self.interaction_class.complex_entities

    @property
    def complex_relations(self) -> bool:
        return self.interaction_class.complex_relations

    @property
    def entity_width(self) -> int:
        return self.interaction.entity_width

    @property
    def relation_width(self) -> int:
        return self.interaction.relation_width

    @property
    def embedding_range(self) -> float:
        return embedding_range(self.gamma, self.dim)

    def init(self, rng: jax.Array) -> Params:
        """Fresh tables {"entity": [V, De], "relation": [R, Dr]} (`EmbeddingTables.init`)."""
        return self.tables.init(rng)

    def bind(self, params: Params, key: jax.Array | None = None) -> KGEModel:
        """The model whose interaction reads its own parameters from `params`.

        Models with weights beyond the two tables (TuckER's core, ConvE's layers, under
        `params["interaction"]`) return a `BoundModel`; every call site binds once and then
        calls `tail_query`/`head_query`/`match`/`match_all` on vectors as for any model.
        A plain model has nothing to bind and returns itself.

        Args:
          params: {"entity", "relation", ...}: the tables (arrays or views) and any
            interaction weights.
          key: the PRNG key of the interaction's dropouts (training); None: evaluation,
            deterministic.
        """
        del params, key
        return self

    # --- scoring by ids, in the names KGE users know ----------------------------------------

    def score_hrt(self, params: Params, h: jax.Array, r: jax.Array, t: jax.Array) -> jax.Array:
        """Scores triples given as broadcastable int arrays of ids, e.g. [B] -> [B]."""
        model, entity, relation = self.bind(params), params["entity"], params["relation"]
        return model.match(model.tail_query(entity[h], relation[r]), entity[t])

    def score_t(self, params: Params, h: jax.Array, r: jax.Array) -> jax.Array:
        """Scores every entity as the tail of (h, r): [B], [B] -> [B, V]."""
        model, entity, relation = self.bind(params), params["entity"], params["relation"]
        return model.match_all(model.tail_query(entity[h], relation[r]), entity)

    def score_h(self, params: Params, r: jax.Array, t: jax.Array) -> jax.Array:
        """Scores every entity as the head of (r, t): [B], [B] -> [B, V]."""
        model, entity, relation = self.bind(params), params["entity"], params["relation"]
        return model.match_all(model.head_query(relation[r], entity[t]), entity)

    def embeddings(self, params: Params) -> dict[str, np.ndarray]:
        """The tables in their mathematical form, as NumPy (`EmbeddingTables.embeddings`)."""
        return self.tables.embeddings(params)

    def hparams(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def _to_complex(table: np.ndarray) -> np.ndarray:
    re, im = np.split(table, 2, axis=-1)
    return (re + 1j * im).astype(np.complex64)


def split_complex(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """[..., 2D] -> ([..., D], [..., D]) real and imaginary halves (the reference layout)."""
    return jnp.split(x, 2, axis=-1)


def unbroadcast(x: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Sums `x` over the axes that broadcasting added or stretched: the gradient of an input
    of `shape` that was broadcast to `x.shape`."""
    extra = x.ndim - len(shape)
    if extra:
        x = jnp.sum(x, axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and x.shape[i] != 1)
    return jnp.sum(x, axis=stretched, keepdims=True) if stretched else x


def _l1_distance(query: jax.Array, candidate: jax.Array) -> jax.Array:
    return jnp.sum(jnp.abs(query - candidate), axis=-1)


def _complex_distance(query: jax.Array, candidate: jax.Array) -> jax.Array:
    # A bare sqrt: its NaN gradient at 0 never arises, the backward being `_complex_unit`'s,
    # and it runs 2-3x faster than the guarded `modulus` (ranking all entities is this loop).
    re_q, im_q = split_complex(query)
    re_c, im_c = split_complex(candidate)
    re, im = re_q - re_c, im_q - im_c
    return jnp.sum(jnp.sqrt(re * re + im * im), axis=-1)


def _l1_unit(query, candidate):
    return jnp.sign(query - candidate)


def _complex_unit(query, candidate):
    re_q, im_q = split_complex(query)
    re_c, im_c = split_complex(candidate)
    re, im = re_q - re_c, im_q - im_c
    size = jnp.sqrt(re * re + im * im)
    inverse = jnp.where(size > 0, 1.0 / jnp.where(size > 0, size, 1.0), 0.0)
    return jnp.concatenate([re * inverse, im * inverse], axis=-1)


def _recomputing_vjp(distance, unit_difference):
    """`distance` with a backward pass that recomputes what it needs from the two inputs.

    Autodiff of sum_d f(q_d - c_d) keeps several [..., D] intermediates of the forward
    (differences, moduli, masks) for the backward; at the negatives' [B, K, D] shapes those
    residuals, not the arithmetic, are what a training step pays for. This backward keeps
    only the inputs and forms g * f'(q - c) in one pass: the gradient autodiff gives, with the
    same subgradient 0 where a difference is 0. (Memory traffic is a GPU's bottleneck; on
    CPU the step measures within noise of autodiff's, see BENCHMARKS.md's step profile.)

    Args:
      distance: (query [..., De], candidate [..., De], broadcastable) -> [...].
      unit_difference: (query, candidate) -> d distance / d query, [..., De].
    """
    fn = jax.custom_vjp(distance)

    def forward(query, candidate):
        return distance(query, candidate), (query, candidate)

    def backward(residuals, g):
        query, candidate = residuals
        d_query = g[..., None].astype(query.dtype) * unit_difference(query, candidate)
        return (
            unbroadcast(d_query, query.shape),
            unbroadcast(-d_query, candidate.shape).astype(candidate.dtype),
        )

    fn.defvjp(forward, backward)
    return fn


# TransE's sum_d |q_d - c_d| and RotatE's sum over complex coordinates of |q_d - c_d|.
l1_distance = _recomputing_vjp(_l1_distance, _l1_unit)
complex_distance = _recomputing_vjp(_complex_distance, _complex_unit)
