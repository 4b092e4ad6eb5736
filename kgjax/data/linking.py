"""Entity linking in description texts: which other entities of the graph a text mentions.

The linked description corpus of FB15k-237 (JAKET's text pre-training, KnowBERT's entity
linker): each entity's description with the spans that name other entities of the graph.

Host side only (plain Python and NumPy); never imports jax. Shapes: V entities; offsets are
character positions in a text, `end` exclusive.

Aliases (`AliasTable`, `read_aliases`), from a dataset folder laid out like
`../shared/data/fb15k-237/` (its README):
  - the KG-BERT name (`kg-bert/entity2text.txt`), less the Freebase language-variant suffix
    "-GB" or "-US" that 164 names carry ("Actor-GB", "Avril Lavigne-US");
  - the Wikidata label and `alternatives` (`wikidata/entity2wikidata.json`, a JSON object
    mid -> {"label": str, "alternatives": [str] or null, "description", "wikidata_id",
    "wikipedia"}).
  Only the entities of the vocabulary get aliases (kg-bert also names 410 FB15k entities that
  FB15k-237 dropped).

Normalisation. Enclosing quote characters are stripped ("'' My Fair Lady ''"). A string
(alias or text) is split into tokens, maximal runs of word characters (`\\w`, Unicode) and
single other non-space characters, so whitespace and spacing around punctuation never matter
("Denton,Texas" = "Denton , Texas"). Each token is NFKC-normalised, typographic apostrophes
become "'", and it is case-folded; the alias's key is its tuple of tokens. Case still counts
in two ways:
  - Upper-case acronyms (letters all upper case, 2 to 5 of them: "US", "U.S.", "UK", "NASA")
    are matched exactly (key of the unfolded tokens), since their folded forms are ordinary
    words ("us", "it").
  - A word of an alias written with a capital initial needs a capital initial in the text,
    except a leading "The" (running text writes "the Beatles"). Wikidata writes common nouns
    in lower case ("actor", "island") and names capitalised ("Club" for Club Necaxa, "Island"
    for Iceland, "May" the month), so "club", "island" and "may" in running text are not
    taken for those names, while "Island" may still be either.

Dropped aliases (counted in `AliasTable.dropped`): no letter at all (numbers, punctuation,
emoji: "1999", "$", a flag); then, acronyms apart ("US" stays), fewer than 3 letters and
digits ("W", "en", "it") or every word token a stop word (`STOP_WORDS`) or a number ("The",
"the US", "Being There").

Linking (`link_texts`): a text is scanned left to right over token starts; at each start the
longest alias that matches the next tokens wins and the scan resumes after it (greedy longest
match, no overlapping mentions). Where a match may begin and end:
  - Never right after a hyphen, apostrophe or full stop that joins two words ("Holstein" in
    "Schleswig-Holstein", "Brien" in "O'Brien"); a match may end before a joining hyphen or
    apostrophe ("Chicago" in "Chicago-based", "France" in "France's") but not before a joining
    full stop ("the U", University of Miami's nickname, is not a mention in "the U.S.", nor
    "Amazon" in "Amazon.com").
  - One exception to greedy: a match beginning with "the" gives way to a match from its next
    token that ends at least as late ("the Academy" in "the Academy Award for Best Actor").
  - A match whose last word has a capital initial and is followed, after white space only, by
    another capitalised word is no mention: it is the start of a longer name that the table
    lacks ("Laura" of "Laura Ziskin", "Chandler" of "Dorothy Chandler Pavilion", "Film" of
    "National Film Awards").
Which entity a match denotes:
  - An alias that may denote the described entity itself is a self-mention: recorded in
    `LinkedText.self_mentions`, never linked to another candidate (the described entity's own
    name names it, not a namesake).
  - Otherwise, one candidate: linked (rule "unique"). Several: the candidates adjacent to the
    described entity in the training graph (any relation, either direction) are preferred;
    among several neighbours the one of highest training degree wins (rule "adjacency"); with
    no neighbour among them, the candidate of highest training degree (rule "degree", the
    popularity prior; a consumer that wants adjacency-resolved links only drops these). Ties
    in degree go to the alphabetically first key. The training degree is the number of
    training triples the entity takes part in (a self-loop counts once).

The corpus is written as JSON lines (`write_jsonl`, `read_jsonl`), one text per line:
  {"entity": key, "text": str, "mentions": [[start, end, entity, candidates, rule], ...],
   "self_mentions": [[start, end], ...]}
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import pathlib
import re
import statistics
import unicodedata
from collections.abc import Iterable, Mapping, Sequence

from kgjax.data import descriptions, triples
from kgjax.data.triples import DataError

NAME_FILE = descriptions.ENTITY_SOURCES["kg-bert"]
WIKIDATA_FILE = descriptions.ENTITY_SOURCES["wikidata"]
RULES = ("unique", "adjacency", "degree")
ALIAS_SOURCES = ("kg-bert name", "wikidata label", "wikidata alias")
# English function words; an alias made of these (and numbers) only would match everywhere.
STOP_WORDS = frozenset({
    "a", "about", "above", "after", "again", "against", "all", "also", "am", "an", "and", "any",
    "are", "as", "at", "be", "because", "been", "before", "being", "below", "between", "both",
    "but", "by", "can", "could", "did", "do", "does", "doing", "down", "during", "each", "few",
    "for", "from", "further", "had", "has", "have", "having", "he", "her", "here", "hers",
    "herself", "him", "himself", "his", "how", "i", "if", "in", "into", "is", "it", "its",
    "itself", "just", "me", "more", "most", "my", "myself", "no", "nor", "not", "now", "of",
    "off", "on", "once", "one", "only", "or", "other", "our", "ours", "ourselves", "out", "over",
    "own", "same", "she", "should", "so", "some", "such", "than", "that", "the", "their",
    "theirs", "them", "themselves", "then", "there", "these", "they", "this", "those", "through",
    "to", "too", "under", "until", "up", "us", "very", "was", "we", "were", "what", "when",
    "where", "which", "while", "who", "whom", "why", "will", "with", "would", "you", "your",
    "yours", "yourself", "yourselves",
})  # fmt: skip
_TOKEN = re.compile(r"\w+|[^\w\s]")
_LETTER = re.compile(r"[^\W\d_]")
_ALNUM = re.compile(r"[^\W_]")
_QUOTES = "'\"`‘’“”«»„"
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "ʼ": "'"})
# Characters that join two words into one: a mention never starts right after one of them (the
# second half of "Schleswig-Holstein", "O'Brien", "U.S.") nor ends right before a joining full
# stop ("U" of "U.S.").
_START_JOINERS = frozenset("-‐'’.")
_END_JOINERS = frozenset(".")
# Freebase's en-GB / en-US name variants, as kg-bert's names keep them ("Actor-GB").
_VARIANT_SUFFIX = re.compile(r"-(GB|US)$")
_MAX_ACRONYM_LETTERS = 5
_MIN_CHARACTERS = 3


@dataclasses.dataclass(frozen=True)
class AliasTable:
    """Normalised aliases and the entities each may denote.

    Attributes:
      folded: case-folded token tuple -> {the positions of its tokens that need a capital
        initial in the text -> the entity keys it may denote (sorted)}.
      exact: an acronym's token tuple, case kept -> its entity keys (sorted).
      dropped: reason ("no letter", "too short", "stop words") -> how many distinct
        (alias, entity) pairs were dropped for it.
    """

    folded: Mapping[tuple[str, ...], Mapping[tuple[int, ...], tuple[str, ...]]]
    exact: Mapping[tuple[str, ...], tuple[str, ...]]
    dropped: Mapping[str, int]

    @classmethod
    def build(cls, aliases: Iterable[tuple[str, str]]) -> AliasTable:
        """Normalises (entity key, alias) pairs into a table (rules in the module docstring)."""
        folded = collections.defaultdict(lambda: collections.defaultdict(set))
        exact = collections.defaultdict(set)
        dropped = collections.Counter()
        seen = set()
        for entity, alias in aliases:
            alias = alias.strip().strip(_QUOTES).strip()
            if (entity, alias) in seen:
                continue
            seen.add((entity, alias))
            written = normalised_tokens(alias)
            kind = _kind(alias, written)
            if kind == "acronym":
                exact[tuple(written)].add(entity)
            elif kind == "name":
                folded[tuple(t.casefold() for t in written)][_capitals(written)].add(entity)
            else:
                dropped[kind] += 1
        return cls(
            folded={
                k: {caps: tuple(sorted(v)) for caps, v in by_caps.items()}
                for k, by_caps in folded.items()
            },
            exact={k: tuple(sorted(v)) for k, v in exact.items()},
            dropped=dict(dropped),
        )

    def __len__(self) -> int:
        return len(self.folded) + len(self.exact)

    def candidates(self, mention: str) -> tuple[str, ...]:
        """The entities a whole string, as written in a text, may denote (sorted)."""
        return self.lookup(normalised_tokens(mention))

    def lookup(self, written: Sequence[str]) -> tuple[str, ...]:
        """The entities that a run of tokens as written (`normalised_tokens`) may denote (sorted)."""
        written = tuple(written)
        found = set(self.exact.get(written, ()))
        for caps, entities in self.folded.get(tuple(t.casefold() for t in written), {}).items():
            if all(_capital(written[i]) for i in caps):
                found.update(entities)
        return tuple(sorted(found))


@dataclasses.dataclass(frozen=True)
class Mention:
    """A span of a text linked to an entity.

    Attributes:
      start, end: character offsets in the text, `end` exclusive.
      entity: the linked entity's key.
      candidates: how many entities the matched alias may denote (1: unambiguous).
      rule: how the entity was chosen, one of `RULES`.
    """

    start: int
    end: int
    entity: str
    candidates: int
    rule: str


@dataclasses.dataclass(frozen=True)
class LinkedText:
    """One entity's description with its mentions of other entities.

    Attributes:
      entity: the described entity's key.
      text: the description.
      mentions: the other entities' mentions, in text order, never overlapping.
      self_mentions: (start, end) of the spans naming the described entity itself.
    """

    entity: str
    text: str
    mentions: tuple[Mention, ...]
    self_mentions: tuple[tuple[int, int], ...] = ()


@dataclasses.dataclass(frozen=True)
class TrainingGraph:
    """What the linker needs of the training graph.

    Attributes:
      neighbours: entity key -> the keys it shares a training triple with (either direction).
      degree: entity key -> the number of training triples it takes part in.
    """

    neighbours: Mapping[str, frozenset[str]]
    degree: Mapping[str, int]

    @classmethod
    def build(cls, train: Iterable[tuple[str, str, str]]) -> TrainingGraph:
        """From (head, relation, tail) key triples."""
        pairs = [(head, tail) for head, _, tail in train]
        neighbours = collections.defaultdict(set)
        for head, tail in pairs:
            neighbours[head].add(tail)
            neighbours[tail].add(head)
        degree = collections.Counter(head for head, _ in pairs)
        degree.update(tail for head, tail in pairs if tail != head)
        return cls({k: frozenset(v) for k, v in neighbours.items()}, dict(degree))


def token_spans(text: str) -> list[tuple[int, int]]:
    """The (start, end) character offsets of the text's tokens (module docstring)."""
    return [m.span() for m in _TOKEN.finditer(text)]


