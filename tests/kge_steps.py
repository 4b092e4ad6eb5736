"""A helper the KGE step tests share: one SGD step of a config's own `train_step`, jitted."""

import functools

import jax
import jax.numpy as jnp
import optax

from kgjax.train.kge import build, step
from kgjax.train.kge.state import TrainState

KEY = 3  # the root key of the step's draws


def one_sgd_step(config, dataset, lr: float = 0.0, step_index: int = 0):
    """Builds `config`'s run on `dataset` and takes step `step_index` with SGD at rate `lr`.

    Returns:
      (the build's parts, the training data, the state before, the state after, metrics).
    """
    parts = build.build(config, dataset.num_entities, dataset.num_relations)
    data = parts.train_data(dataset)
    optimizer = optax.sgd(lr)
    state = TrainState.create(parts.model, parts.sampler, optimizer, jax.random.key(0))
    state = state.replace(step=jnp.int32(step_index))
    train_step = jax.jit(
        functools.partial(
            step.train_step, model=parts.model, sampler=parts.sampler, optimizer=optimizer,
            schedule=optax.constant_schedule(lr), settings=parts.settings,
        )
    )  # fmt: skip
    new_state, metrics = train_step(state, data, jax.random.key(KEY))
    return parts, data, state, new_state, metrics


def check_scores_consistent(model, params, num_entities: int, num_relations: int, heads=True):
    """score_t and (with `heads`) score_h equal score_hrt against every entity, jitted."""
    import numpy as np

    rng = np.random.default_rng(1)
    h = rng.integers(0, num_entities, 6)
    r, t = rng.integers(0, num_relations, 6), rng.integers(0, num_entities, 6)
    everyone = np.arange(num_entities)
    tails = np.asarray(jax.jit(model.score_t)(params, h, r))
    want_tails = model.score_hrt(params, h[:, None], r[:, None], everyone[None, :])
    assert tails.shape == (6, num_entities)
    np.testing.assert_allclose(tails, want_tails, rtol=1e-5, atol=1e-5)
    if heads:
        got = np.asarray(jax.jit(model.score_h)(params, r, t))
        want_heads = model.score_hrt(params, everyone[None, :], r[:, None], t[:, None])
        assert got.shape == (6, num_entities)
        np.testing.assert_allclose(got, want_heads, rtol=1e-5, atol=1e-5)
    return r, t
