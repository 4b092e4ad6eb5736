"""The training state and the device-side training data, both pytrees.

On a mesh (`kgjax.parallel.layout.Layout`) the state is created already split: `TrainState.create`
runs under jit with the shardings of `TrainState.shardings` as out_shardings, so each device
draws only its rows of the tables and no device ever holds a whole table. The tables are
drawn as [V, D] exactly as on one device and then padded with zero rows, so a run's values
do not depend on its device count.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from kgjax.data.triples import KGDataset, TripleIndex, subsampling_weights
from kgjax.models.kge.base import KGEModel, Params
from kgjax.ops import sampling
from kgjax.ops.triple_index import DeviceTripleIndex
from kgjax.parallel.layout import Layout


@struct.dataclass
class TrainState:
    """Everything a checkpoint holds. `step` counts completed optimizer steps.

    The optimizer state covers `trainable`: the model's and the sampler's parameters.
    """

    step: jax.Array  # int32 scalar
    params: Params
    sampler_params: Params
    opt_state: optax.OptState

    @property
    def trainable(self) -> dict[str, Params]:
        return {"model": self.params, "sampler": self.sampler_params}

    @classmethod
    def create(
        cls,
        model: KGEModel,
        sampler,
        optimizer: optax.GradientTransformation,
        rng,
        layout: Layout | None = None,
    ):
        """Fresh parameters from `rng` (model and sampler from independent streams).

        Args:
          layout: pads the tables for this mesh (their real rows are drawn as without it);
            None: the tables as the model makes them.
        """
        model_key, sampler_key = jax.random.split(rng)
        params = model.init(model_key)
        if layout is not None:
            params = layout.pad_params(params)
        sampler_params = sampler.init(sampler_key, model)
        trainable = {"model": params, "sampler": sampler_params}
        return cls(
            step=jnp.zeros((), jnp.int32),
            params=params,
            sampler_params=sampler_params,
            opt_state=optimizer.init(trainable),
        )

    @staticmethod
    def shardings(abstract: TrainState, optimizer, layout: Layout) -> TrainState:
        """Where each part of a state lives: tables split by rows, optimizer state like its
        parameter, everything else (step, sampler parameters, counters) replicated.

        Args:
          abstract: the state's shapes (`jax.eval_shape` of `create`).
        """
        trainable = {
            "model": layout.param_shardings(abstract.params),
            "sampler": jax.tree.map(lambda _: layout.replicated, abstract.sampler_params),
        }
        return TrainState(
            step=layout.replicated,
            params=trainable["model"],
            sampler_params=trainable["sampler"],
            opt_state=layout.opt_state_shardings(optimizer, abstract.opt_state, trainable),
        )

    @classmethod
    def create_sharded(cls, model, sampler, optimizer, rng, layout: Layout) -> TrainState:
        """`create` computed directly into its shards (one jit, out_shardings)."""
        create = lambda: cls.create(model, sampler, optimizer, rng, layout)
        shardings = cls.shardings(jax.eval_shape(create), optimizer, layout)
        return jax.jit(create, out_shardings=shardings)()

    @classmethod
    def abstract(cls, model, sampler, optimizer, layout: Layout) -> TrainState:
        """The state's shapes with their shardings: the target of a checkpoint restore."""
        create = lambda: cls.create(model, sampler, optimizer, jax.random.key(0), layout)
        shapes = jax.eval_shape(create)
        shardings = cls.shardings(shapes, optimizer, layout)
        return jax.tree.map(
            lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), shapes, shardings
        )


