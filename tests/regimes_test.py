"""Training regimes (1vsAll, KvsAll), reciprocal relations, dropout and weighted N3, checked
against direct NumPy computations of what each step should optimise."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from kge_steps import KEY, one_sgd_step
from subprocess_report import run_report

from kgjax import config as config_lib
from kgjax.config import ConfigError
from kgjax.data.catalog import load_dataset
from kgjax.evaluation.link_prediction import Evaluator
from kgjax.models import kge as models
from kgjax.ops import sampling
from kgjax.train.kge import build, losses, step
from kgjax.train.kge import config as kge_config
from kgjax.train.kge.state import TrainData, distinct_queries, with_inverses

REPO = pathlib.Path(__file__).parents[1]


def make_config(**training):
    """configs/test.py's DistMult with `training.<key> = value` overrides."""
    overrides = {f"training.{key}": value for key, value in training.items()}
    return config_lib.from_file(f"{REPO}/configs/test.py:distmult", overrides)


@pytest.fixture(scope="module")
def umls():
    return load_dataset("umls")


def one_step(config, dataset, step_index=0):
    """The metrics of `step_index`'s loss at the initial parameters, with the batch used."""
    parts, data, state, _, metrics = one_sgd_step(config, dataset, step_index=step_index)
    settings = parts.settings
    one_direction = settings.reciprocal or settings.regime == "KvsAll"
    mode, examples, _ = step.select_batch(
        data, jax.random.key(KEY), state.step, settings.batch_size, None, one_direction
    )
    return parts.model, state.params, data, int(mode), np.asarray(examples), metrics


@pytest.mark.parametrize("step_index", [0, 1])  # head-batch, then tail-batch
def test_1vsall_loss_is_cross_entropy_against_every_entity(umls, step_index):
    config = make_config(regime="1vsAll")
    model, params, _, mode, examples, metrics = one_step(config, umls, step_index)
    h, r, t = examples.T
    if mode == sampling.TAIL_BATCH:
        scores = np.asarray(model.score_t(params, h, r))
        answers = t
    else:
        scores = np.asarray(model.score_h(params, r, t))
        answers = h
    # The negative-sampling cross-entropy with all V entities as the candidates.
    scores = scores.astype(np.float64)
    top = scores.max(1, keepdims=True)
    log_z = np.log(np.exp(scores - top).sum(1)) + top[:, 0]
    expected = np.mean(log_z - scores[np.arange(len(answers)), answers])
    np.testing.assert_allclose(float(metrics["data_loss"]), expected, rtol=1e-5)


def test_kvsall_targets_are_every_known_answer_of_the_query(umls):
    config = make_config(regime="KvsAll", label_smoothing=0.1)
    model, params, data, _, queries, metrics = one_step(config, umls)
    known_tails, known_heads = {}, {}
    for h, r, t in np.asarray(umls.train):
        known_tails.setdefault((h, r), set()).add(t)
        known_heads.setdefault((t, r), set()).add(h)
    num = umls.num_entities
    anchors, relations, sides = (jnp.asarray(x) for x in queries.T)
    tail_scores = np.asarray(model.score_t(params, anchors, relations), np.float64)
    head_scores = np.asarray(model.score_h(params, relations, anchors), np.float64)
    losses = []
    for row, (anchor, relation, side) in enumerate(queries):
        if side == sampling.TAIL_BATCH:
            answers, scores = known_tails[(anchor, relation)], tail_scores[row]
        else:
            answers, scores = known_heads[(anchor, relation)], head_scores[row]
        targets = np.zeros(num)
        targets[sorted(answers)] = 1.0
        targets = 0.9 * targets + 1.0 / num
        # Binary cross-entropy with logits.
        losses.append(np.maximum(scores, 0) - scores * targets + np.log1p(np.exp(-np.abs(scores))))
    np.testing.assert_allclose(float(metrics["data_loss"]), np.mean(losses), rtol=1e-5)


