"""The benchmark scripts run end to end in their CPU modes (they check the suite, not speed)."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.skipif(
    not os.environ.get("KGJAX_LONG_TESTS"),
    reason="the speed suite's whole CPU smoke mode, about 35 s, beyond CI's 7-minute budget (the suite's parts keep their own tests); set KGJAX_LONG_TESTS=1",
)
def test_speed_suite_cpu_mode(tmp_path):
    out = tmp_path / "suite"
    subprocess.run(
        [sys.executable, "bench/suite.py", "--mode=cpu", f"--out={out}"],
        cwd=REPO,
        check=True,
        capture_output=True,
        env={
            **os.environ,
            "KGJAX_TFDS_DIR": str(tmp_path / "tfds"),
            "PYSTOW_HOME": str(tmp_path / "pystow"),  # PyKEEN's home: never ~
        },
    )
    report = json.loads((tmp_path / "suite.json").read_text())
    results = report["results"]["umls"]
    assert results["kgjax_train"]["steps_per_second"] > 0
    assert results["kgjax_train_shared"]["shared_chunk_size"] == 16
    assert results["kgjax_train_shared"]["steps_per_second"] > 0
    assert results["kgjax_eval"]["seconds"] > 0 and results["kgjax_eval"]["num_triples"] == 661
    one_to_all = results["kgjax_train_1vsall"]
    assert one_to_all["steps_per_second"] > 0 and one_to_all["batch_size"] == 64
    if importlib.util.find_spec("pykeen") is not None:
        assert results["pykeen_train"]["steps_per_second"] > 0
        assert results["pykeen_eval"]["seconds"] > 0
        lcwa = results["pykeen_train_lcwa"]
        assert lcwa["steps_per_second"] > 0 and (lcwa["batch_size"], lcwa["dim"]) == (64, 16)
        # UMLS has fewer distinct (h, r) queries than 20 batches of 64: the whole split.
        assert lcwa["timed_triples"] == 5216
    else:
        assert results["pykeen_train"].startswith("skipped")
    table = (tmp_path / "suite.md").read_text()
    assert "| umls |" in table and report["device"] in table
    assert "| umls | 64 | 16 |" in table  # the 1vsAll table


def _bench_module(name, monkeypatch):
    """bench/<name>.py imported as a module (with bench/ on the path for its `import common`)."""
    monkeypatch.syspath_prepend(os.path.join(REPO, "bench"))
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "bench", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(
    importlib.util.find_spec("pykeen") is None,
    reason="PyKEEN is optional; runs wherever it is installed (the dev venv has it)",
)
# UMLS has 5,216 training triples: 20 batches of 256 an epoch. 5 batches are one epoch of a
# sub-sample; 25 are two whole epochs.
@pytest.mark.parametrize("train_steps, batches", [(5, 5), (25, 40)])
def test_pykeen_train_times_the_batches_it_trains(tmp_path, monkeypatch, train_steps, batches):
    monkeypatch.setenv("PYSTOW_HOME", str(tmp_path / "pystow"))  # before PyKEEN is imported
    monkeypatch.setenv("KGJAX_TFDS_DIR", str(tmp_path / "tfds"))
    suite = _bench_module("suite", monkeypatch)
    import torch
    from pykeen.training import SLCWATrainingLoop

    from kgjax.data.catalog import load_dataset

    # Optimizer steps per `train` call, counted outside the suite: the batches really trained.
    steps_per_call = []
    train, step = SLCWATrainingLoop.train, torch.optim.Adam.step

    def counted_train(self, *args, **kwargs):
        steps_per_call.append(0)
        return train(self, *args, **kwargs)

    def counted_step(self, *args, **kwargs):
        steps_per_call[-1] += 1
        return step(self, *args, **kwargs)

    monkeypatch.setattr(SLCWATrainingLoop, "train", counted_train)
    monkeypatch.setattr(torch.optim.Adam, "step", counted_step)
    case = suite.Case(
        "umls",
        "umls",
        train_steps=train_steps,
        shared_chunk_size=4,
        overrides=(("model.dim", 8), ("negatives.num_negatives", 4), ("batch_size", 256)),
    )
    result = suite.pykeen_train(case, load_dataset("umls"))
    assert len(steps_per_call) == 2  # the warm-up, then the timed call
    assert steps_per_call[-1] > 0, "the timed call trained no batch"
    assert result["steps"] == steps_per_call[-1] == batches
    assert result["steps_per_second"] > 0


@pytest.mark.skipif(
    not os.environ.get("KGJAX_LONG_TESTS"),
    reason="about 30 s on 2 cores, beyond CI's budget; set KGJAX_LONG_TESTS=1",
)
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
    self_prediction = _bench_module("self_prediction", monkeypatch)
    monkeypatch.setenv("KGJAX_TFDS_DIR", str(tmp_path / "tfds"))
    row = self_prediction.analyse(str(workdir), "test", top_relations=3)
    assert row["mrr"] == pytest.approx(copied["test"]["both"]["mrr"], rel=1e-5)
    assert row["hits@10"] == pytest.approx(copied["test"]["both"]["hits@10"], rel=1e-6)
    assert 0.0 <= row["own_top1"] <= 1.0 and len(row["per_relation"]) == 3


@pytest.mark.skipif(
    not os.environ.get("KGJAX_LONG_TESTS"),
    reason="about 30 s on 2 cores, beyond CI's budget; set KGJAX_LONG_TESTS=1",
)
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


def test_queries_subsample_keeps_whole_queries(monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(REPO, "bench"))
    import numpy as np
    import suite

    train = np.array([[0, 0, 1], [0, 0, 2], [1, 0, 2], [2, 1, 0], [2, 1, 1], [0, 1, 2]])
    chosen = suite.queries_subsample(train, 2, seed=0)
    pairs = {tuple(pair) for pair in chosen[:, :2]}
    assert len(pairs) == 2
    # Every tail of a chosen query comes with it.
    assert sorted(map(tuple, chosen)) == sorted(t for t in map(tuple, train) if t[:2] in pairs)
    assert len(suite.queries_subsample(train, 4, seed=0)) == len(train)


def test_small_datasets_grid_resumes_from_its_log_and_summarises_seeds(tmp_path, monkeypatch):
    # A killed grid run again skips the runs its log holds; seeds summarise to mean and
    # sample standard deviation.
    monkeypatch.syspath_prepend(os.path.join(REPO, "bench"))
    import small_datasets

    runs = [
        {"model": "rotate", "dataset": "umls", "variant": "1vsAll", "seed": seed,
         "steps": 10, "regime": "1vsAll", "reciprocal": False, "wall_seconds": wall,
         "steps_per_second": 5.0, "test_mrr": mrr, "test_mr": 2.0, "test_hits@1": 0.5,
         "test_hits@3": 0.7, "test_hits@10": 0.9}
        for seed, wall, mrr in ((0, 1.0, 0.5), (1, 3.0, 0.7))
    ]  # fmt: skip
    log = tmp_path / "grid.runs.jsonl"
    log.write_text("".join(json.dumps(run) + "\n" for run in runs) + "\n")
    done = small_datasets.read_done(str(log))
    assert set(done) == {("rotate", "umls", "1vsAll", 0), ("rotate", "umls", "1vsAll", 1)}
    summary = small_datasets.summarise(list(done.values()))
    assert summary["test_mrr"] == pytest.approx(0.6)
    assert summary["test_mrr_std"] == pytest.approx(0.1414213, rel=1e-5)
    assert summary["wall_seconds"] == pytest.approx(2.0) and summary["seeds"] == 2

    def refuse(*args):
        raise AssertionError(f"trained a run the log already holds: {args}")

    monkeypatch.setattr(small_datasets, "run_once", refuse)
    monkeypatch.setattr(
        sys, "argv",
        ["small_datasets.py", "--models=rotate", "--regimes=1vsAll", "--seeds=0,1",
         f"--out={tmp_path / 'grid'}"],
    )  # fmt: skip
    small_datasets.main()
    table = (tmp_path / "grid.md").read_text()
    assert "| `configs/rotate.py:umls` | 1vsAll | 10 |" in table
    assert "0.600 ± 0.141" in table


def test_small_datasets_variants_train_each_cell_once_per_variant(tmp_path, monkeypatch):
    # --variant trains every cell once per named override set, in one invocation, logs
    # each under "<regime>/<name>" and tabulates them as separate rows and pivot columns.
    monkeypatch.syspath_prepend(os.path.join(REPO, "bench"))
    import small_datasets

    trained = []

    def fake_run(model, dataset, overrides):
        trained.append((model, dataset, tuple(overrides)))
        mrr = 0.8 if "model.batch_norm=True" in overrides else 0.6
        return {"steps": 10, "regime": "KvsAll", "reciprocal": True, "wall_seconds": 1.0,
                "steps_per_second": 5.0, "test_mrr": mrr, "test_mr": 2.0, "test_hits@1": 0.5,
                "test_hits@3": 0.7, "test_hits@10": 0.9}  # fmt: skip

    monkeypatch.setattr(small_datasets, "run_once", fake_run)
    argv = ["small_datasets.py", "--models=tucker", "--regimes=KvsAll", "--seeds=0",
            "--variant=none:model.batch_norm=False", "--variant=bn:model.batch_norm=True",
            f"--out={tmp_path / 'grid'}"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    small_datasets.main()
    assert trained == [
        ("tucker", "umls", ("training.regime='KvsAll'", "model.batch_norm=False", "seed=0")),
        ("tucker", "umls", ("training.regime='KvsAll'", "model.batch_norm=True", "seed=0")),
    ]
    assert set(small_datasets.read_done(str(tmp_path / "grid.runs.jsonl"))) == {
        ("tucker", "umls", "KvsAll/none", 0),
        ("tucker", "umls", "KvsAll/bn", 0),
    }
    table = (tmp_path / "grid.md").read_text()
    assert "| KvsAll + reciprocal, bn | 10 |" in table and "| umls KvsAll bn |" in table
    assert "0.800 ± 0.000" in table and "0.600 ± 0.000" in table
    with pytest.raises(SystemExit, match="NAME:key=value"):
        small_datasets.parse_variants(["bn"])
