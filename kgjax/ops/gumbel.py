"""Masked Gumbel top-k sampling without replacement, with a straight-through one-hot.

Adding i.i.d. Gumbel(0, 1) noise to log-probabilities and keeping the k largest draws k
items without replacement from the categorical distribution, in the order of sequential
sampling (Vieira 2014; Kool et al., ICML 2019), in one `top_k` instead of k rounds. MMRNS
(Xu et al., ACM MM 2022) draws its hard negatives this way and lets gradients reach the
sampling distribution with the straight-through Gumbel-softmax estimator (Jang et al., ICLR
2017): slot j carries the hard one-hot of item idx_j forwards, and backwards the gradient of

  soft_j = softmax((logits + g - inf * [items drawn in slots 0..j-1]) / tau),

the relaxed draw of slot j given the earlier ones (the reference redraws noise per slot; one
draw of the noise gives the same distribution of the k items).

`straight_through_gather` returns the gathered rows table[idx] [B, K, D] and backpropagates
that estimator in O(B (P + K^2) D) time and O(B (P + K^2 + K D)) memory, never building the
[B, K, P] soft one-hots that the reference multiplies with the table (O(B K P D) time).

Shapes: B batch, P candidates, K draws, D row width.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

# The log-probability added to masked items: finite, so no -inf - -inf NaNs reach a gradient,
# yet below any log-probability a softmax over similarities can produce, so a masked item is
# drawn only when fewer than K unmasked items remain.
MASKED_LOG_PROB = -1e30


def masked_log_probs(log_probs: jax.Array, masked: jax.Array) -> jax.Array:
    """log p + log(mask), with mask = 1 for allowed items and a vanishing value for masked ones.

    The mask is added in log space rather than zeroing p, so that the result stays finite and
    differentiable with respect to `log_probs` (MMRNS's masked Gumbel-softmax).

    Args:
      log_probs: float [..., P].
      masked: bool [..., P], True for items that must not be drawn (known positives).

    Returns:
      float [..., P].
    """
    return log_probs + jnp.where(masked, MASKED_LOG_PROB, 0.0).astype(log_probs.dtype)


def gumbel_top_k(key: jax.Array, logits: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """Draws k distinct items per row from softmax(logits), in sequential-sampling order.

    Args:
      key: PRNG key.
      logits: float [B, P] unnormalised log-probabilities (masked ones included).
      k: K <= P.

    Returns:
      (indices int32 [B, K], the first drawn first; perturbed logits float [B, P], the
      logits plus their Gumbel noise, for `straight_through_gather`).

    Raises:
      ValueError: k > P.
    """
    if k > logits.shape[-1]:
        raise ValueError(f"gumbel_top_k: cannot draw {k} distinct items from {logits.shape[-1]}")
    perturbed = logits + jax.random.gumbel(key, logits.shape, logits.dtype)
    _, indices = jax.lax.top_k(perturbed, k)
    return indices.astype(jnp.int32), perturbed


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def straight_through_gather(
    table: jax.Array, perturbed: jax.Array, indices: jax.Array, temperature: float
) -> jax.Array:
    """table[indices] forwards; the straight-through Gumbel top-k gradient backwards.

    Forwards this equals one_hot(indices) @ table. Backwards it is the gradient of
    (hard + soft - stop_gradient(soft)) @ table, where soft_j is the relaxed draw of slot j
    (module docstring): the table gets the hard one-hot's gradient (a scatter-add of the
    rows' cotangents) and `perturbed` gets the soft one-hots' (softmax) gradient.

    Args:
      table: float [P, D] candidate rows.
      perturbed: float [B, P] perturbed logits from `gumbel_top_k`.
      indices: int [B, K] from `gumbel_top_k`: the top K of `perturbed`, largest first.
      temperature: tau > 0 of the relaxation (static).

    Returns:
      float [B, K, D].
    """
    del perturbed, temperature
    return table[indices]


def _gather_fwd(table, perturbed, indices, temperature):
    del temperature
    return table[indices], (table, perturbed, indices)


def _gather_bwd(temperature, residuals, cotangent):
    """The estimator's VJP in closed form (notation: q = perturbed / tau, rows e_n = table[n]).

    Slot j's soft one-hot is soft_j[n] = exp(q_n - q_j) / Z_j over the items still available
    in slot j (the unselected ones and idx_j, idx_{j+1}, ...), writing q_j for q[idx_j], the
    largest of them, so that every exponent is <= 0 and Z_j >= 1. With the upstream
    u_j[n] = g_j . e_n and mu_j = soft_j . u_j, the softmax VJP summed over slots is

      dq[n]     = b_n (e_n . G - c)                                  for unselected n,
      dq[idx_i] = sum_{j <= i} exp(q_i - q_j) / Z_j (g_j . e_idx_i - mu_j)   for drawn ones,

    where b_n = exp(q_n - q_{K-1}) <= 1, omega_j = exp(q_{K-1} - q_j) / Z_j <= 1,
    G = sum_j omega_j g_j and c = sum_j omega_j mu_j: one [B, P] x D product for the pool and
    [B, K, K] ones for the drawn items. No factor exceeds 1, so nothing overflows however
    peaked the distribution is.
    """
    table, perturbed, indices = residuals
    g = cotangent.astype(table.dtype)  # [B, K, D]
    batch = jnp.arange(indices.shape[0])[:, None]
    k = indices.shape[1]

    d_table = jnp.zeros_like(table).at[indices.reshape(-1)].add(g.reshape(-1, table.shape[1]))

    q = perturbed / temperature  # [B, P]
    q_drawn = jnp.take_along_axis(q, indices, axis=1)  # [B, K], descending
    selected = jnp.zeros(q.shape, bool).at[batch, indices].set(True)
    drawn_rows = table[indices]  # [B, K, D]

    b = jnp.where(selected, 0.0, jnp.exp(q - q_drawn[:, -1:]))  # [B, P]
    to_last = jnp.exp(q_drawn[:, -1:] - q_drawn)  # exp(q_{K-1} - q_j) [B, K]
    # decay[b, j, i] = exp(q_i - q_j) where item idx_i is still available in slot j (i >= j).
    available = jnp.triu(jnp.ones((k, k), bool))
    decay = jnp.exp(jnp.where(available, q_drawn[:, None, :] - q_drawn[:, :, None], -jnp.inf))
    inv_z = 1.0 / (to_last * jnp.sum(b, axis=1, keepdims=True) + jnp.sum(decay, axis=2))

    dots = jnp.einsum("bjd,bid->bji", g, drawn_rows)  # g_j . e_idx_i [B, K, K]
    pool_dots = jnp.einsum("bjd,bd->bj", g, b @ table)  # g_j . sum_unselected b_n e_n
    mu = inv_z * (to_last * pool_dots + jnp.sum(decay * dots, axis=2))  # [B, K]

    omega = to_last * inv_z  # [B, K]
    big_g = jnp.einsum("bj,bjd->bd", omega, g)
    c = jnp.sum(omega * mu, axis=1, keepdims=True)
    d_unselected = b * (big_g @ table.T - c)  # [B, P]
    soft_drawn = decay * inv_z[:, :, None]  # soft_j[idx_i] [B, K, K]
    d_drawn = jnp.sum(soft_drawn * (dots - mu[:, :, None]), axis=1)  # [B, K]

    d_q = d_unselected.at[batch, indices].add(d_drawn)
    return d_table, (d_q / temperature).astype(perturbed.dtype), None


straight_through_gather.defvjp(_gather_fwd, _gather_bwd)
