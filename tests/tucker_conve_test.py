"""TuckER and ConvE: interactions with weights of their own under params["interaction"].

Each score against its paper's formula in NumPy (evaluation mode: no dropout; neither model
has batch norm, see kgjax/models/kge/parametrized.py), score_t / score_h against score_hrt,
dropout only with a key, one training step in each regime and an evaluation."""

import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from kge_steps import check_scores_consistent, one_sgd_step

from kgjax import config as config_lib
from kgjax.config import ConfigError
from kgjax.data.catalog import load_dataset
from kgjax.models import kge as models
from kgjax.train.kge import step

REPO = pathlib.Path(__file__).parents[1]
V, R, D = 23, 5, 12


def tucker_reference(e, rel, core, h, r, t):
    """sum_ijk W_ijk h_i r_j t_k."""
    return np.einsum("bi,bj,bk,ijk->b", e[h], rel[r], e[t], core)


def conve_reference(e, rel, weights, h, r, t, height):
    """ReLU(vec(ReLU(conv([h; r] as 2D))) W + b) . e_t + b_t, with a valid 3x3 convolution."""
    dim = rel.shape[1]
    width = dim // height
    vectors, bias = e[:, :dim], e[:, dim]
    image = np.concatenate(
        [vectors[h].reshape(-1, height, width), rel[r].reshape(-1, height, width)], axis=1
    )  # [B, 2Hh, Ww]
    kernel = np.asarray(weights["Conv_0"]["kernel"], np.float64)[:, :, 0, :]  # [3, 3, C]
    size = kernel.shape[0]
    rows, cols = image.shape[1] - size + 1, image.shape[2] - size + 1
    maps = np.zeros((len(h), rows, cols, kernel.shape[2]))
    for i in range(rows):
        for j in range(cols):
            patch = image[:, i : i + size, j : j + size]
            maps[:, i, j] = np.einsum("bxy,xyc->bc", patch, kernel)
    maps = np.maximum(maps + np.asarray(weights["Conv_0"]["bias"]), 0.0)
    dense = weights["Dense_0"]
    query = maps.reshape(len(h), -1) @ np.asarray(dense["kernel"], np.float64)
    query = np.maximum(query + np.asarray(dense["bias"]), 0.0)
    return np.sum(query * vectors[t], axis=1) + bias[t]


def as64(tree):
    return jax.tree.map(lambda x: np.asarray(x, np.float64), tree)


@pytest.fixture(params=["tucker", "conve"])
def model_and_params(request):
    hparams = {"tucker": dict(relation_dim=4), "conve": dict(height=3, channels=4)}
    model = models.get(request.param, V, R, dim=D, **hparams[request.param])
    return model, model.init(jax.random.key(0))


def test_init_shapes(model_and_params):
    model, params = model_and_params
    if model.name == "tucker":
        assert params["entity"].shape == (V, D) and params["relation"].shape == (R, 4)
        assert params["interaction"]["core"].shape == (D, 4, D)
    else:
        assert params["entity"].shape == (V, D + 1) and params["relation"].shape == (R, D)
        np.testing.assert_array_equal(params["entity"][:, D], 0.0)  # the biases start at 0
        assert params["interaction"]["Conv_0"]["kernel"].shape == (3, 3, 1, 4)
        assert params["interaction"]["Dense_0"]["kernel"].shape == (4 * 4 * 2, D)
    assert (model.entity_width, model.relation_width) == (
        params["entity"].shape[1],
        params["relation"].shape[1],
    )


def test_score_hrt_matches_reference_formula(model_and_params):
    model, params = model_and_params
    if model.name == "conve":  # non-zero biases, so that the test sees them
        bias = jax.random.normal(jax.random.key(5), (V,))
        params = {**params, "entity": params["entity"].at[:, D].set(bias)}
    rng = np.random.default_rng(0)
    h, r, t = rng.integers(0, V, 50), rng.integers(0, R, 50), rng.integers(0, V, 50)
    got = np.asarray(model.score_hrt(params, h, r, t))
    e, rel, weights = as64(params["entity"]), as64(params["relation"]), params["interaction"]
    if model.name == "tucker":
        want = tucker_reference(e, rel, as64(weights["core"]), h, r, t)
    else:
        want = conve_reference(e, rel, weights, h, r, t, height=3)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_score_t_and_score_h_consistent_with_score_hrt(model_and_params):
    model, params = model_and_params
    conve = model.name == "conve"
    r, t = check_scores_consistent(model, params, V, R, heads=not conve)
    if conve:  # tails only: heads come from reciprocal relations
        with pytest.raises(ConfigError, match="training.reciprocal"):
            model.score_h(params, r, t)


