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
from jax.sharding import PartitionSpec as P

from kgjax.models.kge.base import KGEModel
from kgjax.ops import sampling
from kgjax.ops.permutation import shuffled_positions
from kgjax.parallel.layout import Layout, RowTap, TableView, shard_map
from kgjax.train import row_sparse
from kgjax.train.kge import distillation, losses
from kgjax.train.kge.distillation import DistillationSettings
from kgjax.train.kge.negatives import SampleContext, with_self_negative
from kgjax.train.kge.state import TrainData, TrainState

# Independent streams derived from the root key.
_SHUFFLE_STREAM = 1
_STEP_STREAM = 2
_DROPOUT_STREAM = 3
_INTERACTION_STREAM = 4  # the dropouts of an interaction with weights (TuckER, ConvE)

REGIMES = ("negative_sampling", "1vsAll", "KvsAll")


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
    regime: str = "negative_sampling"  # config.training.regime, one of REGIMES
    reciprocal: bool = False  # config.training.reciprocal: every example is a tail query
    label_smoothing: float = 0.0  # config.training.label_smoothing (KvsAll)
    entity_dropout: float = 0.0  # config.training.entity_dropout
    relation_dropout: float = 0.0  # config.training.relation_dropout
    entity_weight: float = 1.0  # config.loss.entity_weight (n3)
    relation_weight: float = 1.0  # config.loss.relation_weight (n3)
    # config.distillation with its teacher's model; None: no teacher (data.teacher is None).
    distillation: DistillationSettings | None = None


