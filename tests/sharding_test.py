"""Sharding: meshes from config, padding, rank counting by blocks, and runs on 1-8 devices.

The multi-device checks run `tests/sharded_runs.py` once in a subprocess with 8 fake CPU
devices (JAX must see them before it starts; this process has 1) and assert on its report:
the same training and evaluation on 1, 2, 4 and 8 devices, padding never sampled or ranked,
checkpoints saved on 8 devices restored onto 1, 2 and 4, and a run resumed on another mesh.
"""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from subprocess_report import run_report

from kgjax import config as config_lib
from kgjax.models import kge as models
from kgjax.ops.ranking import filtered_rank_counts, filtered_ranks, ranks_from_counts
from kgjax.parallel import mesh as sharding
from kgjax.parallel.layout import Layout
from kgjax.train.kge import config as kge_config_lib
from kgjax.train.kge.step import shuffled_positions

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOLERANCE = 1e-5  # parameters after 20 Adam steps: float summation order only


# --- in this process (one device) ---------------------------------------------------------


def test_mesh_axes_resolve_against_the_device_count():
    axes = sharding.resolve_axes((("data", -1), ("model", 2)), 8)
    assert axes == (("data", 4), ("model", 2))
    assert sharding.resolve_axes([["model", 8], ["data", 1]], 8) == (("model", 8), ("data", 1))
    with pytest.raises(ValueError, match="needs 6 devices; 8 are available"):
        sharding.resolve_axes((("data", 3), ("model", 2)), 8)
    with pytest.raises(ValueError, match="does not divide the 8 devices"):
        sharding.resolve_axes((("data", -1), ("model", 3)), 8)
    for bad in (
        (("data", -1), ("model", -1)),
        (("data", 1),),
        "data=8",
        (("data", 0), ("model", 1)),
    ):
        with pytest.raises(ValueError):
            sharding.parse_axes(bad)


def test_config_has_a_mesh_that_validates_and_may_change_on_resume():
    from train_test import test_config

    config = test_config()
    assert tuple(map(tuple, config.mesh.axes)) == sharding.DEFAULT_AXES
    kge_config_lib.validate(config)
    config.mesh.axes = (("data", 2), ("tensor", 4))
    with pytest.raises(config_lib.ConfigError, match="config.mesh.axes"):
        kge_config_lib.validate(config)
    moved = test_config()
    moved.mesh.axes = (("data", 1), ("model", 8))
    assert kge_config_lib.differences(test_config(), moved) == []


def test_single_device_layout_pads_nothing():
    layout = Layout.single_device(135, 46)
    assert (layout.entity_rows, layout.relation_rows, layout.num_devices) == (135, 46, 1)
    model = models.get("rotate", 135, 46, dim=4)
    params = model.init(jax.random.key(0))
    assert layout.tables(params)["entity"] is params["entity"]  # the plain arrays, no views
    placed = layout.place_params(params)
    np.testing.assert_array_equal(placed["entity"], params["entity"])


@pytest.mark.parametrize("n", [1, 7, 4097, 65536])
def test_shuffled_positions_is_a_permutation(n):
    key = jax.random.key(3)
    shuffle = jax.jit(shuffled_positions, static_argnums=2)
    got = np.asarray(shuffle(key, jnp.arange(n), n))
    np.testing.assert_array_equal(np.sort(got), np.arange(n))
    if n >= 100:
        assert np.mean(got == np.arange(n)) < 0.05  # shuffled, not the identity
        other = np.asarray(shuffle(jax.random.key(4), jnp.arange(n), n))
        assert np.mean(got == other) < 0.05  # another key, another order


def test_rank_counts_add_up_over_column_blocks_and_skip_padding():
    rng = np.random.default_rng(0)
    batch, num, padded, budget = 16, 21, 24, 5
    scores = rng.integers(0, 5, (batch, padded)).astype(np.float32)  # ties on purpose
    scores[:, num:] = 100.0  # padding columns outscore everything
    true_ids = rng.integers(0, num, batch)
    filter_ids = np.stack([rng.choice(num, budget, replace=False) for _ in range(batch)])
    filter_mask = rng.random((batch, budget)) < 0.7
    want = filtered_ranks(
        jnp.asarray(scores[:, :num]), true_ids, filter_ids, filter_mask
    )  # the unpadded matrix
    true_score = scores[np.arange(batch), true_ids]
    blocks = [
        filtered_rank_counts(
            jnp.asarray(scores[:, start : start + 6]),
            true_score,
            true_ids,
            filter_ids,
            filter_mask,
            start,
            num,
        )
        for start in range(0, padded, 6)
    ]
    got = ranks_from_counts(sum(blocks), true_score, num)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)
    # Counted as candidates, the padding would have ranked every answer 3 places lower.
    with_padding = filtered_ranks(jnp.asarray(scores), true_ids, filter_ids, filter_mask)
    np.testing.assert_array_equal(with_padding[0], want[0] + (padded - num))


