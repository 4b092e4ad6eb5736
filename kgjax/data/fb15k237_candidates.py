"""FB15k-237 candidate mentions with alias priors, linker supervision and the entity table,
for KnowBERT over FB15k-237 (the KnowBERT-Wiki recipe on a small knowledge graph).

Host side only (plain Python and NumPy); never imports jax. Shapes: V entities, S candidate
spans of a sentence, C candidates per span, De entity width.

Aliases (`kgjax.data.linking.read_alias_pairs`, normalised by `linking.AliasTable`), from a
dataset folder laid out like `../shared/data/fb15k-237/` (its README):
  - "kg-bert name": the KG-BERT name of each entity (`kg-bert/entity2text.txt`, Freebase
    names, less a "-GB"/"-US" variant suffix);
  - "wikidata label" and "wikidata alias": the Wikidata label and `alternatives` of each
    entity (`wikidata/entity2wikidata.json`; 14,515 of the 14,541 entities have an entry).
The normalisation, the case rules (acronyms matched as written; a capitalised word of an
alias needs a capital in the text) and the dropped aliases (no letter, under 3 letters and
digits, stop words only) are `kgjax.data.linking`'s, so that candidate generation and the
linked description corpus agree on what an alias is. Counts per source:
bench/results/fb15k237_linking.md.

Priors. KnowBERT-Wiki (Peters et al., EMNLP 2019; allenai/kb `WikiCandidateMentionGenerator`)
takes p(e|m) from anchor-link counts (CrossWikis and YAGO). FB15k-237 has none, so the prior
comes from the alias's ambiguity, weighted by popularity in the graph: for a span whose alias
may denote the entities E(m),
    p(e | m) = (deg(e) + 1) / sum over e' in E(m) of (deg(e') + 1),
deg(e) the number of `train.txt` triples e takes part in (a self-loop once,
`linking.TrainingGraph`). The +1 (add-one smoothing) keeps an entity without training
triples in the running and makes an unambiguous alias's prior exactly 1. `prior="uniform"`
drops the degree: p(e | m) = 1 / |E(m)|, the prior of ambiguity alone.

Candidate spans (`find_candidates`), for a sentence given as a list of words:
  - every span of 1 to `max_span_words` consecutive words (5, allenai/kb's
    `max_span_width`; the lengths of the linked corpus's gold mentions are in
    bench/results/fb15k237_linking.md) is tried, overlapping spans included: choosing among
    them is the linker's job, as in KnowBERT;
  - the span's key is its words' `linking.normalised_tokens`, concatenated (a word holding
    punctuation, "Texas,", is split as the alias table splits aliases); a span is a candidate
    mention when `AliasTable.lookup` finds entities for the key, case rules included. An
    index of every alias prefix stops the extension of a span as soon as no alias can
    continue it, so a sentence costs about one dict lookup per word and span length;
  - its candidates are ordered by prior, highest first, ties by entity key; the first
    `max_candidates` are kept (allenai/kb: 30, more than any FB15k-237 alias denotes, so the
    cut binds only for a smaller C) and their priors renormalised to sum to 1.
Unlike allenai/kb, no span is filtered by stop words or punctuation at its ends: the alias
table has already dropped the aliases made of stop words, and an alias may hold punctuation
("Denton, Texas"). Unlike the corpus's linker, there is no greedy longest match, no joining
punctuation rule (the words carry no spacing) and no exclusion of the described entity.
The result is `kgjax.data.wordnet_candidates.Candidates`, whose `synsets` field holds entity
keys (Freebase mids) here, so KnowBERT's sentence preparation takes either knowledge base.

Linker supervision (`linked_sentences`, `split_by_text`): the linked description corpus
(`linking.link_folder`: each entity's StAR description with its mentions) as sentences of
words, the text's `linking.token_spans`, so that every linked mention is a span of whole
words. Gold mentions carry the rule that linked them: "self" (the described entity's own
name, `LinkedText.self_mentions`) or one of `linking.RULES`. The default supervision
(`GOLD_RULES`) leaves out rule "degree": those links are the popularity guess among an
ambiguous alias's entities, the least precise rule on the corpus's checked sample
(bench/results/linked_corpus_fb15k237.md), and exactly what the degree prior predicts. The held-out split is by described entity (its whole text).

The entity table (`kge_entity_table`, `write_entity_table`): one row per entity from a
kgjax KGE export (`kgjax export --workdir=... --out=...`: `entity_embeddings` [V, D] and
`entity_names` [V]). A complex table (RotatE, ComplEx: complex64 [V, D]) becomes real
features by its real parts followed by its imaginary parts, [V, 2D], the layout the
trainer's parameter table has; a real table is taken as it is. Written as an .npz with
`vectors` float32 [V, De] and `entities` [V] (the keys), the WordNet table's format with
`entities` for `synsets`.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from kgjax.data import linking, triples, wordnet_examples
from kgjax.data.triples import DataError
from kgjax.data.wordnet_candidates import MAX_CANDIDATES, Candidates

__all__ = [
    "GOLD_RULES",
    "MAX_SPAN_WORDS",
    "PRIORS",
    "SELF",
    "AliasIndex",
    "EntityVectors",
    "GoldMention",
    "LinkedSentence",
    "find_candidates",
    "kge_entity_table",
    "linked_sentences",
    "split_by_text",
    "write_entity_table",
]

MAX_SPAN_WORDS = 5
PRIORS = ("degree", "uniform")
SELF = "self"
GOLD_RULES = (SELF, "unique", "adjacency")


class AliasIndex:
    """An alias table with each entity's prior weight, indexed for span lookup.

    Args:
      aliases: the alias table.
      weights: entity key -> its prior weight (module docstring: deg + 1, or 1 for a uniform
        prior); an entity absent from it weighs 1.
    """

    def __init__(self, aliases: linking.AliasTable, weights: Mapping[str, float]):
        self.aliases = aliases
        self.weights = weights
        # Every prefix of every key: a span grows only while some alias may still match it.
        self._folded_prefixes = frozenset(
            key[:n] for key in aliases.folded for n in range(1, len(key) + 1)
        )
        self._exact_prefixes = frozenset(
            key[:n] for key in aliases.exact for n in range(1, len(key) + 1)
        )

    @classmethod
    def from_folder(cls, dataset_dir: str | os.PathLike, prior: str = "degree") -> AliasIndex:
        """The index of a dataset folder's entities (train/valid/test vocabulary).

        Args:
          dataset_dir: the dataset's folder, e.g. `../shared/data/fb15k-237`.
          prior: "degree" (weights deg + 1 from `train.txt`) or "uniform".

        Raises:
          DataError: a missing or malformed file (named).
          ValueError: an unknown prior.
        """
        if prior not in PRIORS:
            raise ValueError(f"prior must be one of {PRIORS}, got {prior!r}")
        dataset = triples.load_folder(dataset_dir)
        keys = dataset.entities.names
        aliases = linking.read_aliases(dataset_dir, keys)
        if prior == "uniform":
            return cls(aliases, {})
        train = [(keys[h], "", keys[t]) for h, _, t in dataset.train.tolist()]
        degree = linking.TrainingGraph.build(train).degree
        return cls(aliases, {key: degree.get(key, 0) + 1 for key in keys})

    def may_continue(self, written: tuple[str, ...]) -> bool:
        """Whether some alias begins with these tokens (as written, `normalised_tokens`)."""
        return (
            tuple(t.casefold() for t in written) in self._folded_prefixes
            or written in self._exact_prefixes
        )

    def priors(self, written: Sequence[str], max_candidates: int) -> list[tuple[str, float]]:
        """The entities the tokens may denote, with their priors (module docstring).

        Args:
          written: normalised tokens as written (`linking.normalised_tokens`).
          max_candidates: C, the most candidates kept.

        Returns:
          [(entity key, prior)], highest prior first, ties by key, at most C, the priors
          summing to 1; empty when the tokens are no alias.
        """
        entities = self.aliases.lookup(written)  # sorted by key, so the sort below ties by key
        ranked = sorted(entities, key=lambda e: -self.weights.get(e, 1))[:max_candidates]
        total = sum(self.weights.get(e, 1) for e in ranked)
        return [(e, self.weights.get(e, 1) / total) for e in ranked]


def find_candidates(
    words: Sequence[str],
    index: AliasIndex,
    max_span_words: int = MAX_SPAN_WORDS,
    max_candidates: int = MAX_CANDIDATES,
) -> Candidates:
    """The candidate mentions of a sentence and their entities, by the module docstring's rule.

    Args:
      words: the sentence's words, in order (as written: case counts).
      index: the alias index.
      max_span_words: the longest span tried, in words.
      max_candidates: C, the most candidates kept per span.

    Returns:
      The spans with at least one candidate, ordered by first then last word; `synsets` holds
      entity keys, highest prior first; the priors of a span sum to 1.

    Raises:
      ValueError: `max_span_words` or `max_candidates` is below 1.
    """
    if max_span_words < 1 or max_candidates < 1:
        raise ValueError(
            f"max_span_words and max_candidates must be >= 1, got {max_span_words}, "
            f"{max_candidates}"
        )
    pieces = [tuple(linking.normalised_tokens(word)) for word in words]
    spans, entities, priors = [], [], []
    for first in range(len(words)):
        if not pieces[first]:
            continue
        written: tuple[str, ...] = ()
        for last in range(first, min(first + max_span_words, len(words))):
            written += pieces[last]
            if not index.may_continue(written):
                break
            found = index.priors(written, max_candidates) if pieces[last] else []
            if found:
                spans.append((first, last))
                entities.append(tuple(e for e, _ in found))
                priors.append(tuple(p for _, p in found))
    return Candidates(tuple(spans), tuple(entities), tuple(priors))


class GoldMention(NamedTuple):
    """A linked mention in a sentence.

    Attributes:
      span: (first, last) word positions, inclusive.
      entity: the gold entity's key.
      rule: how the corpus linked it: "self" or one of `linking.RULES`.
    """

    span: tuple[int, int]
    entity: str
    rule: str


class LinkedSentence(NamedTuple):
    """A description as words with its gold mentions.

    Attributes:
      entity: the described entity's key.
      words: the text's tokens (`linking.token_spans`), as written.
      gold: the gold mentions, in text order (never overlapping).
    """

    entity: str
    words: tuple[str, ...]
    gold: tuple[GoldMention, ...]


def linked_sentences(
    texts: Sequence[linking.LinkedText], rules: Sequence[str] = GOLD_RULES
) -> tuple[LinkedSentence, ...]:
    """The linked corpus as sentences of words with gold spans (module docstring).

    Args:
      texts: the linked texts (`linking.link_folder` or `linking.read_jsonl`).
      rules: the rules whose mentions are gold: "self" and any of `linking.RULES`.

    Returns:
      One sentence per text, in the order given.

    Raises:
      ValueError: an unknown rule, or a mention that does not begin and end on token
        boundaries of its text (a corpus from another tokenisation).
    """
    unknown = set(rules) - {SELF, *linking.RULES}
    if unknown:
        raise ValueError(f"unknown rules {sorted(unknown)}; known: {(SELF, *linking.RULES)}")
    out = []
    for text in texts:
        offsets = linking.token_spans(text.text)
        first_of = {start: i for i, (start, _) in enumerate(offsets)}
        last_of = {end: i for i, (_, end) in enumerate(offsets)}
        found = [(start, end, text.entity, SELF) for start, end in text.self_mentions]
        found += [(m.start, m.end, m.entity, m.rule) for m in text.mentions]
        gold = []
        for start, end, entity, rule in sorted(found):
            if rule not in rules:
                continue
            if start not in first_of or end not in last_of:
                raise ValueError(
                    f"{text.entity}: mention ({start}, {end}) {text.text[start:end]!r} is not "
                    "on token boundaries"
                )
            gold.append(GoldMention((first_of[start], last_of[end]), entity, rule))
        words = tuple(text.text[start:end] for start, end in offsets)
        out.append(LinkedSentence(text.entity, words, tuple(gold)))
    return tuple(out)


def split_by_text(
    sentences: Sequence[LinkedSentence], held_out_fraction: float, seed: int
) -> tuple[tuple[LinkedSentence, ...], tuple[LinkedSentence, ...]]:
    """Holds out the sentences of a seeded random share of the described entities.

    Args:
      sentences: the sentences.
      held_out_fraction: the share of distinct described entities held out, rounded to a
        whole number.
      seed: seeds the draw; the same sentences, fraction and seed give the same split.

    Returns:
      (train, held_out), each in the order given.

    Raises:
      ValueError: `held_out_fraction` is outside [0, 1].
    """
    return wordnet_examples.split_by_group(
        sentences, lambda sentence: sentence.entity, held_out_fraction, seed
    )


@dataclasses.dataclass(frozen=True)
class EntityVectors:
    """Attributes:
    entities: the key of each row [V].
    vectors: float32 [V, De].
    """

    entities: tuple[str, ...]
    vectors: np.ndarray


def kge_entity_table(
    export_path: str | os.PathLike, keys: Sequence[str] | None = None
) -> EntityVectors:
    """KnowBERT's entity rows from a KGE export (module docstring).

    Args:
      export_path: an .npz of `kgjax export` (`entity_embeddings`, `entity_names`).
      keys: the entities wanted, in row order; None for all of the export's, in its order.

    Returns:
      The rows, complex embeddings as [real parts, imaginary parts].

    Raises:
      DataError: the file is unreadable or lacks an array, its arrays disagree in length, or
        a wanted key has no embedding.
    """
    path = os.fspath(export_path)
    try:
        with np.load(path, allow_pickle=False) as arrays:
            missing = {"entity_embeddings", "entity_names"} - set(arrays.files)
            if missing:
                raise DataError(f"{path}: no array {sorted(missing)} (not a `kgjax export`)")
            embeddings, names = (
                arrays["entity_embeddings"],
                [str(n) for n in arrays["entity_names"]],
            )
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable KGE export ({e})") from e
    if embeddings.ndim != 2 or len(embeddings) != len(names):
        raise DataError(f"{path}: entity_embeddings {embeddings.shape} for {len(names)} names")
    if np.iscomplexobj(embeddings):
        embeddings = np.concatenate([embeddings.real, embeddings.imag], axis=1)
    embeddings = np.asarray(embeddings, np.float32)
    if keys is None:
        return EntityVectors(tuple(names), embeddings)
    row_of = {name: row for row, name in enumerate(names)}
    absent = [key for key in keys if key not in row_of]
    if absent:
        raise DataError(f"{path}: no embedding for {len(absent)} entities, e.g. {absent[:5]}")
    return EntityVectors(tuple(keys), embeddings[[row_of[key] for key in keys]])


def write_entity_table(path: str | os.PathLike, table: EntityVectors) -> None:
    """Writes the rows as an .npz (`vectors`, `entities`), atomically, creating the folder."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp.npz")
    np.savez(tmp, vectors=table.vectors, entities=np.asarray(table.entities))
    os.replace(tmp, path)
