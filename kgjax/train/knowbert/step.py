"""The jitted side of KnowBERT-W training: forward, losses, the multi-step call, evaluation.

Peters et al. (EMNLP 2019), section 3: KAR between two layers of the encoder, trained with
the entity linker's loss where gold links exist plus masked language modelling, the entity
embeddings frozen:

  h        = LM1(ids)                                   [B, L, D]   layers 1..k
  h', psi  = KAR(h, spans, candidates, priors, E)       [B, L, D], [B, S, C]
  z        = LM2(h')                                    [B, L, D]   layers k+1..n
  logits   = MaskedTokenHead(z at the P predicted positions, word embeddings)   [B, P, T]
  L        = linker_weight * L_EL(psi, gold) + token_weight * L_MLM

The masked-token head: all-MiniLM-L6-v2 is a sentence-transformers checkpoint and ships no
MLM head, so one is added: BERT's (a dense transform, GELU, LayerNorm, then the word
embeddings tied as the output matrix plus a bias [T]; `kgjax.models.lm.heads`), its transform
starting as the identity and its biases at zero, so that before training it scores a word by
LayerNorm(GELU(z)) . E_word, the tied embeddings' own similarity, not by a random projection.

With `use_kar` False, KAR is skipped (h' = h): the plain encoder, the baseline that trains
LM1, LM2 and the head on the same sentences with the masked-token loss alone. A trained run
with KAR is also evaluated with KAR bypassed (`evaluate`'s "plain" outputs).

The entity table E [V, De] is an argument of every function here, never part of the state:
the optimizer cannot reach it, and KAR reads it through `stop_gradient`.

Shapes: B batch, L tokens, D hidden, S spans, C candidates, P predictions, T token
vocabulary, V entities, De entity width, G evaluation batches.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import flax
import jax
import jax.numpy as jnp
import optax

from kgjax.models.knowbert import MASKED_SCORE, KnowledgeAttentionRecontextualisation, linker_loss
from kgjax.models.lm import encoder as encoder_lib
from kgjax.models.lm.heads import MaskedTokenHead, gather_positions
from kgjax.train.knowbert.sentences import Batch

__all__ = [
    "KnowBert",
    "LossWeights",
    "TrainState",
    "evaluate_batch",
    "losses",
    "make_evaluate",
    "make_link",
    "make_train_chunk",
]


@flax.struct.dataclass
class TrainState:
    """step: int32 scalar; params: {"encoder", "kar" (absent without KAR), "token_head"};
    opt_state: the optimizer's."""

    step: jax.Array
    params: dict
    opt_state: optax.OptState


class LossWeights(NamedTuple):
    """L = linker * L_EL + token * L_MLM."""

    linker: float = 1.0
    token: float = 1.0


