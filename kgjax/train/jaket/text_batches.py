"""Host-side batches of JAKET's language tasks: linked texts, tokenised once, then per step a
seeded choice of texts, dropped mentions, masked tokens and the kept mentions' subgraph.

  linked corpus (`kgjax.data.linking`) -> `tokenise` (token spans of the mentions, once)
  -> `TextBatcher(step)` -> `joint_step.TextBatch`

Each step s draws from (seed, s) alone, so a resumed run sees the uninterrupted run's batches:
B texts; per text, each mention dropped with probability `drop_rate` (JAKET: 15%), the rest
kept for the merge (at most S per text, at most M dropped); BERT's token corruption
(`kgjax.text.masking`); the fan-out neighbourhood of the kept mentions' distinct entities,
which are the subgraph's first nodes (`SubgraphSampler.around`); and each dropped mention's
candidates (`masked_entities.candidates`).

Shapes: T texts in the corpus, L tokens, B texts per step, S kept and M dropped mention slots
per text, P masked-token slots, K candidates.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import tokenizers

from kgjax.data.descriptions import token_span
from kgjax.data.linking import LinkedText
from kgjax.data.subgraphs import Subgraph, SubgraphSampler
from kgjax.text.masking import mask_tokens
from kgjax.train.jaket import masked_entities
from kgjax.train.jaket.joint_step import TextBatch

__all__ = ["TokenisedCorpus", "TextBatcher", "tokenise"]

_TEXT_STREAM = 0x7E47  # salts the text draws apart from the subgraph's own stream


@dataclasses.dataclass(frozen=True)
class TokenisedCorpus:
    """The corpus as fixed-length token arrays with each mention's token span.

    Attributes:
      ids, mask, maskable: [T, L] token ids, 1 on real tokens, True on real non-special ones.
      spans: int32 [n, 2] (first, last) token of every mention, text by text.
      entities: int32 [n] the mentions' entity ids.
      offsets: int64 [T + 1]: text t's mentions are rows offsets[t]:offsets[t + 1].
      num_dropped: mentions lost to truncation or to an entity outside the vocabulary.
    """

    ids: np.ndarray
    mask: np.ndarray
    maskable: np.ndarray
    spans: np.ndarray
    entities: np.ndarray
    offsets: np.ndarray
    num_dropped: int


def tokenise(
    texts: Sequence[LinkedText], entity_index: Mapping[str, int], tokenizer: tokenizers.Tokenizer
) -> TokenisedCorpus:
    """Tokenises the texts (with a fixed-length tokenizer) and maps each mention to tokens.

    Args:
      texts: the linked corpus.
      entity_index: entity key -> id of the graph's vocabulary.
      tokenizer: pads and truncates to L (`pretrained.fixed_length_tokenizer`).
    """
    encodings = tokenizer.encode_batch([text.text for text in texts])
    spans, entities, offsets, dropped = [], [], [0], 0
    for text, encoding in zip(texts, encodings, strict=True):
        for mention in text.mentions:
            span = token_span(encoding, mention.start, mention.end)
            if span is None or mention.entity not in entity_index:
                dropped += 1
                continue
            spans.append(span)
            entities.append(entity_index[mention.entity])
        offsets.append(len(entities))
    mask = np.array([e.attention_mask for e in encodings], np.int32)
    special = np.array([e.special_tokens_mask for e in encodings], bool)
    return TokenisedCorpus(
        ids=np.array([e.ids for e in encodings], np.int32),
        mask=mask,
        maskable=mask.astype(bool) & ~special,
        spans=np.array(spans, np.int32).reshape(-1, 2),
        entities=np.array(entities, np.int32),
        offsets=np.array(offsets, np.int64),
        num_dropped=dropped,
    )


def stack(batches: Sequence[TextBatch]) -> TextBatch:
    """Stacks equally shaped batches along a new leading axis (NumPy, on the host)."""
    graph = Subgraph(*(np.stack(f) for f in zip(*(b.graph for b in batches), strict=True)))
    fields = list(zip(*batches, strict=True))[:-1]  # the graph is last
    return TextBatch(*(np.stack(field) for field in fields), graph=graph)


@dataclasses.dataclass(frozen=True)
class TextBatcher:
    """`batcher(step)` -> the step's `TextBatch` (NumPy), a function of (seed, step) only.

    Attributes:
      corpus: the tokenised texts.
      sampler: neighbourhoods of the kept mentions' entities (`around`); its num_roots must be
        at least B * S and its budgets fit those draws (`propose_budgets`).
      batch_size: B.
      max_kept, max_dropped: S and M.
      num_candidates, num_neighbours: K and the neighbours among them.
      mask_id, vocab_size, max_predictions: BERT's corruption (`mask_tokens`).
      drop_rate: each mention's chance of being dropped (JAKET: 0.15).
      merge: False: no kept mention is merged (`span_mask` all False; the plain language
        model's continued pre-training, with the same draws otherwise).
      seed: the run's seed.
    """

    corpus: TokenisedCorpus
    sampler: SubgraphSampler
    batch_size: int
    max_kept: int
    max_dropped: int
    num_candidates: int
    num_neighbours: int
    mask_id: int
    vocab_size: int
    max_predictions: int = 20
    drop_rate: float = 0.15
    merge: bool = True
    seed: int = 0

    def choices(
        self, step: int
    ) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray], np.random.Generator]:
        """(texts [B], kept mention rows per text, dropped mention rows per text, the generator
        left where the choice ended, for the rest of the step's draws) of `step`."""
        rng = np.random.default_rng([self.seed, step, _TEXT_STREAM])
        num_texts = len(self.corpus.offsets) - 1
        texts = rng.choice(num_texts, self.batch_size, replace=num_texts < self.batch_size)
        kept, dropped = [], []
        for text in texts:
            rows = np.arange(self.corpus.offsets[text], self.corpus.offsets[text + 1])
            drop = rng.random(len(rows)) < self.drop_rate
            kept.append(rows[~drop][: self.max_kept])
            dropped.append(rows[drop][: self.max_dropped])
        return texts, kept, dropped, rng

    def roots(self, step: int) -> np.ndarray:
        """The kept mentions' distinct entities of `step`, in order of first mention."""
        _, kept, _, _ = self.choices(step)
        entities = self.corpus.entities[np.concatenate(kept)] if kept else np.zeros(0, np.int32)
        _, first = np.unique(entities, return_index=True)
        return entities[np.sort(first)]

    def __call__(self, step: int) -> TextBatch:
        return self._batch(step, self.sampler.around(self.roots(step), step))

    def chunk(self, steps: Sequence[int]) -> TextBatch:
        """The batches of `steps`, stacked (leading axis S), their graphs padded to one budget
        (`SubgraphSampler.around_many`)."""
        graphs = self.sampler.around_many([self.roots(step) for step in steps], steps)
        batches = [
            self._batch(step, Subgraph(*(field[i] for field in graphs)))
            for i, step in enumerate(steps)
        ]
        return stack(batches)

    def _batch(self, step: int, graph: Subgraph) -> TextBatch:
        """`step`'s batch around its `graph` (the kept mentions' neighbourhood)."""
        corpus = self.corpus
        texts, kept, dropped, rng = self.choices(step)
        tokens = mask_tokens(
            corpus.ids[texts],
            corpus.maskable[texts],
            rng,
            mask_id=self.mask_id,
            vocab_size=self.vocab_size,
            max_predictions=self.max_predictions,
        )
        roots = self.roots(step)
        # The roots are the graph's first nodes: an entity's node is its place among them.
        node_of = {int(entity): node for node, entity in enumerate(roots)}
        b, s, m = self.batch_size, self.max_kept, self.max_dropped
        spans = np.zeros((b, s, 2), np.int32)
        span_nodes = np.zeros((b, s), np.int32)
        span_mask = np.zeros((b, s), bool)
        dropped_spans = np.zeros((b, m, 2), np.int32)
        dropped_entities = np.zeros((b, m), np.int32)
        dropped_mask = np.zeros((b, m), bool)
        for i in range(b):
            rows = kept[i]
            spans[i, : len(rows)] = corpus.spans[rows]
            span_nodes[i, : len(rows)] = [node_of[int(e)] for e in corpus.entities[rows]]
            span_mask[i, : len(rows)] = self.merge
            rows = dropped[i]
            dropped_spans[i, : len(rows)] = corpus.spans[rows]
            dropped_entities[i, : len(rows)] = corpus.entities[rows]
            dropped_mask[i, : len(rows)] = True
        candidates, candidate_mask = masked_entities.candidates(
            self.sampler.adjacency,
            dropped_entities.ravel(),
            self.num_candidates,
            self.num_neighbours,
            rng,
            self.sampler.adjacency.num_entities,
        )
        return TextBatch(
            ids=tokens.ids,
            mask=corpus.mask[texts],
            token_positions=tokens.positions,
            token_targets=tokens.targets,
            token_weights=tokens.weights,
            spans=spans,
            span_nodes=span_nodes,
            span_mask=span_mask,
            dropped_spans=dropped_spans,
            candidates=candidates.reshape(b, m, -1),
            candidate_mask=candidate_mask.reshape(b, m, -1),
            dropped_mask=dropped_mask,
            graph=graph,
        )