def select_batch(
    data: TrainData,
    root_key: jax.Array,
    step: jax.Array,
    batch_size: int,
    layout: Layout | None = None,
    one_direction: bool = False,
):
    """The examples of `step`: epochs of shuffled training rows, one order per direction.

    Steps alternate head-batch (even) and tail-batch (odd), as the reference's
    bidirectional iterator does; each direction walks its own permutation of the training
    triples, a new one every epoch, and drops the last partial batch. With `one_direction`
    (reciprocal relations, or KvsAll queries that carry their side) every step walks one
    permutation, tail-batch.

    Args:
      layout: where `data` lives; its triples are read through `Layout.take`.

    Returns:
      (mode scalar, examples int32 [B, 3], weights float32 [B]).
    """
    num_triples = data.size
    steps_per_epoch = num_triples // batch_size
    if one_direction:
        mode, direction_step = jnp.int32(sampling.TAIL_BATCH), step
    else:
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
    """One optimizer step: negative sampling, 1vsAll or KvsAll (`settings.regime`).

    With `settings.distillation` the loss also pulls the student's scores of the step's
    candidates towards those of the frozen teacher whose parameters are `data.teacher`
    (`kgjax.train.kge.distillation`).

    Args:
      layout: the mesh the state and data live on; None: one device, nothing split.

    Returns:
      (new state, metrics dict of scalars).
    """
    one_direction = settings.reciprocal or settings.regime == "KvsAll"
    mode, positives, weights = select_batch(
        data, root_key, state.step, settings.batch_size, layout, one_direction
    )
    negative_key = jax.random.fold_in(jax.random.fold_in(root_key, _STEP_STREAM), state.step)
    dropout_key = jax.random.fold_in(jax.random.fold_in(root_key, _DROPOUT_STREAM), state.step)
    interaction_key = jax.random.fold_in(
        jax.random.fold_in(root_key, _INTERACTION_STREAM), state.step
    )

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
        # The interaction's own weights and dropouts, if it has any (a plain model: itself).
        bound = model.bind(tables, interaction_key)
        if settings.regime != "negative_sampling":
            total, parts, batch_stats = _all_entities_loss(
                bound, settings, tables, positives, mode, data, dropout_key, layout
            )
            return total, (parts, {}, batch_stats)
        entity, relation = tables["entity"], tables["relation"]
        head, rel, tail = (
            entity[positives[:, 0]],
            relation[positives[:, 1]],
            entity[positives[:, 2]],
        )
        if settings.entity_dropout or settings.relation_dropout:
            head, rel, tail = _dropout(settings, dropout_key, head, rel, tail)
        tail_query, batch_stats = bound.tail_query_with_stats(head, rel)
        positive_scores = bound.match(tail_query, tail)
        # Head-batch corrupts the head, so the query comes from (r, t); tail-batch from (h, r).
        # With reciprocal relations every step is tail-batch (and ConvE has no head query).
        if settings.reciprocal:
            query = tail_query
        else:
            query = jnp.where(mode == sampling.HEAD_BATCH, bound.head_query(rel, tail), tail_query)
        context = SampleContext(negative_key, state.step, mode, positives, query, data)
        negative_scores, sampler_loss, sampler_metrics = sampler(
            sampler_params, tables, bound, context
        )
        if settings.self_negative:
            negative_scores = with_self_negative(negative_scores, bound, context, head, tail)
        if settings.distillation is None:
            loss, parts = losses.negative_sampling_loss(
                positive_scores,
                negative_scores,
                weights if settings.subsampling else None,
                settings.adversarial_temperature,
            )
        else:
            teacher_scores = distillation.teacher_negative_sampling_scores(
                settings.distillation, data.teacher, sampler, sampler_params, context,
                settings.self_negative, settings.reciprocal,
            )  # fmt: skip
            positive_terms, negative_terms = losses.negative_sampling_terms(
                positive_scores, negative_scores, settings.adversarial_temperature
            )
            scores = jnp.concatenate([positive_scores[:, None], negative_scores], axis=1)
            loss, parts = distillation.distillation_loss(
                -(positive_terms + negative_terms) / 2,
                scores,
                teacher_scores,
                jnp.zeros(scores.shape).at[:, 0].set(1.0),  # the positive is the true one
                weights if settings.subsampling else None,
                settings.distillation,
            )
        if settings.regularizer == "l3":
            regularization = settings.regularization * losses.l3_regularizer(params)
        elif settings.regularizer == "n3":
            regularization = _n3(model, settings, tables, positives)
        else:
            regularization = jnp.float32(0.0)
        total = loss + regularization + sampler_loss
        reads = {k: v.ids for k, v in tables.items() if isinstance(v, RowTap)}
        metrics = {**parts, "regularization": regularization, **sampler_metrics}
        return total, (metrics, reads, batch_stats)

    trainable = state.trainable
    if settings.row_sparse:
        loss, (parts, _, batch_stats), trainable, opt_state = row_sparse.update(
            loss_fn, state, trainable, optimizer, schedule, settings.optimizer, layout
        )
    else:
        (loss, (parts, _, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            trainable
        )
        updates, opt_state = optimizer.update(grads, state.opt_state, trainable)
        trainable = optax.apply_updates(trainable, updates)
    if batch_stats is not None:
        # Batch-norm running averages are not trained (their gradient is zero): they take
        # this batch's statistics, whatever the optimizer did to them.
        interaction = {**trainable["model"]["interaction"], "batch_stats": batch_stats}
        trainable = {**trainable, "model": {**trainable["model"], "interaction": interaction}}
    metrics = {"loss": loss, **parts, "learning_rate": schedule(state.step)}
    new_state = state.replace(
        step=state.step + 1,
        params=trainable["model"],
        sampler_params=trainable["sampler"],
        opt_state=opt_state,
    )
    return new_state, metrics


def _dropout(settings: StepSettings, key: jax.Array, head, rel, tail):
    """Inverted dropout on a step's entity and relation rows (rates from `settings`)."""
    keys = jax.random.split(key, 3)

    def drop(key, rows, rate):
        if not rate or rows is None:
            return rows
        keep = jax.random.bernoulli(key, 1.0 - rate, rows.shape)
        return jnp.where(keep, rows / (1.0 - rate), 0.0)

    return (
        drop(keys[0], head, settings.entity_dropout),
        drop(keys[1], rel, settings.relation_dropout),
        drop(keys[2], tail, settings.entity_dropout),
    )


def _n3(model: KGEModel, settings: StepSettings, tables, examples) -> jax.Array:
    """The weighted N3 term: `regularization` times the batch's N3 with per-table weights."""
    weights = (settings.entity_weight, settings.relation_weight)
    if weights == (1.0, 1.0):
        return settings.regularization * losses.n3_regularizer(model, tables, examples)
    return settings.regularization * losses.n3_regularizer(model, tables, examples, weights)


def _whole_table(table) -> jax.Array:
    """A table's rows for scoring against all entities: the array, or a view's array."""
    return table.table if isinstance(table, TableView) else table


def _all_entities_loss(
    model: KGEModel, settings: StepSettings, tables, examples, mode, data, key, layout=None
):
    """The 1vsAll or KvsAll loss of a batch: each query scored against every entity.

    1vsAll (examples: triples; the step's `mode` says which side is predicted, always the
    tail with reciprocal relations): softmax cross-entropy of the true answer among all V
    entities, -s_true + logsumexp_v s_v, averaged over the batch (LibKGE's 1vsAll).
    KvsAll (examples: distinct queries (anchor, relation, side)): binary cross-entropy
    against the multi-hot vector of all the query's known training answers, smoothed to
    (1 - ls) y + 1 / V when ls > 0 (TuckER, ConvE), averaged over the B x V entries.

    The [B, V] scores are what one step needs and live only inside it. With the entity table
    split by rows over a mesh, each device scores only its own rows and the normaliser (or
    the BCE sum) is combined across the shards (`_split_table_losses`); the table is never
    gathered.

    With `settings.distillation` (never on a split table) each row's loss is mixed with the
    KL to the frozen teacher's distribution over the same V entities
    (`distillation.distillation_loss`; the teacher's parameters are `data.teacher`).

    Returns:
      (loss, metrics {"data_loss", "regularization"} and, distilling, "hard_loss",
      "distillation_loss", "soft_label_weight"; the model's batch-norm running statistics
      after this batch or None).
    """
    entity, relation = tables["entity"], tables["relation"]
    num_entities = model.num_entities
    if settings.regime == "KvsAll":
        anchors, relation_ids = examples[:, 0], examples[:, 1]
        predict_tail = examples[:, 2] == sampling.TAIL_BATCH
        # The n3 term reads each query's anchor and relation rows (no answer row).
        regularized = jnp.stack([anchors, relation_ids, anchors], axis=1)
    else:
        predict_tail = jnp.broadcast_to(mode == sampling.TAIL_BATCH, examples[:, 0].shape)
        anchors = jnp.where(predict_tail, examples[:, 0], examples[:, 2])
        relation_ids = examples[:, 1]
        regularized = examples
    anchor, rel = entity[anchors], relation[relation_ids]
    split = layout is not None and layout.size("entity") > 1
    candidates = None if split else _whole_table(entity)[:num_entities]
    if settings.entity_dropout or settings.relation_dropout:
        anchor, rel, candidates = _dropout(settings, key, anchor, rel, candidates)
    tail_query, batch_stats = model.tail_query_with_stats(anchor, rel)
    if settings.reciprocal:
        query = tail_query  # every example is a tail query of a relation or its inverse
    else:
        query = jnp.where(predict_tail[:, None], tail_query, model.head_query(rel, anchor))
    if settings.regime == "KvsAll":
        # One static budget for both sides, so that each row can take either.
        budget = max(data.index.tails.max_answers, data.index.heads.max_answers)
        tail_answers, tail_mask = data.index.tails.answers(anchors, relation_ids, budget)
        head_answers, head_mask = data.index.heads.answers(anchors, relation_ids, budget)
        answers = jnp.where(predict_tail[:, None], tail_answers, head_answers)
        valid = jnp.where(predict_tail[:, None], tail_mask, head_mask)
    else:
        answers = jnp.where(predict_tail, examples[:, 2], examples[:, 0])
        valid = None
    if split:
        key = jax.random.fold_in(key, 1) if settings.entity_dropout else None
        data_loss = jnp.mean(
            _split_table_losses(model, settings, layout, entity.table, query, answers, valid, key)
        )
    elif settings.regime == "KvsAll":
        scores = model.match_all(query, candidates)  # [B, V]
        rows = jnp.arange(scores.shape[0])[:, None]
        labels = jnp.zeros(scores.shape).at[rows, answers].max(valid.astype(scores.dtype))
        targets = labels
        if settings.label_smoothing:
            targets = (1.0 - settings.label_smoothing) * labels + 1.0 / num_entities
        entries = optax.sigmoid_binary_cross_entropy(scores, targets)
        data_loss = jnp.mean(entries)
        row_losses = jnp.mean(entries, axis=1)
    else:
        scores = model.match_all(query, candidates)  # [B, V]
        row_losses = optax.softmax_cross_entropy_with_integer_labels(scores, answers)
        data_loss = jnp.mean(row_losses)
        labels = jax.nn.one_hot(answers, num_entities, dtype=scores.dtype)
    distilled = {}
    if settings.distillation is not None:  # never with a split table (`KGEBuild.teacher`)
        teacher_scores = distillation.teacher_all_scores(
            settings.distillation, data.teacher, anchors, relation_ids, predict_tail,
            settings.reciprocal,
        )  # fmt: skip
        data_loss, distilled = distillation.distillation_loss(
            row_losses, scores, teacher_scores, labels, None, settings.distillation
        )
    if settings.regularizer == "n3":
        regularization = _n3(model, settings, tables, regularized)
    elif settings.regularizer == "l3":
        regularization = settings.regularization * losses.l3_regularizer(
            {"entity": _whole_table(entity), "relation": _whole_table(relation)}
        )
    else:
        regularization = jnp.float32(0.0)
    metrics = {"data_loss": data_loss, "regularization": regularization, **distilled}
    return data_loss + regularization, metrics, batch_stats


def _split_table_losses(model, settings, layout, table, query, answers, valid, key):
    """Each example's 1vsAll or KvsAll loss against a row-split entity table, per shard.

    Every device scores its group's queries against its own rows only ([b, V' / Xm]); the
    softmax normaliser is max- and sum-combined across the model axis (1vsAll), the BCE
    terms summed (KvsAll). Padding rows (>= V) are no candidates.

    Args:
      table: [V', De] the entity table, split by rows along "entity" (V' >= V padded).
      query: [B, Dq]; answers: int [B] (1vsAll) or [B, W] with `valid` bool [B, W] (KvsAll).
      key: PRNG key of the candidates' dropout (folded with the shard's index), or None.

    Returns:
      float [B]: each example's loss.
    """
    row_axes = layout.mesh_axes("entity")
    data_axes = tuple(a for a in layout.mesh_axes("batch") if a not in row_axes)
    num_entities = model.num_entities
    kvs = settings.regime == "KvsAll"
    rate = settings.entity_dropout

    def body(shard, query, answers, valid):
        offset = layout.shard_offset("entity", shard.shape[0])
        if key is not None:
            index = offset // shard.shape[0]
            keep = jax.random.bernoulli(jax.random.fold_in(key, index), 1.0 - rate, shard.shape)
            shard = jnp.where(keep, shard / (1.0 - rate), 0.0)
        scores = model.match_all(query, shard)  # [b, V' / Xm]
        columns = offset + jnp.arange(shard.shape[0])
        real = columns < num_entities
        if kvs:
            local = answers - offset
            owned = valid & (local >= 0) & (local < shard.shape[0])
            rows = jnp.arange(scores.shape[0])[:, None]
            targets = (
                jnp.zeros(scores.shape)
                .at[rows, jnp.where(owned, local, 0)]
                .max(owned.astype(scores.dtype))
            )
            if settings.label_smoothing:
                targets = (1.0 - settings.label_smoothing) * targets + 1.0 / num_entities
            terms = jnp.where(real, optax.sigmoid_binary_cross_entropy(scores, targets), 0.0)
            return jax.lax.psum(jnp.sum(terms, axis=1), row_axes) / num_entities
        scores = jnp.where(real, scores, -jnp.inf)
        # The shift only steadies exp: no gradient (pmax has none, and none is needed).
        top = jax.lax.pmax(jax.lax.stop_gradient(jnp.max(scores, axis=1)), row_axes)
        total = jax.lax.psum(jnp.sum(jnp.exp(scores - top[:, None]), axis=1), row_axes)
        local = answers - offset
        owned = (local >= 0) & (local < shard.shape[0])
        true = jnp.take_along_axis(scores, jnp.where(owned, local, 0)[:, None], axis=1)[:, 0]
        true = jax.lax.psum(jnp.where(owned, true, 0.0), row_axes)
        return top + jnp.log(total) - true

    batch = P(data_axes or None)
    valid = jnp.zeros(answers.shape, bool) if valid is None else valid
    return shard_map(
        body,
        mesh=layout.mesh,
        in_specs=(
            P(row_axes, None),
            P(data_axes or None, None),
            P(data_axes or None, *([None] * (answers.ndim - 1))),
            P(data_axes or None, *([None] * (valid.ndim - 1))),
        ),
        out_specs=batch,
        check=False,
    )(table, query, answers, valid)


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