@dataclasses.dataclass(frozen=True)
class KnowBert:
    """The static parts of the model: LM1 | KAR | LM2 and the token head.

    Attributes:
      encoder: the encoder's architecture, split at k.
      kar: the KAR layer (`config.kar`).
      use_kar: False skips KAR (the plain encoder).
    """

    encoder: encoder_lib.EncoderConfig
    kar: KnowledgeAttentionRecontextualisation
    use_kar: bool = True

    @property
    def token_head(self) -> MaskedTokenHead:
        return MaskedTokenHead(self.encoder.layer_norm_eps)

    def init(self, key: jax.Array, encoder_params: dict, entity_width: int) -> dict:
        """Fresh KAR and token head beside `encoder_params`; jit it whole: op by op, every
        initialiser would compile on its own.

        Returns:
          {"encoder", "kar" (with KAR), "token_head"}.
        """
        hidden = jnp.zeros((1, 1, self.encoder.hidden_size), jnp.float32)
        words = encoder_params["embeddings"]["word_embeddings"]["embedding"]
        params = {
            "encoder": encoder_params,
            "token_head": self.token_head.init(key, hidden, words)["params"],
        }
        if self.use_kar:
            one = jnp.ones((1, 1), bool)
            candidates = jnp.ones((1, 1, 1), bool)
            params["kar"] = self.kar.init(
                jax.random.fold_in(key, 1), hidden, one, jnp.zeros((1, 1, 2), jnp.int32), one,
                jnp.zeros((1, 1, 1), jnp.int32), candidates.astype(jnp.float32), candidates,
                jnp.zeros((1, entity_width), jnp.float32),
            )["params"]  # fmt: skip
        return params

    def lower(self, params: dict, batch: Batch) -> jax.Array:
        """LM1: h [B, L, D]."""
        return encoder_lib.lower(params["encoder"], batch.ids, batch.mask, config=self.encoder)

    def upper(self, params: dict, hidden: jax.Array, mask: jax.Array) -> jax.Array:
        """LM2: z [B, L, D]."""
        return encoder_lib.upper(params["encoder"], hidden, mask, config=self.encoder)

    def recontextualise(
        self, params: dict, table: jax.Array, hidden: jax.Array, batch: Batch
    ) -> tuple[jax.Array, jax.Array]:
        """KAR: (h' [B, L, D], psi [B, S, C])."""
        return self.kar.apply(
            {"params": params["kar"]}, hidden, batch.mask, batch.spans, batch.span_mask,
            batch.candidate_ids, batch.candidate_priors, batch.candidate_mask, table,
        )  # fmt: skip

    def encode(self, params: dict, table: jax.Array, batch: Batch) -> tuple[jax.Array, jax.Array]:
        """LM1, KAR (unless `use_kar` is False), LM2.

        Returns:
          (z [B, L, D], psi [B, S, C]: `MASKED_SCORE` everywhere without KAR).
        """
        hidden = self.lower(params, batch)
        if self.use_kar:
            hidden, scores = self.recontextualise(params, table, hidden, batch)
        else:
            scores = jnp.full(batch.candidate_mask.shape, MASKED_SCORE, hidden.dtype)
        return self.upper(params, hidden, batch.mask), scores

    def link_scores(self, params: dict, table: jax.Array, batch: Batch) -> jax.Array:
        """psi [B, S, C] from LM1 and KAR alone (LM2 does not affect the linker)."""
        return self.recontextualise(params, table, self.lower(params, batch), batch)[1]

    def token_predictions(self, params: dict, z: jax.Array, batch: Batch):
        """(per-slot cross-entropy [B, P], per-slot hits [B, P]) at the predicted positions."""
        words = params["encoder"]["embeddings"]["word_embeddings"]["embedding"]
        logits = self.token_head.apply(
            {"params": params["token_head"]}, gather_positions(z, batch.token_positions), words
        )
        nll = optax.softmax_cross_entropy_with_integer_labels(logits, batch.token_targets)
        hits = (jnp.argmax(logits, -1) == batch.token_targets).astype(z.dtype)
        return nll, hits


