"""The pure training step and the multi-step device call.

`train_step(state, data, root_key) -> (state, metrics)` draws everything random from
fold_in(root_key, step), so a resumed run replays exactly what the uninterrupted run drew.
Static settings are bound by `make_train_chunk` before `jax.jit`.

With a `kgjax.parallel.layout.Layout` the same step runs over a mesh: the batch is split over all
devices, the tables are read through `Layout.take` (samplers and regularisers get
`TableView`s), and XLA partitions the rest. The random draws do not depend on the mesh, so
1, 2, 4 or 8 devices take the same steps up to float summation order.

Shapes: B batch, K negatives, n training triples.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import optax

from kgjax.models.kge.base import KGEModel
from kgjax.ops import sampling
from kgjax.parallel.layout import Layout, RowTap
from kgjax.train.kge import losses
from kgjax.train.kge.negatives import SampleContext, with_self_negative
from kgjax.train.kge.state import TrainData, TrainState

# Independent streams derived from the root key.
_SHUFFLE_STREAM = 1
_STEP_STREAM = 2

# The constants of kgjax.train.optimizers' Adam and Adagrad (optax's defaults): the
# row-sparse update recomputes the rows a step touched with them (a test compares it with
# the dense update).
_ADAM_B1, _ADAM_B2, _ADAM_EPS = 0.9, 0.999, 1e-8
_ADAGRAD_EPS = 1e-7

# Rounds of the Feistel network behind `shuffled_positions` (4 already make a strong
# pseudo-random permutation; the cost is per batch element, not per triple).
_FEISTEL_ROUNDS = 6


@dataclasses.dataclass(frozen=True)
class StepSettings:
    """Static settings of the training step (hashable, bound before jit)."""

    batch_size: int
    adversarial_temperature: float | None  # None: uniform weights over negatives
    subsampling: bool
    regularizer: str
    regularization: float
    row_sparse: bool = False  # config.optimizer.row_sparse
    optimizer: str = "adam"  # config.optimizer.name, for the row-sparse rule
    self_negative: bool = False  # config.negatives.self_negative

    @classmethod
    def from_config(cls, config) -> StepSettings:
        adversarial = config.negatives.sampler == "self_adversarial"
        return cls(
            batch_size=config.batch_size,
            adversarial_temperature=(
                config.negatives.adversarial_temperature if adversarial else None
            ),
            subsampling=config.loss.subsampling,
            regularizer=config.loss.regularizer,
            regularization=config.loss.regularization,
            row_sparse=config.optimizer.row_sparse,
            optimizer=config.optimizer.name,
            self_negative=config.negatives.self_negative,
        )


def _mix32(x: jax.Array) -> jax.Array:
    """A 32-bit integer hash (lowbias32): the Feistel round function."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def shuffled_positions(key: jax.Array, positions: jax.Array, n: int) -> jax.Array:
    """The entries at `positions` of a pseudo-random permutation of [0, n) chosen by `key`.

    A keyed Feistel network permutes [0, 4^k) with 4^k >= n, and values >= n are walked
    along their cycle until they land below n (cycle walking), which makes it a permutation
    of [0, n). It costs O(len(positions)) per call, where `jax.random.permutation` sorts all
    n: a batch of a 300M-triple graph costs the same as a batch of UMLS.

    Args:
      key: PRNG key choosing the permutation.
      positions: int [...] in [0, n).
      n: the permutation's size, below 2^32.

    Returns:
      int32 [...]: distinct values in [0, n) for distinct positions.
    """
    bits = max(2, (n - 1).bit_length())
    half = (bits + 1) // 2
    mask = jnp.uint32((1 << half) - 1)
    round_keys = jax.random.bits(key, (_FEISTEL_ROUNDS,), jnp.uint32)

    def encrypt(x):
        left, right = x >> half, x & mask
        for i in range(_FEISTEL_ROUNDS):
            left, right = right, left ^ (_mix32(right ^ round_keys[i]) & mask)
        return (left << half) | right

    limit = jnp.uint32(n)
    walk = lambda x: jnp.where(x >= limit, encrypt(x), x)
    x = encrypt(positions.astype(jnp.uint32))
    x = jax.lax.while_loop(lambda x: jnp.any(x >= limit), walk, x)
    return x.astype(jnp.int32)