def test_distributed_init_is_gated_by_config_and_environment(monkeypatch):
    from train_test import test_config

    mesh = test_config().mesh
    monkeypatch.delenv(sharding.DISTRIBUTED_ENV, raising=False)
    assert not sharding.distributed_requested(mesh)
    assert sharding.initialize_distributed(mesh) is False  # nothing to start
    monkeypatch.setenv(sharding.DISTRIBUTED_ENV, "1")
    assert sharding.distributed_requested(mesh)
    monkeypatch.setenv(sharding.DISTRIBUTED_ENV, "0")
    mesh.distributed = True
    assert not sharding.distributed_requested(mesh)  # the environment wins


# --- 8 fake devices, in a subprocess ------------------------------------------------------


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("sharded")
    script = os.path.join(REPO, "tests", "sharded_runs.py")
    return run_report(script, root / "report.json", str(root), timeout=900)


def test_training_and_evaluation_match_on_1_2_4_8_devices(report):
    assert report["num_devices"] == 8
    runs = report["runs"]
    assert sorted(runs, key=int) == ["1", "2", "4", "8"]
    for n, run in runs.items():
        assert run["mesh"]["num_devices"] == int(n)
        assert run["param_diff_vs_1"] < TOLERANCE, n
        for split in ("valid", "test"):
            for key, value in run[split]["both"].items():
                assert value == pytest.approx(runs["1"][split]["both"][key], abs=1e-6), (n, key)


def test_tables_are_split_by_rows_and_padded(report):
    runs = report["runs"]
    assert runs["1"]["param_shapes"] == {"entity": [135, 32], "relation": [46, 16]}
    assert runs["8"]["param_shapes"] == {"entity": [136, 32], "relation": [48, 16]}
    assert (runs["8"]["entity_shards"], runs["8"]["entity_shard_rows"]) == (8, 17)
    assert (runs["4"]["entity_shards"], runs["4"]["entity_shard_rows"]) == (4, 68)


def test_padding_is_never_sampled(report):
    # A sampled (or gathered) padding row would get a gradient, and Adam's moments would move.
    for name, padding in report["padding"].items():
        assert padding["rows"] >= 1, name
        assert padding["max_abs"] == 0.0, name


def test_padding_is_never_ranked(report):
    poison = report["poison"]
    assert poison["padding_score"] > poison["true_score"]  # it would outrank the answer
    assert poison["poisoned"] == poison["clean"]
    assert poison["score_all_columns"] == 135


def test_checkpoint_saved_on_8_devices_restores_on_1_2_and_4(report):
    for n, restored in report["restore"].items():
        assert restored["mesh"]["data"] * restored["mesh"]["model"] == int(n)
        assert restored["param_diff_vs_8"] == 0.0, n
        assert restored["test"] == report["poison"]["clean"], n
    assert report["restore"]["1"]["entity_rows"] == 135  # the padding row dropped
    assert report["restore"]["4"]["entity_rows"] == 136


def test_run_resumed_on_another_mesh_matches(report):
    assert report["resume"]["param_diff_vs_4"] < TOLERANCE
    test = report["resume"]["test"]["both"]
    for key, value in report["runs"]["4"]["test"]["both"].items():
        assert test[key] == pytest.approx(value, abs=1e-6), key


def test_row_sparse_updates_match_the_dense_update(report):
    assert report["row_sparse"]["param_diff_vs_1"] < TOLERANCE
    for key, value in report["runs"]["1"]["test"]["both"].items():
        assert report["row_sparse"]["test"]["both"][key] == pytest.approx(value, abs=1e-6), key


