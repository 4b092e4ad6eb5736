"""WordNet candidate mentions and their candidate synsets with priors, for KnowBERT-W.

Host side only (plain Python and NumPy); never imports jax. Shapes: S candidate spans of a
sentence, C candidates per span.

KnowBERT (Peters et al., EMNLP 2019) links spans of a sentence to WordNet synsets with priors
that come from a candidate generator, not from the model. The rule here, for a sentence given
as a list of words:
  - every span of 1 to `max_span_words` consecutive words is tried (WordNet joins the words
    of a multiword lemma with `_`: `new_york`, `united_states`; 98.8% of WordNet 3.0's index
    lemmas have at most 3 words, the default);
  - its words, joined by `_`, go through `WordNet.morphy` in every part of speech (n, v, a,
    r): the form itself where it is a lemma, and the base forms of the exception lists and
    detachment rules (`banks` -> `bank`, `ran` -> `run`, `ran_away` -> `run_away`);
  - every sense of every lemma found is a candidate; a synset reached through several
    lemmas or parts of speech (`better` -> `good`, `well`) counts once, with the highest tag
    count it has among them;
  - a span is a candidate mention if it has at least one candidate;
  - the candidates are ordered by tag count (the number of times the sense is tagged in the
    semantic concordances, `index.sense`), most tagged first, ties in the order found (n, v,
    a, r; morphy's lemma order; WordNet's sense order); the first `max_candidates` are kept;
  - the prior of a kept candidate is (tag count + 1) / sum over the span's kept candidates of
    (tag count + 1): add-one smoothing, so that a never-tagged sense keeps some prior mass
    and the priors of a span sum to 1.
No stop words are removed and the part of speech of the word in context is not used: every
reading is a candidate, and choosing among them is the linker's job.

allenai/kb (`WordNetCandidateMentionGenerator`, `load_candidate_maps` in kb/wordnet.py) does
the same with spaCy's lemma of each word instead of morphy: spans of up to 6 words looked up
by their lemmas joined with spaces (`-` and `_` read as spaces) in a table of every WordNet
lemma, all parts of speech, the 30 most tagged candidates kept, priors (count + 1) / sum.
Its candidates are lemma senses mapped to their synsets, not merged by synset; here a synset
appears once per span.

Spans are word positions; mapping them to the encoder's word pieces (the first piece of the
first word to the last piece of the last word) is the text pipeline's job. `pad_candidates`
turns a sentence's candidates into the static arrays that
`kgjax.models.knowbert.KnowledgeAttentionRecontextualisation` takes, with synset ids replaced
by rows of the entity table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from kgjax.data.wordnet import PARTS, WordNet

# allenai/kb's max_number_candidates.
MAX_CANDIDATES = 30


@dataclasses.dataclass(frozen=True)
class Candidates:
    """A sentence's candidate mentions, each with its candidate synsets and their priors.

    Attributes:
      spans: (first, last) word positions of each span, inclusive, ordered by first then last.
      synsets: per span, the candidate synset ids (`kgjax.data.wordnet` ids), highest prior
        first.
      priors: per span, the priors of `synsets`, summing to 1.
    """

    spans: tuple[tuple[int, int], ...]
    synsets: tuple[tuple[str, ...], ...]
    priors: tuple[tuple[float, ...], ...]


class PaddedCandidates(NamedTuple):
    """A sentence's candidates as static arrays (named as KAR's arguments).

    Attributes:
      spans: int32 [S, 2] first and last word of each span; (0, 0) at padding.
      span_mask: bool [S], true at real spans.
      candidate_ids: int32 [S, C] entity-table rows of the candidates; 0 at padding.
      candidate_priors: float32 [S, C] the priors; 0 at padding.
      candidate_mask: bool [S, C], true at real candidates.
    """

    spans: np.ndarray
    span_mask: np.ndarray
    candidate_ids: np.ndarray
    candidate_priors: np.ndarray
    candidate_mask: np.ndarray


def find_candidates(
    words: Sequence[str],
    wordnet: WordNet,
    max_span_words: int = 3,
    max_candidates: int = MAX_CANDIDATES,
) -> Candidates:
    """The candidate mentions of a sentence and their synsets, by the module docstring's rule.

    Args:
      words: the sentence's words, in order (any case).
      wordnet: the WordNet database.
      max_span_words: the longest span tried, in words.
      max_candidates: the most candidates kept per span.

    Returns:
      The spans with at least one candidate, their candidates and priors.

    Raises:
      ValueError: `max_span_words` or `max_candidates` is below 1.
    """
    if max_span_words < 1 or max_candidates < 1:
        raise ValueError(
            f"max_span_words and max_candidates must be >= 1, got {max_span_words}, "
            f"{max_candidates}"
        )
    spans, synsets, priors = [], [], []
    for first in range(len(words)):
        for last in range(first, min(first + max_span_words, len(words))):
            counts = synset_tag_counts("_".join(words[first : last + 1]), wordnet)
            if not counts:
                continue
            # sorted() is stable: equal counts keep the order in which they were found.
            kept = sorted(counts.items(), key=lambda item: -item[1])[:max_candidates]
            total = sum(count + 1 for _, count in kept)
            spans.append((first, last))
            synsets.append(tuple(synset for synset, _ in kept))
            priors.append(tuple((count + 1) / total for _, count in kept))
    return Candidates(tuple(spans), tuple(synsets), tuple(priors))


def synset_tag_counts(
    form: str, wordnet: WordNet, parts: Sequence[str] = tuple(PARTS)
) -> dict[str, int]:
    """The synsets a word or collocation may name, each with its highest tag count.

    Args:
      form: a word or collocation (any case, `_` or blanks between words).
      wordnet: the WordNet database.
      parts: the parts of speech tried, in order (`n`, `v`, `a`, `r`).

    Returns:
      Synset id -> the highest tag count among the senses of `form`'s morphy lemmas that
      reach it, in the order found (parts, morphy's lemma order, WordNet's sense order).
    """
    counts: dict[str, int] = {}
    for part in parts:
        for lemma in wordnet.morphy(form, part):
            for sense in wordnet.senses(lemma, part):
                counts[sense.synset] = max(counts.get(sense.synset, 0), sense.tag_count)
    return counts


def pad_candidates(
    candidates: Candidates, rows: Mapping[str, int], num_spans: int, num_candidates: int
) -> PaddedCandidates:
    """Pads a sentence's candidates to S spans of C candidates.

    Args:
      candidates: `find_candidates`' result.
      rows: synset id -> row of the entity embedding table.
      num_spans: S.
      num_candidates: C.

    Returns:
      The arrays, real spans and candidates first.

    Raises:
      ValueError: more spans than S or a span with more candidates than C (a static budget
        too small for this sentence: raise it, or find fewer spans or candidates).
      KeyError: a candidate synset has no row.
    """
    if len(candidates.spans) > num_spans:
        raise ValueError(f"{len(candidates.spans)} candidate spans, more than S = {num_spans}")
    padded = PaddedCandidates(
        spans=np.zeros((num_spans, 2), np.int32),
        span_mask=np.zeros(num_spans, bool),
        candidate_ids=np.zeros((num_spans, num_candidates), np.int32),
        candidate_priors=np.zeros((num_spans, num_candidates), np.float32),
        candidate_mask=np.zeros((num_spans, num_candidates), bool),
    )
    for s, (span, synsets, priors) in enumerate(
        zip(candidates.spans, candidates.synsets, candidates.priors, strict=True)
    ):
        if len(synsets) > num_candidates:
            raise ValueError(
                f"span {span} has {len(synsets)} candidates, more than C = {num_candidates}"
            )
        missing = [synset for synset in synsets if synset not in rows]
        if missing:
            raise KeyError(f"no entity-table row for synset {missing[0]!r} (span {span})")
        padded.spans[s] = span
        padded.span_mask[s] = True
        padded.candidate_ids[s, : len(synsets)] = [rows[synset] for synset in synsets]
        padded.candidate_priors[s, : len(synsets)] = priors
        padded.candidate_mask[s, : len(synsets)] = True
    return padded