def test_distinct_queries_and_inverses():
    triples = np.array([[0, 0, 1], [0, 0, 2], [3, 1, 1], [0, 0, 2]], np.int32)
    queries = distinct_queries(triples)
    tails = {(a, r) for a, r, s in queries if s == sampling.TAIL_BATCH}
    heads = {(a, r) for a, r, s in queries if s == sampling.HEAD_BATCH}
    assert tails == {(0, 0), (3, 1)} and heads == {(1, 0), (2, 0), (1, 1)}
    assert len(queries) == 5
    both = with_inverses(triples[:2], num_relations=2)
    np.testing.assert_array_equal(both, [[0, 0, 1], [0, 0, 2], [1, 2, 0], [2, 2, 0]])
    assert {(a, r) for a, r, _ in distinct_queries(both, both_sides=False)} == {
        (0, 0),
        (1, 2),
        (2, 2),
    }


def test_reciprocal_training_data_and_one_direction(umls):
    config = make_config(reciprocal=True)
    parts = build.build(config, umls.num_entities, umls.num_relations)
    assert parts.model.num_relations == 2 * umls.num_relations
    assert parts.inverse_offset == umls.num_relations
    data = parts.train_data(umls)
    assert data.size == 2 * len(umls.train)
    # The index answers (t, r + R) -> h.
    h, r, t = (jnp.asarray(x[:5]) for x in np.asarray(umls.train).T)
    assert bool(jnp.all(data.index.tails.contains(t, r + umls.num_relations, h)))
    for index in range(3):
        mode, _, _ = step.select_batch(data, jax.random.key(0), jnp.int32(index), 16, None, True)
        assert int(mode) == sampling.TAIL_BATCH


@pytest.mark.parametrize("name", ["distmult", "complex"])
def test_reciprocal_evaluation_equals_direct_when_inverses_match(umls, name):
    # DistMult is symmetric in (h, t): the inverse of r is r. ComplEx: its conjugate.
    model = models.get(name, umls.num_entities, umls.num_relations, dim=8, gamma=6.0)
    params = model.init(jax.random.key(1))
    relation = params["relation"]
    if name == "complex":
        re, im = jnp.split(relation, 2, axis=-1)
        inverse = jnp.concatenate([re, -im], axis=-1)
    else:
        inverse = relation
    doubled = models.get(name, umls.num_entities, 2 * umls.num_relations, dim=8, gamma=6.0)
    doubled_params = {"entity": params["entity"], "relation": jnp.concatenate([relation, inverse])}
    direct = Evaluator(model, umls, 64)(params, "test")
    reciprocal = Evaluator(doubled, umls, 64, inverse_offset=umls.num_relations)
    through_inverse = reciprocal(doubled_params, "test")
    for side in ("head", "tail", "both"):
        for metric in ("mrr", "hits@1", "hits@10"):
            assert through_inverse[side][metric] == pytest.approx(direct[side][metric], abs=1e-6)


def test_dropout_changes_the_loss_and_n3_weights_split_the_tables(umls):
    base = one_step(make_config(regime="1vsAll"), umls)
    dropped = one_step(make_config(regime="1vsAll", entity_dropout=0.5), umls)[5]
    assert float(dropped["data_loss"]) != float(base[5]["data_loss"])
    model, params, _, _, examples, _ = base
    plain = losses.n3_regularizer(model, params, examples)
    relation_only = losses.n3_regularizer(model, params, examples, (0.0, 1.0))
    entity_only = losses.n3_regularizer(model, params, examples, (1.0, 0.0))
    np.testing.assert_allclose(float(relation_only) + float(entity_only), float(plain), rtol=1e-5)
    assert 0 < float(relation_only) < float(plain)


