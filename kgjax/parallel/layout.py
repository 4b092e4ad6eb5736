"""`Layout`: where every array of a run lives, on one device or a mesh of many.

A layout is a device mesh plus what placement needs to know, and composes the rooms of
`kgjax.parallel`:

  mesh.py        the mesh from `config.mesh.axes`, the logical -> mesh axis `RULES`,
                 `jax.distributed` start-up
  placement.py   the logical axes of each parameter (its flax box, else the first
                 (path regex, axes) rule that matches its path), padding of tables
  tables.py      row-split tables: reads by id (`TableView`), row-sparse updates (`RowTap`)
  host.py        host <-> device transfers

The KGE layout (`Layout.create`) knows two tables, [V, D] "entity" and [R, D] "relation",
placed by `KGE_RULES` wherever they sit in the parameter tree. With data = X, model = 1 (the
default) they are replicated and the batch is split; with model = Xm > 1 every device holds
1/Xm of each table (padded with zero rows to a multiple of Xm) and of its optimizer state.

What the tests prove (tests/sharding_test.py, 8 fake CPU devices): 1, 2, 4 and 8 devices
train to the same parameters and metrics; padding rows and their Adam moments stay 0;
a poisoned padding row changes no rank; checkpoints move between device counts; two
processes joined by `jax.distributed` train as one 8-device mesh. tests/placement_test.py:
nested tables and boxed flax parameters are placed by their paths and logical axes.

Shapes: B batch, V entities, R relations, D width, X devices, Xm model-axis size.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import jax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from kgjax.parallel.host import HostTransfers
from kgjax.parallel.mesh import (
    DATA,
    DEFAULT_AXES,
    MODEL,
    RULES,
    initialize_distributed,
    make_mesh,
    parse_axes,
    shard_map,
)
from kgjax.parallel.placement import Placement, Rules, parse_rules
from kgjax.parallel.tables import RowTables, RowTap, TableView

__all__ = [
    "DATA",
    "DEFAULT_AXES",
    "KGE_RULES",
    "MODEL",
    "TABLES",
    "Layout",
    "RowTap",
    "TableView",
    "initialize_distributed",
    "parse_axes",
    "shard_map",
]

# The KGE tables, named by the logical axis of their rows.
TABLES = ("entity", "relation")
# Each KGE table, top-level or nested ("memory/entity"), split by rows along its own axis.
KGE_RULES: Rules = tuple((rf"(^|/){table}$", (table, "embed")) for table in TABLES)


@dataclasses.dataclass(frozen=True)
class Layout(Placement, RowTables, HostTransfers):
    """A mesh plus the tables' sizes and the placement rules. Hashable (jit-static).

    Attributes:
      mesh: the device mesh (axes "data" and "model").
      num_rows: ((logical axis, real rows), ...): the tables a parameter's first logical
        axis may name, e.g. (("entity", V), ("relation", R)); such a table holds
        `rows(axis)[1]` rows on the devices, padded to split evenly.
      rules: ((parameter-path regex, logical axes), ...), first match wins (see
        `placement`); lists are accepted and made tuples.
      axis_rules: ((logical axis, mesh axes), ...), later pairs overriding earlier ones;
        a logical axis with no pair is replicated. Default: `mesh.RULES`.
      always_viewed: row axes whose tables the step reads through views on any mesh,
        replicated too (see `tables`).
    """

    mesh: Mesh
    num_rows: tuple[tuple[str, int], ...] = ()
    rules: Rules = ()
    axis_rules: tuple[tuple[str, tuple[str, ...]], ...] = tuple(RULES.items())
    always_viewed: tuple[str, ...] = ()

    def __post_init__(self):
        # Normalised to tuples (from config lists too) so that the layout stays hashable.
        normal = {
            "num_rows": tuple((str(name), int(count)) for name, count in self.num_rows),
            "rules": parse_rules(self.rules),
            "axis_rules": tuple((str(name), tuple(axes)) for name, axes in self.axis_rules),
            "always_viewed": tuple(self.always_viewed),
        }
        for field, value in normal.items():
            object.__setattr__(self, field, value)

    @classmethod
    def create(
        cls,
        num_entities: int,
        num_relations: int,
        axes=DEFAULT_AXES,
        devices: Sequence | None = None,
        shard_relations: bool = False,
        rules=(),
    ) -> Layout:
        """The KGE layout: entity and relation tables on the mesh of `axes` over `devices`.

        Args:
          num_entities: V, the real entity rows (the table holds `entity_rows` >= V).
          num_relations: R, the real relation rows (the table holds `relation_rows` >= R).
          axes: `config.mesh.axes`; devices: default all of them.
          shard_relations: split the relation table along "model" too (else it is
            replicated: it is small, and samplers read it whole).
          rules: more (parameter-path regex, logical axes) pairs, matched before
            `KGE_RULES`.

        Raises:
          ValueError: the axes do not fit the devices, or a rule is malformed.
        """
        return cls(
            make_mesh(axes, devices),
            num_rows=(("entity", num_entities), ("relation", num_relations)),
            rules=(*parse_rules(rules), *KGE_RULES),
            axis_rules=(*RULES.items(), *((("relation", ()),) if not shard_relations else ())),
            always_viewed=("entity",),
        )

    @classmethod
    def single_device(cls, num_entities: int, num_relations: int, device=None) -> Layout:
        """The trivial layout: one device, nothing split or padded."""
        return cls.create(num_entities, num_relations, devices=[device or jax.devices()[0]])

    # Sizes and specs.

    @property
    def num_devices(self) -> int:
        return self.mesh.size

    def mesh_axes(self, logical: str | None) -> tuple[str, ...]:
        """The mesh axes a logical axis is split over (by `axis_rules`)."""
        if not logical:
            return ()
        return dict(self.axis_rules).get(logical, ())

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

    def rows(self, logical: str) -> tuple[int, int]:
        """(real rows, padded rows) of the table whose rows run along `logical`.

        Raises:
          ValueError: the layout knows no table along `logical`.
        """
        known = dict(self.num_rows)
        if logical not in known:
            raise ValueError(f"no table has rows along {logical!r}; this layout knows {known}")
        return known[logical], self.padded(known[logical], logical)

    @property
    def num_entities(self) -> int:
        return self.rows("entity")[0]

    @property
    def num_relations(self) -> int:
        return self.rows("relation")[0]

    @property
    def entity_rows(self) -> int:
        return self.rows("entity")[1]

    @property
    def relation_rows(self) -> int:
        return self.rows("relation")[1]

    def describe(self) -> dict:
        """The mesh in words, for logs and results."""
        return {
            "mesh": dict(self.mesh.shape),
            "num_devices": self.num_devices,
            "num_processes": jax.process_count(),
            **{f"{logical}_rows": self.rows(logical)[1] for logical, _ in self.num_rows},
        }
