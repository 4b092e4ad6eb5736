"""Runs recorded before the house restructure give the same metrics to the last digit, and a
workdir written by that version resumes and evaluates with this one (tests/golden_runs.py).
"""

import json
import os
import pathlib
import shutil

import golden_runs
import pytest

from kgjax import runs
from kgjax.config import override
from kgjax.train.kge.config import load
from kgjax.train.kge.trainer import train

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
SHORT = [name for name in golden_runs.RUNS if name not in golden_runs.LONG]


@pytest.mark.parametrize("name", SHORT)
def test_recorded_run_gives_the_same_metrics(name):
    if golden_runs.RUNS[name][3] and not (golden_runs.DATA_DIR / "umls" / "kg-bert").is_dir():
        pytest.skip(f"needs {golden_runs.DATA_DIR}/umls/kg-bert; set KGJAX_DATA_DIR")
    assert golden_runs.compare(name) == []


@pytest.mark.skipif(
    not os.environ.get("KGJAX_LONG_TESTS"),
    reason="a slice runs in CI; set KGJAX_LONG_TESTS=1 (or run tests/golden_runs.py) for all",
)
@pytest.mark.parametrize("name", golden_runs.LONG)
def test_recorded_long_run_gives_the_same_metrics(name):
    assert golden_runs.compare(name) == []


@pytest.mark.parametrize(
    ("fixture", "uninterrupted"),
    [("workdir_before_house", "rotate_test"), ("mmrns_workdir_before_house", "mmrns_synthetic")],
)
def test_workdir_written_before_the_house_evaluates_and_resumes(tmp_path, fixture, uninterrupted):
    """A 20-step run of the old layout: evaluated, then resumed to 40 steps."""
    workdir = tmp_path / "run"
    shutil.copytree(FIXTURES / fixture, workdir)
    recorded = json.loads((FIXTURES / fixture / "results.json").read_text())
    evaluated = runs.evaluate_run(str(workdir))
    assert evaluated["step"] == 20
    for split in ("valid", "test"):
        assert evaluated[split] == recorded[split]
    # Resumed to 40 steps, it ends where the uninterrupted 40-step run of that version ended.
    config = load(str(workdir / "config.json"))
    override(config, "num_steps", 40)
    results = train(config, str(workdir), progress=False)
    expected = json.loads((golden_runs.GOLDEN / f"{uninterrupted}.json").read_text())
    assert results["steps"] == 40
    for split in ("valid", "test"):
        assert golden_runs.differences(expected["results"][split], results[split]) == []
