"""TuckER and ConvE: interactions with weights of their own under params["interaction"].

Each score against its paper's formula in NumPy (evaluation mode: no dropout), with and
without the papers' batch norms (running statistics in evaluation, the batch's in training,
the running ones moved 0.1 towards the batch's by the train step), score_t / score_h
against score_hrt, dropout only with a key, one training step in each regime, an evaluation
and a trained, resumed run with batch norm."""

import dataclasses
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


EPSILON = 1e-5  # PyTorch's BatchNorm epsilon, which both references keep


def norm(x, layer, stats=None):
    """Batch norm over the last axis: running (mean, var) from `stats`, or x's own over the
    other axes (training); then scale and shift from `layer`. Identity when layer is None."""
    if layer is None:
        return x
    axes = tuple(range(x.ndim - 1))
    mean, var = (
        (x.mean(axes), x.var(axes))
        if stats is None
        else (np.asarray(stats["mean"], np.float64), np.asarray(stats["var"], np.float64))
    )
    scale, shift = (np.asarray(layer[k], np.float64) for k in ("scale", "bias"))
    return (x - mean) / np.sqrt(var + EPSILON) * scale + shift


def tucker_reference(e, rel, core, h, r, t, bn=None):
    """bn1(sum_ij bn0(h)_i r_j W_ijk) . t_k; without `bn` sum_ijk W_ijk h_i r_j t_k.

    bn: {"bn0", "bn1": {"scale", "bias"}, "batch_stats": {...}} of a batch-norm TuckER."""
    stats = (bn or {}).get("batch_stats", {})
    head = norm(e[h], (bn or {}).get("bn0"), stats.get("bn0"))
    query = norm(np.einsum("bi,bj,ijk->bk", head, rel[r], core), (bn or {}).get("bn1"),
                 stats.get("bn1"))  # fmt: skip
    return np.sum(query * e[t], axis=1)


def conve_reference(e, rel, weights, h, r, t, height, batch_norm=False):
    """ReLU(vec(ReLU(conv([h; r] as 2D))) W + b) . e_t + b_t, with a valid 3x3 convolution
    (with `batch_norm`: the image, the feature maps and the projection each normalised by
    the running statistics in weights["batch_stats"] before the next step)."""
    dim = rel.shape[1]
    width = dim // height

    def bn(x, i):
        if not batch_norm:
            return x
        name = f"BatchNorm_{i}"
        return norm(x, weights[name], weights["batch_stats"][name])

    vectors, bias = e[:, :dim], e[:, dim]
    image = np.concatenate(
        [vectors[h].reshape(-1, height, width), rel[r].reshape(-1, height, width)], axis=1
    )  # [B, 2Hh, Ww]
    image = bn(image[..., None], 0)[..., 0]
    kernel = np.asarray(weights["Conv_0"]["kernel"], np.float64)[:, :, 0, :]  # [3, 3, C]
    size = kernel.shape[0]
    rows, cols = image.shape[1] - size + 1, image.shape[2] - size + 1
    maps = np.zeros((len(h), rows, cols, kernel.shape[2]))
    for i in range(rows):
        for j in range(cols):
            patch = image[:, i : i + size, j : j + size]
            maps[:, i, j] = np.einsum("bxy,xyc->bc", patch, kernel)
    maps = np.maximum(bn(maps + np.asarray(weights["Conv_0"]["bias"]), 1), 0.0)
    dense = weights["Dense_0"]
    query = maps.reshape(len(h), -1) @ np.asarray(dense["kernel"], np.float64)
    query = np.maximum(bn(query + np.asarray(dense["bias"]), 2), 0.0)
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


# --- batch norm (model.batch_norm) ---------------------------------------------------------


def perturbed(tree, key):
    """Every leaf moved off its initial value (scales and variances kept positive), so that
    each batch-norm parameter and statistic shows in the scores."""
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(key, len(leaves))
    moved = [x + 0.3 * jax.random.uniform(k, x.shape) for k, x in zip(keys, leaves, strict=True)]
    return jax.tree.unflatten(treedef, moved)


@pytest.fixture(params=["tucker", "conve"])
def batch_norm_model(request):
    hparams = {"tucker": dict(relation_dim=4), "conve": dict(height=3, channels=4)}
    model = models.get(request.param, V, R, dim=D, batch_norm=True, **hparams[request.param])
    params = model.init(jax.random.key(0))
    interaction = dict(params["interaction"])
    for name in interaction:
        if name == "batch_stats" or name.startswith(("bn", "BatchNorm")):
            interaction[name] = perturbed(interaction[name], jax.random.key(len(name)))
    return model, {**params, "interaction": interaction}


def test_batch_norm_scores_match_reference_formula_with_running_statistics(batch_norm_model):
    model, params = batch_norm_model
    rng = np.random.default_rng(2)
    h, r, t = rng.integers(0, V, 40), rng.integers(0, R, 40), rng.integers(0, V, 40)
    got = np.asarray(model.score_hrt(params, h, r, t))
    e, rel, weights = as64(params["entity"]), as64(params["relation"]), params["interaction"]
    if model.name == "tucker":
        want = tucker_reference(e, rel, as64(weights["core"]), h, r, t, bn=weights)
        # Without the layers the formula differs: the test sees them.
        assert not np.allclose(got, tucker_reference(e, rel, as64(weights["core"]), h, r, t))
    else:
        want = conve_reference(e, rel, weights, h, r, t, height=3, batch_norm=True)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    check_scores_consistent(model, params, V, R, heads=False)


