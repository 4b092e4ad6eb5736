"""Teacher-to-student distillation of a KGE model: the loss and the frozen teacher's scores.

The student learns from the hard labels and from a trained teacher's distribution over the
same candidates (Hinton, Vinyals, Dean, 2015), row by row:

  L_b = (1 - a_b) H_b + a_b T^2 KL(p_b || q_b),  p_b = softmax(t_b / T),  q_b = softmax(s_b / T)

H_b is the row's usual hard-label loss (negative sampling's, 1vsAll's cross-entropy, KvsAll's
binary cross-entropy averaged over the V entities); s_b and t_b are the student's and the
teacher's scores of the row's candidates: the positive and the step's negatives (negative
sampling, [B, 1 + K]: the teacher scores the very ids the sampler drew) or every entity (1vsAll
and KvsAll, [B, V]). The T^2 factor is Hinton et al.'s: the soft term's gradient with respect to
the student's scores, T (q - p), then keeps its size as T changes. The rows are averaged as the
hard loss averages them (with RotatE's subsampling weights where the config uses them).

The teacher is a finished run of any family and width over the same dataset ids; it is frozen:
its parameters travel with the training data (`TrainData.teacher`), outside the optimizer state,
and its scores are computed in the same jitted step under `stop_gradient`. A teacher trained
with reciprocal relations answers head queries through its inverse relations, one trained
without them through its head query, whatever the student does (`teacher_query`).

Soft-label weighting, a_b:
  "none": a_b = weight on every row.
  "dualde": DualDE's (Zhu et al., WSDM 2022) soft-label evaluation gives each triple its own
    soft- and hard-label weights from the teacher's score of it, trusting the soft label less
    where the teacher contradicts the hard label. The paper's equations were not at hand here;
    this is our reading of that rule for a listwise KL: c_b, the probability the teacher
    (temperature 1) gives the row's true candidates (the positive; the answer; KvsAll's known
    answers), and a_b = min(1, weight c_b / mean_b' c_b'). The batch's mean soft weight stays
    `weight` (less where rows clip at 1), so "none" and "dualde" compare at about equal
    distillation strength; mainly its spread over the rows differs. DualDE's second stage (the teacher adapting to the student) is not
    implemented: the teacher stays frozen.

Shapes: B batch, C candidates per row (1 + K, or V), K negatives, V entities.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from kgjax.models.kge.base import KGEModel, Params
from kgjax.ops import sampling
from kgjax.train.kge.negatives import SampleContext, with_self_negative

SOFT_LABEL_WEIGHTINGS = ("none", "dualde")


@dataclasses.dataclass(frozen=True)
class DistillationSettings:
    """The distillation's static settings (bound before jit with the step's).

    Attributes:
      teacher: the teacher's model (V entities, its own relation count: 2R when reciprocal).
      teacher_reciprocal: whether the teacher was trained with reciprocal relations.
      num_relations: R, the dataset's relations (a reciprocal student's r + R is r's inverse).
      temperature: T (config.distillation.temperature).
      weight: the soft term's weight (config.distillation.weight).
      soft_label_weighting: one of SOFT_LABEL_WEIGHTINGS.
    """

    teacher: KGEModel
    teacher_reciprocal: bool
    num_relations: int
    temperature: float = 1.0
    weight: float = 0.5
    soft_label_weighting: str = "none"


def kl_divergence(
    student_scores: jax.Array, teacher_scores: jax.Array, temperature: float
) -> jax.Array:
    """T^2 KL(softmax(t / T) || softmax(s / T)) of each row.

    Candidates the step leaves out (a score of -1e30 in both, `negatives._EXCLUDED_SCORE`) have
    teacher probability 0 and add nothing.

    Args:
      student_scores, teacher_scores: float [B, C].

    Returns:
      float [B], each >= 0; 0 where the two rows are equal.
    """
    log_q = jax.nn.log_softmax(student_scores / temperature, axis=-1)
    log_p = jax.nn.log_softmax(teacher_scores / temperature, axis=-1)
    p = jnp.exp(log_p)
    terms = jnp.where(p > 0, p * (log_p - log_q), 0.0)
    return temperature**2 * jnp.sum(terms, axis=-1)


def soft_label_weights(
    teacher_scores: jax.Array, labels: jax.Array, settings: DistillationSettings
) -> jax.Array:
    """a_b, each row's weight of the soft term (see the module docstring).

    Args:
      teacher_scores: float [B, C].
      labels: float [B, C], 1 on the row's true candidates, else 0.

    Returns:
      float [B] in [0, 1].
    """
    if settings.soft_label_weighting == "none":
        return jnp.full(teacher_scores.shape[:1], settings.weight, teacher_scores.dtype)
    agreement = jnp.sum(jax.nn.softmax(teacher_scores, axis=-1) * labels, axis=-1)
    return jnp.minimum(1.0, settings.weight * agreement / jnp.maximum(jnp.mean(agreement), 1e-12))


def distillation_loss(
    hard_rows: jax.Array,
    student_scores: jax.Array,
    teacher_scores: jax.Array,
    labels: jax.Array,
    weights: jax.Array | None,
    settings: DistillationSettings,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The mean over rows of (1 - a_b) H_b + a_b T^2 KL_b.

    Args:
      hard_rows: float [B], each row's hard-label loss.
      student_scores, teacher_scores: float [B, C] over the same candidates.
      labels: float [B, C], 1 on the row's true candidates (read by "dualde" only).
      weights: float [B] row weights of the mean (RotatE's subsampling), or None.

    Returns:
      (loss scalar, {"hard_loss", "distillation_loss" (the mean T^2 KL), "soft_label_weight"
      (the mean a_b)}).
    """
    teacher_scores = jax.lax.stop_gradient(teacher_scores)
    soft = kl_divergence(student_scores, teacher_scores, settings.temperature)
    alpha = jax.lax.stop_gradient(soft_label_weights(teacher_scores, labels, settings))
    rows = {"loss": (1.0 - alpha) * hard_rows + alpha * soft, "hard_loss": hard_rows}
    rows.update(distillation_loss=soft, soft_label_weight=alpha)
    if weights is None:
        means = {key: jnp.mean(value) for key, value in rows.items()}
    else:
        total = jnp.sum(weights)
        means = {key: jnp.sum(weights * value) / total for key, value in rows.items()}
    loss = means.pop("loss")
    return loss, means


