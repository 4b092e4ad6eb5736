"""KGE models against their papers' formulas, written out in NumPy (the RotatE reference's,
LibKGE's RESCAL and PairRE's repository)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from kge_steps import check_scores_consistent

from kgjax.models import kge as models
from kgjax.models.kge import base, translational

V, R, D = 23, 5, 8


def reference_score(name, h, r, t, gamma, embedding_range):
    """The RotatE repository's model.py formulas (tail-batch form) on single triples, with
    RESCAL's h^T M_r t and PairRE's score as its repository writes it."""
    if name == "transe":
        return gamma - np.abs(h + r - t).sum(-1)
    if name == "distmult":
        return (h * r * t).sum(-1)
    if name == "complex":
        re_h, im_h = np.split(h, 2, -1)
        re_r, im_r = np.split(r, 2, -1)
        re_t, im_t = np.split(t, 2, -1)
        re_s = re_h * re_r - im_h * im_r
        im_s = re_h * im_r + im_h * re_r
        return (re_s * re_t + im_s * im_t).sum(-1)
    if name == "rotate":
        pi = 3.14159265358979323846
        re_h, im_h = np.split(h, 2, -1)
        re_t, im_t = np.split(t, 2, -1)
        phase = r / (embedding_range / pi)
        re_r, im_r = np.cos(phase), np.sin(phase)
        re_s = re_h * re_r - im_h * im_r - re_t
        im_s = re_h * im_r + im_h * re_r - im_t
        return gamma - np.sqrt(re_s**2 + im_s**2).sum(-1)
    if name == "rescal":
        dim = h.shape[-1]
        matrix = r.reshape(*r.shape[:-1], dim, dim)  # M_r[i, j] = r[i * D + j]
        return np.einsum("...i,...ij,...j->...", h, matrix, t)
    if name == "pairre":
        re_head, re_tail = np.split(r, 2, -1)
        h = h / np.maximum(np.linalg.norm(h, axis=-1, keepdims=True), 1e-12)
        t = t / np.maximum(np.linalg.norm(t, axis=-1, keepdims=True), 1e-12)
        return gamma - np.abs(h * re_head - t * re_tail).sum(-1)
    raise ValueError(name)


# (De, Dr) per model, for D = dim.
WIDTHS = {
    "transe": lambda d: (d, d),
    "distmult": lambda d: (d, d),
    "complex": lambda d: (2 * d, 2 * d),
    "rotate": lambda d: (2 * d, d),
    "rescal": lambda d: (d, d * d),
    "pairre": lambda d: (d, 2 * d),
}


# The models over the two tables alone; TuckER and ConvE (weights of their own, dropout) have
# tests/tucker_conve_test.py.
@pytest.fixture(params=sorted(WIDTHS))
def model_and_params(request):
    model = models.get(request.param, V, R, dim=D, gamma=3.0, entity_chunk_size=7)
    return model, model.init(jax.random.key(0))


def test_init_shapes_and_range(model_and_params):
    model, params = model_and_params
    entity_width, relation_width = WIDTHS[model.name](D)
    assert params["entity"].shape == (V, entity_width)
    assert params["relation"].shape == (R, relation_width)
    assert (model.entity_width, model.relation_width) == (entity_width, relation_width)
    if model.name == "rescal":
        # LibKGE's auto-initialisation: Normal(0, D^(-1/3)), unit-variance scores.
        assert model.embedding_range == pytest.approx(np.sqrt(3) * D ** (-1 / 3))
        for table in params.values():
            assert abs(float(jnp.std(table)) / D ** (-1 / 3) - 1) < 0.2
            assert abs(float(jnp.mean(table))) < 0.1
        return
    bound = (3.0 + 2.0) / D
    for table in params.values():
        assert float(jnp.max(jnp.abs(table))) <= bound
        assert float(jnp.std(table)) > bound / 4  # not degenerate


def test_score_hrt_matches_reference_formula(model_and_params):
    model, params = model_and_params
    rng = np.random.default_rng(0)
    h, r, t = rng.integers(0, V, 50), rng.integers(0, R, 50), rng.integers(0, V, 50)
    got = np.asarray(model.score_hrt(params, h, r, t))
    e, rel = np.asarray(params["entity"], np.float64), np.asarray(params["relation"], np.float64)
    want = reference_score(model.name, e[h], rel[r], e[t], model.gamma, model.embedding_range)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_score_t_and_score_h_consistent_with_score_hrt(model_and_params):
    model, params = model_and_params
    check_scores_consistent(model, params, V, R)


def test_embeddings_mathematical_form(model_and_params):
    model, params = model_and_params
    out = model.embeddings(params)
    assert isinstance(out["entity"], np.ndarray)
    if model.name in ("rotate", "complex"):
        assert np.iscomplexobj(out["entity"]) and out["entity"].shape == (V, D)
        np.testing.assert_allclose(out["entity"].real, params["entity"][:, :D])
        np.testing.assert_allclose(out["entity"].imag, params["entity"][:, D:])
    else:
        assert not np.iscomplexobj(out["entity"])
    if model.name == "rescal":
        assert out["relation"].shape == (R, D, D)
        np.testing.assert_array_equal(out["relation"][2, 1], params["relation"][2, D : 2 * D])
    if model.name == "pairre":
        # The entities the score sees (unit norm), relations as (r^H, r^T) pairs.
        np.testing.assert_allclose(np.linalg.norm(out["entity"], axis=-1), 1.0, rtol=1e-6)
        assert out["relation"].shape == (R, 2, D)
        np.testing.assert_array_equal(out["relation"][:, 1], params["relation"][:, D:])
    if model.name == "rotate":
        phases = out["relation"]
        assert np.all(np.abs(phases) <= np.pi + 1e-5)
        # A rotation by the phase maps h to the tail query; its modulus is preserved.
        h = out["entity"][0] * np.exp(1j * phases[0])
        q = np.asarray(model.tail_query(params["entity"][0], params["relation"][0]))
        np.testing.assert_allclose(h.real, q[:D], atol=1e-5)
        np.testing.assert_allclose(h.imag, q[D:], atol=1e-5)


# Each model's interaction built alone, with the fixture's hyper-parameters.
INTERACTIONS = {
    "transe": models.TransEInteraction(dim=D, gamma=3.0, entity_chunk_size=7),
    "rotate": models.RotatEInteraction(dim=D, gamma=3.0, entity_chunk_size=7),
    "distmult": models.DistMultInteraction(dim=D),
    "complex": models.ComplExInteraction(dim=D),
    "rescal": models.RESCALInteraction(dim=D),
    "pairre": models.PairREInteraction(dim=D, gamma=3.0, entity_chunk_size=7),
}


def test_interaction_scores_any_vectors_as_the_model_scores_its_table_rows(model_and_params):
    model, _ = model_and_params
    interaction = INTERACTIONS[model.name]
    assert interaction == model.interaction
    rng = np.random.default_rng(2)
    # Vectors that no table holds (a text encoder's or a GAT's, say): 6 (h, r, t) triples.
    heads, tails = jnp.asarray(rng.normal(size=(2, 6, interaction.entity_width)), jnp.float32)
    relations = jnp.asarray(rng.normal(size=(6, interaction.relation_width)), jnp.float32)
    scores = interaction.match(interaction.tail_query(heads, relations), tails)
    want = reference_score(model.name, heads, relations, tails, model.gamma, model.embedding_range)
    np.testing.assert_allclose(scores, want, rtol=1e-5, atol=1e-5)

    # The same vectors as table rows, scored by id: bit for bit the same.
    ids = np.arange(6)
    tables = {"entity": jnp.concatenate([heads, tails]), "relation": relations}
    np.testing.assert_array_equal(scores, model.score_hrt(tables, ids, ids, ids + 6))
    # 12 candidates in blocks of 7 for the distance models.
    tail_query = interaction.tail_query(heads, relations)
    head_query = interaction.head_query(relations, tails)
    np.testing.assert_array_equal(
        interaction.match_all(tail_query, tables["entity"]), model.score_t(tables, ids, ids)
    )
    np.testing.assert_array_equal(
        interaction.match_all(head_query, tables["entity"]), model.score_h(tables, ids, ids + 6)
    )


def test_queries_match_rows_as_the_samplers_read_them(model_and_params):
    # Per-positive negatives: match(q[:, None], rows [B, K, De]); shared negatives: one
    # match_all per chunk of positives (negatives.py). Both sides, against score_hrt.
    model, params = model_and_params
    rng = np.random.default_rng(3)
    h, r, t = rng.integers(0, V, 8), rng.integers(0, R, 8), rng.integers(0, V, 8)
    ids = rng.integers(0, V, (8, 5))
    shared = np.repeat(ids[::4], 4, 0)  # chunks of 4 positives share their rows

    @jax.jit
    def scores(params):
        entity, relation = params["entity"], params["relation"]
        tail_query = model.tail_query(entity[h], relation[r])
        head_query = model.head_query(relation[r], entity[t])
        chunks = jax.vmap(model.match_all)(tail_query.reshape(2, 4, -1), entity[ids[::4]])
        got = (
            model.match(tail_query[:, None, :], entity[ids]),
            model.match(head_query[:, None, :], entity[ids]),
            chunks.reshape(8, 5),
        )
        want = (
            model.score_hrt(params, h[:, None], r[:, None], ids),
            model.score_hrt(params, ids, r[:, None], t[:, None]),
            model.score_hrt(params, h[:, None], r[:, None], shared),
        )
        return tail_query, head_query, got, want

    tail_query, head_query, got, want = scores(params)
    query_width = 2 * D if model.name == "pairre" else model.entity_width
    assert tail_query.shape == head_query.shape == (8, query_width)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_model_and_interaction_are_static_jit_arguments():
    model = models.get("rotate", V, R, dim=D, gamma=3.0)
    assert hash(model) == hash(models.get("rotate", V, R, dim=D, gamma=3.0))
    params = model.init(jax.random.key(0))
    ids = jnp.arange(4)
    score = jax.jit(lambda model, params: model.score_hrt(params, ids, ids, ids), static_argnums=0)
    np.testing.assert_allclose(
        score(model, params), model.score_hrt(params, ids, ids, ids), rtol=1e-6
    )
    match = jax.jit(lambda interaction, q, c: interaction.match(q, c), static_argnums=0)
    query = model.tail_query(params["entity"][ids], params["relation"][ids])
    np.testing.assert_allclose(
        match(model.interaction, query, params["entity"][ids]),
        model.match(query, params["entity"][ids]),
        rtol=1e-6,
    )


def test_rotate_gradient_is_finite_when_head_rotates_onto_tail():
    model = models.get("rotate", 3, 1, dim=4, gamma=1.0)
    params = {"entity": jnp.zeros((3, 8)), "relation": jnp.zeros((1, 4))}
    grads = jax.grad(
        lambda p: model.score_hrt(p, jnp.array([0]), jnp.array([0]), jnp.array([1])).sum()
    )(params)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


def test_pairre_gradient_is_finite_at_zero_differences_and_zero_entities():
    model = models.get("pairre", 3, 1, dim=4, gamma=1.0)
    entity = jnp.asarray(np.random.default_rng(0).normal(size=(3, 4)), jnp.float32)
    # r^H = r^T and h = t: h o r^H - t o r^T = 0 for (0, 0, 1); entity 2 is all zeros.
    params = {"entity": entity.at[1].set(entity[0]).at[2].set(0.0), "relation": jnp.ones((1, 8))}
    h, r, t = jnp.array([0, 2]), jnp.array([0, 0]), jnp.array([1, 1])

    @jax.jit
    @jax.grad
    def grads(params):
        return model.score_hrt(params, h, r, t).sum() + model.score_t(params, h, r).sum()

    for g in jax.tree.leaves(grads(params)):
        assert bool(jnp.all(jnp.isfinite(g)))


def test_get_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown model 'rotat'"):
        models.get("rotat", 3, 2)
    with pytest.raises(ValueError, match="unknown hyper-parameter"):
        models.get("rotate", 3, 2, dimension=4)
    assert isinstance(models.get("RotatE", 3, 2), models.RotatE)


def test_get_takes_the_model_fields_as_hyper_parameters():
    model = models.get("transe", 3, 2, dim=4, gamma=1.5, entity_chunk_size=2)
    assert model.hparams() == {
        "num_entities": 3,
        "num_relations": 2,
        "dim": 4,
        "gamma": 1.5,
        "entity_chunk_size": 2,
        "init_std": 0.0,
    }
    known = "known: dim, entity_chunk_size, gamma, init_std"
    with pytest.raises(
        ValueError, match=rf"hyper-parameter\(s\) for transe: chunk, dimension; {known}"
    ):
        models.get("transe", 3, 2, dimension=4, chunk=2)
    # Class attributes are not hyper-parameters.
    for attribute in ("interaction_class", "complex_entities", "tables"):
        with pytest.raises(
            ValueError, match=f"unknown hyper-parameter\\(s\\) for rotate: {attribute};"
        ):
            models.get("rotate", 3, 2, **{attribute: None})


@pytest.mark.parametrize(
    "distance, plain",
    [
        (base.l1_distance, lambda q, c: jnp.sum(_abs_with_zero_subgradient(q - c), -1)),
        (base.complex_distance, lambda q, c: jnp.sum(jnp.abs(_complex(q) - _complex(c)), -1)),
    ],
    ids=["l1", "complex"],
)
def test_distance_backward_matches_autodiff_with_broadcasting_and_zeros(distance, plain):
    rng = np.random.default_rng(0)
    query = rng.normal(size=(4, 1, 6)).astype(np.float32)  # broadcast over 5 candidates
    candidate = rng.normal(size=(4, 5, 6)).astype(np.float32)
    candidate[0, 1] = query[0, 0]  # a zero difference: subgradient 0, not NaN
    cotangent = rng.normal(size=(4, 5)).astype(np.float32)

    def pullback(fn):
        value, vjp = jax.vjp(fn, jnp.asarray(query), jnp.asarray(candidate))
        return value, *vjp(jnp.asarray(cotangent))

    value, d_query, d_candidate = jax.jit(lambda: pullback(distance))()
    expected = pullback(plain)
    np.testing.assert_allclose(value, expected[0], rtol=1e-6)
    assert d_query.shape == query.shape and d_candidate.shape == candidate.shape
    assert np.all(np.asarray(d_candidate[0, 1]) == 0)
    # jnp.abs of a complex 0 has gradient 0 too, so the plain form is the reference there.
    np.testing.assert_allclose(d_query, expected[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(d_candidate, expected[2], rtol=1e-5, atol=1e-6)


def _abs_with_zero_subgradient(x):
    # torch.norm(p=1), the reference's TransE distance, has gradient sign(x): 0 at 0, where
    # jnp.abs has 1.
    return jnp.where(x == 0, 0.0, jnp.abs(x))


def _complex(x):
    re, im = jnp.split(x, 2, -1)
    return re + 1j * im


def test_pairre_distance_backward_matches_autodiff_with_broadcasting_and_zeros():
    rng = np.random.default_rng(0)
    query = rng.normal(size=(4, 1, 12)).astype(np.float32)  # [q_1 | q_2], over 5 candidates
    candidate = rng.normal(size=(4, 5, 6)).astype(np.float32)
    # Zero differences (q_1 = q_2 = 0 in coordinate 2), and a zero candidate (below eps).
    query[0, 0, [2, 8]] = 0.0
    candidate[1, 2] = 0.0
    cotangent = rng.normal(size=(4, 5)).astype(np.float32)

    def plain(q, c):
        # Autodiff of the reference's F.normalize and torch.norm(p=1).
        first, scale = jnp.split(q, 2, -1)
        unit = c / jnp.sqrt(jnp.maximum(jnp.sum(c * c, -1, keepdims=True), 1e-24))
        return jnp.sum(_abs_with_zero_subgradient(first - unit * scale), -1)

    def pullback(fn):
        value, vjp = jax.vjp(fn, jnp.asarray(query), jnp.asarray(candidate))
        return value, *vjp(jnp.asarray(cotangent))

    value, d_query, d_candidate = jax.jit(lambda: pullback(translational.pairre_distance))()
    expected = pullback(plain)
    np.testing.assert_allclose(value, expected[0], rtol=1e-6)
    assert d_query.shape == query.shape and d_candidate.shape == candidate.shape
    assert np.all(np.isfinite(d_candidate)) and np.any(d_candidate[1, 2] != 0)
    np.testing.assert_allclose(d_query, expected[1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(d_candidate, expected[2], rtol=1e-5, atol=1e-5)
