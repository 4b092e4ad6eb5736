"""What KAR does to the token vectors of a KnowBERT-W run: the hidden states at the split
layer before KAR (LM1's output, the paper's H_i) and after it (the recontextualised H'_i),
per word piece of new sentences, with the change per token.

Peters et al. (EMNLP 2019), section 3, equation (5): H'_i = H_i + W2 MLP(MultiHeadAttn(...)),
here followed by KAR's LayerNorm (`kgjax.models.knowbert.kar`). Both come from the run's own
model: `KnowBert.lower` (LM1) and `KnowBert.recontextualise` (KAR), on the sentences as
`KnowBertRun.prepare` gives them to the linker (`KnowBertRun.link`), so a token's vectors
here are exactly what LM2 would read with KAR bypassed and with it.

Per token i: cos(H_i, H'_i) and |H'_i - H_i|. A token of a sentence without any candidate
span (and so every token where KAR has nothing to attend to) has H'_i = H_i exactly: cosine 1,
change 0.

Shapes: L' a sentence's real word pieces ([CLS] ... [SEP], at most the run's L), D the
encoder's hidden width, S' its kept candidate spans, B the evaluation batch.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from kgjax.train.knowbert.sentences import Batch
from kgjax.train.knowbert.step import KnowBert
from kgjax.train.knowbert.trainer import KnowBertRun

__all__ = ["TokenVectors", "token_vectors"]


class TokenVectors(NamedTuple):
    """One sentence's word pieces at the split layer, before and after KAR.

    Attributes:
      pieces: its L' word pieces, as the tokenizer names them (`[CLS]`, `bank`, `##s`, ...).
      spans: int [S', 2] first and last piece of each kept candidate span, inclusive, in the
        order of `KnowBertRun.link`'s spans for the same sentence.
      before: float32 [L', D] H, LM1's output.
      after: float32 [L', D] H', KAR's output.
      cosine: float64 [L'] cos(H_i, H'_i).
      change: float64 [L'] |H'_i - H_i|, the Euclidean norm of the change.
    """

    pieces: tuple[str, ...]
    spans: np.ndarray
    before: np.ndarray
    after: np.ndarray
    cosine: np.ndarray
    change: np.ndarray


# The model is static (hashable, compared by value): each architecture compiles once, however
# many times a notebook asks.
@functools.partial(jax.jit, static_argnums=0)
def _split_layer_states(
    model: KnowBert, params: dict, table: jax.Array, batch: Batch
) -> tuple[jax.Array, jax.Array]:
    """(H [B, L, D], H' [B, L, D]): LM1's output and KAR's."""
    hidden = model.lower(params, batch)
    return hidden, model.recontextualise(params, table, hidden, batch)[0]


def token_vectors(
    setup: KnowBertRun, params: dict, sentences: Sequence[Sequence[str]]
) -> list[TokenVectors]:
    """The hidden states of new sentences before and after KAR, and their change per token.

    Args:
      setup: a KnowBERT-W run with KAR (`trainer.build` or `trainer.restore`).
      params: its parameters (a state's `params`).
      sentences: lists of words (`wordnet_examples.tokenise` splits a text so).

    Returns:
      Per sentence, its `TokenVectors` (truncated at the run's L word pieces).

    Raises:
      ValueError: the run has no KAR (`encoder.kar` False).
    """
    if not setup.model.use_kar:
        raise ValueError("a run without KAR (encoder.kar=False) has no recontextualisation")
    prepared = setup.prepare(sentences)
    size = setup.config.eval.batch_size
    table = jnp.asarray(setup.table.vectors)
    out = []
    for start in range(0, len(prepared), size):
        rows = np.arange(start, start + size)
        rows[rows >= len(prepared)] = -1
        before, after = (
            np.asarray(x)
            for x in _split_layer_states(setup.model, params, table, prepared.take(rows))
        )
        for b, j in enumerate(rows[rows >= 0]):
            real = prepared.mask[j].astype(bool)
            h, h_new = before[b, real], after[b, real]
            h64, new64 = h.astype(np.float64), h_new.astype(np.float64)
            norms = np.linalg.norm(h64, axis=-1) * np.linalg.norm(new64, axis=-1)
            out.append(
                TokenVectors(
                    pieces=tuple(
                        setup.tokenizer.id_to_token(int(i)) for i in prepared.ids[j, real]
                    ),
                    spans=prepared.spans[j, prepared.span_mask[j]],
                    before=h,
                    after=h_new,
                    cosine=np.sum(h64 * new64, axis=-1) / norms,
                    change=np.linalg.norm(new64 - h64, axis=-1),
                )
            )
    return out
