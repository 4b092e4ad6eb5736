"""The host side of fine-tuning: task examples as static arrays, training and evaluation
batches.

Every example is a list of words with two marked word spans and a label id:
  - WiC: [CLS] sentence 1 [SEP] sentence 2 [SEP] (BERT's sentence pair: the words of both
    sentences with a "[SEP]" word between them, which the tokenizer reads as its separator);
    the marked spans are the target word in each sentence; label 1 = same sense.
  - SemEval-2010 Task 8: the sentence with "$" before and after e1 and "#" before and after
    e2 (R-BERT's markers, Wu and He 2019: single characters of the vocabulary, so MiniLM needs
    no new embeddings); the marked spans are the opening markers (the "entity start" of
    Baldini Soares et al. 2019); label = the id in `semeval2010.LABELS`.
Token types are BERT's segments: 0 up to and including the first [SEP], 1 after it.

With KAR, each text's candidate spans come from the knowbert run's own generator and table
(`KnowBertRun.prepare`), on the same words and tokenizer: the word pieces are the same.

Length buckets (`data.length_buckets`, then L): every batch is cut to the shortest bucket
that holds its longest example, so each bucket compiles once and a short text does not pay
for L (most WiC pairs and SemEval sentences need 32 of 64 pieces). Training batches are drawn
within a bucket (as fairseq and tensor2tensor batch by length): epoch e permutes the examples
with a generator of (seed, e), cuts each bucket's share of that order into batches of B (its
last batch padded with rows of label -1) and shuffles the batches; step t takes batch
t mod K of epoch t // K (K batches per epoch), so a resumed run sees what the uninterrupted
run saw.

Shapes: N examples, B batch, L tokens, Q marked spans (2), S candidate spans, C candidates,
G evaluation batches.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import tokenizers

from kgjax.train.knowbert.sentences import Sentences

__all__ = [
    "SEPARATOR",
    "Batch",
    "Examples",
    "encode",
    "evaluation_batches",
    "TrainingOrder",
    "bucket_lengths",
    "stack",
    "trim",
]

SEPARATOR = "[SEP]"  # BERT's separator token, written as a word between a pair's sentences
_TRAIN_ORDER = 0x61


class Batch(NamedTuple):
    """Examples as arrays (NumPy or device; a pytree).

    Attributes:
      ids, mask, token_types: int32 [B, L].
      marked: int32 [B, Q, 2] first and last word piece of each marked span.
      marked_mask: bool [B, Q], False where a marked span was cut off by L.
      labels: int32 [B], -1 at padding rows.
      spans: int32 [B, S, 2]; span_mask: bool [B, S]: KAR's candidate spans (the fields
        `KnowBert.recontextualise` reads, with `mask`).
      candidate_ids: int32 [B, S, C]; candidate_priors: float32 [B, S, C];
      candidate_mask: bool [B, S, C]. Without KAR, S = C = 1, all masked.
    """

    ids: np.ndarray
    mask: np.ndarray
    token_types: np.ndarray
    marked: np.ndarray
    marked_mask: np.ndarray
    labels: np.ndarray
    spans: np.ndarray
    span_mask: np.ndarray
    candidate_ids: np.ndarray
    candidate_priors: np.ndarray
    candidate_mask: np.ndarray


# KAR's inputs, as `sentences.Sentences` holds them.
_KAR_FIELDS = ("spans", "span_mask", "candidate_ids", "candidate_priors", "candidate_mask")


@dataclasses.dataclass(frozen=True)
class Examples:
    """N examples as static arrays.

    Attributes:
      arrays: the N rows.
      pad_id: the padding token's id.
      counts: examples, truncated (more pieces than L), marked spans cut, and with KAR the
        candidate counts of `sentences.prepare`.
    """

    arrays: Batch
    pad_id: int
    counts: dict

    def __len__(self) -> int:
        return len(self.arrays.ids)

    def take(self, indices: np.ndarray) -> Batch:
        """The examples at `indices`; -1 gives a padding row (no token, span or label)."""
        indices = np.asarray(indices)
        real = indices >= 0
        rows = np.where(real, indices, 0)

        fills = {"ids": self.pad_id, "labels": -1}  # zeros (False) elsewhere

        def pick(name, array):
            out = array[rows]
            out[~real] = fills.get(name, 0)
            return out

        return Batch(**{name: pick(name, a) for name, a in self.arrays._asdict().items()})


def encode(
    words: Sequence[Sequence[str]],
    marked: Sequence[Sequence[tuple[int, int]]],
    labels: Sequence[int],
    tokenizer: tokenizers.Tokenizer,
    *,
    pad_id: int,
    candidates: Sentences | None = None,
) -> Examples:
    """Tokenises the examples and aligns their marked spans to word pieces.

    Args:
      words: each example's words (a pair joined by a `SEPARATOR` word).
      marked: each example's Q marked (first, last) word spans.
      labels: each example's label id.
      tokenizer: truncates and pads to L (`pretrained.fixed_length_tokenizer`).
      pad_id: its padding id.
      candidates: with KAR, `KnowBertRun.prepare` of the same words and tokenizer.

    Returns:
      The examples.

    Raises:
      ValueError: the tokenizer has no `SEPARATOR`, or `candidates` were tokenised otherwise.
    """
    separator = tokenizer.token_to_id(SEPARATOR)
    if separator is None:
        raise ValueError(f"the tokenizer has no {SEPARATOR} token")
    encodings = tokenizer.encode_batch([list(w) for w in words], is_pretokenized=True)
    n, q = len(words), len(marked[0]) if marked else 2
    ids = np.array([e.ids for e in encodings], np.int32).reshape(n, -1)
    mask = np.array([e.attention_mask for e in encodings], np.int32).reshape(n, -1)
    is_separator = ids == separator
    # Segment 1 starts after the first [SEP]: an exclusive running count of separators.
    token_types = ((np.cumsum(is_separator, axis=1) - is_separator) > 0) & (mask > 0)
    spans = np.zeros((n, q, 2), np.int32)
    spans_mask = np.zeros((n, q), bool)
    for i, (encoding, wanted) in enumerate(zip(encodings, marked, strict=True)):
        for j, (first, last) in enumerate(wanted):
            start, end = encoding.word_to_tokens(first), encoding.word_to_tokens(last)
            if start is not None and end is not None:
                spans[i, j] = start[0], end[1] - 1
                spans_mask[i, j] = True
    counts = {
        "examples": n,
        "truncated": sum(bool(e.overflowing) for e in encodings),
        "marked_spans_cut": int((~spans_mask).sum()),
    }
    if candidates is None:
        kar = dict(
            spans=np.zeros((n, 1, 2), np.int32),
            span_mask=np.zeros((n, 1), bool),
            candidate_ids=np.zeros((n, 1, 1), np.int32),
            candidate_priors=np.zeros((n, 1, 1), np.float32),
            candidate_mask=np.zeros((n, 1, 1), bool),
        )
    else:
        if not np.array_equal(candidates.ids, ids):
            raise ValueError("the candidates' sentences were tokenised differently")
        kar = {name: getattr(candidates, name) for name in _KAR_FIELDS}
        counts.update(
            (key, value)
            for key, value in candidates.counts.items()
            if key not in ("sentences", "sentences_truncated", "gold_spans_kept",
                           "gold_in_candidates")
        )  # fmt: skip
    arrays = Batch(
        ids=ids,
        mask=mask,
        token_types=token_types.astype(np.int32),
        marked=spans,
        marked_mask=spans_mask,
        labels=np.asarray(labels, np.int32).reshape(n),
        **kar,
    )
    return Examples(arrays=arrays, pad_id=pad_id, counts=counts)


def bucket_lengths(buckets: Sequence[int], max_length: int) -> tuple[int, ...]:
    """The token lengths batches are cut to: the buckets below L, then L."""
    return (*sorted(b for b in set(buckets) if b < max_length), max_length)


def _bucket(lengths: np.ndarray, buckets: Sequence[int]) -> np.ndarray:
    """int [N] each length's bucket: the first that holds it (L, the last, holds all)."""
    return np.minimum(np.searchsorted(np.asarray(buckets), lengths), len(buckets) - 1)