def normalised_tokens(text: str) -> list[str]:
    """The text's tokens, normalised but not case-folded (module docstring)."""
    return [_normalise_token(m.group()) for m in _TOKEN.finditer(text)]


def _normalise_token(token: str) -> str:
    if token.isascii():  # NFKC and the apostrophes change only non-ASCII tokens
        return token
    return unicodedata.normalize("NFKC", token).translate(_APOSTROPHES)


def _capital(token: str) -> bool:
    return token[:1].isupper()


def _capitals(tokens: Sequence[str]) -> tuple[int, ...]:
    """The positions of an alias's tokens written with a capital initial, a leading "The"
    excepted."""
    return tuple(
        i for i, t in enumerate(tokens) if _capital(t) and not (i == 0 and t.casefold() == "the")
    )


def _kind(alias: str, tokens: Sequence[str]) -> str:
    """The alias's kind, "acronym" or "name", or why it is dropped (`tokens` are its tokens)."""
    letters = "".join(_LETTER.findall(alias))
    if not letters:
        return "no letter"
    if 2 <= len(letters) <= _MAX_ACRONYM_LETTERS and letters.isupper():
        return "acronym"
    if len(_ALNUM.findall(alias)) < _MIN_CHARACTERS:
        return "too short"
    if all(t.casefold() in STOP_WORDS or t.isdigit() for t in tokens if _ALNUM.match(t)):
        return "stop words"
    return "name"


