"""A thin wrapper over one orbax CheckpointManager.

Orbax writes each checkpoint into a temporary folder and renames it when complete, so a
run killed at any moment (SIGKILL included) leaves only whole checkpoints behind; an
unfinished one is invisible to `latest_step` and cleaned up by the next manager.
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
        return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()
