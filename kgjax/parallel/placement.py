"""Path-based placement: the logical axes of every parameter, hence where it lives.

A parameter's logical axes (one name or None per dimension) come from, first to last:

1. its own box: a flax linen parameter made with
   `nn.with_logical_partitioning(init, ("embed", "mlp"))` carries its names (`nn.Partitioned`),
   as in MaxText, so an encoder declares its own split;
2. the first rule `(path regex, axes)` whose regex `re.search`es the parameter's path, its
   keys joined by "/": `(r"(^|/)entity$", ("entity", "embed"))` places `params["entity"]`
   and `params["memory"]["entity"]` alike (big_vision's `sharding_strategy`);
3. nothing matches: replicated.

The layout maps logical axes onto mesh axes (`mesh.RULES`). A parameter whose first logical
axis names a row count the layout knows ("entity" -> V, "relation" -> R) is a *table*: it is
padded with zero rows to a multiple of that axis's shard count on the devices, unpadded on the
way back to the host, and read through views on a mesh (`tables.py`). The padding is never
sampled (ids are drawn below V), never ranked (columns >= V are not candidates) and never
receives a gradient, so it stays zero.

Shapes: V entities, R relations, D width, Xm model-axis size.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import optax
from flax.core import meta
from jax.sharding import NamedSharding

# ((parameter-path regex, logical axes), ...): hashable, so a layout holding it is jit-static.
Rules = tuple[tuple[str, tuple[str | None, ...]], ...]


def parse_rules(rules) -> Rules:
    """Checks placement rules (e.g. from a config, lists for tuples) and returns them hashable.

    Args:
      rules: pairs (regex, axes), axes a sequence of logical axis names or None.

    Raises:
      ValueError: not pairs, a regex that does not compile, or an axis neither a string nor
        None.
    """
    form = 'pairs (path regex, logical axes), e.g. ((r"(^|/)entity$", ("entity", "embed")),)'
    pairs = []
    try:
        for pattern, axes in rules:
            if not isinstance(pattern, str) or isinstance(axes, str):
                raise TypeError(pattern, axes)  # "entity" would read as 6 one-letter axes
            pairs.append((pattern, tuple(axes)))
    except (TypeError, ValueError):
        raise ValueError(f"{rules!r} is not {form}") from None
    for pattern, axes in pairs:
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(f"placement rule {pattern!r}: {error}") from None
        if not all(axis is None or isinstance(axis, str) for axis in axes):
            raise ValueError(f"placement rule {pattern!r}: axes {axes!r} are not names or None")
    return tuple(pairs)


def path_name(path) -> str:
    """A pytree key path as the rules see it: its keys joined by "/" ("memory/entity")."""
    return jax.tree_util.keystr(path, simple=True, separator="/")


def is_boxed(x) -> bool:
    """Whether `x` is a flax parameter box that names its own axes (`nn.Partitioned`)."""
    return isinstance(x, meta.Partitioned)


def logical_axes(name: str, leaf, rules: Rules) -> tuple[str | None, ...] | None:
    """The logical axes of one parameter: its box's names, else the first matching rule's.

    Returns:
      One name (or None) per leading dimension; None when nothing places it (replicated).
    """
    if is_boxed(leaf):
        return tuple(leaf.names)
    for pattern, axes in rules:
        if re.search(pattern, name):
            return axes
    return None


def map_params(fn, params, rules: Rules):
    """`fn(name, value, axes)` on every parameter, as `jax.tree.map` would.

    Boxed parameters are handed over unboxed and their results boxed again, so the tree keeps
    the parameters' structure (boxes included) and can pair with them in `jax.tree.map`.
    """

    def one(path, leaf):
        name = path_name(path)
        axes = logical_axes(name, leaf, rules)
        if is_boxed(leaf):
            return leaf.replace_boxed(fn(name, leaf.value, axes))
        return fn(name, leaf, axes)

    return jax.tree_util.tree_map_with_path(one, params, is_leaf=is_boxed)


def named_params(params, rules: Rules) -> list[tuple[str, object, tuple | None]]:
    """(path, unboxed value, logical axes) of every parameter, in pytree order."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(params, is_leaf=is_boxed)
    return [
        (name, leaf.value if is_boxed(leaf) else leaf, logical_axes(name, leaf, rules))
        for name, leaf in ((path_name(path), leaf) for path, leaf in leaves)
    ]


class Placement:
    """Where a layout puts parameters; mixed into `Layout`.

    Needs from the class: `rules` (the placement rules), `num_rows` ((logical axis, real
    rows) pairs), `rows(logical)`, `sharding(*logical)` and `replicated`.
    """

    def table_axis(self, axes: tuple[str | None, ...] | None) -> str | None:
        """The row axis of a parameter with these logical axes, if it is a table, else None."""
        if axes and axes[0] in dict(self.num_rows):
            return axes[0]
        return None

    def table_paths(self, params) -> dict[str, str]:
        """{path: row axis} of the tables among the parameters (in pytree order)."""
        return {
            name: self.table_axis(axes)
            for name, _, axes in named_params(params, self.rules)
            if self.table_axis(axes)
        }

    def is_padded(self, params) -> bool:
        """Whether every table holds its padded row count (as on this layout's devices)."""
        return all(
            value.shape[0] == self.rows(self.table_axis(axes))[1]
            for _, value, axes in named_params(params, self.rules)
            if self.table_axis(axes)
        )

    def pad_params(self, params):
        """Appends zero rows to the tables so each splits evenly (a no-op when none are needed).

        Works on traced arrays: used inside the jitted initialisation, after the [V, D]
        values were drawn exactly as on one device.
        """

        def pad(name, value, axes):
            logical = self.table_axis(axes)
            if logical is None:
                return value
            real, padded = self.rows(logical)
            if value.shape[0] != real or padded == real:
                return value
            return jnp.pad(value, ((0, padded - real),) + ((0, 0),) * (value.ndim - 1))

        return map_params(pad, params, self.rules)

    def unpad_params(self, params):
        """The tables without their padding rows (on the host: NumPy in, NumPy out)."""

        def unpad(name, value, axes):
            logical = self.table_axis(axes)
            return value if logical is None else value[: self.rows(logical)[0]]

        return map_params(unpad, params, self.rules)

    def param_shardings(self, params):
        """A sharding per parameter, from its logical axes; replicated where it has none.

        Boxed parameters get their sharding in the same box (see `map_params`).

        Raises:
          ValueError: a parameter has more logical axes than dimensions.
        """

        def sharding(name, value, axes) -> NamedSharding:
            if axes is None:
                return self.replicated
            if len(axes) > len(value.shape):
                raise ValueError(
                    f"parameter {name!r} of shape {tuple(value.shape)} is placed by the "
                    f"logical axes {axes}: more axes than dimensions"
                )
            return self.sharding(*axes)

        return map_params(sharding, params, self.rules)

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