def read_wikidata_ids(dataset_dir: str | os.PathLike, keys: Sequence[str]) -> dict[str, str]:
    """Wikidata Q-id -> entity key, for the entities of `keys` that
    `wikidata/entity2wikidata.json` links (FewRel names its entities by Q-id).

    Raises:
      DataError: the file is missing or an entry has no string `wikidata_id`.
    """
    path = pathlib.Path(dataset_dir) / WIKIDATA_FILE
    if not path.is_file():
        raise DataError(f"{path}: no such file (Wikidata ids of the entities)")
    entries = descriptions.read_json_file(path)
    if not isinstance(entries, dict):
        raise DataError(f"{path}: expected a JSON object mid -> entry")
    wanted, out = set(keys), {}
    for key, entry in entries.items():
        if key not in wanted:
            continue
        qid = entry.get("wikidata_id") if isinstance(entry, dict) else None
        if not isinstance(qid, str):
            raise DataError(f"{path}: entry {key!r} has no string 'wikidata_id'")
        out[qid] = key
    return out


def read_aliases(dataset_dir: str | os.PathLike, keys: Sequence[str]) -> AliasTable:
    """The alias table of a dataset's entities: kg-bert names, Wikidata labels and aliases.

    Args:
      dataset_dir: the dataset's folder, e.g. `../shared/data/fb15k-237`. Both files are
        optional, but at least one must be there.
      keys: the entity keys (the vocabulary); aliases of other keys are ignored.

    Returns:
      The table (rules in the module docstring).

    Raises:
      DataError: neither file is there, or one is malformed (the file, and the line or the
        entry, named).
    """
    pairs = read_alias_pairs(dataset_dir, keys)
    return AliasTable.build(pair for source in ALIAS_SOURCES for pair in pairs[source])


