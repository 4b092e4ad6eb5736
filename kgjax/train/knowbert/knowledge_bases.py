"""KnowBERT's knowledge bases: where the linker's gold sentences, the candidate spans and the
entity table's rows come from (`config.data.kb`).

Host side only (plain Python and NumPy); never imports jax.

  "wordnet"   KnowBERT-W. WordNet 3.0's gloss examples, one gold span per sentence (the span
              using a lemma of the example's own synset, `kgjax.data.wordnet_examples`);
              candidates are WordNet lemmas reached through morphy with priors from the
              sense-tagged counts (`kgjax.data.wordnet_candidates`); the held-out split is by
              synset; the default entity rows are MiniLM gloss embeddings of every synset.
  "fb15k237"  KnowBERT over FB15k-237 (the KnowBERT-Wiki recipe on a small graph). The linked
              description corpus (`kgjax.data.linking.link_folder`: each entity's StAR
              description, its mentions of the graph's entities linked), every gold mention
              of `fb15k237_candidates.GOLD_RULES` a gold span (about 5 a sentence); candidates
              from the alias table with degree priors (`kgjax.data.fb15k237_candidates`); the
              held-out split is by described entity (its whole text); the default entity rows
              are MiniLM embeddings of "<name>: <Wikidata description>" (the short Wikidata
              line, "city in Texas, United States", not the StAR text the linker reads, so
              that no held-out sentence is itself encoded in the table; the KG-BERT name alone
              where Wikidata has no description).

Both give `LinkedExample`s; an entity is a key (a synset id, a Freebase mid) and a
`Candidates` holds keys in its `synsets` field.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pathlib
from collections.abc import Sequence
from typing import NamedTuple

from kgjax.data import descriptions, linking, triples, wordnet_examples
from kgjax.data import fb15k237_candidates as fb_candidates
from kgjax.data import wordnet as wordnet_lib
from kgjax.data.triples import DataError
from kgjax.data.wordnet_candidates import Candidates, find_candidates

__all__ = [
    "KNOWLEDGE_BASES",
    "FB15k237",
    "GoldMention",
    "KnowledgeBase",
    "LinkedExample",
    "WordNetBase",
    "load",
]

KNOWLEDGE_BASES = ("wordnet", "fb15k237")
FB15K237_FOLDER = "fb15k-237"
_WIKIDATA_FILE = "wikidata/entity2wikidata.json"


class GoldMention(NamedTuple):
    """span: (first, last) word, inclusive; entity: the gold entity's key."""

    span: tuple[int, int]
    entity: str


class LinkedExample(NamedTuple):
    """A sentence of words with its gold mentions.

    Attributes:
      words: the sentence's words, as written.
      gold: its gold mentions, in word order, never overlapping.
      group: what the held-out split keeps together (the synset, the described entity).
    """

    words: tuple[str, ...]
    gold: tuple[GoldMention, ...]
    group: str


class KnowledgeBase:
    """What the trainer reads from a knowledge base (module docstring).

    Attributes:
      name: one of `KNOWLEDGE_BASES`.
      entity_keys: every entity's key, in the source's order (the default table's rows).
    """

    name: str
    entity_keys: tuple[str, ...]

    def examples(self) -> tuple[tuple[LinkedExample, ...], dict]:
        """Every gold sentence, and counts of what was found and missed."""
        raise NotImplementedError

    def candidates(
        self, words: Sequence[str], max_span_words: int, max_candidates: int
    ) -> Candidates:
        """The candidate spans of a sentence, their entity keys and priors."""
        raise NotImplementedError

    def canonical(self, key: str) -> str:
        """The key as the table names it. Raises KeyError for an unknown entity."""
        raise NotImplementedError

    def entity_text(self, key: str) -> str:
        """The text the default table encodes for an entity."""
        raise NotImplementedError

    def split(
        self, examples: Sequence[LinkedExample], held_out_fraction: float, seed: int
    ) -> tuple[tuple[LinkedExample, ...], tuple[LinkedExample, ...]]:
        """(train, held_out): the examples of a seeded share of the groups held out."""
        return wordnet_examples.split_by_group(
            examples, lambda example: example.group, held_out_fraction, seed
        )


@functools.lru_cache(maxsize=1)
def _gloss_examples(wordnet: wordnet_lib.WordNet) -> wordnet_examples.GlossExamples:
    """Every synset's gloss examples, memoised for the last database object: reading them
    takes seconds, and a notebook (or a test) building several runs from one loaded WordNet
    reads them once."""
    return wordnet_examples.gloss_examples(wordnet)


