"""The device mesh and the logical axes that name its splits, from `config.mesh`.

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
  mlp, heads     "model"             an encoder's hidden and attention-head dimensions
                                     (tensor parallelism, for parameters that declare them)

With data = X, model = 1 (the default) the tables are replicated and the batch is split:
plain data parallelism, right for tables that fit one device. With model = Xm > 1 every
device holds 1/Xm of each table and of its optimizer state.

Shapes: X devices, Xm model-axis size.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import Mesh

DATA = "data"
MODEL = "model"
AXIS_NAMES = (DATA, MODEL)
DEFAULT_AXES = ((DATA, -1), (MODEL, 1))

# Logical axis -> the mesh axes it is split over (empty: replicated). A logical axis with no
# entry is replicated, as in flax's `logical_to_mesh_axes`.
RULES: dict[str, tuple[str, ...]] = {
    "batch": (DATA, MODEL),
    "eval_batch": (DATA,),
    "entity": (MODEL,),
    "relation": (MODEL,),
    "triples": (DATA, MODEL),
    "embed": (),
    "mlp": (MODEL,),
    "heads": (MODEL,),
}

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
        # mesh_utils knows the physical topology of full TPU/GPU slices only; for a subset of
        # devices or fake CPU devices it raises one of these, and the order given is kept.
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