def _masked_mean(values: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    mask = mask.astype(values.dtype)
    count = jnp.sum(mask)
    return jnp.sum(values * mask) / jnp.maximum(count, 1.0), count


def losses(
    model: KnowBert, params: dict, table: jax.Array, batch: Batch, weights: LossWeights
) -> tuple[jax.Array, dict]:
    """The loss of one batch and its metrics.

    Returns:
      (loss, {"loss", "linker_loss", "linker_accuracy", "linker_targets", "token_loss",
      "token_accuracy", "token_targets"}): means over the batch's gold spans and predicted
      tokens (0 where there are none), and their counts.
    """
    z, scores = model.encode(params, table, batch)
    nll, hits = model.token_predictions(params, z, batch)
    token_loss, token_targets = _masked_mean(nll, batch.token_weights)
    token_accuracy, _ = _masked_mean(hits, batch.token_weights)
    metrics = {
        "token_loss": token_loss,
        "token_accuracy": token_accuracy,
        "token_targets": token_targets,
    }
    loss = weights.token * token_loss
    if model.use_kar:
        # A gold at a masked span (dropped from this batch's KAR input) is no gold.
        gold = jnp.where(batch.span_mask, batch.gold, -1)
        linking = linker_loss(scores, batch.candidate_mask, gold)
        correct = (jnp.argmax(scores, -1) == gold).astype(z.dtype)
        linker_accuracy, linker_targets = _masked_mean(correct, gold >= 0)
        metrics.update(
            linker_loss=linking, linker_accuracy=linker_accuracy, linker_targets=linker_targets
        )
        loss = loss + weights.linker * linking
    return loss, {**metrics, "loss": loss}


def make_train_chunk(
    model: KnowBert, optimizer: optax.GradientTransformation, weights: LossWeights
) -> Callable[[TrainState, jax.Array, Batch], tuple[TrainState, dict]]:
    """A jitted call running one step per leading row of stacked batches (lax.scan).

    Returns:
      (state, table [V, De], batches [T, B, ...]) -> (state, metrics {name: [T]}); the
      state is donated, the table only read.
    """

    def one_step(table, state: TrainState, batch: Batch):
        grad_fn = jax.value_and_grad(losses, argnums=1, has_aux=True)
        (_, metrics), grads = grad_fn(model, state.params, table, batch, weights)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

    def run(state: TrainState, table: jax.Array, batches: Batch):
        return jax.lax.scan(lambda s, b: one_step(table, s, b), state, batches)

    return jax.jit(run, donate_argnums=(0,))


def evaluate_batch(
    model: KnowBert, params: dict, table: jax.Array, clean: Batch, corrupted: Batch
) -> dict:
    """The held-out outputs of one batch, each part of the model run once on stacked rows.

    LM1 reads the clean and the corrupted sentences together, KAR links both (psi of the clean
    ones is the linker's answer), and LM2 and the head read the corrupted sentences twice: with
    KAR's output and with LM1's (KAR bypassed).

    Returns:
      {"plain_nll", "plain_hits": [B, P] the masked-token predictions with KAR bypassed; with
      KAR also "kar_nll", "kar_hits" and "scores": [B, S, C] psi on the clean sentences}.
    """
    size = clean.ids.shape[0]
    if not model.use_kar:
        z = model.upper(params, model.lower(params, corrupted), corrupted.mask)
        nll, hits = model.token_predictions(params, z, corrupted)
        return {"plain_nll": nll, "plain_hits": hits}
    # Only the fields LM1 and KAR read; the token slots of the two differ in number.
    both = jax.tree.map(
        lambda a, b: jnp.concatenate([a, b]),
        clean._replace(token_positions=(), token_targets=(), token_weights=()),
        corrupted._replace(token_positions=(), token_targets=(), token_weights=()),
    )
    hidden = model.lower(params, both)
    linked, scores = model.recontextualise(params, table, hidden, both)
    twice = jnp.concatenate([corrupted.mask, corrupted.mask])
    z = model.upper(params, jnp.concatenate([linked[size:], hidden[size:]]), twice)
    targets = jax.tree.map(lambda a: jnp.concatenate([a, a]), corrupted)
    nll, hits = model.token_predictions(params, z, targets)
    return {
        "kar_nll": nll[:size],
        "kar_hits": hits[:size],
        "plain_nll": nll[size:],
        "plain_hits": hits[size:],
        "scores": scores[:size],
    }


def make_evaluate(model: KnowBert) -> Callable[[dict, jax.Array, Batch, Batch], dict]:
    """`evaluate_batch` jitted over stacked batches (`sentences.evaluation_batches`).

    Returns:
      (params, table, clean [G, B, ...], corrupted [G, B, ...]) -> {name: [G, B, ...]}.
    """

    @jax.jit
    def run(params, table, clean: Batch, corrupted: Batch):
        return jax.lax.map(
            lambda pair: evaluate_batch(model, params, table, *pair), (clean, corrupted)
        )

    return run


def make_link(model: KnowBert) -> Callable[[dict, jax.Array, Batch], jax.Array]:
    """Jitted `model.link_scores`: (params, table, batch) -> psi [B, S, C]."""
    return jax.jit(model.link_scores)