def read_alias_pairs(
    dataset_dir: str | os.PathLike, keys: Sequence[str]
) -> dict[str, list[tuple[str, str]]]:
    """The (entity key, alias) pairs `read_aliases` builds its table from, by source.

    Args and Raises: as `read_aliases`.

    Returns:
      {source: pairs} for each of `ALIAS_SOURCES` ("kg-bert name" without its "-GB"/"-US"
      suffix, "wikidata label", "wikidata alias"), in file order, not yet normalised; a
      source whose file is absent has no pairs.
    """
    folder = pathlib.Path(dataset_dir)
    wanted = set(keys)
    pairs = {source: [] for source in ALIAS_SOURCES}
    names, wikidata = folder / NAME_FILE, folder / WIKIDATA_FILE
    if not names.is_file() and not wikidata.is_file():
        raise DataError(f"{folder}: neither {NAME_FILE} nor {WIKIDATA_FILE} found")
    if names.is_file():
        for key, name in descriptions.read_key_text_file(names).items():
            if key in wanted and name:
                pairs["kg-bert name"].append((key, _VARIANT_SUFFIX.sub("", name)))
    if wikidata.is_file():
        entries = descriptions.read_json_file(wikidata)
        if not isinstance(entries, dict):
            raise DataError(f"{wikidata}: expected a JSON object mid -> entry")
        for key, entry in entries.items():
            if key not in wanted:
                continue
            label = entry.get("label") if isinstance(entry, dict) else None
            alternatives = entry.get("alternatives") if isinstance(entry, dict) else None
            alternatives = [] if alternatives is None else alternatives
            strings = [label] if label is not None else []
            if (
                not isinstance(entry, dict)
                or not isinstance(alternatives, list)
                or not all(isinstance(s, str) for s in [*strings, *alternatives])
            ):
                raise DataError(
                    f"{wikidata}: entry {key!r}: expected an object with a string 'label' "
                    f"and a list of strings 'alternatives', got {str(entry)[:120]!r}"
                )
            pairs["wikidata label"].extend((key, s) for s in strings)
            pairs["wikidata alias"].extend((key, s) for s in alternatives)
    return pairs


