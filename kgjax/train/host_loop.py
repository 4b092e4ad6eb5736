"""The host loop every family's trainer runs on: resume, device calls, cadences, NaN stop.

A family (KGE today; JAKET, KnowBERT, distillation next) describes its run as a `Family`:
how to make a fresh state and the restore target, the jitted multi-step device call, the
evaluations to run during training, and host hooks on schedules of their own (a memory
refresh, a curriculum). `run` does the rest, the same way for every family:

  create (or restore) the state into its shards
  while step < num_steps:
    state, metrics = family.train_chunk(state)        # chunk_length steps on the device
    stop on a NaN/Inf loss (the last good checkpoint stays the newest)
    at their cadences: log the window's mean metrics, run hooks, checkpoint, evaluate

Only process 0 writes logs and files; every process writes its shards of a checkpoint.
Metrics reach the host once per chunk: there is no host sync inside a chunk.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence

import jax
import numpy as np
from tqdm import tqdm

from kgjax.checkpoints import Checkpointer
from kgjax.train.workdir import CHECKPOINT_DIR
from kgjax.train.writer import MetricsWriter


class TrainingDiverged(RuntimeError):
    """The loss became NaN or Inf; training stopped, the last good checkpoint is kept."""


@dataclasses.dataclass(frozen=True)
class Cadence:
    """How long to train and how often to log, evaluate and checkpoint (steps).

    Every cadence is a multiple of the family's chunk length (`chunk_length` picks one).
    """

    num_steps: int
    log_every_steps: int
    eval_every_steps: int
    checkpoint_every_steps: int

    @classmethod
    def of(cls, config) -> Cadence:
        """From a run config's top-level keys of the same names (every family has them)."""
        return cls(
            num_steps=config.num_steps,
            log_every_steps=config.log_every_steps,
            eval_every_steps=config.eval_every_steps,
            checkpoint_every_steps=config.checkpoint_every_steps,
        )


@dataclasses.dataclass(frozen=True)
class Hook:
    """A host-side action between device calls: `state = run(state, step)` when `due(step)`.

    `due` is a pure function of the step, so a resumed run fires at exactly the steps the
    uninterrupted run would.
    """

    due: Callable[[int], bool]
    run: Callable[[object, int], object]


@dataclasses.dataclass(frozen=True)
class Family:
    """What a model family plugs into `run`.

    Attributes:
      initial_state: () -> a fresh state, already in its shards (called on a first start only).
      abstract_state: () -> the state's shapes with their shardings (the restore target).
      train_chunk: state -> (state, metrics {name: [chunk_length]}); a jitted call that
        donates its input. `metrics["loss"]` is checked for NaN and Inf.
      chunk_length: steps per device call.
      evaluations: {name: state -> {"<split>/<metric>": float}} run every eval_every_steps
        (not at the last step: the family's final evaluation covers it).
      hooks: host actions on schedules of their own.
      fetch: a device array -> a NumPy array on this host (gathered across hosts).
    """

    initial_state: Callable[[], object]
    abstract_state: Callable[[], object]
    train_chunk: Callable[[object], tuple[object, Mapping[str, jax.Array]]]
    chunk_length: int
    evaluations: Mapping[str, Callable[[object], Mapping[str, float]]] = dataclasses.field(
        default_factory=dict
    )
    hooks: Sequence[Hook] = ()
    fetch: Callable[[jax.Array], np.ndarray] = np.asarray


@dataclasses.dataclass
class Outcome:
    """Where the loop ended: the final state and how long training took."""

    state: object
    step: int
    train_seconds: float
    steps_per_second: float | None  # excluding the first call, which compiles


class _NoWriter:
    """The metrics writer of processes other than 0: they log nothing."""

    def write(self, step, event, scalars) -> None:
        del step, event, scalars

    def last_logged(self, event, key, up_to_step) -> None:
        del event, key, up_to_step

    def close(self) -> None:
        pass


def open_writer(workdir: str):
    """The run's metrics writer on process 0; a writer that drops everything elsewhere."""
    return MetricsWriter(workdir) if jax.process_index() == 0 else _NoWriter()


def open_checkpointer(workdir: str, max_to_keep: int) -> Checkpointer:
    return Checkpointer(os.path.join(workdir, CHECKPOINT_DIR), max_to_keep)


