"""Host <-> device transfers: NumPy arrays onto a mesh (each host its own rows) and back.

On a pod every process runs the same program but holds only its own devices' shards:
`put` builds a global array from the rows this host's devices hold, and `fetch` gathers a
global array back into one NumPy array on every host.

Shapes: V entities, D width, X devices.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import NamedSharding


class HostTransfers:
    """Moving arrays between the host and a layout's devices; mixed into `Layout`.

    Needs from the class: `padded(count, logical)`, `sharding(*logical)`, `replicated`,
    `is_padded(params)`, `pad_params(params)` and `param_shardings(params)`.
    """

    def put(self, array, *logical: str | None) -> jax.Array:
        """A host array as a global array laid out along `logical` (default: replicated).

        The first dimension is padded with zeros to split evenly. Each process reads only
        the rows its own devices hold (`jax.make_array_from_callback`), so on a pod each host
        touches its slice of the data.
        """
        array = np.asarray(array)
        shape = list(array.shape)
        if logical and logical[0] is not None:
            shape[0] = self.padded(shape[0], logical[0])
        return _from_host(
            array, tuple(shape), self.sharding(*logical) if logical else self.replicated
        )

    def replicate(self, tree):
        """Every array of a pytree on every device of the mesh (no copy where it already is)."""

        def one(x):
            if isinstance(x, jax.Array) and x.sharding.is_equivalent_to(self.replicated, x.ndim):
                return x
            return self.put(np.asarray(x))

        return jax.tree.map(one, tree)

    def place_params(self, params):
        """Parameters padded and split as this layout lays them out (no copy where they are).

        Accepts the tables as a model makes them ([V, D]) or already padded: a training
        state's parameters pass through untouched.
        """
        shardings = self.param_shardings(params)
        if not self.is_padded(params):
            return jax.jit(self.pad_params, out_shardings=shardings)(params)

        def one(x, sharding):
            if isinstance(x, jax.Array) and x.sharding.is_equivalent_to(sharding, x.ndim):
                return x
            if isinstance(x, jax.Array) and x.is_fully_addressable:
                return jax.device_put(x, sharding)
            return _from_host(np.asarray(x), np.shape(x), sharding)

        return jax.tree.map(one, params, shardings)

    def fetch(self, array: jax.Array) -> np.ndarray:
        """A global array as a NumPy array on this host (gathered across hosts if need be)."""
        if array.is_fully_addressable:
            return np.asarray(array)
        if array.is_fully_replicated:
            return np.asarray(array.addressable_data(0))
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(array, tiled=True))


def _from_host(array: np.ndarray, shape: tuple, sharding: NamedSharding) -> jax.Array:
    """`array` zero-padded to `shape` along its first dimension, built shard by shard."""

    def block(index):
        if not shape:
            return array
        start, stop, _ = index[0].indices(shape[0])
        part = array[(slice(start, min(stop, array.shape[0])), *index[1:])]
        if stop > array.shape[0]:
            pad = [(0, stop - max(start, array.shape[0]))] + [(0, 0)] * (part.ndim - 1)
            part = np.pad(part, pad)
        return part

    return jax.make_array_from_callback(tuple(shape), sharding, block)