def test_batch_norm_training_normalises_by_the_batch_and_moves_running_statistics(
    batch_norm_model,
):
    model, params = batch_norm_model
    zero = {k: 0.0 for k in ("input_dropout", "hidden_dropout", "hidden_dropout1",
                             "hidden_dropout2", "feature_dropout") if hasattr(model, k)}  # fmt: skip
    model = dataclasses.replace(model, **zero)
    ids = np.array([0, 3, 5, 7, 11, 2])
    head, rel = params["entity"][ids], params["relation"][ids % R]
    bound = model.bind(params, jax.random.key(1))  # a key: training mode
    query, stats = bound.tail_query_with_stats(head, rel)
    query = np.asarray(query, np.float64)
    np.testing.assert_array_equal(query, bound.tail_query(head, rel))
    old = params["interaction"]["batch_stats"]
    if model.name == "tucker":
        w = params["interaction"]
        h0 = np.asarray(head, np.float64)
        normed = norm(h0, w["bn0"])  # the batch's own statistics
        raw = np.einsum("bi,bj,ijk->bk", normed, np.asarray(rel, np.float64),
                        np.asarray(w["core"], np.float64))  # fmt: skip
        np.testing.assert_allclose(query, norm(raw, w["bn1"]), rtol=1e-4, atol=1e-4)
        inputs = {"bn0": h0, "bn1": raw}
    else:
        image = np.concatenate(
            [np.asarray(head[:, :D]).reshape(-1, 3, 4), np.asarray(rel).reshape(-1, 3, 4)], 1
        )
        inputs = {"BatchNorm_0": image[..., None]}
        assert query.shape == (len(ids), D + 1)
    for layer, x in inputs.items():
        axes = tuple(range(x.ndim - 1))
        for name, batch in (("mean", x.mean(axes)), ("var", x.var(axes))):
            want = 0.9 * np.asarray(old[layer][name]) + 0.1 * batch
            np.testing.assert_allclose(stats[layer][name], want, rtol=1e-4, atol=1e-5)
    # Evaluation reads the running statistics and leaves them as they are.
    _, unchanged = model.bind(params).tail_query_with_stats(head, rel)
    assert unchanged is not None
    jax.tree.map(np.testing.assert_array_equal, unchanged, old)
    # Models without batch norm have no statistics to store.
    plain = dataclasses.replace(model, batch_norm=False).bind(params)
    assert plain.tail_query_with_stats(head, rel)[1] is None


def test_batch_norm_step_stores_the_batch_statistics_and_trains_the_affine_weights(umls):
    config = make_config("tucker", regime="KvsAll", reciprocal=True)
    with config.unlocked():
        config.model.batch_norm = True
        for key in ("input_dropout", "hidden_dropout1", "hidden_dropout2"):
            config.model[key] = 0.0
    parts, data, state, new_state, metrics = one_sgd_step(config, umls, lr=0.1)
    assert np.isfinite(float(metrics["loss"]))
    _, queries, _ = step.select_batch(
        data, jax.random.key(3), jnp.int32(0), parts.settings.batch_size, None, True
    )
    before, after = state.params, new_state.params
    anchors, relations = np.asarray(queries[:, 0]), np.asarray(queries[:, 1])
    _, want = parts.model.bind(before, jax.random.key(0)).tail_query_with_stats(
        before["entity"][anchors], before["relation"][relations]
    )
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
        after["interaction"]["batch_stats"],
        want,
    )
    for layer in ("bn0", "bn1"):
        for name in ("scale", "bias"):
            assert np.any(after["interaction"][layer][name] != before["interaction"][layer][name])


def test_batch_norm_needs_reciprocal_relations(umls):
    config = make_config("tucker", regime="KvsAll")
    with config.unlocked():
        config.model.batch_norm = True
    with pytest.raises(ConfigError, match="training.reciprocal"):
        one_step(config, umls)
    model = models.get("tucker", V, R, dim=D, relation_dim=4, batch_norm=True)
    params = model.init(jax.random.key(0))
    with pytest.raises(ConfigError, match="training.reciprocal"):
        model.score_h(params, jnp.array([0]), jnp.array([1]))


@pytest.mark.skipif(
    not os.environ.get("KGJAX_LONG_TESTS"),
    reason="two training runs (~30 s); CI's slice is the one-step test above, which checks "
    "the statistics the step stores; set KGJAX_LONG_TESTS=1",
)
def test_batch_norm_run_trains_evaluates_and_resumes(tmp_path):
    """`kgjax train` with batch norm: the running statistics are saved, and a run resumed
    from its step-20 checkpoint ends where the uninterrupted one does."""
    from kgjax import runs
    from kgjax.train.kge.trainer import train

    def config(num_steps):
        c = make_config("tucker", regime="KvsAll", reciprocal=True)
        with c.unlocked():
            c.model.batch_norm = True
            c.num_steps = num_steps
        return c

    whole, halves = str(tmp_path / "whole"), str(tmp_path / "halves")
    results = train(config(40), whole, progress=False)
    assert np.isfinite(results["test"]["both"]["mrr"])
    train(config(20), halves, progress=False)
    train(config(40), halves, progress=False)
    a, b = runs.restore(whole).params, runs.restore(halves).params
    stats = a["interaction"]["batch_stats"]
    assert np.any(np.asarray(stats["bn0"]["mean"]) != 0.0)  # moved from their start
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6), a, b)