def chunk_length(steps_per_call: int, cadence: Cadence) -> int:
    """Steps per device call: the largest that divides every cadence and `steps_per_call`."""
    return math.gcd(
        steps_per_call,
        cadence.log_every_steps,
        cadence.eval_every_steps,
        cadence.checkpoint_every_steps,
        cadence.num_steps,
    )


def config_chunk_length(config) -> int:
    """`chunk_length` of a run config's `steps_per_call` and cadences."""
    return chunk_length(config.steps_per_call, Cadence.of(config))


def _mean_ignoring_nan(values: np.ndarray) -> float:
    """Mean of the finite-or-inf values; NaN when there are none (e.g. an unused metric)."""
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")


def _diverged(losses: np.ndarray, step: int, checkpointer: Checkpointer, writer):
    bad = int(np.flatnonzero(~np.isfinite(losses))[0])
    last = checkpointer.latest_step()
    writer.write(step + bad, "diverged", {"train/loss": losses[bad]})
    where = (
        f"The last good checkpoint is step {last} in {checkpointer.directory}"
        if last is not None
        else "training stopped before any checkpoint was saved"
    )
    return TrainingDiverged(
        f"the training loss became {losses[bad]} at step {step + bad + 1}; training stopped. "
        + where
    )


def run(
    family: Family,
    cadence: Cadence,
    checkpointer: Checkpointer,
    writer,
    progress: bool = True,
) -> Outcome:
    """Trains `family` to `cadence.num_steps`, resuming from the newest checkpoint.

    Raises:
      TrainingDiverged: the loss became NaN or Inf (the newest checkpoint is the last good
        one; nothing after it was saved).
    """
    start_step = checkpointer.latest_step()
    # Training time adds up over the invocations of a resumed run (each "train" record holds
    # the total so far), and a run resumed at its end reports the rate it was trained at.
    earlier_seconds, earlier_rate = 0.0, None
    if start_step is None:
        state, start_step = family.initial_state(), 0
    else:
        state = checkpointer.restore(family.abstract_state(), start_step)
        if progress:
            tqdm.write(f"resuming from the checkpoint at step {start_step}", file=sys.stderr)
        earlier_seconds = writer.last_logged("train", "train/seconds", start_step) or 0.0
        earlier_rate = writer.last_logged("train", "train/steps_per_second", start_step)
        writer.write(start_step, "resume", {})

    length = family.chunk_length
    step = start_step
    window: list[dict[str, np.ndarray]] = []
    train_seconds, steady_seconds = earlier_seconds, 0.0
    steady_steps = 0
    bar = tqdm(total=cadence.num_steps, initial=step, disable=not progress, unit="step")
    while step < cadence.num_steps:
        started = time.perf_counter()
        state, metrics = family.train_chunk(state)
        metrics = jax.tree.map(family.fetch, metrics)  # replicated: every host has them
        elapsed = time.perf_counter() - started
        train_seconds += elapsed
        if step > start_step:
            steady_seconds += elapsed
            steady_steps += length
        losses = metrics["loss"]
        if not np.all(np.isfinite(losses)):
            raise _diverged(losses, step, checkpointer, writer)
        step += length
        window.append(metrics)
        bar.update(length)
        bar.set_postfix(loss=f"{float(losses[-1]):.4f}")

        if step % cadence.log_every_steps == 0 or step == cadence.num_steps:
            means = {
                f"train/{key}": _mean_ignoring_nan(np.concatenate([w[key] for w in window]))
                for key in window[0]
            }
            means["train/steps_per_second"] = (
                steady_steps / steady_seconds if steady_seconds else 0.0
            )
            means["train/seconds"] = train_seconds
            writer.write(step, "train", means)
            window = []
        # Hooks before the checkpoint: a run resumed from this step must not miss them.
        for hook in family.hooks:
            if hook.due(step):
                state = hook.run(state, step)
        if step % cadence.checkpoint_every_steps == 0 or step == cadence.num_steps:
            checkpointer.save(step, state)
        if step % cadence.eval_every_steps == 0 and step != cadence.num_steps:
            for evaluate in family.evaluations.values():
                writer.write(step, "eval", evaluate(state))
    bar.close()
    checkpointer.wait()
    rate = steady_steps / steady_seconds if steady_seconds else (earlier_rate or None)
    return Outcome(state, step, train_seconds, rate)
