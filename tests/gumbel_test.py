"""kgjax.ops.gumbel: the draws' distribution, masking, no replacement, straight-through VJP."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kgjax.ops import gumbel

# The chi-square distribution's 0.999 quantile with 19 degrees of freedom (scipy.stats.chi2
# .ppf(0.999, 19)): a correct sampler fails this test once in a thousand seeds.
CHI2_19_999 = 43.82


def test_ordered_draws_follow_sampling_without_replacement():
    # Slots 0 and 1 must be (i, j) with probability p_i p_j / (1 - p_i), the sequential
    # draw without replacement; item 5 is masked and must never appear.
    p = np.array([0.35, 0.25, 0.2, 0.12, 0.08])
    logits = jnp.log(jnp.asarray(np.append(p, 0.3), jnp.float32))
    masked = jnp.arange(6) == 5
    num_draws = 200_000
    rows = jnp.broadcast_to(gumbel.masked_log_probs(logits, masked), (num_draws, 6))
    draws, _ = jax.jit(gumbel.gumbel_top_k, static_argnums=2)(jax.random.key(0), rows, 2)
    draws = np.asarray(draws)
    assert not np.any(draws == 5)
    cells = list(itertools.permutations(range(5), 2))
    observed = np.array([np.sum((draws[:, 0] == i) & (draws[:, 1] == j)) for i, j in cells])
    expected = num_draws * np.array([p[i] * p[j] / (1 - p[i]) for i, j in cells])
    assert observed.sum() == num_draws
    chi2 = np.sum((observed - expected) ** 2 / expected)
    assert chi2 < CHI2_19_999, (chi2, observed, expected)


def test_draws_are_distinct_and_never_masked():
    key_logits, key_mask, key_draw = jax.random.split(jax.random.key(1), 3)
    num_rows, num_items, k = 64, 50, 20
    # Peaked rows too: log-probabilities hundreds apart must still beat a masked item.
    scale = jnp.where(jnp.arange(num_rows)[:, None] % 2 == 0, 1.0, 300.0)
    logits = scale * jax.random.normal(key_logits, (num_rows, num_items))
    masked = jax.random.bernoulli(key_mask, 0.5, (num_rows, num_items))
    masked = masked.at[:, :k].set(False)  # at least k allowed items in every row
    draws, _ = gumbel.gumbel_top_k(key_draw, gumbel.masked_log_probs(logits, masked), k)
    draws, masked = np.asarray(draws), np.asarray(masked)
    assert draws.shape == (num_rows, k)
    for row, mask in zip(draws, masked, strict=True):
        assert len(set(row.tolist())) == k
        assert not mask[row].any()


def test_masked_items_fill_only_the_slots_left_over():
    logits = jnp.zeros((1, 8))
    masked = jnp.arange(8)[None, :] >= 3  # three allowed items, five draws
    draws, _ = gumbel.gumbel_top_k(jax.random.key(2), gumbel.masked_log_probs(logits, masked), 5)
    draws = np.asarray(draws)[0]
    assert sorted(draws[:3].tolist()) == [0, 1, 2]
    assert len(set(draws.tolist())) == 5


def test_too_many_draws_raise():
    with pytest.raises(ValueError, match="cannot draw 5"):
        gumbel.gumbel_top_k(jax.random.key(0), jnp.zeros((2, 4)), 5)


def dense_straight_through(table, perturbed, indices, temperature):
    """The reference's form: (hard + soft - sg(soft)) @ table with per-slot soft one-hots."""
    hard = jax.nn.one_hot(indices, perturbed.shape[1], dtype=table.dtype)  # [B, K, N]
    drawn_before = (jnp.cumsum(hard, axis=1) - hard) > 0
    soft = jax.nn.softmax(
        jnp.where(drawn_before, -jnp.inf, perturbed[:, None, :] / temperature), axis=-1
    )
    one_hot = hard + soft - jax.lax.stop_gradient(soft)
    return jnp.einsum("bkn,nd->bkd", one_hot, table)


@pytest.mark.parametrize(
    ("scale", "temperature", "masked_rate"),
    [(1.0, 1.0, 0.0), (5.0, 0.5, 0.3), (60.0, 1.0, 0.3), (1.0, 2.0, 0.9)],
)
def test_straight_through_gradient_matches_the_dense_relaxation(scale, temperature, masked_rate):
    keys = jax.random.split(jax.random.key(3), 5)
    num_rows, num_items, k, width = 6, 24, 7, 5
    table = jax.random.normal(keys[0], (num_items, width))
    logits = scale * jax.random.normal(keys[1], (num_rows, num_items))
    # masked_rate 0.9 leaves fewer than k allowed items in some rows: masked ones get drawn.
    masked = jax.random.bernoulli(keys[2], masked_rate, (num_rows, num_items))
    draws, perturbed = gumbel.gumbel_top_k(keys[3], gumbel.masked_log_probs(logits, masked), k)
    upstream = jax.random.normal(keys[4], (num_rows, k, width))

    def loss(fn, table, perturbed):
        return jnp.sum(upstream * jnp.tanh(fn(table, perturbed, draws, temperature)))

    fast = jax.jit(jax.value_and_grad(lambda *a: loss(gumbel.straight_through_gather, *a), (0, 1)))
    dense = jax.jit(jax.value_and_grad(lambda *a: loss(dense_straight_through, *a), (0, 1)))
    (value, grads), (value_ref, grads_ref) = fast(table, perturbed), dense(table, perturbed)
    np.testing.assert_allclose(value, value_ref, rtol=1e-6)
    np.testing.assert_array_equal(
        gumbel.straight_through_gather(table, perturbed, draws, temperature), table[draws]
    )
    for grad, grad_ref in zip(grads, grads_ref, strict=True):
        assert np.all(np.isfinite(grad))
        np.testing.assert_allclose(grad, grad_ref, rtol=1e-4, atol=1e-6)
    assert np.abs(np.asarray(grads[1])).max() > 0  # the soft path does carry a gradient