def test_regime_config_errors():
    for key, value, message in (
        ("regime", "2vsAll", "training.regime"),
        ("label_smoothing", 1.0, "training.label_smoothing"),
        ("entity_dropout", -0.1, "training.entity_dropout"),
    ):
        with pytest.raises(ConfigError, match=message):
            kge_config.validate(make_config(**{key: value}))
    config = make_config(regime="KvsAll")
    config.optimizer.row_sparse = True
    with pytest.raises(ConfigError, match="optimizer.row_sparse"):
        kge_config.validate(config)
    config = make_config(regime="1vsAll")
    config.negatives.sampler = "mmrns"
    with pytest.raises(ConfigError, match="negatives.sampler"):
        kge_config.validate(config)


def test_train_data_without_the_regime_is_unchanged(umls):
    # The negative-sampling examples are the training triples, as before regimes existed.
    data = TrainData.from_dataset(umls, True)
    np.testing.assert_array_equal(np.asarray(data.triples), np.asarray(umls.train, np.int32))


# --- on a mesh whose entity table is split (8 fake devices, in a subprocess) -------------


def _split_table_steps(out_path: str) -> None:
    """One step of each all-entity regime on mesh (data 2, model 4) and on one device."""
    import json

    import jax

    from kgjax.train.kge import build

    dataset = load_dataset("umls")
    report = {}
    for regime, extra in (("1vsAll", {}), ("KvsAll", {"label_smoothing": 0.1})):
        losses_and_params = []
        for axes in ((("data", 1), ("model", 1)), (("data", 2), ("model", 4))):
            config = make_config(regime=regime, **extra)
            config.mesh.axes = axes
            devices = jax.devices()[: 1 if axes[1][1] == 1 else 8]
            parts = build.build(config, dataset.num_entities, dataset.num_relations, devices)
            state = parts.initial_state(jax.random.key(0))
            state, metrics = parts.train_chunk(2)(
                state, parts.train_data(dataset), jax.random.key(1)
            )
            params = parts.layout.unpad_params(jax.tree.map(parts.layout.fetch, state.params))
            losses_and_params.append((np.asarray(metrics["data_loss"]), params))
        (one_loss, one), (mesh_loss, mesh) = losses_and_params
        report[regime] = {
            "split": True,
            "loss_difference": float(np.abs(one_loss - mesh_loss).max()),
            "param_difference": max(
                float(np.abs(one[k] - mesh[k]).max()) for k in ("entity", "relation")
            ),
        }
    with open(out_path, "w") as f:
        json.dump(report, f)


def test_all_entity_regimes_on_a_split_table_match_one_device(tmp_path):
    import os

    report = run_report(os.path.abspath(__file__), tmp_path / "report.json")
    for regime in ("1vsAll", "KvsAll"):
        assert report[regime]["loss_difference"] < 1e-5, report
        assert report[regime]["param_difference"] < 1e-5, report


if __name__ == "__main__":
    import sys

    _split_table_steps(sys.argv[1])


def test_complex_n3_rows_are_kbc_epochs_of_reciprocal_1vsall():
    # configs/complex_n3.py: every row validates, and num_steps is whole epochs of
    # floor(2 |train| / batch) steps (each triple once per direction).
    rows = {"fb15k237": 272_115, "wn18rr": 86_835, "fb15k237_cpu": 272_115, "umls": 5_216}
    for row, num_train in rows.items():
        config = config_lib.from_file(f"{REPO}/configs/complex_n3.py:{row}")
        kge_config.validate(config)
        assert (config.training.regime, config.training.reciprocal) == ("1vsAll", True)
        steps_per_epoch = 2 * num_train // config.batch_size
        assert config.num_steps % steps_per_epoch == 0
        assert config.eval_every_steps % steps_per_epoch == 0
    with pytest.raises(ValueError, match="unknown row"):
        config_lib.from_file(f"{REPO}/configs/complex_n3.py:fb15k")


