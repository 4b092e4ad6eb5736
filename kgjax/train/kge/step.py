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
from kgjax.ops.permutation import shuffled_positions
from kgjax.parallel.layout import Layout, RowTap
from kgjax.train import row_sparse
from kgjax.train.kge import losses
from kgjax.train.kge.negatives import SampleContext, with_self_negative
from kgjax.train.kge.state import TrainData, TrainState

# Independent streams derived from the root key.
_SHUFFLE_STREAM = 1
_STEP_STREAM = 2


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
        loss, parts, trainable, opt_state = row_sparse.update(
            loss_fn, state, trainable, optimizer, schedule, settings.optimizer, layout
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
