"""The benchmark scripts run end to end in their CPU modes (they check the suite, not speed)."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_speed_suite_cpu_mode(tmp_path):
    out = tmp_path / "suite"
    subprocess.run(
        [sys.executable, "bench/suite.py", "--mode=cpu", f"--out={out}"],
        cwd=REPO,
        check=True,
        capture_output=True,
        env={**os.environ, "KGJAX_TFDS_DIR": str(tmp_path / "tfds")},
    )
    report = json.loads((tmp_path / "suite.json").read_text())
    results = report["results"]["umls"]
    assert results["kgjax_train"]["steps_per_second"] > 0
    assert results["kgjax_train_shared"]["shared_chunk_size"] == 16
    assert results["kgjax_train_shared"]["steps_per_second"] > 0
    assert results["kgjax_eval"]["seconds"] > 0 and results["kgjax_eval"]["num_triples"] == 661
    if importlib.util.find_spec("pykeen") is not None:
        assert results["pykeen_train"]["steps_per_second"] > 0
        assert results["pykeen_eval"]["seconds"] > 0
    else:
        assert results["pykeen_train"].startswith("skipped")
    table = (tmp_path / "suite.md").read_text()
    assert "| umls |" in table and report["device"] in table


def test_reproduce_runs_in_slices_and_finishes(tmp_path, monkeypatch):
    workdir = tmp_path / "repro_test"
    command = [
        sys.executable, "bench/reproduce.py", "--config=configs/test.py", f"--workdir={workdir}",
        "--slice_steps=20", f"--results_dir={tmp_path / 'results'}",
    ]  # fmt: skip
    env = {**os.environ, "KGJAX_TFDS_DIR": str(tmp_path / "tfds")}
    done = subprocess.run(command, cwd=REPO, check=True, capture_output=True, text=True, env=env)
    steps = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [s.get("step") for s in steps[:2]] == [20, 40]
    copied = json.loads((tmp_path / "results" / "repro_test" / "results.json").read_text())
    assert copied["steps"] == 40
    assert (tmp_path / "results" / "repro_test" / "metrics_tail.jsonl").read_text()
    # bench/self_prediction.py reads the run back and ranks the test split itself: its MRR
    # must be the run's own.
    monkeypatch.syspath_prepend(os.path.join(REPO, "bench"))  # its `import common`
    spec = importlib.util.spec_from_file_location(
        "self_prediction", os.path.join(REPO, "bench", "self_prediction.py")
    )
    self_prediction = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(self_prediction)
    monkeypatch.setenv("KGJAX_TFDS_DIR", str(tmp_path / "tfds"))
    row = self_prediction.analyse(str(workdir), "test", top_relations=3)
    assert row["mrr"] == pytest.approx(copied["test"]["both"]["mrr"], rel=1e-5)
    assert row["hits@10"] == pytest.approx(copied["test"]["both"]["hits@10"], rel=1e-6)
    assert 0.0 <= row["own_top1"] <= 1.0 and len(row["per_relation"]) == 3


def test_step_profile_cpu_mode(tmp_path):
    out = tmp_path / "profile"
    command = [
        sys.executable, "bench/step_profile.py", "--mode=cpu", "--models=rotate",
        "--variants=reference,autodiff_distance,shared", "--steps=1", "--calls=1", f"--out={out}",
    ]  # fmt: skip
    env = {**os.environ, "KGJAX_TFDS_DIR": str(tmp_path / "tfds")}
    subprocess.run(command, cwd=REPO, check=True, capture_output=True, env=env)
    rows = json.loads((tmp_path / "profile.json").read_text())["results"]["rotate"]
    assert set(rows) == {"reference", "autodiff_distance", "shared"}
    # The recomputing backward changes how the gradient is computed, not what it is.
    assert abs(rows["reference"]["final_loss"] - rows["autodiff_distance"]["final_loss"]) < 1e-5
    assert rows["shared"]["change"] == {"negatives.shared_chunk_size": 32}
    assert "| rotate | shared |" in (tmp_path / "profile.md").read_text()