@dataclasses.dataclass(frozen=True, eq=False)
class TrainingOrder:
    """Which examples each training step takes (module docstring).

    Attributes:
      lengths: int [N] the examples' real token counts.
      buckets: `bucket_lengths`.
      batch_size: B.
      seed: the run's seed.
    """

    lengths: np.ndarray
    buckets: tuple[int, ...]
    batch_size: int
    seed: int

    @functools.cached_property
    def _sizes(self) -> np.ndarray:
        return np.bincount(_bucket(self.lengths, self.buckets), minlength=len(self.buckets))

    @property
    def batches_per_epoch(self) -> int:
        """K."""
        return int(sum(-(-n // self.batch_size) for n in self._sizes))

    def epoch(self, epoch: int) -> np.ndarray:
        """int [K, B] the batches of `epoch`, -1 at padding."""
        rng = np.random.default_rng([self.seed, _TRAIN_ORDER, epoch])
        order = rng.permutation(len(self.lengths))
        which = _bucket(self.lengths[order], self.buckets)
        batches = []
        for b in range(len(self.buckets)):
            members = order[which == b]
            padded = np.full(-(-len(members) // self.batch_size) * self.batch_size, -1)
            padded[: len(members)] = members
            batches.extend(padded.reshape(-1, self.batch_size))
        return np.stack(batches)[rng.permutation(len(batches))]

    def indices(self, step: int) -> np.ndarray:
        """int [B] the examples of training step `step`, -1 at padding."""
        epoch, batch = divmod(step, self.batches_per_epoch)
        return self.epoch(epoch)[batch]


def trim(batch: Batch, buckets: Sequence[int]) -> Batch:
    """The batch (any leading axes) cut to the shortest bucket that holds its longest row."""
    longest = int(np.asarray(batch.mask).sum(-1).max(initial=1))
    length = buckets[int(_bucket(np.array([longest]), buckets)[0])]
    return batch._replace(
        ids=batch.ids[..., :length],
        mask=batch.mask[..., :length],
        token_types=batch.token_types[..., :length],
    )


def stack(batches: Sequence[Batch]) -> Batch:
    """Batches stacked: every array gains a leading axis."""
    return Batch(*(np.stack(parts) for parts in zip(*batches, strict=True)))


def evaluation_batches(
    examples: Examples, batch_size: int, buckets: Sequence[int]
) -> list[tuple[Batch, np.ndarray]]:
    """Every example once: per bucket, its examples in order as stacked batches [G, B, ...]
    cut to the bucket, the last padded (label -1), with int [G, B] their example indices (-1
    at padding)."""
    which = _bucket(np.asarray(examples.arrays.mask).sum(-1), buckets)
    out = []
    for b in range(len(buckets)):
        members = np.flatnonzero(which == b)
        if not len(members):
            continue
        indices = np.full(-(-len(members) // batch_size) * batch_size, -1, np.int64)
        indices[: len(members)] = members
        indices = indices.reshape(-1, batch_size)
        out.append((trim(stack([examples.take(rows) for rows in indices]), buckets), indices))
    return out