@dataclasses.dataclass(frozen=True)
class _Tokens:
    """A text's tokens [L]: (start, end) offsets, the text between consecutive tokens [L - 1],
    folded and unfolded forms, and whether a mention may start at / end with each."""

    spans: list[tuple[int, int]]
    gaps: list[str]
    folded: list[str]
    written: list[str]
    may_start: list[bool]
    may_end: list[bool]

    def name_goes_on(self, k: int) -> bool:
        """Whether token k and the next token, separated by white space only, both have
        capital initials."""
        return (
            k + 1 < len(self.spans)
            and _capital(self.written[k])
            and _capital(self.written[k + 1])
            and self.gaps[k].isspace()
        )

    @classmethod
    def of(cls, text: str) -> _Tokens:
        spans = token_spans(text)
        # joiner[k]: token k is one character gluing the word tokens k-1 and k+1 together.
        joiner = [
            0 < k < len(spans) - 1
            and spans[k - 1][1] == s
            and e == spans[k + 1][0]
            and text[s - 1].isalnum()
            and text[e].isalnum()
            and text[s:e]
            for k, (s, e) in enumerate(spans)
        ]
        written = [_normalise_token(text[s:e]) for s, e in spans]
        return cls(
            spans=spans,
            gaps=[text[spans[k][1] : spans[k + 1][0]] for k in range(len(spans) - 1)],
            folded=[t.casefold() for t in written],
            written=written,
            may_start=[not (k and joiner[k - 1] in _START_JOINERS) for k in range(len(spans))],
            may_end=[
                not (k + 1 < len(spans) and joiner[k + 1] in _END_JOINERS)
                for k in range(len(spans))
            ],
        )


def _prefixes(keys: Iterable[tuple[str, ...]]) -> frozenset[tuple[str, ...]]:
    return frozenset(key[:n] for key in keys for n in range(1, len(key) + 1))