def teacher_query(
    settings: DistillationSettings,
    teacher: KGEModel,
    params: Params,
    anchors: jax.Array,
    relations: jax.Array,
    predict_tail: jax.Array,
    student_reciprocal: bool,
) -> jax.Array:
    """The teacher's query for the student's examples, whatever either did with inverses.

    Args:
      teacher: the teacher bound to its parameters (`KGEModel.bind`).
      params: the teacher's parameters (its tables are read here).
      anchors: int [B], the entity each example gives.
      relations: int [B], relation ids in the student's space (r + R is r's inverse when the
        student is reciprocal).
      predict_tail: bool [B], whether the example asks for the tail of (anchor, relation).
      student_reciprocal: whether the student's relation ids include inverses.

    Returns:
      float [B, Dq] (the teacher's query width): what the answer should match.
    """
    num_relations = settings.num_relations
    if student_reciprocal:
        # The tail of (a, r + R) is the head of (?, r, a).
        inverse = relations >= num_relations
        relations = jnp.where(inverse, relations - num_relations, relations)
        predict_tail = predict_tail != inverse
    entity, relation = params["entity"], params["relation"]
    anchor = entity[anchors]
    if settings.teacher_reciprocal:
        ids = jnp.where(predict_tail, relations, relations + num_relations)
        return teacher.tail_query(anchor, relation[ids])
    rows = relation[relations]
    tail_query = teacher.tail_query(anchor, rows)
    return jnp.where(predict_tail[:, None], tail_query, teacher.head_query(rows, anchor))


def teacher_negative_sampling_scores(
    settings: DistillationSettings,
    params: Params,
    sampler,
    sampler_params: Params,
    context: SampleContext,
    self_negative: bool,
    student_reciprocal: bool,
) -> jax.Array:
    """The teacher's scores of a negative-sampling step's candidates: the positive, then the
    negatives the sampler draws from `context` (its ids depend on the key, the positives and
    the training index only, not on the model), then the self-negative if the step has one.

    Args:
      params: the teacher's parameters.
      sampler, sampler_params: the step's sampler (not MMRNS, whose draw reads the student).
      context: the step's `SampleContext` (its query is replaced by the teacher's).

    Returns:
      float [B, 1 + K (+ 1)], without gradient.
    """
    teacher = settings.teacher.bind(params)
    positives = context.positives
    head_batch = context.mode == sampling.HEAD_BATCH
    anchors = jnp.where(head_batch, positives[:, 2], positives[:, 0])
    answers = jnp.where(head_batch, positives[:, 0], positives[:, 2])
    predict_tail = jnp.broadcast_to(~head_batch, anchors.shape)
    query = teacher_query(
        settings, teacher, params, anchors, positives[:, 1], predict_tail, student_reciprocal
    )
    context = context.replace(query=query)
    entity = params["entity"]
    positive = teacher.match(query, entity[answers])
    negatives, _, _ = sampler(sampler_params, params, teacher, context)
    if self_negative:
        negatives = with_self_negative(
            negatives, teacher, context, entity[positives[:, 0]], entity[positives[:, 2]]
        )
    scores = jnp.concatenate([positive[:, None], negatives.astype(positive.dtype)], axis=1)
    return jax.lax.stop_gradient(scores)


def teacher_all_scores(
    settings: DistillationSettings,
    params: Params,
    anchors: jax.Array,
    relations: jax.Array,
    predict_tail: jax.Array,
    student_reciprocal: bool,
) -> jax.Array:
    """The teacher's scores of every entity for the student's queries (1vsAll, KvsAll).

    Args:
      params: the teacher's parameters.
      anchors, relations, predict_tail: [B] each, as `teacher_query` takes them.

    Returns:
      float [B, V], without gradient.
    """
    teacher = settings.teacher.bind(params)
    query = teacher_query(
        settings, teacher, params, anchors, relations, predict_tail, student_reciprocal
    )
    candidates = params["entity"][: settings.teacher.num_entities]
    return jax.lax.stop_gradient(teacher.match_all(query, candidates))
