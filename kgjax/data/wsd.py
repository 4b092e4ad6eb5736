"""All-words word-sense disambiguation sets: a NAF reader, WordNet 3.0 gold, the MFS baseline.

Host side only (plain Python); never imports jax. Evaluates KnowBERT-W's linker (and any
system that names WordNet 3.0 synsets) on sense-tagged running text.

Files (../shared/data/wsd, rubenIzquierdo/wsd_corpora, one NAF XML file per document,
`d00.naf`, `d01.naf`, ...): `senseval2/`, the Senseval-2 English all-words task (3 documents)
tagged with WordNet 1.7.1 senses, and `semeval2007_task17/`, the SemEval-2007 task 17 English
all-words task (3 documents) tagged with WordNet 2.1 senses. Each file holds
  - `<text>`: the tokens, `<wf id="w0" sent="0">I</wf>`, in document order; a token's
    `sent` names its sentence (Senseval-2 counts from 1, SemEval-2007 from 0);
  - `<terms>`: `<term id=".." lemma=".." pos="..">` with `<span><target id="w0"/></span>`
    (every term of these sets spans one token, a multiword one written as one token:
    `taken_up`, `change-ringing`) and, for the sense-tagged terms, `<externalReferences>`:
    - Senseval-2: `reftype="lexical_key"`, the part of a sense key after `%` (`1:09:00::`),
      so the key is the term's lemma, `%` and that (`art%1:09:00::`); several keys are
      separated by `;` (108 terms);
    - SemEval-2007: `reftype="sense"`, whole keys (`refer%2:32:01::`), one per reference
      (one term, `shape` in d02, has two references);
    - in both, `U` (unassignable: the annotators found no fitting sense) as a key.
    Other references (`original_id`, `sense_number`, `synset`) are not read (below).
Sentences are the tokens grouped by `sent`, in order; tokens outside every term
(Senseval-2's punctuation) are kept. A term's part of speech is read from its Penn Treebank
tag: `pos` in Senseval-2, `morphofeat` in SemEval-2007, where `pos` holds ixa-pipe's coarse
letter; both are automatic tags by the files' headers (a Brill tagger and ixa-pipe-pos-en),
so a tag can disagree with the gold key (`exercise` tagged JJ, its key a noun sense).

Mapping to WordNet 3.0 (`Term.synsets`): each gold key is looked up, as given, in WordNet
3.0's `index.sense` (`WordNet.sense`); a key that is not there, and `U`, maps to nothing.
Sense keys name a lemma's sense by lexicographer file and lex_id, so a sense that kept those
keeps its key across versions; one that moved, split or was dropped does not. Measured:
  - Senseval-2: 2,473 tagged terms, 2,589 keys, of which 89 `U`, 2,350 map and 150 do not;
    2,248 terms have a mapped key. Of the 150: 35 are keys of lemmas that WordNet 3.0 does
    not have in that part of speech (the modal verbs `would`, `must`, `might` as `%2:42:`,
    `n't`, the adverbs `how`, `when`, `why`, the superlatives `biggest`, `oldest`,
    `smallest` as lemmas, `something`, `in_check`, ...); 102 are keys of lemmas it has but
    not with that key (`can%2:42:00::`, `test%1:09:01::`, `mr%1:18:00::`, satellites whose
    head word changed, `nationwide%5:00:00:wide:00`, ...); 13 write a satellite's head word
    with its syntactic marker (`proper%5:00:00:real(a):02`), which senseidx(5WN) head words
    never carry: 12 of them would be WordNet 3.0 keys without it. No key is rewritten, so
    they count as not mapped.
  - SemEval-2007: 465 tagged terms, 466 keys, of which 10 `U`, 455 map and 1 does not
    (`undergo%2:39:00::`: WordNet 3.0's one `undergo` key is `undergo%2:39:04::`, another
    lex_id); 454 terms have a mapped key.
The Senseval-2 files also give 2,225 terms a `WordNet-eng30` synset (a Princeton offset, the
converter's own mapping, its method not stated). It is not read, so that the gold stays what
the annotators wrote: against the rule above it names the same synset for 2,135 terms, another
synset for 4 (`stairs%1:06:00::`, `violate%2:42:00::`, ...), and a synset for 86 terms
none of whose keys map.

Most frequent sense (`most_frequent_sense`) and scoring (`score`), as the standard WSD
scorer (Raganato et al., EACL 2017) counts: precision = correct / attempted, recall =
correct / total, F1 their harmonic mean; an answer is correct if it is one of the term's
gold synsets.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import xml.etree.ElementTree as ElementTree
from collections.abc import Collection, Sequence
from typing import NamedTuple

from kgjax.data.triples import DataError
from kgjax.data.wordnet import PARTS, WordNet
from kgjax.data.wordnet_candidates import synset_tag_counts

__all__ = [
    "FOLDER",
    "SETS",
    "UNASSIGNABLE",
    "Counts",
    "Document",
    "Scores",
    "Term",
    "WsdSet",
    "load_wsd",
    "most_frequent_sense",
    "score",
    "score_answers",
]

FOLDER = "wsd"
SETS = ("senseval2", "semeval2007_task17")
# The key the annotators gave when no sense fits.
UNASSIGNABLE = "U"
# The references that hold gold keys: a key's part after `%` (Senseval-2), or a whole key.
_LEXICAL_KEY, _SENSE_KEY = "lexical_key", "sense"
# Penn Treebank tags -> WordNet parts of speech; other tags (IN, DT, CD, FW, ...) name none.
# The modal MD is a verb: WordNet 1.7.1 has modal verb senses (`can%2:42:00::`).
_PENN_PARTS = {
    **dict.fromkeys(("NN", "NNS", "NNP", "NNPS"), "n"),
    **dict.fromkeys(("VB", "VBD", "VBG", "VBN", "VBP", "VBZ", "MD"), "v"),
    **dict.fromkeys(("JJ", "JJR", "JJS"), "a"),
    **dict.fromkeys(("RB", "RBR", "RBS", "WRB"), "r"),
}


class Term(NamedTuple):
    """A sense-tagged term.

    Attributes:
      id: the term's id in its file (`t10`).
      sentence: its sentence, an index into `Document.sentences`.
      tokens: its token positions in that sentence, in order.
      lemma: its lemma as written (`_` joins a collocation's words).
      tag: its Penn Treebank tag as written ('' if none).
      pos: the WordNet part of speech of `tag` (`n`, `v`, `a`, `r`), '' for another tag.
      keys: the gold sense keys as given, `U` included (Senseval-2's with the lemma added).
      synsets: per key, its WordNet 3.0 synset id, None for a key not in `index.sense`.
    """

    id: str
    sentence: int
    tokens: tuple[int, ...]
    lemma: str
    tag: str
    pos: str
    keys: tuple[str, ...]
    synsets: tuple[str | None, ...]

    @property
    def gold(self) -> frozenset[str]:
        """The WordNet 3.0 synsets of its mapped keys; empty if none maps."""
        return frozenset(s for s in self.synsets if s is not None)


@dataclasses.dataclass(frozen=True)
class Document:
    """One file of a set.

    Attributes:
      name: the file's name without `.naf` (`d00`).
      sentences: the tokens of each sentence, in order.
      terms: the sense-tagged terms, in file order.
    """

    name: str
    sentences: tuple[tuple[str, ...], ...]
    terms: tuple[Term, ...]


class Counts(NamedTuple):
    """How much of a set there is and how much of its gold maps to WordNet 3.0.

    Attributes:
      num_documents: files.
      num_sentences: sentences.
      num_tokens: tokens.
      num_terms: sense-tagged terms.
      num_keys: gold keys, `U` included.
      num_unassignable: `U` keys.
      num_keys_mapped: keys found in WordNet 3.0's `index.sense`.
      num_terms_mapped: terms with at least one mapped key.
    """

    num_documents: int
    num_sentences: int
    num_tokens: int
    num_terms: int
    num_keys: int
    num_unassignable: int
    num_keys_mapped: int
    num_terms_mapped: int


@dataclasses.dataclass(frozen=True)
class WsdSet:
    """An evaluation set: its documents in file-name order.

    Attributes:
      name: the folder's name (`senseval2`).
      documents: the documents.
    """

    name: str
    documents: tuple[Document, ...]

    @property
    def terms(self) -> tuple[Term, ...]:
        """Every sense-tagged term, document by document."""
        return tuple(term for document in self.documents for term in document.terms)

    def counts(self) -> Counts:
        """The set's `Counts`."""
        terms = self.terms
        keys = [key for term in terms for key in term.keys]
        return Counts(
            num_documents=len(self.documents),
            num_sentences=sum(len(d.sentences) for d in self.documents),
            num_tokens=sum(len(s) for d in self.documents for s in d.sentences),
            num_terms=len(terms),
            num_keys=len(keys),
            num_unassignable=keys.count(UNASSIGNABLE),
            num_keys_mapped=sum(s is not None for term in terms for s in term.synsets),
            num_terms_mapped=sum(bool(term.gold) for term in terms),
        )


def load_wsd(name: str, wordnet: WordNet, data_dir: str | os.PathLike | None = None) -> WsdSet:
    """Reads an evaluation set and maps its gold keys to WordNet 3.0 (module docstring).

    Args:
      name: one of `SETS`.
      wordnet: the WordNet 3.0 database.
      data_dir: holds `wsd/<name>/`; `$KGJAX_DATA_DIR` if None.

    Returns:
      The set, documents in file-name order.

    Raises:
      ValueError: `name` is not one of `SETS`.
      DataError: no data folder given, a missing folder or one without `.naf` files, or a
        file that is not well-formed XML or not the layout above (file and element named).
    """
    if name not in SETS:
        raise ValueError(f"unknown WSD set {name!r}; one of {SETS}")
    root = data_dir if data_dir is not None else os.environ.get("KGJAX_DATA_DIR") or None
    if root is None:
        raise DataError(f"no data_dir given and KGJAX_DATA_DIR not set: where is {FOLDER}/?")
    folder = pathlib.Path(os.path.expanduser(root)) / FOLDER / name
    if not folder.is_dir():
        raise DataError(f"{folder}: WSD set folder not found")
    paths = sorted(folder.glob("*.naf"))
    if not paths:
        raise DataError(f"{folder}: no .naf files")
    return WsdSet(name, tuple(_read_document(path, wordnet) for path in paths))


def _read_document(path: pathlib.Path, wordnet: WordNet) -> Document:
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as e:
        raise DataError(f"{path}: not well-formed XML ({e})") from None
    sentences: list[list[str]] = []
    where: dict[str, tuple[int, int]] = {}  # token id -> (sentence, position)
    sentence_ids: dict[str, int] = {}
    for wf in root.iterfind("text/wf"):
        token_id, sentence_id, text = wf.get("id"), wf.get("sent"), wf.text
        if token_id is None or sentence_id is None or not text:
            raise DataError(f"{path}: a <wf> without id, sent or text: {_show(wf)}")
        if sentence_id not in sentence_ids:
            sentence_ids[sentence_id] = len(sentences)
            sentences.append([])
        sentence = sentence_ids[sentence_id]
        where[token_id] = (sentence, len(sentences[sentence]))
        sentences[sentence].append(text)
    if not sentences:
        raise DataError(f"{path}: no <text>/<wf> tokens")
    terms = []
    for element in root.iterfind("terms/term"):
        try:
            term = _term(element, where, wordnet)
        except ValueError as e:
            raise DataError(f"{path}: {e}: {_show(element)}") from None
        if term is not None:
            terms.append(term)
    return Document(path.stem, tuple(tuple(s) for s in sentences), tuple(terms))


def _term(
    element: ElementTree.Element, where: dict[str, tuple[int, int]], wordnet: WordNet
) -> Term | None:
    """The sense-tagged term of a <term> element; None for a term without gold keys."""
    lemma = element.get("lemma")
    keys = []
    for ref in element.iterfind("externalReferences/externalRef"):
        reftype = ref.get("reftype")
        if reftype not in (_LEXICAL_KEY, _SENSE_KEY):
            continue
        for key in (ref.get("reference") or "").split(";"):
            if not key:
                raise ValueError("an empty sense key")
            lexical = reftype == _LEXICAL_KEY and key != UNASSIGNABLE
            keys.append(f"{lemma}%{key}" if lexical else key)
    if not keys:
        return None
    if not element.get("id") or not lemma:
        raise ValueError("a sense-tagged term without id or lemma")
    targets = [target.get("id") for target in element.iterfind("span/target")]
    if not targets or any(t not in where for t in targets):
        raise ValueError(f"span {targets} is not a list of token ids of <text>")
    sentences = {where[t][0] for t in targets}
    if len(sentences) != 1:
        raise ValueError(f"span {targets} crosses sentences")
    tag = element.get("morphofeat") or element.get("pos") or ""
    return Term(
        id=element.get("id"),
        sentence=sentences.pop(),
        tokens=tuple(where[t][1] for t in targets),
        lemma=lemma,
        tag=tag,
        pos=_PENN_PARTS.get(tag, ""),
        keys=tuple(keys),
        synsets=tuple(_synset(key, wordnet) for key in keys),
    )


def _synset(key: str, wordnet: WordNet) -> str | None:
    try:
        return wordnet.sense(key).synset
    except KeyError:
        return None


def _show(element: ElementTree.Element) -> str:
    return ElementTree.tostring(element, encoding="unicode")[:200].strip()


def most_frequent_sense(terms: Sequence[Term], wordnet: WordNet) -> tuple[str | None, ...]:
    """The most-frequent-sense baseline: each term's most tagged candidate synset.

    A term's candidates are the senses of its lemma's morphy lemmas in its part of speech (in
    all four where it has none), each synset once with its highest tag count
    (`wordnet_candidates.synset_tag_counts`); the answer is the most tagged, ties in the
    order found (WordNet's sense order).

    Args:
      terms: the terms to answer.
      wordnet: the WordNet 3.0 database.

    Returns:
      Per term, the answer's synset id; None where the lemma has no candidate.
    """
    answers = []
    for term in terms:
        counts = synset_tag_counts(term.lemma, wordnet, (term.pos,) if term.pos else PARTS)
        # max() keeps the first of equal counts: the order found.
        answers.append(max(counts, key=counts.__getitem__) if counts else None)
    return tuple(answers)


class Scores(NamedTuple):
    """A system's answers scored against the gold (module docstring).

    Attributes:
      correct: answers among their term's gold synsets.
      attempted: answers given (not None).
      total: terms.
      precision: correct / attempted (0 if nothing was attempted).
      recall: correct / total (0 if there are no terms).
      f1: 2 precision recall / (precision + recall) (0 if both are 0).
    """

    correct: int
    attempted: int
    total: int
    precision: float
    recall: float
    f1: float


def score(answers: Sequence[str | None], terms: Sequence[Term]) -> Scores:
    """Scores one answer per term as the standard WSD scorer does.

    Args:
      answers: per term, a synset id, or None for no answer.
      terms: the terms, whose `gold` synsets are the correct answers (a term without a
        mapped key cannot be answered correctly, and still counts in the total).

    Returns:
      The `Scores`.

    Raises:
      ValueError: `answers` and `terms` differ in length.
    """
    if len(answers) != len(terms):
        raise ValueError(f"{len(answers)} answers for {len(terms)} terms")
    return score_answers(answers, [t.gold for t in terms])


def score_answers(answers: Sequence[str | None], golds: Sequence[Collection[str]]) -> Scores:
    """`score` for any keys: one answer (or None) per item against its set of gold keys (an
    entity linker's mentions as well as WSD terms).

    Raises:
      ValueError: `answers` and `golds` differ in length.
    """
    if len(answers) != len(golds):
        raise ValueError(f"{len(answers)} answers for {len(golds)} items")
    correct = sum(a is not None and a in g for a, g in zip(answers, golds, strict=True))
    attempted = sum(a is not None for a in answers)
    precision = correct / attempted if attempted else 0.0
    recall = correct / len(golds) if golds else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Scores(correct, attempted, len(golds), precision, recall, f1)
