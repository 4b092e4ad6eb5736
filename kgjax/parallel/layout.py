"""Device meshes, logical-axis rules and row-sharded tables: kgjax on many devices and hosts.

A run's devices form a two-axis mesh from `config.mesh.axes`, e.g.
`(("data", -1), ("model", 8))` (one size may be -1: all the remaining devices). Arrays name
their dimensions with *logical* axes and `RULES` maps those onto mesh axes, as MaxText does:

  logical axis   mesh axes           what
  batch          ("data", "model")   training positives and negatives: every device a slice
  eval_batch     "data"              evaluation triples (each model shard scores its own rows)
  entity         "model"             rows of the entity table (and of its optimizer state)
  relation       "model"             rows of the relation table, with config.mesh.shard_relations
                                     (else replicated: it is small, and samplers read it whole)
  triples        ("data", "model")   the training triples: each device (and host) holds a slice
  embed          None                the embedding width is never split

With data = N, model = 1 (the default) the tables are replicated and the batch is split:
plain data parallelism, right for tables that fit one device. With model = M > 1 every
device holds 1/M of each table and of its optimizer state. Tables are padded with zero rows
to a multiple of M; the padding is never sampled (ids are drawn below V), never ranked
(columns >= V are not candidates) and never receives a gradient, so it stays zero.

Rows of a table on a mesh are read with `Layout.take` (samplers see it as
`TableView[ids]`): a shard_map in which each device gathers, for the ids of its model group,
the rows it owns, and a reduce-scatter hands each device the rows of its own batch slice.
Its transpose (a custom VJP) is an all-gather of the row gradients and a local scatter-add,
so a table's gradient is born sharded like the table, and a step's several reads add into
one gradient buffer: no device ever holds a whole table.

What the tests prove (tests/sharding_test.py, 8 fake CPU devices): 1, 2, 4 and 8 devices
train to the same parameters and metrics; padding rows and their Adam moments stay 0;
a poisoned padding row changes no rank; checkpoints move between device counts; two
processes joined by `jax.distributed` train as one 8-device mesh.

Shapes: B batch, V entities, R relations, D width, N devices, M model-axis size.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA = "data"
MODEL = "model"
AXIS_NAMES = (DATA, MODEL)
DEFAULT_AXES = ((DATA, -1), (MODEL, 1))

# Logical axis -> the mesh axes it is split over (empty: replicated).
RULES: dict[str, tuple[str, ...]] = {
    "batch": (DATA, MODEL),
    "eval_batch": (DATA,),
    "entity": (MODEL,),
    "relation": (MODEL,),
    "triples": (DATA, MODEL),
    "embed": (),
}

# Parameter tables whose rows are split, and the logical axis of their rows.
TABLES = ("entity", "relation")

DISTRIBUTED_ENV = "KGJAX_DISTRIBUTED"


def shard_map(f, *, mesh: Mesh, in_specs, out_specs, check: bool = True):
    """`jax.shard_map` where it exists (JAX >= 0.7), else `jax.experimental.shard_map`.

    Args:
      check: let JAX verify that outputs declared replicated are (`check_vma`, formerly
        `check_rep`); off only where the code replicates them itself.
    """
    if hasattr(jax, "shard_map"):
        return jax.shard_map(f, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=check)
    from jax.experimental.shard_map import shard_map as legacy_shard_map

    return legacy_shard_map(f, mesh, in_specs, out_specs, check_rep=check)


# --- the mesh ---------------------------------------------------------------------------


def parse_axes(axes) -> tuple[tuple[str, int], ...]:
    """Checks `config.mesh.axes` and returns it as ((name, size), ...).

    Raises:
      ValueError: not pairs of ("data" | "model", size), a size not positive or -1, more
        than one -1, or a name missing or repeated.
    """
    form = 'pairs (name, size), e.g. (("data", -1), ("model", 8))'
    try:
        pairs = tuple((str(name), int(size)) for name, size in axes)
    except (TypeError, ValueError):
        raise ValueError(f"{axes!r} is not {form}") from None
    names = [name for name, _ in pairs]
    if sorted(names) != sorted(AXIS_NAMES):
        raise ValueError(f"{axes!r}: the axes must be named {AXIS_NAMES}, each once ({form})")
    sizes = [size for _, size in pairs]
    if any(size < 1 and size != -1 for size in sizes) or sizes.count(-1) > 1:
        raise ValueError(f"{axes!r}: sizes must be positive, and at most one may be -1")
    return pairs


def resolve_axes(axes, num_devices: int) -> tuple[tuple[str, int], ...]:
    """`parse_axes` with the -1 size filled in so that the sizes multiply to `num_devices`.

    Raises:
      ValueError: the sizes cannot multiply to the device count.
    """
    pairs = parse_axes(axes)
    known = math.prod(size for _, size in pairs if size != -1)
    if any(size == -1 for _, size in pairs):
        if num_devices % known:
            raise ValueError(f"mesh {pairs} does not divide the {num_devices} devices")
        pairs = tuple((name, num_devices // known if size == -1 else size) for name, size in pairs)
    if math.prod(size for _, size in pairs) != num_devices:
        raise ValueError(
            f"mesh {pairs} needs {math.prod(size for _, size in pairs)} devices; "
            f"{num_devices} are available (use -1 for one axis to take the rest)"
        )
    return pairs


def make_mesh(axes=DEFAULT_AXES, devices: Sequence | None = None) -> Mesh:
    """The device mesh for `config.mesh.axes` over `devices` (default: all of them).

    Devices are laid out by `mesh_utils.create_device_mesh` (topology-aware on TPU and GPU);
    `jax.devices()` lists a host's devices together, so the last axis stays within a host
    where it fits.
    """
    devices = list(jax.devices() if devices is None else devices)
    pairs = resolve_axes(axes, len(devices))
    shape = tuple(size for _, size in pairs)
    try:
        from jax.experimental import mesh_utils

        grid = mesh_utils.create_device_mesh(shape, devices, allow_split_physical_axes=True)
    except (ValueError, NotImplementedError, AssertionError):
        grid = np.asarray(devices, dtype=object).reshape(shape)
    names = tuple(name for name, _ in pairs)
    try:
        return Mesh(grid, names, axis_types=(jax.sharding.AxisType.Auto,) * len(names))
    except (AttributeError, TypeError):  # JAX without axis types: every axis is automatic.
        return Mesh(grid, names)


def distributed_requested(mesh_config) -> bool:
    """Whether this run is one process of many: `$KGJAX_DISTRIBUTED` wins over the config."""
    env = os.environ.get(DISTRIBUTED_ENV, "").strip().lower()
    if env:
        return env in ("1", "true", "yes", "on")
    return bool(mesh_config.get("distributed", False))


def initialize_distributed(mesh_config) -> bool:
    """Calls `jax.distributed.initialize()` when asked to (before anything uses a device).

    Arguments left at their defaults in `config.mesh` are auto-detected by JAX: on Cloud TPU
    pod slices, under SLURM or Open MPI, or from `$JAX_COORDINATOR_ADDRESS`.

    Returns:
      True when this process is part of a multi-process run.
    """
    if not distributed_requested(mesh_config):
        return False
    if not jax.distributed.is_initialized():
        kwargs = {}
        if mesh_config.get("coordinator_address", ""):
            kwargs["coordinator_address"] = mesh_config.coordinator_address
        if mesh_config.get("num_processes", 0) > 0:
            kwargs["num_processes"] = mesh_config.num_processes
        if mesh_config.get("process_id", -1) >= 0:
            kwargs["process_id"] = mesh_config.process_id
        jax.distributed.initialize(**kwargs)
    return True


# --- where arrays live ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Layout:
    """A mesh plus the table sizes: where every array of a run lives. Hashable (jit-static).

    Attributes:
      mesh: the device mesh (axes "data" and "model").
      num_entities: V, the real entity rows (the table holds `entity_rows` >= V).
      num_relations: R, the real relation rows (the table holds `relation_rows` >= R).
      shard_relations: split the relation table along "model" too (else it is replicated).
    """

    mesh: Mesh
    num_entities: int
    num_relations: int
    shard_relations: bool = False

    @classmethod
    def create(
        cls,
        num_entities: int,
        num_relations: int,
        axes=DEFAULT_AXES,
        devices: Sequence | None = None,
        shard_relations: bool = False,
    ) -> Layout:
        return cls(make_mesh(axes, devices), num_entities, num_relations, shard_relations)

    @classmethod
    def single_device(cls, num_entities: int, num_relations: int, device=None) -> Layout:
        """The trivial layout: one device, nothing split or padded."""
        return cls.create(num_entities, num_relations, devices=[device or jax.devices()[0]])

    # Sizes and specs.

    @property
    def num_devices(self) -> int:
        return self.mesh.size

    def mesh_axes(self, logical: str | None) -> tuple[str, ...]:
        """The mesh axes a logical axis is split over (by `RULES`)."""
        if not logical or (logical == "relation" and not self.shard_relations):
            return ()
        return RULES[logical]

    def size(self, logical: str | None) -> int:
        """How many shards the logical axis is split into."""
        return math.prod(self.mesh.shape[name] for name in self.mesh_axes(logical))

    def spec(self, *logical: str | None) -> P:
        """The PartitionSpec of an array whose dimensions are the logical axes given."""
        entries = []
        for axis in logical:
            names = self.mesh_axes(axis)
            entries.append(None if not names else names[0] if len(names) == 1 else names)
        return P(*entries)

    def sharding(self, *logical: str | None) -> NamedSharding:
        return NamedSharding(self.mesh, self.spec(*logical))

    @property
    def replicated(self) -> NamedSharding:
        return NamedSharding(self.mesh, P())

    def padded(self, count: int, logical: str) -> int:
        """`count` rounded up to a multiple of the logical axis's shard count."""
        shards = self.size(logical)
        return -(-count // shards) * shards

    @property
    def entity_rows(self) -> int:
        return self.padded(self.num_entities, "entity")

    @property
    def relation_rows(self) -> int:
        return self.padded(self.num_relations, "relation")

    def rows(self, table: str) -> tuple[int, int]:
        """(real rows, padded rows) of the "entity" or "relation" table."""
        if table == "entity":
            return self.num_entities, self.entity_rows
        return self.num_relations, self.relation_rows

    def describe(self) -> dict:
        """The mesh in words, for logs and results."""
        return {
            "mesh": dict(self.mesh.shape),
            "num_devices": self.num_devices,
            "num_processes": jax.process_count(),
            "entity_rows": self.entity_rows,
            "relation_rows": self.relation_rows,
        }

    # Parameters.

    def pad_params(self, params: dict) -> dict:
        """Appends zero rows to the tables so each splits evenly (a no-op when none are needed).

        Works on traced arrays: used inside the jitted initialisation, after the [V, D]
        values were drawn exactly as on one device.
        """
        out = dict(params)
        for key in TABLES:
            if key in out:
                real, padded = self.rows(key)
                if out[key].shape[0] == real and padded > real:
                    out[key] = jnp.pad(out[key], ((0, padded - real), (0, 0)))
        return out

    def unpad_params(self, params: dict) -> dict:
        """The tables without their padding rows (on the host: NumPy in, NumPy out)."""
        out = dict(params)
        for key in TABLES:
            if key in out:
                out[key] = out[key][: self.rows(key)[0]]
        return out

    def param_shardings(self, params) -> dict:
        """Tables split by rows along their logical axis; anything else replicated."""
        return {
            key: self.sharding(key, "embed") if key in TABLES else self._replicate_tree(value)
            for key, value in params.items()
        }

    def opt_state_shardings(self, optimizer: optax.GradientTransformation, opt_state, shardings):
        """Optimizer state sharded like its parameter (Adam's mu and nu like the tables).

        Args:
          optimizer: the transformation that made `opt_state`.
          opt_state: the (abstract) state.
          shardings: a tree of shardings shaped like the parameters.
        """
        return optax.tree_map_params(
            optimizer,
            lambda _, sharding: sharding,
            opt_state,
            shardings,
            transform_non_params=lambda _: self.replicated,
        )

    def _replicate_tree(self, tree):
        return jax.tree.map(lambda _: self.replicated, tree)

    def tables(self, params: dict) -> dict:
        """The parameters as the step reads them: on a mesh, tables become `TableView`s.

        Split tables are always viewed; the entity table is viewed on any mesh, replicated
        too (its reads' gradients then meet in one buffer and one all-reduce). A replicated
        relation table stays an array (samplers may read it whole), and on one device every
        table stays the array it is, so the single-device step is exactly the plain one.
        """
        out = dict(params)
        for key in self.viewed(params):
            out[key] = TableView(self, out[key], key, self.rows(key)[0])
        return out

    # Reading rows of a split table.

    def take(self, table: jax.Array, ids: jax.Array, logical: str) -> jax.Array:
        """`table[ids]` for a table split by rows along `logical`, for use under jit.

        Each device gathers the rows it owns for the ids of its model group (the devices
        that share its rows' split), then a reduce-scatter leaves each device the rows of
        its own slice of the ids: memory and traffic per device are O(ids / data-axis size),
        never O(table). The gradient is scattered into the table's own shards.

        Args:
          table: [T, ...] split by rows along `logical` ("entity", "relation", "triples").
          ids: int [...] rows to read, each below T.
          logical: the logical axis of the table's rows.

        Returns:
          [..., ...] the rows, split along "batch" (ids flattened).
        """
        return self._take_rows(table, ids, logical, first=True)[0]

    def _take_rows(self, table, ids, logical: str, first: bool):
        """`take`, also returning the table itself as the link of a gradient chain.

        Reads chained through the returned table (as `TableView` does) accumulate their
        gradients in one buffer: each read's transpose scatter-adds into the cotangent
        handed back by the next read, in place, instead of every read making a table-sized
        gradient of its own that a sum then adds up.

        Args:
          first: whether `table` is the parameter itself rather than a link of a chain; its
            transpose finishes the gradient (the psum over the axes the table is replicated on).

        Returns:
          (rows [..., ...], the table as the next link).
        """
        if self.num_devices == 1:
            return table[ids], table
        flat = ids.reshape(-1)
        count = flat.shape[0]
        flat = jnp.pad(flat, (0, self.padded(count, "batch") - count))
        take = _sharded_take(self, logical, table.shape, jnp.dtype(table.dtype))
        rows, link = take(table, flat, first)
        return rows[:count].reshape(ids.shape + table.shape[1:]), link

    def shard_offset(self, logical: str, shard_rows: int) -> jax.Array:
        """Inside shard_map: the first global row of this device's shard of `logical`."""
        index = jnp.int32(0)
        for name in self.mesh_axes(logical):
            index = index * self.mesh.shape[name] + jax.lax.axis_index(name)
        return index * shard_rows

    def _owned_rows(self, shard: jax.Array, ids: jax.Array, logical: str) -> jax.Array:
        """Inside shard_map: shard rows for the ids this device owns, zeros for the others."""
        local = ids - self.shard_offset(logical, shard.shape[0])
        owned = (local >= 0) & (local < shard.shape[0])
        # Out-of-range ids read the fill value, and their gradients are dropped rather than
        # piled onto one row (which would serialise on a GPU's atomics).
        local = jnp.where(owned, local, shard.shape[0])
        return jnp.take(shard, local, axis=0, mode="fill", fill_value=0)

    def viewed(self, params: dict) -> tuple[str, ...]:
        """The tables the step reads through views (see `tables`)."""
        if self.num_devices == 1:
            return ()
        return tuple(k for k in TABLES if k in params and (k == "entity" or self.size(k) > 1))

    def taps(self, params: dict, sinks: dict | None = None) -> dict:
        """The parameters with the viewed tables (the entity table always) as `RowTap`s.

        Args:
          sinks: {table: [zeros shaped like each read's rows]}, whose gradients become the
            reads' row gradients; None to record the reads' shapes only.
        """
        out = dict(params)
        for key in self.viewed(params) or ("entity",):
            out[key] = RowTap(self, out[key], key, self.rows(key)[0], (sinks or {}).get(key))
        return out

    def update_rows(self, logical: str, arrays: tuple, ids, grads, rule, first=None) -> tuple:
        """Adds to the rows that `ids` touch what `rule` makes of their summed gradients.

        Every device gathers all the step's (id, gradient) pairs, sums the gradients of the
        ids it owns (`jnp.unique` + `segment_sum`: a buffer of the reads' size, never of the
        table's) and scatter-adds `rule`'s increments into its shards, in place.

        Args:
          logical: the tables' row axis ("entity" or "relation").
          arrays: [T, D] arrays split along `logical` (a parameter and/or its optimizer
            moments).
          ids: int [M] rows read; grads: float [M, D] their gradients.
          rule: (rows, g [U, D] summed gradients) -> tuple of increments [U, D], one per
            array; `rows(i)` gathers the touched rows of `arrays[i]` (as `first` left them).
          first: an elementwise pass over whole shards before the increments (e.g. Adam's
            decay of its moments), in the same region.

        Returns:
          `arrays` with the increments added.
        """
        batch_axes = self.mesh_axes("batch")
        count = ids.shape[0]
        padded = self.padded(count, "batch")
        rows_total = arrays[0].shape[0]
        ids = jnp.pad(ids, (0, padded - count), constant_values=rows_total)  # owned by none
        grads = jnp.pad(grads, ((0, padded - count), (0, 0)))
        table_spec = P(self.mesh_axes(logical), None)

        def body(arrays, local_ids, local_grads):
            if first is not None:
                arrays = first(*arrays)
            all_ids = jax.lax.all_gather(local_ids, batch_axes, tiled=True)
            all_grads = jax.lax.all_gather(local_grads, batch_axes, tiled=True)
            shard_rows = arrays[0].shape[0]
            local = all_ids - self.shard_offset(logical, shard_rows)
            local = jnp.where((local >= 0) & (local < shard_rows), local, shard_rows)
            unique, inverse = jnp.unique(
                local, size=local.shape[0], fill_value=shard_rows, return_inverse=True
            )
            summed = jax.ops.segment_sum(all_grads, inverse.reshape(-1), local.shape[0])

            def rows(i):
                return jnp.take(arrays[i], unique, axis=0, mode="fill", fill_value=0)

            return tuple(
                a.at[unique].add(d.astype(a.dtype), mode="drop")
                for a, d in zip(arrays, rule(rows, summed), strict=True)
            )

        specs = tuple(table_spec for _ in arrays)
        # Every device of a replica group computes the same rows from the same gathered
        # pairs, which the checker cannot see through the all-gather.
        return shard_map(
            body,
            mesh=self.mesh,
            in_specs=(specs, P(batch_axes), P(batch_axes, None)),
            out_specs=specs,
            check=False,
        )(tuple(arrays), ids, grads)

    def gather_in_group(self, shard: jax.Array, ids: jax.Array, logical: str) -> jax.Array:
        """Inside shard_map: rows of a split table for ids shared by the devices of a group.

        Every device of the group (same ids) gets all the rows: each contributes those it
        owns, and a psum over the table's axes combines them.

        Args:
          shard: [T / shards, ...] this device's shard of a table split along `logical`.
          ids: int [...] global row ids, the same on every device that splits the table.
        """
        row_axes = self.mesh_axes(logical)
        if self.size(logical) == 1:
            return shard[ids]
        return jax.lax.psum(self._owned_rows(shard, ids, logical), row_axes)

    # Host <-> devices.

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

    def place_params(self, params: dict) -> dict:
        """Parameters padded and split as this layout lays them out (no copy where they are).

        Accepts the tables as a model makes them ([V, De]) or already padded: a training
        state's parameters pass through untouched.
        """
        shardings = self.param_shardings(params)
        if any(key in TABLES and params[key].shape[0] != self.rows(key)[1] for key in params):
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


@functools.cache
def _sharded_take(layout: Layout, logical: str, shape: tuple, dtype):
    """The read of one split table: a gather by shard_map with a hand-written transpose.

    Forward: all-gather the ids over the table's row axes, gather the owned rows (zeros for
    the others), reduce-scatter. Backward: all-gather the row gradients and scatter-add the
    owned ones into the incoming table cotangent (the chain's accumulator, zeros for the
    last read); the first read of the chain then psums over the mesh axes of size > 1 the
    table is replicated on. Without the chain XLA keeps one table-sized gradient per read
    (the scatters sit in separate manual regions, out of reach of its add-of-scatter rewrite).

    Returns:
      take(table, ids [M], first) -> (rows [M, ...], table).
    """
    mesh = layout.mesh
    row_axes = layout.mesh_axes(logical)
    batch_axes = layout.mesh_axes("batch")
    replicated = tuple(a for a in mesh.axis_names if a not in row_axes and mesh.shape[a] > 1)
    shard_rows = shape[0] // layout.size(logical)
    trailing = (None,) * (len(shape) - 1)
    table_spec, batch_spec = P(row_axes, *trailing), P(batch_axes, *trailing)

    def gather(shard, local_ids):
        group_ids = jax.lax.all_gather(local_ids, row_axes, tiled=True)
        rows = layout._owned_rows(shard, group_ids, logical)
        return jax.lax.psum_scatter(rows, row_axes, scatter_dimension=0, tiled=True)

    def scatter(accumulated, local_ids, local_rows, finish):
        group_ids = jax.lax.all_gather(local_ids, row_axes, tiled=True)
        group_rows = jax.lax.all_gather(local_rows, row_axes, tiled=True)
        local = group_ids - layout.shard_offset(logical, shard_rows)
        owned = (local >= 0) & (local < shard_rows)
        local = jnp.where(owned, local, shard_rows)  # out of range: dropped
        grad = accumulated.at[local].add(group_rows.astype(dtype), mode="drop")
        return jax.lax.psum(grad, replicated) if finish and replicated else grad

    forward = shard_map(
        gather, mesh=mesh, in_specs=(table_spec, P(batch_axes)), out_specs=batch_spec
    )
    # Links of the chain hold partial sums over `replicated` until the first read's psum;
    # over axes of size 1 they are trivially replicated. The checker cannot see either.
    backward = {
        finish: shard_map(
            functools.partial(scatter, finish=finish),
            mesh=mesh,
            in_specs=(table_spec, P(batch_axes), batch_spec),
            out_specs=table_spec,
            check=False,
        )
        for finish in (False, True)
    }

    @functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
    def take(table, ids, first):
        return forward(table, ids), table

    def take_forward(table, ids, first):
        return (forward(table, ids), table), ids

    def take_backward(first, ids, cotangents):
        rows_grad, table_grad = cotangents
        return backward[first](table_grad, ids, rows_grad), None

    take.defvjp(take_forward, take_backward)
    return take


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


class TableView:
    """A table on a mesh, seen as the [rows, ...] array it stands for.

    On more than one device the training step hands samplers and regularisers
    `{"entity": TableView, "relation": ...}`: `view[ids]` reads rows through `Layout.take`
    (gradients flow back to the table), `view.shape[0]` is the real row count (padding
    excluded). Reading a whole split table is deliberately not offered: gather the rows you
    need (`view.table` is the padded array, for a sampler that knows what it is doing).
    """

    def __init__(self, layout: Layout, table: jax.Array, logical: str, num_rows: int):
        self.layout = layout
        self.table = table
        self.logical = logical
        self.shape = (num_rows, *table.shape[1:])
        self.dtype = table.dtype
        self.ndim = table.ndim
        # Successive reads chain through the table (see `Layout._take_rows`) so that their
        # gradients share one buffer.
        self._link = table
        self._reads = 0

    def __getitem__(self, ids) -> jax.Array:
        if isinstance(ids, tuple | slice) or not jnp.issubdtype(jnp.result_type(ids), jnp.integer):
            raise TypeError(
                f"a split {self.logical} table is read with an integer array of row ids "
                f"(table[ids]); got {ids!r}"
            )
        rows, self._link = self.layout._take_rows(
            self._link, jnp.asarray(ids), self.logical, first=self._reads == 0
        )
        self._reads += 1
        return rows


class RowTap(TableView):
    """A table read row by row whose gradient stays per row: `tap[ids]` = rows + a sink.

    For row-sparse updates (`config.optimizer.row_sparse`): the table itself gets no
    gradient (no table-sized buffer); each read adds a zero "sink" of the rows' shape whose
    gradient is the rows' gradient, and records its ids (`ids`) for `Layout.update_rows`.
    """

    def __init__(self, layout: Layout, table, logical: str, num_rows: int, sinks=None):
        super().__init__(layout, table, logical, num_rows)
        self.ids: list[jax.Array] = []
        self._sinks = sinks

    def __getitem__(self, ids) -> jax.Array:
        if isinstance(ids, tuple | slice) or not jnp.issubdtype(jnp.result_type(ids), jnp.integer):
            raise TypeError(
                f"a {self.logical} table is read with an integer array of row ids "
                f"(table[ids]); got {ids!r}"
            )
        ids = jnp.asarray(ids)
        rows = self.layout.take(jax.lax.stop_gradient(self.table), ids, self.logical)
        if self._sinks is not None:
            rows = rows + self._sinks[len(self.ids)]
        self.ids.append(ids)
        return rows
