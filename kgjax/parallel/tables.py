"""Row-split tables: reading rows by id, and row-sparse updates, under jit on a mesh.

A table split by rows along a logical axis ("entity": [V, D] over the Xm devices of "model")
is read with `take` (samplers see it as `TableView[ids]`): a shard_map in which each device
gathers, for the ids of its model group, the rows it owns, and a reduce-scatter hands each
device the rows of its own batch slice. Its transpose (a custom VJP) is an all-gather of the
row gradients and a local scatter-add, so a table's gradient is born sharded like the table,
and a step's several reads add into one gradient buffer: no device ever holds a whole table.

Row-sparse updates (`RowTap`, `update_rows`) keep the gradient per row instead: each device
gathers the step's (id, row gradient) pairs and updates, in place, the rows it owns.

Shapes: B batch (ids read), V entities, R relations, D width, X devices, Xm model-axis size,
Vp a table's rows (padded), U the distinct ids of a step.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from kgjax.parallel.mesh import shard_map
from kgjax.parallel.placement import is_boxed, path_name


class RowTables:
    """Reads and row-sparse updates of row-split tables; mixed into `Layout`.

    Needs from the class: `mesh`, `num_devices`, `mesh_axes(logical)`, `size(logical)`,
    `padded(count, logical)`, `rows(logical)`, `table_paths(params)` and `always_viewed`
    (row axes whose tables are viewed on any mesh, replicated too).
    """

    # Which tables the step reads through views.

    def viewed(self, params) -> tuple[str, ...]:
        """The paths of the tables the step reads through views (see `tables`)."""
        if self.num_devices == 1:
            return ()
        return tuple(
            path
            for path, logical in self.table_paths(params).items()
            if logical in self.always_viewed or self.size(logical) > 1
        )

    def tables(self, params):
        """The parameters as the step reads them: on a mesh, tables become `TableView`s.

        Split tables are always viewed; a table of `always_viewed` (the entity table) on any
        mesh, replicated too (its reads' gradients then meet in one buffer and one
        all-reduce). Another replicated table stays an array (samplers may read it whole),
        and on one device every table stays the array it is, so the single-device step is
        exactly the plain one.
        """
        rows = self.table_paths(params)
        return _replace(
            params,
            self.viewed(params),
            lambda path, table: TableView(self, table, rows[path], self.rows(rows[path])[0]),
        )

    def taps(self, params, sinks: dict | None = None):
        """The parameters with the viewed tables (those of `always_viewed` at least) as `RowTap`s.

        Args:
          sinks: {path: [zeros shaped like each read's rows]}, whose gradients become the
            reads' row gradients; None to record the reads' shapes only.
        """
        rows = self.table_paths(params)
        paths = self.viewed(params) or tuple(
            path for path, logical in rows.items() if logical in self.always_viewed
        )
        return _replace(
            params,
            paths,
            lambda path, table: RowTap(
                self, table, rows[path], self.rows(rows[path])[0], (sinks or {}).get(path)
            ),
        )

    # Reading rows.

    def take(self, table: jax.Array, ids: jax.Array, logical: str) -> jax.Array:
        """`table[ids]` for a table split by rows along `logical`, for use under jit.

        Each device gathers the rows it owns for the ids of its model group (the devices
        that share its rows' split), then a reduce-scatter leaves each device the rows of
        its own slice of the ids: memory and traffic per device are O(ids / data-axis size),
        never O(table). The gradient is scattered into the table's own shards.

        Args:
          table: [Vp, ...] split by rows along `logical` ("entity", "relation", "triples").
          ids: int [...] rows to read, each below Vp.
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

    def gather_in_group(self, shard: jax.Array, ids: jax.Array, logical: str) -> jax.Array:
        """Inside shard_map: rows of a split table for ids shared by the devices of a group.

        Every device of the group (same ids) gets all the rows: each contributes those it
        owns, and a psum over the table's axes combines them.

        Args:
          shard: [Vp / shards, ...] this device's shard of a table split along `logical`.
          ids: int [...] global row ids, the same on every device that splits the table.
        """
        row_axes = self.mesh_axes(logical)
        if self.size(logical) == 1:
            return shard[ids]
        return jax.lax.psum(self._owned_rows(shard, ids, logical), row_axes)

    # Row-sparse updates.

    def update_rows(self, logical: str, arrays: tuple, ids, grads, rule, first=None) -> tuple:
        """Adds to the rows that `ids` touch what `rule` makes of their summed gradients.

        Every device gathers all the step's (id, gradient) pairs, sums the gradients of the
        ids it owns (`jnp.unique` + `segment_sum`: a buffer of the reads' size, never of the
        table's) and scatter-adds `rule`'s increments into its shards, in place.

        Args:
          logical: the tables' row axis ("entity" or "relation").
          arrays: [Vp, D] arrays split along `logical` (a parameter and/or its optimizer
            moments).
          ids: int [B] rows read; grads: float [B, D] their gradients.
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


def _replace(params, paths: tuple[str, ...], make):
    """`params` with the (unboxed) parameter at each of `paths` replaced by make(path, value)."""

    def one(path, leaf):
        name = path_name(path)
        if name not in paths:
            return leaf
        return make(name, leaf.value if is_boxed(leaf) else leaf)

    return jax.tree_util.tree_map_with_path(one, params, is_leaf=is_boxed)


@functools.cache
def _sharded_take(layout: RowTables, logical: str, shape: tuple, dtype):
    """The read of one split table: a gather by shard_map with a hand-written transpose.

    Forward: all-gather the ids over the table's row axes, gather the owned rows (zeros for
    the others), reduce-scatter. Backward: all-gather the row gradients and scatter-add the
    owned ones into the incoming table cotangent (the chain's accumulator, zeros for the
    last read); the first read of the chain then psums over the mesh axes of size > 1 the
    table is replicated on. Without the chain XLA keeps one table-sized gradient per read
    (the scatters sit in separate manual regions, out of reach of its add-of-scatter rewrite).

    Returns:
      take(table, ids [B], first) -> (rows [B, ...], table).
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


class TableView:
    """A table on a mesh, seen as the [rows, ...] array it stands for.

    On more than one device the training step hands samplers and regularisers
    `{"entity": TableView, "relation": ...}`: `view[ids]` reads rows through `Layout.take`
    (gradients flow back to the table), `view.shape[0]` is the real row count (padding
    excluded). Reading a whole split table is deliberately not offered: gather the rows you
    need (`view.table` is the padded array, for a sampler that knows what it is doing).
    """

    def __init__(self, layout: RowTables, table: jax.Array, logical: str, num_rows: int):
        self.layout = layout
        self.table = table
        self.logical = logical
        self.shape = (num_rows, *table.shape[1:])
        self.dtype = table.dtype
        self.ndim = table.ndim
        # Successive reads chain through the table (see `RowTables._take_rows`) so that their
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

    def __init__(self, layout: RowTables, table, logical: str, num_rows: int, sinks=None):
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
