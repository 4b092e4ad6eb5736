"""Row-sparse optimizer updates: a step's table gradients kept per read row, never as a
table-sized buffer (`config.optimizer.row_sparse`).

The tables are read through `RowTap`s (`kgjax.parallel`); the optimizer updates everything
else, and the tables get the dense Adam or Adagrad update (up to float rounding) through
`Layout.update_rows`, which sums each touched row's gradients and writes them in place.

Shapes: U rows read by a step, D width.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

# The constants of kgjax.train.optimizers' Adam and Adagrad (optax's defaults): the
# row-sparse update recomputes the rows a step touched with them (a test compares it with
# the dense update).
_ADAM_B1, _ADAM_B2, _ADAM_EPS = 0.9, 0.999, 1e-8
_ADAGRAD_EPS = 1e-7


def _row_rule(optimizer_name: str, step: jax.Array, lr: jax.Array):
    """The table update of a step without a dense gradient, as passes over the tables.

    Adam: decay every row's moments (mu *= b1, nu *= b2: a zero gradient's update), add the
    touched rows' gradient terms to their moments, then move every parameter along its
    moments: the dense Adam update. Adagrad: add the touched rows' squared gradients and
    steps (a zero gradient changes nothing else). No pass reads values an earlier one
    overwrote, so XLA updates the tables in place.

    Returns:
      (the optimizer state's moment names, whether `rule` also moves the parameter,
      decay(*moments) -> moments, rule(rows, g) -> increments (see `Layout.update_rows`),
      finish(param, *moments) -> param).
    """
    if optimizer_name == "adagrad":

        def adagrad(rows, g):  # arrays: (param, sum of squares)
            squares = rows(1) + g * g
            scale = jnp.where(squares > 0, jax.lax.rsqrt(squares + _ADAGRAD_EPS), 0.0)
            return (scale * g) * -lr, g * g

        return ("sum_of_squares",), True, None, adagrad, lambda param, _: param
    count = step + 1

    def adam(rows, g):  # arrays: (mu, nu), decayed
        del rows
        return (1 - _ADAM_B1) * g, (1 - _ADAM_B2) * (g * g)

    def finish(param, mu, nu):
        mu_hat = mu / (1 - _ADAM_B1**count).astype(mu.dtype)
        nu_hat = nu / (1 - _ADAM_B2**count).astype(nu.dtype)
        return param + (mu_hat / (jnp.sqrt(nu_hat) + _ADAM_EPS)) * -lr

    decay = lambda mu, nu: (_ADAM_B1 * mu, _ADAM_B2 * nu)  # noqa: E731
    return ("mu", "nu"), False, decay, adam, finish


def update(loss_fn, state, trainable, optimizer, schedule, optimizer_name, layout):
    """One optimizer step whose tables never get a dense gradient (config.optimizer.row_sparse).

    The tables are read through `RowTap`s: their gradient is per read row. The optimizer
    updates everything else; for the tables, `_row_rule`'s passes and `Layout.update_rows`
    (which sums each touched row's gradients) give the dense update up to float rounding,
    without a table-sized gradient buffer.

    Args:
      loss_fn: (trainable, sinks) -> (loss, (metrics, reads, *rest)); `reads` the RowTaps'
        ids per table.

    Returns:
      (loss, loss_fn's aux, new trainable, new optimizer state).
    """
    params = trainable["model"]
    _, (_, shapes, *_) = jax.eval_shape(loss_fn, trainable, None)
    sinks = {
        key: [jnp.zeros(s.shape + params[key].shape[1:], params[key].dtype) for s in reads]
        for key, reads in shapes.items()
    }
    (loss, aux), (grads, row_grads) = jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True)(
        trainable, sinks
    )
    reads = aux[1]
    # The optimizer updates everything else (its results for the tables go unused).
    updates, opt_state = optimizer.update(grads, state.opt_state, trainable)
    new = optax.apply_updates(trainable, updates)

    moments, with_param, decay, rule, finish = _row_rule(
        optimizer_name, state.step, schedule(state.step)
    )
    before = {m: optax.tree_utils.tree_get(state.opt_state, m)["model"] for m in moments}
    after = {m: dict(optax.tree_utils.tree_get(opt_state, m)["model"]) for m in moments}
    model = dict(new["model"])
    for key, ids in reads.items():
        width = params[key].shape[1:]
        ids = jnp.concatenate([i.reshape(-1) for i in ids])
        grads = jnp.concatenate([g.reshape(-1, *width) for g in row_grads[key]])
        param, state_moments = params[key], tuple(before[m][key] for m in moments)
        if with_param:
            param, *state_moments = layout.update_rows(
                key, (param, *state_moments), ids, grads, rule
            )
        else:
            state_moments = layout.update_rows(key, state_moments, ids, grads, rule, decay)
        model[key] = finish(param, *state_moments)
        for m, value in zip(moments, state_moments, strict=True):
            after[m][key] = value
    opt_state = optax.tree_utils.tree_set(
        opt_state,
        **{m: {**optax.tree_utils.tree_get(opt_state, m), "model": after[m]} for m in moments},
    )
    return loss, aux, {**new, "model": model}, opt_state