@dataclasses.dataclass(frozen=True)
class WordNetBase(KnowledgeBase):
    """KnowBERT-W's knowledge base: WordNet 3.0."""

    wordnet: wordnet_lib.WordNet
    name: str = "wordnet"

    @property
    def entity_keys(self) -> tuple[str, ...]:
        return tuple(self.wordnet.synsets)

    def examples(self):
        found = _gloss_examples(self.wordnet)
        examples = tuple(
            LinkedExample(e.tokens, (GoldMention(e.span, e.synset),), e.synset)
            for e in found.examples
        )
        return examples, {"examples": len(found.examples), "examples_missed": len(found.missed)}

    def candidates(self, words, max_span_words, max_candidates):
        return find_candidates(words, self.wordnet, max_span_words, max_candidates)

    def canonical(self, key):
        return self.wordnet.synset(key).id

    def entity_text(self, key):
        synset = self.wordnet.synset(key)
        return f"{', '.join(w.replace('_', ' ') for w in synset.words)}: {synset.definition}"


def _wikidata_descriptions(folder: pathlib.Path) -> dict[str, str]:
    """mid -> Wikidata's description, for the entries that have a non-empty one."""
    path = folder / _WIKIDATA_FILE
    if not path.is_file():
        return {}
    entries = descriptions.read_json_file(path)
    if not isinstance(entries, dict):
        raise DataError(f"{path}: expected a JSON object mid -> entry")
    return {
        key: entry["description"].strip()
        for key, entry in entries.items()
        if isinstance(entry, dict)
        and isinstance(entry.get("description"), str)
        and entry["description"].strip()
    }


class FB15k237(KnowledgeBase):
    """KnowBERT's FB15k-237 knowledge base, read from a dataset folder (module docstring).

    Args:
      folder: laid out like `../shared/data/fb15k-237/`.
      prior: "degree" or "uniform" (`fb15k237_candidates.AliasIndex`).

    Raises:
      DataError: a missing or malformed file (named).
    """

    name = "fb15k237"

    def __init__(self, folder: str | os.PathLike, prior: str = "degree"):
        self.folder = pathlib.Path(folder)
        self.prior = prior
        dataset = triples.load_folder(self.folder)
        self.entity_keys = tuple(dataset.entities.names)
        self._known = frozenset(self.entity_keys)
        self.index = fb_candidates.AliasIndex.from_folder(self.folder, prior)
        names = descriptions.entity_descriptions(self.folder, self.entity_keys, "kg-bert")
        wikidata = _wikidata_descriptions(self.folder)
        self._texts = {
            key: f"{name}: {wikidata[key]}" if key in wikidata else name
            for key, name in zip(self.entity_keys, names.texts, strict=True)
        }

    def examples(self):
        texts, _ = linking.link_folder(self.folder)
        sentences = fb_candidates.linked_sentences(texts, fb_candidates.GOLD_RULES)
        examples = tuple(
            LinkedExample(s.words, tuple(GoldMention(m.span, m.entity) for m in s.gold), s.entity)
            for s in sentences
            if s.gold
        )
        return examples, {
            "texts": len(sentences),
            "texts_without_gold": len(sentences) - len(examples),
            "gold_mentions": sum(len(e.gold) for e in examples),
        }

    def candidates(self, words, max_span_words, max_candidates):
        return fb_candidates.find_candidates(words, self.index, max_span_words, max_candidates)

    def canonical(self, key):
        if key not in self._known:
            raise KeyError(f"{key!r} is no entity of {self.folder}")
        return key

    def entity_text(self, key):
        return self._texts[self.canonical(key)]


def load(
    kb: str, data_dir: str | None = None, prior: str = "degree", wordnet=None
) -> KnowledgeBase:
    """The knowledge base `kb`, read from `data_dir` ($KGJAX_DATA_DIR when None or "").

    Args:
      kb: one of `KNOWLEDGE_BASES`.
      data_dir: the folder holding `wordnet-3.0/` or `fb15k-237/`.
      prior: the FB15k-237 alias prior ("degree", "uniform").
      wordnet: an already loaded WordNet (kb "wordnet" only).

    Raises:
      ValueError: an unknown kb.
      DataError: missing or malformed files.
    """
    if kb == "wordnet":
        return WordNetBase(wordnet or wordnet_lib.load_wordnet(data_dir or None))
    if kb == "fb15k237":
        root = data_dir or os.environ.get("KGJAX_DATA_DIR", "")
        if not root:
            raise DataError("no data folder: set $KGJAX_DATA_DIR or config.data.data_dir")
        return FB15k237(pathlib.Path(root) / FB15K237_FOLDER, prior)
    raise ValueError(f"unknown knowledge base {kb!r}; one of {KNOWLEDGE_BASES}")