@struct.dataclass
class TrainData:
    """The training split on the device.

    The training examples are the triples (negative sampling, 1vsAll), with each inverse
    (t, r + R, h) added when relations are reciprocal, or the distinct queries (KvsAll:
    (anchor, relation, side) with side `sampling.TAIL_BATCH` for (h, r, ?) and
    `sampling.HEAD_BATCH` for (?, r, t)).

    Attributes:
      triples: int32 [n', 3] examples, split by rows over the mesh ("triples"); n' >= n pads.
      weights: float32 [n'] subsampling weights (ones when subsampling is off), split alike.
      index: the training triples' index (with their inverses when reciprocal), for filtered
        negatives and KvsAll's targets (replicated).
      features: fixed per-entity arrays a sampler or model reads (e.g. MMRNS's text and
        visual features, [V, ...] each); {} when none are needed (replicated).
      num_triples: n, the real rows of `triples` (None: all of them).
      teacher: the frozen distillation teacher's parameters (`kgjax.train.kge.distillation`),
        read by the step and never trained: they are not in the optimizer state; None
        without a teacher (replicated).
    """

    triples: jax.Array
    weights: jax.Array
    index: DeviceTripleIndex
    features: dict[str, jax.Array]
    num_triples: int | None = struct.field(pytree_node=False, default=None)
    teacher: Params | None = None

    @property
    def size(self) -> int:
        """n, the number of real training triples."""
        return self.triples.shape[0] if self.num_triples is None else self.num_triples

    @classmethod
    def from_dataset(
        cls,
        dataset: KGDataset,
        subsampling: bool,
        features: dict[str, np.ndarray] | None = None,
        layout: Layout | None = None,
        reciprocal: bool = False,
        queries: bool = False,
        teacher: Params | None = None,
    ) -> TrainData:
        """The training split on the layout's devices (default: the default device).

        Each process uploads only the rows of the triples its own devices hold.

        Args:
          subsampling: RotatE's frequency weights (else ones); with `queries`, always ones.
          reciprocal: add (t, r + R, h) for every training triple (R relations become 2R).
          queries: the examples are KvsAll's distinct queries instead of the triples.
          teacher: the distillation teacher's parameters, already on the layout's devices.
        """
        train = np.asarray(dataset.train, np.int32)
        if reciprocal:
            train = with_inverses(train, dataset.num_relations)
            index = DeviceTripleIndex.from_host(TripleIndex.build(train, dataset.num_entities))
        else:
            index = DeviceTripleIndex.from_host(dataset.triple_index(("train",)))
        if queries:
            train = distinct_queries(train, both_sides=not reciprocal)
        if subsampling and not queries:
            weights = subsampling_weights(train)
        else:
            weights = np.ones(len(train), np.float32)
        features = {key: np.asarray(value) for key, value in (features or {}).items()}
        if layout is None:
            return cls(
                triples=jnp.asarray(train, jnp.int32),
                weights=jnp.asarray(weights, jnp.float32),
                index=index,
                features={key: jnp.asarray(value) for key, value in features.items()},
                num_triples=len(train),
                teacher=teacher,
            )
        return cls(
            triples=layout.put(np.asarray(train, np.int32), "triples", None),
            weights=layout.put(np.asarray(weights, np.float32), "triples"),
            index=layout.replicate(index),
            features=layout.replicate(features),
            num_triples=len(train),
            teacher=teacher,
        )


def with_inverses(triples: np.ndarray, num_relations: int) -> np.ndarray:
    """int [n, 3] -> int32 [2n, 3]: the triples, then each inverse (t, r + R, h)."""
    triples = np.asarray(triples, np.int32)
    inverse = triples[:, ::-1].copy()
    inverse[:, 1] += num_relations
    return np.concatenate([triples, inverse])


def distinct_queries(triples: np.ndarray, both_sides: bool = True) -> np.ndarray:
    """KvsAll's examples: every distinct (h, r, ?) and, with `both_sides`, (?, r, t) query.

    Returns:
      int32 [q, 3] rows (anchor, relation, side): (h, r, TAIL_BATCH) and (t, r, HEAD_BATCH),
      sorted (tails first, then heads).
    """
    triples = np.asarray(triples, np.int32)
    tails = np.unique(triples[:, [0, 1]], axis=0)
    sides = [np.column_stack([tails, np.full(len(tails), sampling.TAIL_BATCH, np.int32)])]
    if both_sides:
        heads = np.unique(triples[:, [2, 1]], axis=0)
        sides.append(np.column_stack([heads, np.full(len(heads), sampling.HEAD_BATCH, np.int32)]))
    return np.concatenate(sides).astype(np.int32)