def test_dropout_only_with_a_key(model_and_params):
    model, params = model_and_params
    head, rel = params["entity"][:4], params["relation"][:4]
    plain = model.bind(params).tail_query(head, rel)
    np.testing.assert_array_equal(plain, model.bind(params).tail_query(head, rel))
    key = jax.random.key(7)
    dropped = model.bind(params, key).tail_query(head, rel)
    assert not np.allclose(dropped, plain)
    np.testing.assert_array_equal(dropped, model.bind(params, key).tail_query(head, rel))
    # Plain models have nothing to bind.
    distmult = models.get("distmult", V, R, dim=D)
    assert distmult.bind(distmult.init(jax.random.key(0)), key) is distmult


def make_config(name, **training):
    overrides = {"model.name": name, "model.dim": 12}
    overrides.update({f"training.{key}": value for key, value in training.items()})
    config = config_lib.from_file(f"{REPO}/configs/test.py:distmult", overrides)
    with config.unlocked():
        if name == "conve":
            config.model.height = 3
            config.model.channels = 4
        else:
            config.model.relation_dim = 6
    return config


@pytest.fixture(scope="module")
def umls():
    return load_dataset("umls")


def one_step(config, dataset, lr=0.1):
    parts, _, state, new_state, metrics = one_sgd_step(config, dataset, lr)
    return parts, state.params, new_state.params, metrics


# CI runs one case per model and regime family; the rest with KGJAX_LONG_TESTS=1.
_LONG = pytest.mark.skipif(
    not os.environ.get("KGJAX_LONG_TESTS"),
    reason="a slice runs in CI; set KGJAX_LONG_TESTS=1 for every model x regime case",
)
CASES = [
    ("tucker", "negative_sampling", False),
    pytest.param("tucker", "negative_sampling", True, marks=_LONG),
    ("tucker", "1vsAll", False),
    pytest.param("tucker", "KvsAll", True, marks=_LONG),
    pytest.param("conve", "negative_sampling", True, marks=_LONG),
    pytest.param("conve", "1vsAll", True, marks=_LONG),
    ("conve", "KvsAll", True),
]


@pytest.mark.parametrize("name, regime, reciprocal", CASES)
def test_one_training_step_trains_the_interaction_weights(umls, name, regime, reciprocal):
    config = make_config(name, regime=regime, reciprocal=reciprocal)
    parts, before, after, metrics = one_step(config, umls)
    assert np.isfinite(float(metrics["loss"]))
    for path in ("entity", "relation", "interaction"):
        changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), before[path], after[path])
        assert any(jax.tree.leaves(changed)), path
    # Evaluation is deterministic (no dropout) and ranks heads through the inverses for
    # reciprocal runs.
    evaluator = parts.evaluator(umls)
    ranks = evaluator.ranks(after, "valid")
    np.testing.assert_array_equal(ranks, evaluator.ranks(after, "valid"))
    assert np.all(np.isfinite(ranks)) and np.all(ranks >= 1)


def test_1vsall_loss_without_dropout_is_cross_entropy_of_score_t(umls):
    config = make_config("tucker", regime="1vsAll", reciprocal=True)
    with config.unlocked():
        config.model.input_dropout = 0.0
        config.model.hidden_dropout1 = 0.0
        config.model.hidden_dropout2 = 0.0
    parts, params, _, metrics = one_step(config, umls, lr=0.0)
    data = parts.train_data(umls)
    _, examples, _ = step.select_batch(
        data, jax.random.key(3), jnp.int32(0), parts.settings.batch_size, None, True
    )
    h, r, t = np.asarray(examples).T
    scores = np.asarray(parts.model.score_t(params, h, r), np.float64)
    top = scores.max(1, keepdims=True)
    log_z = np.log(np.exp(scores - top).sum(1)) + top[:, 0]
    expected = np.mean(log_z - scores[np.arange(len(t)), t])
    np.testing.assert_allclose(float(metrics["data_loss"]), expected, rtol=1e-5)


def test_conve_without_reciprocal_relations_is_a_config_error(umls):
    with pytest.raises(ConfigError, match="training.reciprocal"):
        one_step(make_config("conve", regime="1vsAll"), umls)