class Linker:
    """Links texts against an alias table and a training graph (rules in the module docstring).

    Args:
      aliases: the alias table.
      graph: the training graph (adjacency and degrees).
    """

    def __init__(self, aliases: AliasTable, graph: TrainingGraph):
        self.aliases = aliases
        self.graph = graph
        # Every prefix of every key: the scan extends a match only while it is still a prefix.
        self._folded_prefixes = _prefixes(aliases.folded)
        self._exact_prefixes = _prefixes(aliases.exact)

    def _longest(self, tokens: _Tokens, i: int) -> tuple[int, tuple[str, ...]]:
        """(length in tokens, candidates) of the longest alias matching at token i; (0, ())."""
        lengths = set()
        for prefixes, forms in (
            (self._folded_prefixes, tokens.folded),
            (self._exact_prefixes, tokens.written),
        ):
            j = i
            while j < len(forms) and tuple(forms[i : j + 1]) in prefixes:
                j += 1
                lengths.add(j - i)
        for n in sorted(lengths, reverse=True):
            if not tokens.may_end[i + n - 1]:
                continue
            found = self.aliases.lookup(tokens.written[i : i + n])
            if found:
                return n, found
        return 0, ()

    def _resolve(self, entity: str, candidates: tuple[str, ...]) -> tuple[str, str]:
        """(linked entity, rule) among candidates, `entity` (the described one) not among them."""
        if len(candidates) == 1:
            return candidates[0], "unique"
        neighbours = self.graph.neighbours.get(entity, frozenset())
        adjacent = [c for c in candidates if c in neighbours]
        pool, rule = (adjacent, "adjacency") if adjacent else (candidates, "degree")
        # Candidates are sorted, so min over (-degree) keeps the alphabetically first on ties.
        return min(pool, key=lambda c: -self.graph.degree.get(c, 0)), rule

    def link(self, entity: str, text: str) -> LinkedText:
        """Finds the mentions of other entities in the description `text` of `entity`."""
        tokens = _Tokens.of(text)
        mentions, self_mentions = [], []
        i = 0
        while i < len(tokens.spans):
            length, candidates = self._longest(tokens, i) if tokens.may_start[i] else (0, ())
            if length > 1 and tokens.folded[i] == "the":
                # An alias's leading article is optional: "the Academy" (West Point) must not
                # cut "Academy Award for Best Actor" short.
                after = self._longest(tokens, i + 1) if tokens.may_start[i + 1] else (0, ())
                if after[0] >= length:
                    i += 1
                    length, candidates = after
            if not length or tokens.name_goes_on(i + length - 1):
                i += 1
                continue
            start, end = tokens.spans[i][0], tokens.spans[i + length - 1][1]
            if entity in candidates:
                self_mentions.append((start, end))
            else:
                linked, rule = self._resolve(entity, candidates)
                mentions.append(Mention(start, end, linked, len(candidates), rule))
            i += length
        return LinkedText(entity, text, tuple(mentions), tuple(self_mentions))


def link_texts(
    aliases: AliasTable, graph: TrainingGraph, keys: Sequence[str], texts: Sequence[str]
) -> list[LinkedText]:
    """Links each entity's text (`Linker.link`).

    Args:
      aliases: the alias table.
      graph: the training graph.
      keys: the described entities [n].
      texts: their descriptions [n].

    Returns:
      The linked texts [n], in the order given.

    Raises:
      ValueError: `keys` and `texts` differ in length.
    """
    if len(keys) != len(texts):
        raise ValueError(f"got {len(keys)} keys and {len(texts)} texts")
    linker = Linker(aliases, graph)
    return [linker.link(k, t) for k, t in zip(keys, texts, strict=True)]


def link_folder(
    dataset_dir: str | os.PathLike, source: str | None = None
) -> tuple[list[LinkedText], AliasTable]:
    """The linked description corpus of a dataset folder.

    The vocabulary is every entity of train/valid/test (`triples.load_folder`'s order); the
    texts are `descriptions.entity_descriptions(dataset_dir, keys, source)` (FB15k-237's
    default: StAR's "Name -- first sentence"); the graph is `train.txt`.

    Args:
      dataset_dir: the dataset's folder, e.g. `../shared/data/fb15k-237`.
      source: the description source (`descriptions.ENTITY_SOURCES`), None for the default.

    Returns:
      (one linked text per entity [V], in vocabulary order; the alias table).

    Raises:
      DataError: a missing or malformed file (named).
    """
    dataset = triples.load_folder(dataset_dir)
    keys = dataset.entities.names
    texts = descriptions.entity_descriptions(dataset_dir, keys, source)
    train = [(keys[h], "", keys[t]) for h, _, t in dataset.train.tolist()]
    aliases = read_aliases(dataset_dir, keys)
    return link_texts(aliases, TrainingGraph.build(train), keys, texts.texts), aliases


