"""KnowBERT's sentences as static arrays, and the batches drawn from them. Host side.

A sentence is a sequence of words (`kgjax.data.wordnet_examples.tokenise`'s tokens, or the
linked corpus's), with its candidate spans (the knowledge base's generator,
`knowledge_bases.KnowledgeBase.candidates`, word positions) and its gold mentions: a gloss
example's one span and synset, a linked description's several spans and entities.

Words to word pieces. The words go through the tokenizer as pre-tokenised input; a word's
pieces are those whose `word_ids` is the word (the tokenizer's own alignment, from its
offsets), and a span of words (first, last) becomes the pieces from the first piece of its
first word to the last piece of its last word. A span with a word cut off by truncation at L
(or a word without pieces) is dropped.

Static shapes. Every sentence is L pieces ([CLS] ... [SEP], padding), S candidate spans and C
candidates per span: the first S spans in `find_candidates`' order (by first word, then last
word; no gold is used to choose them), each span's candidates those of the entity table,
most tagged first, their priors renormalised over the kept ones (only a table file without
some entities drops any); padding is masked everywhere. `gold` is the gold entity's position
among a gold span's candidates (-1 at every other span and where it is no candidate). Each
gold mention is also listed (`mention_sentence`, `mention_slot`, `mention_entity`): its slot
is -1 where its span is not among the kept spans, so that scores count every mention.

Masked language modelling (BERT's corruption, `kgjax.text.masking`): the real word pieces
may be predicted, except those of the gold spans: the linker's supervision needs the word it
disambiguates (a [MASK] there would leave it to guess the sense of a word it cannot see).
Every candidate span that covers a predicted position is dropped from that batch's KAR input
(span mask false): its candidates name the hidden word (the gloss embeddings start with the
synset's lemmas), so keeping them would let KAR read the answer.

Draws are functions of (seed, step) for training and of (seed, sentence) for evaluation, so a
resumed run sees exactly what the uninterrupted run saw and evaluation does not depend on
its batch size.

Shapes: N sentences, B batch, L tokens, P predictions per sentence, S spans, C candidates.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import tokenizers

from kgjax.data.wordnet_candidates import Candidates
from kgjax.text.masking import mask_tokens

__all__ = ["Batch", "Batcher", "Sentences", "evaluation_batches", "prepare"]

_TRAIN_ORDER = 0x51  # salts the epochs' orders apart from the masking draws
_TRAIN_MASKING = 0x52
_EVAL_MASKING = 0x53


class Batch(NamedTuple):
    """One step's sentences (a pytree of NumPy or device arrays).

    Attributes:
      ids: int32 [B, L] token ids (corrupted where predicted).
      mask: int32 [B, L], 1 on real tokens.
      token_positions, token_targets: int32 [B, P] the predicted positions and their tokens.
      token_weights: bool [B, P], False on unused slots.
      spans: int32 [B, S, 2] first and last token of each candidate span.
      span_mask: bool [B, S], False at padding and at spans covering a predicted position.
      candidate_ids: int32 [B, S, C] entity-table rows.
      candidate_priors: float32 [B, S, C].
      candidate_mask: bool [B, S, C].
      gold: int32 [B, S] the gold candidate's position, -1 where none.
    """

    ids: np.ndarray
    mask: np.ndarray
    token_positions: np.ndarray
    token_targets: np.ndarray
    token_weights: np.ndarray
    spans: np.ndarray
    span_mask: np.ndarray
    candidate_ids: np.ndarray
    candidate_priors: np.ndarray
    candidate_mask: np.ndarray
    gold: np.ndarray


@dataclasses.dataclass(frozen=True)
class Sentences:
    """N sentences as static arrays (module docstring).

    Attributes:
      ids, mask: int32 [N, L].
      maskable: bool [N, L], the pieces masked language modelling may predict.
      spans: int32 [N, S, 2]; span_mask: bool [N, S].
      candidate_ids: int32 [N, S, C]; candidate_priors: float32 [N, S, C];
      candidate_mask: bool [N, S, C].
      gold: int32 [N, S].
      mention_sentence, mention_slot: int32 [M] each gold mention's sentence and slot (-1:
        its span is not kept); mention_entity: [M] its gold entity's key.
      word_spans: int32 [N, S, 2] each kept span's (first, last) word.
      pad_id: the padding token's id.
      counts: what was kept and dropped (`prepare`).
    """

    ids: np.ndarray
    mask: np.ndarray
    maskable: np.ndarray
    spans: np.ndarray
    span_mask: np.ndarray
    candidate_ids: np.ndarray
    candidate_priors: np.ndarray
    candidate_mask: np.ndarray
    gold: np.ndarray
    mention_sentence: np.ndarray
    mention_slot: np.ndarray
    mention_entity: tuple[str, ...]
    word_spans: np.ndarray
    pad_id: int
    counts: Mapping[str, int]

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, indices: np.ndarray) -> Batch:
        """The sentences at `indices` as an uncorrupted batch (no predictions); an index of
        -1 gives a padding row (no token, span or target)."""
        indices = np.asarray(indices)
        real = indices >= 0
        rows = np.where(real, indices, 0)

        def pick(array, fill):
            out = array[rows]
            out[~real] = fill
            return out

        num_predictions = 1  # a slot the step ignores (weight False)
        zeros = np.zeros((len(indices), num_predictions), np.int32)
        return Batch(
            ids=pick(self.ids, self.pad_id),
            mask=pick(self.mask, 0),
            token_positions=zeros,
            token_targets=zeros,
            token_weights=np.zeros((len(indices), num_predictions), bool),
            spans=pick(self.spans, 0),
            span_mask=pick(self.span_mask, False),
            candidate_ids=pick(self.candidate_ids, 0),
            candidate_priors=pick(self.candidate_priors, 0.0),
            candidate_mask=pick(self.candidate_mask, False),
            gold=pick(self.gold, -1),
        )

    def corrupted(
        self,
        indices: np.ndarray,
        rngs: Sequence[np.random.Generator],
        *,
        mask_id: int,
        vocab_size: int,
        rate: float,
        max_predictions: int,
    ) -> Batch:
        """The sentences at `indices` (-1: padding) with BERT's corruption, row i drawn from
        `rngs[i]`; candidate spans covering a predicted position are dropped."""
        batch = self.take(indices)
        maskable = self.maskable[np.maximum(indices, 0)] & (np.asarray(indices) >= 0)[:, None]
        rows = [
            mask_tokens(
                batch.ids[i : i + 1],
                maskable[i : i + 1],
                rng,
                mask_id=mask_id,
                vocab_size=vocab_size,
                rate=rate,
                max_predictions=max_predictions,
            )
            for i, rng in enumerate(rngs)
        ]
        positions = np.concatenate([r.positions for r in rows])
        weights = np.concatenate([r.weights for r in rows])
        predicted = np.zeros(batch.ids.shape, bool)
        sentence = np.broadcast_to(np.arange(len(rngs))[:, None], positions.shape)
        predicted[sentence[weights], positions[weights]] = True
        covers = _covers(batch.spans, batch.ids.shape[1])  # [B, S, L]
        hides = (covers & predicted[:, None, :]).any(axis=-1)
        return batch._replace(
            ids=np.concatenate([r.ids for r in rows]),
            token_positions=positions,
            token_targets=np.concatenate([r.targets for r in rows]),
            token_weights=weights,
            span_mask=batch.span_mask & ~hides,
        )


def _covers(spans: np.ndarray, length: int) -> np.ndarray:
    positions = np.arange(length)
    return (positions >= spans[..., :1]) & (positions <= spans[..., 1:])


def _piece_ranges(word_ids: Sequence[int | None], num_words: int) -> np.ndarray:
    """int [num_words, 2] first and last piece of each word; -1 for a word without pieces."""
    ranges = np.full((num_words, 2), -1, np.int64)
    for position, word in enumerate(word_ids):
        if word is None:
            continue
        if ranges[word, 0] < 0:
            ranges[word, 0] = position
        ranges[word, 1] = position
    return ranges


def prepare(
    words: Sequence[Sequence[str]],
    candidates: Sequence[Candidates],
    rows: Mapping[str, int],
    tokenizer: tokenizers.Tokenizer,
    *,
    pad_id: int,
    num_spans: int,
    num_candidates: int,
    gold: Sequence[Sequence[tuple[tuple[int, int], str]]] | None = None,
) -> Sentences:
    """Tokenises sentences and pads their candidates (module docstring).

    Args:
      words: the N sentences' words.
      candidates: each sentence's `find_candidates` result (word positions).
      rows: entity key -> row of the entity table; candidates without a row are dropped.
      tokenizer: truncates and pads to L (`pretrained.fixed_length_tokenizer`).
      pad_id: its padding id.
      num_spans: S.
      num_candidates: C.
      gold: per sentence, its gold mentions ((first, last) word, entity key), not
        overlapping; None for no gold at all.

    Returns:
      The arrays, with `counts`: sentences, sentences_truncated (more pieces than L),
      candidate_spans (found), spans_kept, spans_cut_by_length, spans_over_budget (beyond
      S), candidates_without_row, gold_mentions, gold_spans_kept (a gold span among the kept
      spans), gold_in_candidates (and its entity among the span's candidates).
    """
    n = len(words)
    encodings = tokenizer.encode_batch([list(w) for w in words], is_pretokenized=True)
    length = len(encodings[0].ids) if encodings else 1
    arrays = dict(
        spans=np.zeros((n, num_spans, 2), np.int32),
        span_mask=np.zeros((n, num_spans), bool),
        candidate_ids=np.zeros((n, num_spans, num_candidates), np.int32),
        candidate_priors=np.zeros((n, num_spans, num_candidates), np.float32),
        candidate_mask=np.zeros((n, num_spans, num_candidates), bool),
        gold=np.full((n, num_spans), -1, np.int32),
        word_spans=np.zeros((n, num_spans, 2), np.int32),
    )
    counts = dict.fromkeys(
        ("sentences", "sentences_truncated", "candidate_spans", "spans_kept",
         "spans_cut_by_length", "spans_over_budget", "candidates_without_row",
         "gold_mentions", "gold_spans_kept", "gold_in_candidates"),
        0,
    )  # fmt: skip
    counts["sentences"] = n
    maskable = np.zeros((n, length), bool)
    mention_sentence, mention_slot, mention_entity = [], [], []
    for i, (encoding, found) in enumerate(zip(encodings, candidates, strict=True)):
        pieces = _piece_ranges(encoding.word_ids, len(words[i]))
        counts["sentences_truncated"] += bool(encoding.overflowing)
        maskable[i] = [w is not None for w in encoding.word_ids]
        gold_of = {}  # gold span -> its position in mention_*
        for span, entity in gold[i] if gold is not None else ():
            span = tuple(span)
            gold_of[span] = len(mention_entity)
            mention_sentence.append(i)
            mention_slot.append(-1)
            mention_entity.append(entity)
            first, last = pieces[span[0], 0], pieces[span[1], 1]
            if min(first, last) >= 0:  # else cut off at L: the span is dropped anyway
                maskable[i, first : last + 1] = False
        counts["gold_mentions"] += len(gold_of)
        slot = 0
        for span, synsets, priors in zip(found.spans, found.synsets, found.priors, strict=True):
            counts["candidate_spans"] += 1
            first, last = pieces[span[0], 0], pieces[span[1], 1]
            if first < 0 or last < 0:
                counts["spans_cut_by_length"] += 1
                continue
            kept = [(rows[s], s, p) for s, p in zip(synsets, priors, strict=True) if s in rows]
            counts["candidates_without_row"] += len(synsets) - len(kept)
            kept = kept[:num_candidates]
            if not kept:
                continue
            if slot == num_spans:
                counts["spans_over_budget"] += 1
                continue
            total = sum(p for _, _, p in kept)
            arrays["spans"][i, slot] = first, last
            arrays["word_spans"][i, slot] = span
            arrays["span_mask"][i, slot] = True
            arrays["candidate_ids"][i, slot, : len(kept)] = [r for r, _, _ in kept]
            arrays["candidate_priors"][i, slot, : len(kept)] = [p / total for _, _, p in kept]
            arrays["candidate_mask"][i, slot, : len(kept)] = True
            mention = gold_of.get(tuple(span))
            if mention is not None:
                mention_slot[mention] = slot
                counts["gold_spans_kept"] += 1
                names = [s for _, s, _ in kept]
                if mention_entity[mention] in names:
                    arrays["gold"][i, slot] = names.index(mention_entity[mention])
                    counts["gold_in_candidates"] += 1
            slot += 1
        counts["spans_kept"] += slot
    return Sentences(
        ids=np.array([e.ids for e in encodings], np.int32).reshape(n, length),
        mask=np.array([e.attention_mask for e in encodings], np.int32).reshape(n, length),
        maskable=maskable,
        mention_sentence=np.asarray(mention_sentence, np.int32),
        mention_slot=np.asarray(mention_slot, np.int32),
        mention_entity=tuple(mention_entity),
        pad_id=pad_id,
        counts=counts,
        **arrays,
    )


def _stack(batches: Sequence[Batch]) -> Batch:
    return Batch(*(np.stack(parts) for parts in zip(*batches, strict=True)))


@dataclasses.dataclass(frozen=True)
class Batcher:
    """The training batches: B sentences per step in seeded epochs, corrupted per step.

    Step t takes positions tB .. tB + B - 1 of the concatenated epochs, epoch e being a
    permutation of the sentences drawn from (seed, e); row i of step t is corrupted with a
    generator of (seed, t, i).
    """

    sentences: Sentences
    batch_size: int
    seed: int
    mask_id: int
    vocab_size: int
    rate: float
    max_predictions: int

    def indices(self, step: int) -> np.ndarray:
        """int [B] the sentences of `step`."""
        n = len(self.sentences)
        positions = step * self.batch_size + np.arange(self.batch_size)
        epochs, within = np.divmod(positions, n)
        out = np.empty(self.batch_size, np.int64)
        for epoch in np.unique(epochs):
            order = np.random.default_rng([self.seed, _TRAIN_ORDER, int(epoch)]).permutation(n)
            out[epochs == epoch] = order[within[epochs == epoch]]
        return out

    def batch(self, step: int) -> Batch:
        rngs = [
            np.random.default_rng([self.seed, _TRAIN_MASKING, step, row])
            for row in range(self.batch_size)
        ]
        return self.sentences.corrupted(
            self.indices(step), rngs, mask_id=self.mask_id, vocab_size=self.vocab_size,
            rate=self.rate, max_predictions=self.max_predictions,
        )  # fmt: skip

    def chunk(self, steps: Sequence[int]) -> Batch:
        """The batches of `steps`, stacked: every array gains a leading [len(steps)] axis."""
        return _stack([self.batch(step) for step in steps])


def evaluation_batches(
    sentences: Sentences,
    batch_size: int,
    seed: int,
    *,
    mask_id: int,
    vocab_size: int,
    rate: float,
    max_predictions: int,
) -> tuple[Batch, Batch, np.ndarray]:
    """Every sentence once, uncorrupted and corrupted, in stacked batches (the last padded).

    Returns:
      (clean [G, B, ...], corrupted [G, B, ...], int [G, B] sentence index, -1 at padding);
      sentence j is corrupted with a generator of (seed, j), whatever the batch size.
    """
    n = len(sentences)
    num_batches = max(1, -(-n // batch_size))
    indices = np.full(num_batches * batch_size, -1, np.int64)
    indices[:n] = np.arange(n)
    indices = indices.reshape(num_batches, batch_size)
    clean, corrupted = [], []
    for rows in indices:
        clean.append(sentences.take(rows))
        # A padding row (-1) has nothing to mask and draws nothing.
        rngs = [np.random.default_rng([seed, _EVAL_MASKING, max(int(j), 0)]) for j in rows]
        corrupted.append(
            sentences.corrupted(
                rows,
                rngs,
                mask_id=mask_id,
                vocab_size=vocab_size,
                rate=rate,
                max_predictions=max_predictions,
            )
        )
    return _stack(clean), _stack(corrupted), indices
