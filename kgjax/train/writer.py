"""Run logs: `<workdir>/metrics.jsonl` (one JSON object per event) and TensorBoard files."""

from __future__ import annotations

import json
import math
import os
import time

from tensorboardX import SummaryWriter


class MetricsWriter:
    """Appends events to metrics.jsonl and scalars to TensorBoard under `<workdir>/tensorboard`."""

    def __init__(self, workdir: str):
        self._path = os.path.join(workdir, "metrics.jsonl")
        self._jsonl = open(self._path, "a")  # noqa: SIM115
        self._tensorboard = SummaryWriter(os.path.join(workdir, "tensorboard"))

    def write(self, step: int, event: str, scalars: dict[str, float]) -> None:
        """Writes one event; `scalars` keys look like `train/loss` or `valid/both/mrr`."""
        record = {"step": step, "event": event, "time": time.time()}
        for key, value in scalars.items():
            value = float(value)
            record[key] = value if math.isfinite(value) else str(value)
            if math.isfinite(value):
                self._tensorboard.add_scalar(key, value, step)
        self._jsonl.write(json.dumps(record) + "\n")
        self._jsonl.flush()

    def last_logged(self, event: str, key: str, up_to_step: int) -> float | None:
        """The value of `key` in the last `event` record at or before `up_to_step`, or None
        (what an earlier invocation of a resumed run logged)."""
        self._jsonl.flush()
        value = None
        with open(self._path) as f:
            for line in f:
                record = json.loads(line)
                if record["event"] == event and record["step"] <= up_to_step and key in record:
                    value = float(record[key])
        return value

    def close(self) -> None:
        self._jsonl.close()
        self._tensorboard.close()


def flatten_metrics(prefix: str, metrics: dict) -> dict[str, float]:
    """{"both": {"mrr": x}} -> {"<prefix>/both/mrr": x}, numbers only."""
    out = {}
    for key, value in metrics.items():
        name = f"{prefix}/{key}"
        if isinstance(value, dict):
            out.update(flatten_metrics(name, value))
        elif isinstance(value, int | float):
            out[name] = value
    return out