def write_jsonl(path: str | os.PathLike, texts: Iterable[LinkedText]) -> None:
    """Writes linked texts as JSON lines (format in the module docstring), creating the folder."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for t in texts:
            record = {
                "entity": t.entity,
                "text": t.text,
                "mentions": [[m.start, m.end, m.entity, m.candidates, m.rule] for m in t.mentions],
                "self_mentions": [list(s) for s in t.self_mentions],
            }
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


def read_jsonl(path: str | os.PathLike) -> list[LinkedText]:
    """Reads a file of `write_jsonl`.

    Raises:
      DataError: the file is missing, not UTF-8, or a line is not a valid record (a field
        missing or mistyped, a span outside its text or reversed, an unknown rule); the file
        and line are named.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"{path}: file not found")
    out = []
    try:
        with open(path, encoding="utf-8") as f:
            for line_number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    out.append(_record(json.loads(line)))
                except (json.JSONDecodeError, TypeError, ValueError, KeyError) as e:
                    raise DataError(f"{path}:{line_number}: not a linked-text record ({e})") from e
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not valid UTF-8 ({e})") from e
    return out


def _record(record) -> LinkedText:
    """A JSON record as a LinkedText; ValueError/TypeError/KeyError when it is not one."""
    if not isinstance(record, dict):
        raise TypeError(f"expected an object, got {type(record).__name__}")
    entity, text = record["entity"], record["text"]
    if not isinstance(entity, str) or not isinstance(text, str):
        raise TypeError("'entity' and 'text' must be strings")
    mentions = []
    for m in record["mentions"]:
        start, end, linked, candidates, rule = m
        if not isinstance(linked, str) or rule not in RULES or not isinstance(candidates, int):
            raise ValueError(f"bad mention {m!r}")
        mentions.append(Mention(_offset(start, text), _offset(end, text), linked, candidates, rule))
    self_mentions = tuple((_offset(s, text), _offset(e, text)) for s, e in record["self_mentions"])
    for start, end in [(m.start, m.end) for m in mentions] + list(self_mentions):
        if start >= end:
            raise ValueError(f"empty or reversed span ({start}, {end})")
    return LinkedText(entity, text, tuple(mentions), self_mentions)


def _offset(value, text: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= len(text):
        raise ValueError(f"offset {value!r} outside the text (length {len(text)})")
    return value


def corpus_statistics(texts: Sequence[LinkedText]) -> dict:
    """Counts over a linked corpus.

    Tokens are whitespace-separated words (`str.split`), not model tokens.

    Returns:
      texts, tokens, mentions (of other entities), self_mentions, distinct_entities (linked
      other entities), texts_with_mentions, mentions_per_text (mean) and
      mentions_per_text_median, ambiguous_mentions (alias of several candidates),
      resolved_by_adjacency and resolved_by_degree (rules "adjacency" and "degree"), and
      adjacency_share = resolved_by_adjacency / ambiguous_mentions (nan without ambiguous
      mentions).
    """
    mentions = [m for t in texts for m in t.mentions]
    per_text = [len(t.mentions) for t in texts]
    rules = collections.Counter(m.rule for m in mentions)
    ambiguous = sum(m.candidates > 1 for m in mentions)
    return {
        "texts": len(texts),
        "tokens": sum(len(t.text.split()) for t in texts),
        "mentions": len(mentions),
        "self_mentions": sum(len(t.self_mentions) for t in texts),
        "distinct_entities": len({m.entity for m in mentions}),
        "texts_with_mentions": sum(n > 0 for n in per_text),
        "mentions_per_text": len(mentions) / len(texts) if texts else float("nan"),
        "mentions_per_text_median": statistics.median(per_text) if texts else float("nan"),
        "ambiguous_mentions": ambiguous,
        "resolved_by_adjacency": rules["adjacency"],
        "resolved_by_degree": rules["degree"],
        "adjacency_share": rules["adjacency"] / ambiguous if ambiguous else float("nan"),
    }
