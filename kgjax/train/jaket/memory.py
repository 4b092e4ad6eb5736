"""JAKET's entity context memory: when it is recomputed, and how the new rows are blended in.

Yu et al. (AAAI 2022), "Entity context embedding memory": E^context [V, D] holds every
entity's LM1 vector of its description, so that the knowledge module reads E^(0) rows
instead of running LM1 over every subgraph's descriptions (the paper: about 15x faster
pre-training). Because LM1 keeps training, the memory is recomputed with the current LM1
after T(i) further steps, i the number of refreshes so far (from 0):

    T(i) = min(I_init * a^floor(i / r), I_max)

(the paper: I_init = 10, a = 2, r = 3, I_max = 500, so 10, 10, 10, 20, 20, 20, 40, ..., 500),
and blended in with momentum m (the paper: 0.8):

    E^context <- m E^context + (1 - m) E^context_new.

The schedule is a function of the step alone, so a run resumed at step s refreshes at exactly
the steps the uninterrupted run would (`refreshes_done(s)` of them are behind it).

Placement (`MemoryPlacement`): like a KGE entity table on a mesh with "model" = Xm > 1, the
memory's entity rows are split Xm ways (padded with zero rows to a multiple of Xm; no id ever
reads a padding row), so that each device holds V/Xm rows; the rest of a joint run's state
is replicated. Reads are plain gathers under jit, which XLA partitions over the row split.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from kgjax.parallel.mesh import DATA, MODEL, make_mesh, parse_axes

__all__ = ["MemoryPlacement", "RefreshSchedule", "memory_mesh", "momentum_update"]


@dataclasses.dataclass(frozen=True)
class RefreshSchedule:
    """T(i) = min(initial * growth^floor(i / repeats), maximum) steps between refreshes.

    Attributes:
      initial: I_init, the steps before the first refresh.
      growth: a (>= 1), the factor by which the interval grows.
      repeats: r, refreshes at each interval before it grows.
      maximum: I_max, the longest interval.
    """

    initial: int = 10
    growth: float = 2.0
    repeats: int = 3
    maximum: int = 500

    def __post_init__(self):
        if self.initial < 1 or self.repeats < 1 or self.growth < 1:
            raise ValueError(
                f"RefreshSchedule: initial and repeats must be positive and growth >= 1, got "
                f"{self.initial}, {self.repeats}, {self.growth}"
            )
        if self.maximum < self.initial:
            raise ValueError(
                f"RefreshSchedule: maximum {self.maximum} is below initial {self.initial}"
            )

    def interval(self, refresh: int) -> int:
        """T(i): the steps between refresh i - 1 (or the start) and refresh i."""
        return int(min(self.initial * self.growth ** (refresh // self.repeats), self.maximum))

    def steps(self, num_steps: int) -> list[int]:
        """The steps s (1 <= s <= num_steps) after which the memory is refreshed: the
        cumulative sums of T(0), T(1), ..."""
        out, step, refresh = [], 0, 0
        while True:
            step += self.interval(refresh)
            if step > num_steps:
                return out
            out.append(step)
            refresh += 1

    def refreshes_done(self, step: int) -> int:
        """How many refreshes a run has made once `step` steps are behind it."""
        return len(self.steps(step))

    def is_refresh_step(self, step: int) -> bool:
        """Whether the memory is refreshed once `step` steps are done."""
        done = self.refreshes_done(step)
        return done > 0 and self.steps(step)[-1] == step


def momentum_update(memory: jax.Array, fresh: jax.Array, momentum: float) -> jax.Array:
    """m * memory + (1 - m) * fresh: [V, D], [V, D] -> [V, D]; momentum m in [0, 1)."""
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    return momentum * memory + (1.0 - momentum) * jnp.asarray(fresh, memory.dtype)


def memory_mesh(axes, devices=None) -> Mesh:
    """The mesh of `config.mesh.axes` for a joint run: "model" devices (-1: all) split the
    memory's rows; "data" must be 1 (the joint step is not data-parallel).

    Raises:
      ValueError: malformed axes, "data" above 1, or more devices asked for than exist.
    """
    sizes = dict(parse_axes(axes))
    if sizes[DATA] != 1:
        raise ValueError(
            f"{axes!r}: a joint run splits only the memory, along {MODEL!r}; {DATA!r} must be 1"
        )
    devices = list(jax.devices() if devices is None else devices)
    count = len(devices) if sizes[MODEL] == -1 else sizes[MODEL]
    if count > len(devices):
        raise ValueError(f"{axes!r} asks for {count} devices; {len(devices)} are available")
    return make_mesh(((DATA, 1), (MODEL, count)), devices[:count])


@dataclasses.dataclass(frozen=True)
class MemoryPlacement:
    """A joint run's state on `mesh`: the memory's entity rows split along "model", the rest
    replicated.

    Attributes:
      mesh: from `memory_mesh`.
      num_entities: V, the memory's real rows.
    """

    mesh: Mesh
    num_entities: int

    @property
    def rows(self) -> int:
        """Vp: V rounded up to a multiple of the "model" axis size."""
        shards = self.mesh.shape[MODEL]
        return -(-self.num_entities // shards) * shards

    def pad(self, entity) -> jax.Array:
        """[V, D] (NumPy or JAX) -> float [Vp, D], zero rows appended."""
        entity = jnp.asarray(entity)
        return jnp.pad(entity, ((0, self.rows - entity.shape[0]), (0, 0)))

    @property
    def memory_rows(self) -> NamedSharding:
        return NamedSharding(self.mesh, P(MODEL, None))

    @property
    def replicated(self) -> NamedSharding:
        return NamedSharding(self.mesh, P())

    def shardings(self, state):
        """The sharding of every leaf of `state` (a TrainState, arrays or abstract)."""

        def one(path, _):
            name = jax.tree_util.keystr(path)
            is_memory = name.endswith("frozen['memory']['entity']")
            return self.memory_rows if is_memory else self.replicated

        return jax.tree_util.tree_map_with_path(one, state)

    def place(self, state):
        """`state` with its leaves on the mesh (the memory padded before: `pad`)."""
        return jax.device_put(state, self.shardings(state))

    def abstract(self, abstract_state):
        """`jax.eval_shape`'s state with the shardings attached: the restore target."""
        return jax.tree.map(
            lambda leaf, sharding: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding),
            abstract_state,
            self.shardings(abstract_state),
        )