def test_init_std_draws_normal_tables():
    uniform = models.get("complex", 2000, 50, dim=64, gamma=20.0)
    normal = models.get("complex", 2000, 50, dim=64, gamma=20.0, init_std=1e-3)
    tables = uniform.init(jax.random.key(0))
    assert float(jnp.abs(tables["entity"]).max()) <= uniform.embedding_range
    tables = normal.init(jax.random.key(0))
    assert abs(float(jnp.std(tables["entity"])) / 1e-3 - 1) < 0.02
    assert abs(float(jnp.std(tables["relation"])) / 1e-3 - 1) < 0.1
    # The draw changes, the scale other code reads does not.
    assert normal.embedding_range == uniform.embedding_range
    with pytest.raises(ValueError, match="init_std"):
        models.get("complex", 10, 2, dim=4, init_std=-1.0)


def test_adagrad_from_zero_takes_torch_sized_first_steps():
    # torch.optim.Adagrad (kbc): G = g^2, update = -lr g / (sqrt(G) + 1e-10), about -lr
    # sign(g) even for 1e-9 gradients; kgjax's row puts eps 1e-20 under the root instead
    # (within 10% of torch's at |g| = 1e-9, equal for larger); optax's defaults (G0 = 0.1,
    # eps 1e-7) barely move.
    from kgjax.train.optimizers import make_optimizer

    grads = {"w": jnp.array([1e-9, -3e-9, 2e-3, 0.0], jnp.float32)}
    params = {"w": jnp.zeros(4, jnp.float32)}
    g = np.asarray(grads["w"], np.float64)
    expected = -0.1 * g / np.sqrt(g * g + 1e-20)
    torch = -0.1 * g / (np.sqrt(g * g) + 1e-10)
    np.testing.assert_allclose(expected, torch, rtol=0.1)
    kbc = config_lib.from_file(f"{REPO}/configs/complex_n3.py:umls").optimizer
    optimizer, _ = make_optimizer(kbc, 10)
    updates, _ = optimizer.update(grads, optimizer.init(params), params)
    np.testing.assert_allclose(np.asarray(updates["w"]), expected, rtol=1e-4, atol=1e-12)
    default = make_config().optimizer
    default.name = "adagrad"
    optimizer, _ = make_optimizer(default, 10)
    updates, _ = optimizer.update(grads, optimizer.init(params), params)
    assert np.abs(np.asarray(updates["w"][:2])).max() < 1e-8


def test_adagrad_settings_errors():
    config = make_config()
    config.optimizer.adagrad_initial_accumulator = -1.0
    with pytest.raises(ConfigError, match="optimizer.adagrad_initial_accumulator"):
        kge_config.validate(config)
    config = make_config()
    config.optimizer.row_sparse = True
    config.optimizer.adagrad_epsilon = 1e-20
    with pytest.raises(ConfigError, match="optimizer.adagrad_epsilon"):
        kge_config.validate(config)


def test_conve_learning_rate_decays_per_epoch():
    # ConvE's main.py: lr x 0.995 after every epoch; the config's epoch is num_steps / 1000.
    from kgjax.train.optimizers import learning_rate_schedule

    config = config_lib.from_file(f"{REPO}/configs/conve.py:fb15k237")
    kge_config.validate(config)
    epoch = config.optimizer.decay_steps
    assert epoch == 1170 and config.num_steps == 1000 * epoch
    schedule = learning_rate_schedule(config.optimizer, config.num_steps)
    for at, epochs in ((0, 0), (epoch - 1, 0), (epoch, 1), (10 * epoch + 5, 10)):
        assert float(schedule(at)) == pytest.approx(3e-3 * 0.995**epochs, rel=1e-6)
    small = config_lib.from_file(f"{REPO}/configs/conve.py:umls").optimizer
    assert small.schedule == "constant"
    config.optimizer.decay_steps = 0
    with pytest.raises(ConfigError, match="optimizer.decay_steps"):
        kge_config.validate(config)
