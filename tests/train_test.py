"""End to end: train from configs/test.py, resume, survive SIGKILL, stop on NaN, CLI errors."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from kgjax import cli, runs
from kgjax import config as config_lib
from kgjax.config import ConfigError
from kgjax.data.triples import DataError
from kgjax.train.kge import config as kge_config_lib
from kgjax.train.kge.trainer import TrainingDiverged, train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_config(file, argument):
    spec = importlib.util.spec_from_file_location("config", os.path.join(REPO, "configs", file))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(argument)


def test_config(model="rotate", **overrides):
    config = load_config("test.py", model)
    for dotted, value in overrides.items():
        config_lib.override(config, dotted.replace("__", "."), value)
    return config


test_config.__test__ = False  # a helper, not a test


def read_events(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def final_params(workdir):
    return runs.restore(workdir).params


def assert_same_params(a, b):
    for key in ("entity", "relation"):
        np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]))


@pytest.mark.parametrize("model", ["rotate", "complex"])
def test_train_writes_results_logs_and_checkpoints(tmp_path, model):
    workdir = str(tmp_path / "run")
    results = train(test_config(model), workdir, progress=False)
    with open(os.path.join(workdir, "results.json")) as f:
        saved = json.load(f)
    for split in ("valid", "test"):
        for side in ("both", "head", "tail"):
            assert set(saved[split][side]) == {"mrr", "mr", "hits@1", "hits@3", "hits@10"}
        assert 0 < saved[split]["both"]["mrr"] <= 1
    assert saved["steps"] == 40 and saved["train_seconds"] > 0 and saved["steps_per_second"] > 0
    assert saved == json.loads(json.dumps(results))
    events = read_events(workdir)
    assert [e["step"] for e in events if e["event"] == "train"] == [10, 20, 30, 40]
    assert any(e["event"] == "eval" and "valid/both/mrr" in e for e in events)
    assert os.listdir(os.path.join(workdir, "tensorboard"))
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["20", "40"]


def test_training_is_deterministic(tmp_path):
    config = test_config()
    first = train(config, str(tmp_path / "a"), progress=False)
    second = train(config, str(tmp_path / "b"), progress=False)
    assert first["test"] == second["test"]
    assert_same_params(final_params(str(tmp_path / "a")), final_params(str(tmp_path / "b")))
    other_seed = train(test_config(seed=1), str(tmp_path / "c"), progress=False)
    assert other_seed["test"] != first["test"]


def test_rotate_umls_config_learns(tmp_path):
    config = load_config("rotate.py", "umls")
    for key, value in dict(
        num_steps=300, log_every_steps=100, eval_every_steps=300, checkpoint_every_steps=300
    ).items():
        config[key] = value
    config.optimizer.decay_steps = 150
    results = train(config, str(tmp_path / "umls"), progress=False)
    # Untrained, RotatE ranks UMLS tails at MRR about 0.1; the full 2,000-step config reaches
    # about 0.9 (README). A tenth of the training must already be far from chance.
    assert results["test"]["both"]["mrr"] > 0.25


def test_resume_ends_with_the_same_parameters(tmp_path):
    full = str(tmp_path / "full")
    train(test_config(), full, progress=False)
    split = str(tmp_path / "split")
    train(test_config(num_steps=20), split, progress=False)
    train(test_config(), split, progress=False)  # resumes at 20, runs to 40
    assert_same_params(final_params(full), final_params(split))
    events = [e["event"] for e in read_events(split)]
    assert "resume" in events


def test_sigkill_loses_at_most_the_steps_since_the_last_checkpoint(tmp_path):
    workdir = str(tmp_path / "killed")
    overrides = dict(
        num_steps=600, checkpoint_every_steps=20, eval_every_steps=300, log_every_steps=10
    )
    config = test_config(**overrides)
    command = [
        sys.executable, "-m", "kgjax.cli", "train", f"--config={REPO}/configs/test.py",
        f"--workdir={workdir}", "--progress=false",
    ] + [f"--config.{key}={value}" for key, value in overrides.items()]  # fmt: skip
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    checkpoints = os.path.join(workdir, "checkpoints")
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        done = (
            [d for d in os.listdir(checkpoints) if d.isdigit()]
            if os.path.isdir(checkpoints)
            else []
        )
        if len(done) >= 2:
            break
        time.sleep(0.05)
    assert process.poll() is None, process.stderr.read().decode()[-2000:]
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stderr.close()

    killed_at = runs.restore(workdir).step  # the newest complete checkpoint restores
    assert 20 <= killed_at < 600 and killed_at % 20 == 0
    # Resuming reaches exactly the parameters of an uninterrupted run.
    train(config, workdir, progress=False)
    uninterrupted = str(tmp_path / "uninterrupted")
    train(config, uninterrupted, progress=False)
    assert_same_params(final_params(workdir), final_params(uninterrupted))


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    workdir = str(tmp_path / "nan")
    # The learning rate explodes after step 20: the loss turns Inf/NaN right after.
    config = test_config("distmult", optimizer__decay_steps=20, optimizer__decay_factor=1e36)
    with pytest.raises(TrainingDiverged, match=r"last good checkpoint is step 20") as error:
        train(config, workdir, progress=False)
    assert "at step 2" in str(error.value)
    assert runs.restore(workdir).step == 20
    assert not os.path.exists(os.path.join(workdir, "results.json"))
    events = read_events(workdir)
    assert events[-1]["event"] == "diverged"


def test_bad_data_writes_nothing(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "train.txt").write_text("a\tr\tb\nb\tr\n")
    (folder / "valid.txt").write_text("a\tr\tb\n")
    (folder / "test.txt").write_text("a\tr\tb\n")
    workdir = tmp_path / "run"
    with pytest.raises(DataError, match=r"train.txt:2: expected 3 tab-separated columns"):
        train(test_config(data__path=str(folder)), str(workdir), progress=False)
    assert not workdir.exists()


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="config.model.name"):
        train(test_config(model__name="rotatee"), str(tmp_path / "x"), progress=False)
    with pytest.raises(ConfigError, match="config.batch_size: 100000 exceeds"):
        train(test_config(batch_size=100000), str(tmp_path / "y"), progress=False)
    with pytest.raises(ConfigError, match="config.negatives.shared_chunk_size: must divide"):
        train(test_config(negatives__shared_chunk_size=48), str(tmp_path / "z"), progress=False)
    assert not any((tmp_path / name).exists() for name in "xyz")
    workdir = str(tmp_path / "run")
    train(
        test_config(
            num_steps=10, log_every_steps=10, eval_every_steps=10, checkpoint_every_steps=10
        ),
        workdir,
        progress=False,
    )
    with pytest.raises(ConfigError, match=r"different config.*optimizer.lr"):
        train(test_config(optimizer__lr=0.5), workdir, progress=False)


def test_cli_end_to_end(tmp_path, capsys):
    workdir = str(tmp_path / "cli")
    config = f"--config={REPO}/configs/test.py"
    assert (
        cli.main(["kgjax", "train", config, f"--workdir={workdir}", "--config.optimizer.lrr=1"])
        == 2
    )
    assert 'Did you mean "lr"' in capsys.readouterr().err
    assert cli.main(["kgjax", "train", config, f"--workdir={workdir}", "--progress=false"]) == 0
    assert "test  (filtered, realistic ranks, both sides): MRR" in capsys.readouterr().out

    assert (
        cli.main(
            [
                "kgjax",
                "predict",
                f"--workdir={workdir}",
                "--head=virus",
                "--relation=causes",
                "--top_k=3",
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "top 3 for (virus, causes, ?):" and len(lines) == 4
    assert (
        cli.main(["kgjax", "predict", f"--workdir={workdir}", "--tail=virus", "--relation=causes"])
        == 0
    )
    assert (
        cli.main(["kgjax", "predict", f"--workdir={workdir}", "--head=viruss", "--relation=causes"])
        == 2
    )
    assert "unknown entity 'viruss'; close matches: virus" in capsys.readouterr().err

    assert cli.main(["kgjax", "evaluate", f"--workdir={workdir}"]) == 0
    assert "checkpoint at step 40" in capsys.readouterr().out
    out = str(tmp_path / "emb.npz")
    assert cli.main(["kgjax", "export", f"--workdir={workdir}", f"--out={out}"]) == 0
    exported = np.load(out)
    assert (
        exported["entity_embeddings"].shape == (135, 16)
        and exported["entity_embeddings"].dtype == np.complex64
    )
    assert exported["relation_embeddings"].shape == (46, 16)
    assert "virus" in exported["entity_names"].tolist()
    assert cli.main(["kgjax", "evaluate", f"--workdir={tmp_path}/nothing"]) == 1


def test_config_saved_before_a_key_was_added_reads_back_and_resumes(tmp_path):
    config = test_config()
    path = str(tmp_path / "config.json")
    config_lib.save(config, path)
    with open(path) as f:
        saved = json.load(f)
    for dotted in kge_config_lib.ADDED_KEYS:
        *parents, key = dotted.split(".")
        node = saved
        for parent in parents:
            node = node[parent]
        del node[key]
    with open(path, "w") as f:
        json.dump(saved, f)
    loaded = kge_config_lib.load(path)
    assert loaded.negatives.shared_chunk_size == 0 and loaded.optimizer.row_sparse is False
    assert loaded.negatives.self_negative is False
    assert kge_config_lib.differences(loaded, config) == []
    config.negatives.shared_chunk_size = 8  # a real change is still one
    assert kge_config_lib.differences(loaded, config) == ["negatives.shared_chunk_size: 0 -> 8"]


def test_config_from_file_with_overrides_and_errors(tmp_path):
    config = config_lib.from_file(f"{REPO}/configs/rotate.py:nations", {"optimizer.lr": 0.5})
    assert config.data.name == "nations" and config.optimizer.lr == 0.5
    with pytest.raises(ConfigError, match="no such config file"):
        config_lib.from_file(str(tmp_path / "missing.py"))
    (tmp_path / "empty.py").write_text("x = 1\n")
    with pytest.raises(ConfigError, match="defines get_config"):
        config_lib.from_file(str(tmp_path / "empty.py"))
    with pytest.raises(KeyError, match="Did you mean"):  # locked: a misspelt key is an error
        config_lib.from_file(f"{REPO}/configs/rotate.py:nations", {"optimizer.lrr": 0.5})
