"""Tests for kgjax.models.knowbert: KAR's steps against NumPy, its padding and identity
guarantees, its initialisation, where gradients go, and the linker loss.

Compiles dominate the time here, so the tests that need KAR's full forward share one jitted
program (`_forward_and_grads`, the forward and its gradients) at one set of shapes.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kgjax.models import knowbert

# Tiny widths: B 2, L 6, S 3, C 3, V 10, Dh 8, De 4.
B, L, S, C, V, DH, DE = 2, 6, 3, 3, 10, 8, 4
KAR = knowbert.KnowledgeAttentionRecontextualisation(num_heads=2, mlp_size=8, linker_hidden_size=4)
# The programs here are tiny and run a few times: LLVM's optimisation passes would be half
# of their compile time, and compiling is most of this file's time.
_jit = functools.partial(
    jax.jit,
    compiler_options={
        "xla_backend_optimization_level": 0,
        "xla_llvm_disable_expensive_passes": True,
    },
)
# The linker's gold candidates for `_inputs`: the first sentence's two spans have one each.
GOLD = np.array([[1, 0, -1], [-1, -1, -1]], np.int32)


def _inputs(seed=0):
    """A batch whose first sentence has real tokens 0..4 and two real spans (the third is
    padding), and whose second sentence has six real tokens and no span."""
    rng = np.random.default_rng(seed)
    token_mask = np.ones((B, L), bool)
    token_mask[0, 5] = False
    return dict(
        hidden=rng.standard_normal((B, L, DH)).astype(np.float32),
        token_mask=token_mask,
        spans=np.array([[[0, 1], [2, 4], [0, 0]], [[0, 0], [1, 2], [3, 3]]], np.int32),
        span_mask=np.array([[True, True, False], [False, False, False]]),
        candidate_ids=rng.integers(0, V, (B, S, C)).astype(np.int32),
        candidate_priors=rng.random((B, S, C)).astype(np.float32),
        candidate_mask=np.array([[[1, 1, 0], [1, 0, 0], [0, 0, 0]]] * B, bool),
        entity_table=rng.standard_normal((V, DE)).astype(np.float32),
    )


@_jit
def _forward_and_grads(params, inputs):
    """KAR's (h', psi), and the gradients w.r.t. the parameters and the entity table of
    sum(h' * target) + the linker loss on psi."""
    target = jax.random.normal(jax.random.key(3), (B, L, DH))

    def loss(params, table):
        hidden, scores = KAR.apply({"params": params}, **{**inputs, "entity_table": table})
        linking = knowbert.linker_loss(scores, inputs["candidate_mask"], GOLD)
        return jnp.sum(hidden * target) + linking, (hidden, scores)

    grad = jax.grad(loss, argnums=(0, 1), has_aux=True)
    (param_grads, table_grad), (hidden, scores) = grad(params, inputs["entity_table"])
    return hidden, scores, param_grads, table_grad


@pytest.fixture(scope="module")
def params():
    return _jit(KAR.init)(jax.random.key(0), **_inputs())["params"]


def test_a_sentence_without_candidate_spans_passes_through_exactly(params):
    inputs = _inputs()
    hidden, scores, _, _ = _forward_and_grads(params, inputs)
    np.testing.assert_array_equal(hidden[1], inputs["hidden"][1])
    np.testing.assert_array_equal(scores[1], knowbert.MASKED_SCORE)
    # The sentence with spans is recontextualised at its real tokens, not at its padding.
    assert np.abs(hidden[0, :5] - inputs["hidden"][0, :5]).min() > 1e-4
    np.testing.assert_array_equal(hidden[0, 5], inputs["hidden"][0, 5])
    valid = inputs["candidate_mask"][0] & inputs["span_mask"][0][:, None]
    assert (scores[0][~valid] == knowbert.MASKED_SCORE).all()
    assert (np.abs(scores[0][valid]) < 1e3).all()


def test_thresholded_softmax_and_entity_sum_match_numpy():
    # Span 0: one candidate below 0.3 and a masked one; span 1: a tie; span 2: all kept
    # candidates below 0.3 (a masked one above it).
    scores = np.array(
        [[0.5, 2.0, -1.0, 0.1], [3.0, 3.0, 1.0, -2.0], [-0.5, -1.0, 0.9, 0.0]], np.float32
    )
    mask = np.array([[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 0, 1]], bool)
    entities = np.random.default_rng(1).standard_normal((3, 4, DE)).astype(np.float32)

    def reference(threshold):
        out = np.zeros((3, DE), np.float32)
        for m in range(3):
            kept = mask[m] & (scores[m] >= threshold)
            if kept.any():
                weights = np.where(kept, np.exp(scores[m] - scores[m][kept].max()), 0.0)
                out[m] = (weights / weights.sum()) @ entities[m]
        return out

    weighted = _jit(knowbert.weighted_entity_embeddings, static_argnums=3)
    thresholded = weighted(scores, mask, entities, 0.3)
    np.testing.assert_allclose(thresholded, reference(0.3), rtol=1e-6)
    np.testing.assert_array_equal(thresholded[2], 0.0)
    np.testing.assert_allclose(weighted(scores, mask, entities, None), reference(-np.inf), 1e-6)


def test_span_pooling_is_a_softmax_over_the_span_tokens_only(params):
    inputs = _inputs()
    variables = {"params": params["span_pooling"]}
    x = np.random.default_rng(2).standard_normal((B, L, DE)).astype(np.float32)
    token_mask, spans, span_mask = inputs["token_mask"], inputs["spans"], inputs["span_mask"]
    pool = _jit(knowbert.SelfAttentiveSpanPooling().apply)
    pooled = np.asarray(pool(variables, x, token_mask, spans, span_mask))

    kernel = np.asarray(params["span_pooling"]["score"]["kernel"])
    for s, (first, last) in enumerate(spans[0, :2]):
        tokens = x[0, first : last + 1]
        logits = (tokens @ kernel)[:, 0]
        weights = np.exp(logits - logits.max())
        np.testing.assert_allclose(pooled[0, s], weights / weights.sum() @ tokens, rtol=1e-5)
    np.testing.assert_array_equal(pooled[0, 2], 0.0)  # a padded span
    np.testing.assert_array_equal(pooled[1], 0.0)  # a sentence of padded spans

    # New tokens outside span 0 (span 1's included), a new padding token, padded spans moved
    # over real tokens: span 0 keeps its vector bit for bit, padded spans stay zero.
    changed = x.copy()
    changed[0, 2:] = np.random.default_rng(3).standard_normal((L - 2, DE))
    moved = spans.copy()
    moved[0, 2] = (1, 3)
    moved[1] = ((0, 5), (2, 2), (4, 5))
    again = np.asarray(pool(variables, changed, token_mask, moved, span_mask))
    np.testing.assert_array_equal(again[0, 0], pooled[0, 0])
    assert not np.allclose(again[0, 1], pooled[0, 1])
    np.testing.assert_array_equal(again[0, 2], 0.0)
    np.testing.assert_array_equal(again[1], 0.0)
    # Span 1 ends at token 4: the padding token 5 after it is not read.
    changed[0, 5] = 100.0
    last = np.asarray(pool(variables, changed, token_mask, moved, span_mask))
    np.testing.assert_array_equal(last[0, 1], again[0, 1])


def test_back_projection_starts_as_the_pseudo_inverse_of_the_projection(params):
    project = np.asarray(params["project"]["kernel"])  # [Dh, De]
    back = np.asarray(params["back_project"]["kernel"])  # [De, Dh]
    np.testing.assert_allclose(back, np.linalg.pinv(project), rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(params["back_project"]["bias"], 0.0)
    np.testing.assert_array_equal(params["project"]["bias"], 0.0)


def test_gradients_reach_the_layer_but_not_the_entity_table(params):
    _, _, param_grads, table_grad = _forward_and_grads(params, _inputs())
    np.testing.assert_array_equal(table_grad, 0.0)
    for path, grad in jax.tree_util.tree_leaves_with_path(param_grads):
        assert np.isfinite(grad).all(), jax.tree_util.keystr(path)
        assert np.abs(grad).max() > 0, f"no gradient reaches {jax.tree_util.keystr(path)}"


def test_padding_does_not_change_the_real_rows(params):
    """One sentence (5 tokens, 2 spans, 2 candidates) alone, then padded to B 2, L 6, S 3, C 3
    with noise in every padded slot: a padding token, a padded span over real and padding
    tokens, padded candidates' ids and priors, and a padding sentence."""
    rng = np.random.default_rng(4)
    alone = dict(
        hidden=rng.standard_normal((1, 5, DH)).astype(np.float32),
        token_mask=np.ones((1, 5), bool),
        spans=np.array([[[0, 1], [2, 4]]], np.int32),
        span_mask=np.ones((1, 2), bool),
        candidate_ids=rng.integers(0, V, (1, 2, 2)).astype(np.int32),
        candidate_priors=rng.random((1, 2, 2)).astype(np.float32),
        candidate_mask=np.array([[[1, 1], [1, 0]]], bool),
        entity_table=_inputs()["entity_table"],
    )
    padded = _inputs(seed=5)  # noise in every slot
    for name in ("token_mask", "span_mask", "candidate_mask"):
        padded[name][:] = False
    for name, value in alone.items():
        padded[name][tuple(slice(n) for n in value.shape)] = value
    padded["spans"][0, 2] = (3, 5)

    hidden, scores = _jit(KAR.apply)({"params": params}, **alone)
    hidden_padded, scores_padded, _, _ = _forward_and_grads(params, padded)
    np.testing.assert_allclose(hidden_padded[0, :5], hidden[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scores_padded[0, :2, :2], scores[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(scores_padded[0, 2], knowbert.MASKED_SCORE)
    np.testing.assert_array_equal(hidden_padded[1], padded["hidden"][1])


def test_linker_loss_is_the_cross_entropy_of_the_gold_candidate_among_valid_ones():
    rng = np.random.default_rng(6)
    mask = np.array(
        [
            [[1, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0]],
            [[1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 0, 0]],
        ],
        bool,
    )
    scores = rng.standard_normal(mask.shape).astype(np.float32)
    scores[~mask] = 50.0  # masked candidates take no part whatever their score
    gold = np.array([[2, 1, -1], [0, -1, 3]], np.int32)  # (1, 2)'s gold is a masked candidate
    nll = []
    for b, s in ((0, 0), (0, 1), (1, 0)):
        valid = scores[b, s][mask[b, s]]
        nll.append(np.log(np.exp(valid).sum()) - scores[b, s, gold[b, s]])
    loss_and_grad = _jit(jax.value_and_grad(knowbert.linker_loss))
    loss, grad = loss_and_grad(scores, mask, gold)
    np.testing.assert_allclose(loss, np.mean(nll), rtol=1e-5)
    assert np.isfinite(grad).all()
    np.testing.assert_array_equal(grad[~mask], 0.0)
    np.testing.assert_array_equal(grad[0, 2], 0.0)  # no gold: no gradient
    loss, grad = loss_and_grad(scores, mask, np.full_like(gold, -1))
    assert loss == 0.0 and (grad == 0.0).all()