def select_batch(
    data: TrainData,
    root_key: jax.Array,
    step: jax.Array,
    batch_size: int,
    layout: Layout | None = None,
):
    """The positives of `step`: epochs of shuffled triples, one order per direction.

    Steps alternate head-batch (even) and tail-batch (odd), as the reference's
    bidirectional iterator does; each direction walks its own permutation of the training
    triples, a new one every epoch, and drops the last partial batch.

    Args:
      layout: where `data` lives; its triples are read through `Layout.take`.

    Returns:
      (mode scalar, positives int32 [B, 3], weights float32 [B]).
    """
    num_triples = data.size
    steps_per_epoch = num_triples // batch_size
    mode = jnp.where(step % 2 == 0, sampling.HEAD_BATCH, sampling.TAIL_BATCH)
    direction_step = step // 2
    epoch = direction_step // steps_per_epoch
    shuffle_key = jax.random.fold_in(jax.random.fold_in(root_key, _SHUFFLE_STREAM), mode)
    positions = (direction_step % steps_per_epoch) * batch_size + jnp.arange(batch_size)
    rows = shuffled_positions(jax.random.fold_in(shuffle_key, epoch), positions, num_triples)
    if layout is None:
        return mode, data.triples[rows], data.weights[rows]
    positives = layout.take(data.triples, rows, "triples")
    weights = layout.take(data.weights, rows, "triples")
    if layout.num_devices > 1:
        # Every later array of the step inherits this split (XLA's sharding propagation).
        positives = jax.lax.with_sharding_constraint(positives, layout.sharding("batch", None))
        weights = jax.lax.with_sharding_constraint(weights, layout.sharding("batch"))
    return mode, positives, weights


def train_step(
    state: TrainState,
    data: TrainData,
    root_key: jax.Array,
    *,
    model: KGEModel,
    sampler,
    optimizer: optax.GradientTransformation,
    schedule: optax.Schedule,
    settings: StepSettings,
    layout: Layout | None = None,
):
    """One optimizer step of negative-sampling training.

    Args:
      layout: the mesh the state and data live on; None: one device, nothing split.

    Returns:
      (new state, metrics dict of scalars).
    """
    mode, positives, weights = select_batch(data, root_key, state.step, settings.batch_size, layout)
    negative_key = jax.random.fold_in(jax.random.fold_in(root_key, _STEP_STREAM), state.step)

    if settings.row_sparse and layout is None:
        layout = Layout.single_device(model.num_entities, model.num_relations)

    def loss_fn(trainable, sinks=None):
        params, sampler_params = trainable["model"], trainable["sampler"]
        # On a mesh, tables are read row by row through views; whole-table terms (L3) use
        # params. Row-sparse updates read through taps, which keep the rows' gradients.
        if settings.row_sparse:
            tables = layout.taps(params, sinks)
        else:
            tables = params if layout is None else layout.tables(params)
        entity, relation = tables["entity"], tables["relation"]
        head, rel, tail = (
            entity[positives[:, 0]],
            relation[positives[:, 1]],
            entity[positives[:, 2]],
        )
        tail_query = model.tail_query(head, rel)
        positive_scores = model.match(tail_query, tail)
        # Head-batch corrupts the head, so the query comes from (r, t); tail-batch from (h, r).
        query = jnp.where(mode == sampling.HEAD_BATCH, model.head_query(rel, tail), tail_query)
        context = SampleContext(negative_key, state.step, mode, positives, query, data)
        negative_scores, sampler_loss, sampler_metrics = sampler(
            sampler_params, tables, model, context
        )
        if settings.self_negative:
            negative_scores = with_self_negative(negative_scores, model, context, head, tail)
        loss, parts = losses.negative_sampling_loss(
            positive_scores,
            negative_scores,
            weights if settings.subsampling else None,
            settings.adversarial_temperature,
        )
        if settings.regularizer == "l3":
            regularization = settings.regularization * losses.l3_regularizer(params)
        elif settings.regularizer == "n3":
            regularization = settings.regularization * losses.n3_regularizer(
                model, tables, positives
            )
        else:
            regularization = jnp.float32(0.0)
        total = loss + regularization + sampler_loss
        reads = {k: v.ids for k, v in tables.items() if isinstance(v, RowTap)}
        return total, ({**parts, "regularization": regularization, **sampler_metrics}, reads)

    trainable = state.trainable
    if settings.row_sparse:
        loss, parts, trainable, opt_state = _row_sparse_update(
            loss_fn, state, trainable, optimizer, schedule, settings, layout
        )
    else:
        (loss, (parts, _)), grads = jax.value_and_grad(loss_fn, has_aux=True)(trainable)
        updates, opt_state = optimizer.update(grads, state.opt_state, trainable)
        trainable = optax.apply_updates(trainable, updates)
    metrics = {"loss": loss, **parts, "learning_rate": schedule(state.step)}
    new_state = state.replace(
        step=state.step + 1,
        params=trainable["model"],
        sampler_params=trainable["sampler"],
        opt_state=opt_state,
    )
    return new_state, metrics


