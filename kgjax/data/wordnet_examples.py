"""WordNet's gloss examples as a sense-annotated corpus: KnowBERT-W's linker supervision.

Host side only (plain Python and NumPy); never imports jax.

KnowBERT (Peters et al., EMNLP 2019) trains its WordNet linker on sentences whose mentions are
tagged with synsets. WordNet itself holds such sentences: a gloss ends with example sentences
(`Synset.examples`), each written to use one of its own synset's lemmas ("they pulled the
canoe up on the bank" for `bank%1:17:01::`). This module finds that use.

Tokens (`tokenise`): runs of word characters, with hyphens and apostrophes inside a word kept
(`change-ringing`, `writer's`, as WordNet's lemmas write them: `writer's_block`,
`well-known`), and every other non-blank character alone (`,`, `.`).

The span (`lemma_span`) that uses a lemma of the synset, compared in lower case with `-` and
`_` taken as the same separator (`scot-free` is the lemma `scot_free`):
  1. consecutive tokens that, joined by `_`, are one of the lemmas or reach one through
     `WordNet.morphy` in the synset's part of speech (`ran` -> `run`, `backed up` ->
     `back_up`, `well known` -> `well-known`); the longest such span, then the leftmost;
  2. else a hyphenated token with a part that is or reaches a lemma the same way
     (`civic-minded` for `minded`, `long-stemmed` for `stemmed`: many adjectives are defined
     for such compounds); the span is the whole token, the leftmost such;
  3. else none: the example is counted as missed.
Measured on WordNet 3.0 (32,901 synsets with examples, 48,304 examples): 47,235 found by
rule 1, 234 by rule 2 (47,469 in all, of 32,514 synsets), 835 missed. A missed example uses
a lemma of the synset only apart (`She told the misbehaving student off` for `tell_off`),
only in another part of speech or by derivation (`he has been relegated` for `relegation`),
in a form morphy does not reach (`opacified`) or misspelt (`accusitive`), or not at all (a
synonym outside the synset, `a manic state` for `mental_state`; a quotation fragment,
`Seems, madam!`).

Held-out split (`split_by_synset`): by synset, so that every example of a held-out synset is
held out. A linker scores candidates against entity vectors, so a sense it never saw as a
gold label in training can still be linked; this split measures that, and it avoids the
leak of a by-example split, where the examples of one synset, which often share their
wording, would fall on both sides.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import NamedTuple, TypeVar

import numpy as np

from kgjax.data.wordnet import Synset, WordNet

T = TypeVar("T")

__all__ = [
    "Example",
    "GlossExamples",
    "gloss_examples",
    "split_by_group",
    "lemma_span",
    "split_by_synset",
    "tokenise",
]

_TOKEN = re.compile(r"\w+(?:[-']\w+)*|[^\w\s]")
_SEPARATORS = re.compile(r"[-_]")


class Example(NamedTuple):
    """A gloss example with the span that uses its synset's lemma.

    Attributes:
      tokens: the sentence's tokens (`tokenise`).
      span: (first, last) token positions, inclusive.
      synset: the gold synset's id.
    """

    tokens: tuple[str, ...]
    span: tuple[int, int]
    synset: str


@dataclasses.dataclass(frozen=True)
class GlossExamples:
    """The examples of some synsets, found and missed.

    Attributes:
      examples: those where a span is found, synset by synset in the order given, each
        synset's in gloss order.
      missed: (synset id, example text) of those where none is.
    """

    examples: tuple[Example, ...]
    missed: tuple[tuple[str, str], ...]

    @property
    def num_examples(self) -> int:
        """Examples read: found and missed."""
        return len(self.examples) + len(self.missed)


def tokenise(text: str) -> tuple[str, ...]:
    """The tokens of a sentence (module docstring)."""
    return tuple(_TOKEN.findall(text))


def _canonical(form: str) -> str:
    return _SEPARATORS.sub("_", form.lower())


def lemma_span(tokens: Sequence[str], synset: Synset, wordnet: WordNet) -> tuple[int, int] | None:
    """The span of a sentence that uses one of a synset's lemmas (the module docstring's rule).

    Args:
      tokens: the sentence's tokens.
      synset: the synset.
      wordnet: the WordNet database, for morphy.

    Returns:
      (first, last) token positions, inclusive; None if no lemma is found.
    """
    lemmas = {_canonical(lemma.name) for lemma in synset.lemmas}

    def uses_lemma(form: str) -> bool:
        return _canonical(form) in lemmas or any(
            _canonical(base) in lemmas for base in wordnet.morphy(form, synset.pos)
        )

    longest = max(len(_SEPARATORS.split(lemma)) for lemma in lemmas)
    for length in range(min(longest, len(tokens)), 0, -1):
        for first in range(len(tokens) - length + 1):
            if uses_lemma("_".join(tokens[first : first + length])):
                return first, first + length - 1
    for position, token in enumerate(tokens):
        parts = token.split("-")
        if len(parts) > 1 and any(uses_lemma(part) for part in parts if part):
            return position, position
    return None


def gloss_examples(wordnet: WordNet, synsets: Iterable[str] | None = None) -> GlossExamples:
    """The example sentences of synsets' glosses, each with the span that uses its lemma.

    Args:
      wordnet: the WordNet database.
      synsets: the synset ids to read, in order; every synset (file order) if None.

    Returns:
      The examples where a span is found and those where none is.

    Raises:
      KeyError: an id that is no synset.
    """
    ids = wordnet.synsets if synsets is None else synsets
    found, missed = [], []
    for synset_id in ids:
        synset = wordnet.synset(synset_id)
        for text in synset.examples:
            tokens = tokenise(text)
            span = lemma_span(tokens, synset, wordnet)
            if span is None:
                missed.append((synset.id, text))
            else:
                found.append(Example(tokens, span, synset.id))
    return GlossExamples(tuple(found), tuple(missed))


def split_by_synset(
    examples: Sequence[Example], held_out_fraction: float, seed: int
) -> tuple[tuple[Example, ...], tuple[Example, ...]]:
    """Holds out the examples of a seeded random share of their synsets (module docstring).

    Args:
      examples: the examples.
      held_out_fraction: the share of distinct synsets held out, rounded to a whole number.
      seed: seeds the draw; the same examples, fraction and seed give the same split.

    Returns:
      (train, held_out): the examples of the other and of the drawn synsets, in the order
      given; no synset has examples in both.

    Raises:
      ValueError: `held_out_fraction` is outside [0, 1].
    """
    return split_by_group(examples, lambda example: example.synset, held_out_fraction, seed)


def split_by_group(
    items: Sequence[T], group: Callable[[T], Hashable], held_out_fraction: float, seed: int
) -> tuple[tuple[T, ...], tuple[T, ...]]:
    """Holds out the items of a seeded random share of their groups: no group in both parts.

    Args:
      group: an item's group (its synset, its described entity, ...).
      held_out_fraction: the share of distinct groups held out, rounded to a whole number.
      seed: seeds the draw; the same items, fraction and seed give the same split.

    Returns:
      (train, held_out), each in the order given.

    Raises:
      ValueError: `held_out_fraction` is outside [0, 1].
    """
    if not 0 <= held_out_fraction <= 1:
        raise ValueError(f"held_out_fraction must be in [0, 1], got {held_out_fraction}")
    # Sorted, so that the draw does not depend on the order the items come in.
    groups = sorted({group(item) for item in items})
    num_held_out = round(held_out_fraction * len(groups))
    drawn = np.random.default_rng(seed).permutation(len(groups))[:num_held_out]
    held_out = {groups[i] for i in drawn}
    return (
        tuple(item for item in items if group(item) not in held_out),
        tuple(item for item in items if group(item) in held_out),
    )
