"""A thin wrapper over one orbax CheckpointManager.

Orbax writes each checkpoint into a temporary folder and renames it when complete, so a
run killed at any moment (SIGKILL included) leaves only whole checkpoints behind; an
unfinished one is invisible to `latest_step` and cleaned up by the next manager.

Sharded states are written shard by shard (on a pod, every process writes its own) and
restored straight into the shardings the target asks for, so a run saved on 8 devices
restores onto 1 or 4. Split tables carry zero padding rows whose count depends on the
mesh; a restore onto another mesh drops or appends such rows (and nothing else may differ).
"""

from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp


class Checkpointer:
    """Saves and restores a state pytree under `<directory>/<step>/`."""

    def __init__(self, directory: str, max_to_keep: int = 2):
        self.directory = os.path.abspath(directory)
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
            # Named up front so that `item_metadata` can read a checkpoint before any save.
            item_handlers=ocp.StandardCheckpointHandler(),
        )

    def latest_step(self) -> int | None:
        """The step of the newest complete checkpoint, or None."""
        return self._manager.latest_step()

    def save(self, step: int, state) -> None:
        """Starts saving `state` as `step` (asynchronously; `wait` or `close` to finish)."""
        self._manager.save(step, args=ocp.args.StandardSave(state), force=True)

    def restore(self, abstract_state, step: int | None = None):
        """Restores the checkpoint `step` (default: latest) into the shape of `abstract_state`.

        Args:
          abstract_state: a pytree of arrays or jax.ShapeDtypeStruct (e.g. from
            jax.eval_shape), whose shardings, if any, say where the arrays go.

        Raises:
          FileNotFoundError: no checkpoint in the directory.
        """
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"{self.directory}: no checkpoint to restore")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)
        resized = self._resized_rows(step, abstract)
        return self._manager.restore(
            step, args=ocp.args.StandardRestore(abstract, strict=not resized)
        )

    def read(self, step: int | None = None):
        """The checkpoint `step` (default: latest) as saved, without a target structure (on
        the default device; for reading parts of another run, e.g. a pre-trained encoder).

        Raises:
          FileNotFoundError: no checkpoint in the directory.
        """
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"{self.directory}: no checkpoint to read")
        # The saved shardings name the devices of the run that wrote it (8 GPUs, a pod slice):
        # every array is read whole onto this process's first device instead.
        device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        target = jax.tree.map(
            lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=device),
            self._manager.item_metadata(step).tree,
            is_leaf=lambda leaf: hasattr(leaf, "shape") and hasattr(leaf, "dtype"),
        )
        return self._manager.restore(step, args=ocp.args.StandardRestore(target))

    def _resized_rows(self, step: int, abstract) -> bool:
        """Whether the saved arrays differ from the target's only in their leading (padded row)
        dimension; any other difference is left to orbax's strict check to report."""
        saved = _shapes(self._manager.item_metadata(step).tree)
        wanted = _shapes(abstract)
        if saved == wanted or saved.keys() != wanted.keys():
            return False
        return all(
            a == b or (len(a) == len(b) >= 1 and a[1:] == b[1:])
            for a, b in ((saved[key], wanted[key]) for key in saved)
        )

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


def _shapes(tree) -> dict[tuple, tuple]:
    """{leaf path as names: shape}, the same for a state and for its saved metadata."""

    def name(entry):
        for attribute in ("key", "name", "idx"):
            if hasattr(entry, attribute):
                return str(getattr(entry, attribute))
        return str(entry)

    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {tuple(name(e) for e in path): tuple(leaf.shape) for path, leaf in leaves}