def _row_rule(settings: StepSettings, step: jax.Array, lr: jax.Array):
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
    if settings.optimizer == "adagrad":

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


def _row_sparse_update(loss_fn, state, trainable, optimizer, schedule, settings, layout):
    """One optimizer step whose tables never get a dense gradient (config.optimizer.row_sparse).

    The tables are read through `RowTap`s: their gradient is per read row. The optimizer
    updates everything else; for the tables, `_row_rule`'s passes and `Layout.update_rows`
    (which sums each touched row's gradients) give the dense update up to float rounding,
    without a table-sized gradient buffer.

    Returns:
      (loss, metrics, new trainable, new optimizer state).
    """
    params = trainable["model"]
    _, (_, shapes) = jax.eval_shape(loss_fn, trainable, None)
    sinks = {
        key: [jnp.zeros(s.shape + params[key].shape[1:], params[key].dtype) for s in reads]
        for key, reads in shapes.items()
    }
    (loss, (parts, reads)), (grads, row_grads) = jax.value_and_grad(
        loss_fn, argnums=(0, 1), has_aux=True
    )(trainable, sinks)
    # The optimizer updates everything else (its results for the tables go unused).
    updates, opt_state = optimizer.update(grads, state.opt_state, trainable)
    new = optax.apply_updates(trainable, updates)

    moments, with_param, decay, rule, finish = _row_rule(settings, state.step, schedule(state.step))
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
    return loss, parts, {**new, "model": model}, opt_state


def make_train_chunk(
    model,
    sampler,
    optimizer,
    schedule,
    settings: StepSettings,
    length: int,
    layout: Layout | None = None,
    state_sharding: TrainState | None = None,
):
    """A jitted call that runs `length` steps under lax.scan; the state is donated.

    Args:
      layout: the mesh the state and data live on (None: one device).
      state_sharding: the state's shardings (`TrainState.shardings`), kept by the output so
        that every call takes its input where the last one left it.

    Returns:
      fn(state, data, root_key) -> (state, metrics with a leading [length] axis).
    """
    step = functools.partial(
        train_step,
        model=model,
        sampler=sampler,
        optimizer=optimizer,
        schedule=schedule,
        settings=settings,
        layout=layout,
    )

    def chunk(state, data, root_key):
        return jax.lax.scan(lambda s, _: step(s, data, root_key), state, None, length=length)

    if state_sharding is None:
        return jax.jit(chunk, donate_argnums=0)
    return jax.jit(chunk, donate_argnums=0, out_shardings=(state_sharding, layout.replicated))
