"""The shared host loop with a toy family (not KGE): cadences, hooks on a schedule of their
own that a resumed run fires at the same steps, evaluations, the NaN stop."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kgjax.train import host_loop

CHUNK = 5


def refresh_steps(limit: int) -> set[int]:
    """JAKET's memory-refresh schedule T(i) = min(10 * 2^floor(i / 3), 500), as steps."""
    steps, step, i = set(), 0, 0
    while True:
        step += min(10 * 2 ** (i // 3), 500)
        if step > limit:
            return steps
        steps.add(step)
        i += 1


def toy_family(nan_at: int | None = None, refreshed: list | None = None) -> host_loop.Family:
    """A state {"step", "w", "memory"}: each step adds 1 to w; a hook copies w into memory."""

    def initial_state():
        return {"step": jnp.int32(0), "w": jnp.float32(0.0), "memory": jnp.float32(-1.0)}

    @jax.jit
    def chunk(state):
        def step(state, _):
            w = state["w"] + 1.0
            loss = w if nan_at is None else jnp.where(state["step"] + 1 == nan_at, jnp.nan, w)
            return {**state, "step": state["step"] + 1, "w": w}, {"loss": loss}

        return jax.lax.scan(step, state, None, length=CHUNK)

    schedule = refresh_steps(10_000)

    def refresh(state, step):
        if refreshed is not None:
            refreshed.append(step)
        return {**state, "memory": state["w"]}

    return host_loop.Family(
        initial_state=initial_state,
        abstract_state=lambda: jax.eval_shape(initial_state),
        train_chunk=chunk,
        chunk_length=CHUNK,
        evaluations={"toy": lambda state: {"valid/w": float(state["w"])}},
        hooks=(host_loop.Hook(due=lambda step: step in schedule, run=refresh),),
    )


def run(workdir, num_steps, family):
    cadence = host_loop.Cadence(num_steps, 5, 10, 15)
    checkpointer = host_loop.open_checkpointer(str(workdir), max_to_keep=3)
    writer = host_loop.open_writer(str(workdir))
    try:
        return host_loop.run(family, cadence, checkpointer, writer, progress=False)
    finally:
        checkpointer.close()
        writer.close()


def events(workdir):
    with open(workdir / "metrics.jsonl") as f:
        return [json.loads(line) for line in f]


def test_schedule_is_the_papers():
    assert sorted(refresh_steps(200)) == [10, 20, 30, 50, 70, 90, 130, 170]


def test_hooks_and_cadences_and_resume_match_the_uninterrupted_run(tmp_path):
    whole, parts = [], []
    outcome = run(tmp_path / "whole", 90, toy_family(refreshed=whole))
    assert outcome.step == 90 and float(outcome.state["w"]) == 90.0
    assert whole == [10, 20, 30, 50, 70, 90]
    # The memory holds w as of the last refresh, step 90.
    assert float(outcome.state["memory"]) == 90.0
    logged = events(tmp_path / "whole")
    assert [e["step"] for e in logged if e["event"] == "train"] == list(range(5, 95, 5))
    assert [e["step"] for e in logged if e["event"] == "eval"] == list(range(10, 90, 10))
    assert all(e["valid/w"] == e["step"] for e in logged if e["event"] == "eval")

    # Stopped at 40 (checkpoints every 15 and at the end) and resumed: refreshes fire at the
    # same steps, and the state ends the same.
    run(tmp_path / "parts", 40, toy_family(refreshed=parts))
    resumed = run(tmp_path / "parts", 90, toy_family(refreshed=parts))
    assert parts == whole
    assert jax.tree.map(float, resumed.state) == jax.tree.map(float, outcome.state)
    assert [e["event"] for e in events(tmp_path / "parts")].count("resume") == 1
    # Training time adds up over both invocations; a run resumed at its end reports its own.
    logged = [e for e in events(tmp_path / "parts") if e["event"] == "train"]
    first = [e["train/seconds"] for e in logged if e["step"] == 40][0]
    assert resumed.train_seconds > first > 0
    again = run(tmp_path / "parts", 90, toy_family())
    assert again.train_seconds == pytest.approx(resumed.train_seconds)
    assert again.steps_per_second is not None and again.steps_per_second > 0


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    with pytest.raises(
        host_loop.TrainingDiverged, match="at step 33.*last good checkpoint is step 30"
    ):
        run(tmp_path / "run", 90, toy_family(nan_at=33))
    checkpointer = host_loop.open_checkpointer(str(tmp_path / "run"), max_to_keep=3)
    assert checkpointer.latest_step() == 30
    checkpointer.close()
    diverged = [e for e in events(tmp_path / "run") if e["event"] == "diverged"]
    assert diverged[0]["step"] == 32 and np.isnan(float(diverged[0]["train/loss"]))


def test_chunk_length_divides_every_cadence():
    cadence = host_loop.Cadence(num_steps=2000, log_every_steps=100, eval_every_steps=200,
                                checkpoint_every_steps=250)  # fmt: skip
    assert host_loop.chunk_length(100, cadence) == 50
