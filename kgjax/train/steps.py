"""The pure training step and the multi-step device call.

`train_step(state, data, root_key) -> (state, metrics)` draws everything random from
fold_in(root_key, step), so a resumed run replays exactly what the uninterrupted run drew.
Static settings are bound by `make_train_chunk` before `jax.jit`.

Shapes: B batch, K negatives, n training triples.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import optax

from kgjax.models.base import KGEModel
from kgjax.ops import sampling
from kgjax.train import losses
from kgjax.train.negatives import SampleContext
from kgjax.train.state import TrainData, TrainState

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
        )


def select_batch(data: TrainData, root_key: jax.Array, step: jax.Array, batch_size: int):
    """The positives of `step`: epochs of shuffled triples, one order per direction.

    Steps alternate head-batch (even) and tail-batch (odd), as the reference's
    bidirectional iterator does; each direction walks its own permutation of the training
    triples, a new one every epoch, and drops the last partial batch.

    Returns:
      (mode scalar, positives int32 [B, 3], weights float32 [B]).
    """
    num_triples = data.triples.shape[0]
    steps_per_epoch = num_triples // batch_size
    mode = jnp.where(step % 2 == 0, sampling.HEAD_BATCH, sampling.TAIL_BATCH)
    direction_step = step // 2
    epoch = direction_step // steps_per_epoch
    shuffle_key = jax.random.fold_in(jax.random.fold_in(root_key, _SHUFFLE_STREAM), mode)
    order = jax.random.permutation(jax.random.fold_in(shuffle_key, epoch), num_triples)
    rows = jax.lax.dynamic_slice(
        order, ((direction_step % steps_per_epoch) * batch_size,), (batch_size,)
    )
    return mode, data.triples[rows], data.weights[rows]


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
):
    """One optimizer step of negative-sampling training.

    Returns:
      (new state, metrics dict of scalars).
    """
    mode, positives, weights = select_batch(data, root_key, state.step, settings.batch_size)
    negative_key = jax.random.fold_in(jax.random.fold_in(root_key, _STEP_STREAM), state.step)

    def loss_fn(trainable):
        params, sampler_params = trainable["model"], trainable["sampler"]
        entity, relation = params["entity"], params["relation"]
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
            sampler_params, params, model, context
        )
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
                model, params, positives
            )
        else:
            regularization = jnp.float32(0.0)
        total = loss + regularization + sampler_loss
        return total, {**parts, "regularization": regularization, **sampler_metrics}

    trainable = state.trainable
    (loss, parts), grads = jax.value_and_grad(loss_fn, has_aux=True)(trainable)
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


def make_train_chunk(model, sampler, optimizer, schedule, settings: StepSettings, length: int):
    """A jitted call that runs `length` steps under lax.scan; the state is donated.

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
    )

    def chunk(state, data, root_key):
        return jax.lax.scan(lambda s, _: step(s, data, root_key), state, None, length=length)

    return jax.jit(chunk, donate_argnums=0)
