"""The jitted side of fine-tuning: the classifier, its loss, the multi-step call, prediction.

BERT's fine-tuning (Devlin et al., NAACL 2019, section 4), as KnowBERT fine-tunes
(Peters et al., EMNLP 2019, section 4: the whole network, KAR included, trained on the task):

  h        = LM1(ids, token types)                      [B, L, D]   layers 1..k
  h'       = KAR(h, candidate spans, E)  (or h' = h)     [B, L, D]
  z        = LM2(h')                                    [B, L, D]   layers k+1..n
  x        = pooling(z): z_[CLS], and/or the mean of z over each of the Q marked spans
  logits   = Dropout(x) W + b                           [B, labels]
  L        = mean over the batch of softmax cross-entropy

The plain encoder is the same path without KAR: with no candidate span KAR is the identity
(`KnowledgeAttentionRecontextualisation`), so h' = h in either case. The entity table E is an
argument, never part of the state; the classifier's W starts at N(0, 0.02) as BERT's.

Shapes: B batch, L tokens, D hidden, Q marked spans, V entities, De entity width, T steps
per call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import flax
import jax
import jax.numpy as jnp
import optax
from flax import linen as nn

from kgjax.models.lm import encoder as encoder_lib
from kgjax.train.knowbert.step import KnowBert
from kgjax.train.knowbert_tasks.inputs import Batch

__all__ = ["Classifier", "ClassifierHead", "TrainState", "losses", "make_predict",
           "make_train_chunk"]  # fmt: skip


@flax.struct.dataclass
class TrainState:
    """step: int32 scalar; params: {"encoder", "kar" (with KAR), "head"}; opt_state."""

    step: jax.Array
    params: dict
    opt_state: optax.OptState


class ClassifierHead(nn.Module):
    """[B, F] pooled vectors -> [B, labels] logits: dropout, then one linear layer."""

    num_labels: int
    dropout: float

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool) -> jax.Array:
        x = nn.Dropout(self.dropout)(x, deterministic=deterministic)
        return nn.Dense(self.num_labels, kernel_init=nn.initializers.normal(0.02))(x)


@dataclasses.dataclass(frozen=True)
class Classifier:
    """The static parts: LM1 | KAR | LM2 (`knowbert`, KAR skipped when its `use_kar` is
    False), the pooling and the head.

    Attributes:
      knowbert: the encoder's architecture and KAR.
      num_labels: the task's labels.
      pooling: "cls", "spans" or "cls_and_spans" (`config.model.pooling`).
      dropout: the head's dropout rate.
    """

    knowbert: KnowBert
    num_labels: int
    pooling: str
    dropout: float

    @property
    def head(self) -> ClassifierHead:
        return ClassifierHead(self.num_labels, self.dropout)

    @property
    def feature_width(self) -> int:
        spans = 2 if self.pooling in ("spans", "cls_and_spans") else 0
        return self.knowbert.encoder.hidden_size * (spans + (self.pooling != "spans"))

    def init(self, key: jax.Array, encoder_params: dict, kar_params: dict | None) -> dict:
        """{"encoder": encoder_params, "kar": kar_params (with KAR), "head": a fresh head}."""
        params = {
            "encoder": encoder_params,
            "head": self.head.init(key, jnp.zeros((1, self.feature_width)), True)["params"],
        }
        if self.knowbert.use_kar:
            params["kar"] = kar_params
        return params

    def encode(self, params: dict, table: jax.Array, batch: Batch) -> jax.Array:
        """z [B, L, D]: LM1 (with BERT's token types), KAR with KAR, LM2."""
        model = self.knowbert
        hidden = encoder_lib.lower(
            params["encoder"], batch.ids, batch.mask, batch.token_types, config=model.encoder
        )
        if model.use_kar:
            hidden, _ = model.recontextualise(params, table, hidden, batch)
        return model.upper(params, hidden, batch.mask)

    def features(self, z: jax.Array, batch: Batch) -> jax.Array:
        """The pooled vectors [B, F]; a marked span cut off by L pools to zeros."""
        parts = [] if self.pooling == "spans" else [z[:, 0]]
        if self.pooling != "cls":
            positions = jnp.arange(z.shape[1])
            marked = batch.marked
            inside = (positions >= marked[..., :1]) & (positions <= marked[..., 1:])  # [B, Q, L]
            inside = (inside & batch.marked_mask[..., None]).astype(z.dtype)
            pooled = jnp.einsum("bql,bld->bqd", inside, z) / jnp.maximum(
                inside.sum(-1, keepdims=True), 1.0
            )
            parts.extend(pooled[:, j] for j in range(pooled.shape[1]))
        return jnp.concatenate(parts, axis=-1)

    def logits(
        self, params: dict, table: jax.Array, batch: Batch, key: jax.Array | None = None
    ) -> jax.Array:
        """[B, labels]; dropout where a key is given (training), none without."""
        x = self.features(self.encode(params, table, batch), batch)
        rngs = {} if key is None else {"dropout": key}
        return self.head.apply({"params": params["head"]}, x, key is None, rngs=rngs)


def losses(
    model: Classifier, params: dict, table: jax.Array, batch: Batch, key: jax.Array
) -> tuple[jax.Array, dict]:
    """(loss, {"loss", "accuracy"}): means over the batch's real rows (label >= 0)."""
    logits = model.logits(params, table, batch, key)
    real = (batch.labels >= 0).astype(logits.dtype)
    count = jnp.maximum(real.sum(), 1.0)
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.maximum(batch.labels, 0))
    loss = (nll * real).sum() / count
    accuracy = ((jnp.argmax(logits, -1) == batch.labels) * real).sum() / count
    return loss, {"loss": loss, "accuracy": accuracy}


def make_train_chunk(
    model: Classifier, optimizer: optax.GradientTransformation, key: jax.Array
) -> Callable[[TrainState, jax.Array, Batch], tuple[TrainState, dict]]:
    """A jitted call running one step per leading row of stacked batches (lax.scan).

    Args:
      key: the root of the dropout keys; step t draws from fold_in(key, t).

    Returns:
      (state, table [V, De], batches [T, B, ...]) -> (state, metrics {name: [T]}); the state
      is donated, the table only read.
    """

    def one_step(table, state: TrainState, batch: Batch):
        grad_fn = jax.value_and_grad(losses, argnums=1, has_aux=True)
        step_key = jax.random.fold_in(key, state.step)
        (_, metrics), grads = grad_fn(model, state.params, table, batch, step_key)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

    def run(state: TrainState, table: jax.Array, batches: Batch):
        return jax.lax.scan(lambda s, b: one_step(table, s, b), state, batches)

    return jax.jit(run, donate_argnums=(0,))


def make_predict(model: Classifier) -> Callable[[dict, jax.Array, Batch], jax.Array]:
    """Jitted logits without dropout: (params, table, batch [B, ...]) -> [B, labels]; one
    program per length bucket."""
    return jax.jit(lambda params, table, batch: model.logits(params, table, batch))