def test_two_processes_train_as_one_mesh_each_holding_its_slice(report):
    hosts = report["multihost"]["processes"]
    assert sorted(h["process_index"] for h in hosts) == [0, 1]
    for host in hosts:
        assert (host["process_count"], host["local_devices"], host["global_devices"]) == (2, 4, 8)
        assert host["triples_rows_here"] * 2 == host["triples_rows_global"]  # only its half
        assert host["test"] == hosts[0]["test"]
        for key, value in report["runs"]["8"]["test"]["both"].items():
            assert host["test"]["both"][key] == pytest.approx(value, abs=1e-6), key
    assert report["multihost"]["param_diff_vs_8"] < TOLERANCE


def test_aot_check_compiles_the_calls_for_the_target_mesh(report):
    aot = report["aot"]
    assert aot["mesh"] == {"data": 1, "model": 8} and aot["fits"]
    assert aot["entity_rows"] == 136
    assert 0 < aot["state_bytes_per_device"] <= aot["train_peak_bytes_per_device"]


# --- launch scripts -----------------------------------------------------------------------


def _launch(module: str, argv: list[str], capsys) -> list[str]:
    sys.path.insert(0, os.path.join(REPO, "launch"))
    try:
        script = __import__(module)
    finally:
        sys.path.pop(0)
    assert script.main(argv) == 0
    return capsys.readouterr().out.strip().splitlines()


def test_tpu_launch_dry_run_prints_every_step(capsys):
    lines = _launch(
        "tpu_vm",
        [
            "all", "--dry_run", "--name=pod", "--zone=us-west4-a",
            "--accelerator_type=v5litepod-16", "--config=configs/rotate.py:fb15k237",
            "--workdir=/mnt/runs/fb", "--mount_bucket=my-bucket", "--config.optimizer.lr=1e-4",
        ],
        capsys,
    )  # fmt: skip
    check, create, archive, scp, install, run = lines
    assert "launch/aot_check.py" in check and "--num_devices=16" in check
    assert "--device_memory_gb=16.0" in check  # a v5e chip's HBM
    assert create.startswith(
        "gcloud compute tpus tpu-vm create pod --zone=us-west4-a --accelerator-type=v5litepod-16"
    )
    assert archive.startswith("git -C") and "archive" in archive
    assert scp.startswith("gcloud compute tpus tpu-vm scp") and "--worker=all" in scp
    assert "--worker=all" in install and "jax[tpu]" in install and "gcsfuse" in install
    assert run.startswith("gcloud compute tpus tpu-vm ssh pod --zone=us-west4-a --worker=all")
    assert "KGJAX_DISTRIBUTED=1 .venv/bin/kgjax train" in run
    assert "--workdir=/mnt/runs/fb" in run and "--config.optimizer.lr=1e-4" in run
    tpu_vm = sys.modules["tpu_vm"]
    assert [tpu_vm.num_devices(t) for t in ("v4-32", "v5p-16", "v5litepod-16", "v3-8")] == [
        16, 8, 16, 8,
    ]  # fmt: skip
    assert [tpu_vm.device_memory_gb(t) for t in ("v4-32", "v5p-16", "v6e-8")] == [32, 95, 32]
    with pytest.raises(ValueError, match="--device_memory_gb"):
        tpu_vm.device_memory_gb("v9-8")


def test_gpu_launch_dry_run_one_machine_several_and_slurm(capsys):
    (single,) = _launch("gpu", ["--dry_run", "--workdir=runs/x"], capsys)
    assert single.startswith(".venv/bin/kgjax train") and "KGJAX_DISTRIBUTED" not in single
    hosts = _launch("gpu", ["--dry_run", "--hosts=a,b", "--coordinator=a:1234"], capsys)
    assert [line.split()[:2] for line in hosts] == [["ssh", "a"], ["ssh", "b"]]
    for process_id, line in enumerate(hosts):
        assert "KGJAX_DISTRIBUTED=1" in line and f"--config.mesh.process_id={process_id}" in line
        assert "--config.mesh.coordinator_address=a:1234" in line
        assert "--config.mesh.num_processes=2" in line
    slurm = "\n".join(_launch("gpu", ["--dry_run", "--slurm", "--nodes=4"], capsys))
    assert slurm.startswith("sbatch <<'EOF'") and "#SBATCH --nodes=4" in slurm
    assert "export KGJAX_DISTRIBUTED=1" in slurm and "srun .venv/bin/kgjax train" in slurm
