"""The training state and the device-side training data, both pytrees."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from kgjax.data.triples import KGDataset, subsampling_weights
from kgjax.models.base import KGEModel, Params
from kgjax.ops.triple_index import DeviceTripleIndex


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
    def create(cls, model: KGEModel, sampler, optimizer: optax.GradientTransformation, rng):
        """Fresh parameters from `rng` (model and sampler from independent streams)."""
        model_key, sampler_key = jax.random.split(rng)
        params = model.init(model_key)
        sampler_params = sampler.init(sampler_key, model)
        trainable = {"model": params, "sampler": sampler_params}
        return cls(
            step=jnp.zeros((), jnp.int32),
            params=params,
            sampler_params=sampler_params,
            opt_state=optimizer.init(trainable),
        )


@struct.dataclass
class TrainData:
    """The training split on the device.

    Attributes:
      triples: int32 [n, 3].
      weights: float32 [n] subsampling weights (ones when subsampling is off).
      index: the training triples' index, for filtered negatives.
      features: fixed per-entity arrays a sampler or model reads (e.g. MMRNS's text and
        visual features, [V, ...] each); {} when none are needed.
    """

    triples: jax.Array
    weights: jax.Array
    index: DeviceTripleIndex
    features: dict[str, jax.Array]

    @classmethod
    def from_dataset(
        cls,
        dataset: KGDataset,
        subsampling: bool,
        features: dict[str, np.ndarray] | None = None,
    ) -> TrainData:
        train = dataset.train
        weights = subsampling_weights(train) if subsampling else np.ones(len(train), np.float32)
        return cls(
            triples=jnp.asarray(train, jnp.int32),
            weights=jnp.asarray(weights, jnp.float32),
            index=DeviceTripleIndex.from_host(dataset.triple_index(("train",))),
            features={key: jnp.asarray(value) for key, value in (features or {}).items()},
        )
