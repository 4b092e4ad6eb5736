"""BERT's masked-language-model corruption (Devlin et al., NAACL 2019, section 3.1), host side.

A share `rate` (15%) of each sequence's maskable tokens is chosen for prediction; of those,
80% become [MASK], 10% a random token and 10% stay as they are. Special tokens ([CLS],
[SEP], padding) are never chosen. The choice is a function of the generator given, which a
trainer seeds from (seed, step) so that a resumed run masks what the uninterrupted run did.

Predictions are gathered to a static count per sequence (`max_predictions`, as BERT's
`max_predictions_per_seq`), so the vocabulary-wide logits are computed at P positions per
sequence instead of all L.

Shapes: B sequences, L tokens, P predictions per sequence.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

__all__ = ["MaskedTokens", "mask_tokens"]


class MaskedTokens(NamedTuple):
    """Attributes:
    ids: int32 [B, L], the corrupted input.
    positions: int32 [B, P], the predicted positions (0 on padding slots).
    targets: int32 [B, P], the original tokens there.
    weights: bool [B, P], False on padding slots.
    """

    ids: np.ndarray
    positions: np.ndarray
    targets: np.ndarray
    weights: np.ndarray


def mask_tokens(
    ids: np.ndarray,
    maskable: np.ndarray,
    rng: np.random.Generator,
    *,
    mask_id: int,
    vocab_size: int,
    rate: float = 0.15,
    max_predictions: int = 20,
) -> MaskedTokens:
    """BERT's 80/10/10 corruption of `rate` of each row's maskable tokens.

    Args:
      ids: int [B, L] token ids.
      maskable: bool [B, L], False on special tokens and padding.
      rng: the draws' generator.
      mask_id: the [MASK] token's id.
      vocab_size: random replacements are drawn from [0, vocab_size).
      rate: the share of maskable tokens predicted (at least one per non-empty row, at most
        `max_predictions`).
      max_predictions: P.

    Returns:
      The corrupted ids and the P prediction slots of each row.
    """
    ids = np.asarray(ids)
    maskable = np.asarray(maskable, bool)
    batch = ids.shape[0]
    out = ids.astype(np.int32).copy()
    positions = np.zeros((batch, max_predictions), np.int32)
    targets = np.zeros((batch, max_predictions), np.int32)
    weights = np.zeros((batch, max_predictions), bool)
    for row in range(batch):
        candidates = np.flatnonzero(maskable[row])
        if not len(candidates):
            continue
        count = min(max_predictions, max(1, math.floor(len(candidates) * rate + 0.5)))
        chosen = np.sort(rng.choice(candidates, count, replace=False))
        action = rng.random(count)
        replaced = np.where(
            action < 0.8,
            mask_id,
            np.where(action < 0.9, rng.integers(0, vocab_size, count), ids[row, chosen]),
        )
        out[row, chosen] = replaced
        positions[row, :count] = chosen
        targets[row, :count] = ids[row, chosen]
        weights[row, :count] = True
    return MaskedTokens(out, positions, targets, weights)
