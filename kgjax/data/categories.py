"""Entity category labels: the targets of JAKET's entity category prediction.

Host side only (plain Python and NumPy); never imports jax. Shapes: V entities, C categories.

FB15k-237: the coarse Freebase type of an entity, the first segment of its type paths
(`/film/film` -> `film`), from FB15kET's `ET_valid.txt` and `ET_test.txt` (`mid<TAB>/type/path`;
FB15kET's train file is not in ../shared/data). Entities have several types, often in several
domains, so one label is chosen per entity (`freebase_categories`):
  1. The (entity, type) pairs are deduplicated (1,493 pairs occur in both files).
  2. The secondary domains (`SECONDARY_DOMAINS`: `base` and `user`, Freebase's user-made
     namespaces, and the system domains `common`, `freebase`, `dataworld`) count only for an
     entity that has no type in any other domain; `base` alone would otherwise label more than a
     third of the entities with a namespace rather than a topic.
  3. Among the remaining domains, the one with most of the entity's types wins; a tie goes to
     the domain that more entities of the vocabulary have a (counted) type in, then to the
     alphabetically first.
  Entities of the vocabulary without a type get -1.

WN18RR: the WordNet lexicographer file of an entity's synset (`lex_filenum`, the second field of
a synset line in `data.{noun,verb,adj,adv}`; `LEXNAMES` gives the 45 names of `lexnames(5WN)`).
WN18RR names an entity by its 8-digit synset offset only, and an offset is a byte position
within one part-of-speech file, so the offset alone is ambiguous and, in ../shared/data's
`wordnet-3.0` (Debian's 1:3.0-37 files), not even stable: that copy's offsets equal WN18RR's
for the nouns and adverbs WN18RR uses, but are 18 bytes further on for verbs between 00613393
and 02422663 and 1 byte further on for adjectives from 01686439 on (5,078 and 597 WN18RR
entities). The entity is therefore found by its text,
WN18RR's `kg-bert/entity2text.txt` ("lemma, gloss", from WN18's `__lemma_POS_n` names and
WordNet's glosses; `wordnet_categories`):
  1. The candidates are the synsets whose gloss is the entity's gloss and whose words include
     its lemma (case, `_` for space and adjective markers such as `(a)` ignored).
  2. WN18 merged the synsets of different parts of speech that share an offset into one entity
     (232 WN18RR entities; their text joins the glosses with three spaces): each gloss then
     names a candidate, and the lemma, which comes from WN18's name for the entity, picks the
     synset WN18 named. WN18RR's triples of a merged entity come from all its synsets (about
     half are pointers of a synset other than the lemma's), so that label is WN18's name, not
     the graph's; `Categories.multi` marks these entities.
  3. Several candidates left (a synset listed twice under one gloss and lemma, e.g. `barleycorn`)
     go to the one whose offset is closest to the entity's, then to the first in the order noun,
     verb, adj, adv.
  An entity without text or without a matching synset gets -1 (a warning counts them).

Both rules can fold rare categories (fewer than `min_count` labelled entities) into `OTHER`.
`split_labelled` splits the labelled entities into seeded parts (pre-training / held out, or a
few labels for fine-tuning and the rest), stratified by category.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import os
import pathlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
from absl import logging

from kgjax.data import catalog, descriptions
from kgjax.data.triples import DataError

OTHER = "other"
SECONDARY_DOMAINS = ("base", "user", "common", "freebase", "dataworld")
# Folder names under the data root (the parent of the dataset folders, as in ../shared/data).
ENTITY_TYPE_FILES = ("fb15ket-partial/ET_valid.txt", "fb15ket-partial/ET_test.txt")
WORDNET_FOLDER = "wordnet-3.0"
WORDNET_PARTS = ("noun", "verb", "adj", "adv")
# lexnames(5WN): the name of lexicographer file number i is LEXNAMES[i].
LEXNAMES = (
    "adj.all",
    "adj.pert",
    "adv.all",
    "noun.Tops",
    "noun.act",
    "noun.animal",
    "noun.artifact",
    "noun.attribute",
    "noun.body",
    "noun.cognition",
    "noun.communication",
    "noun.event",
    "noun.feeling",
    "noun.food",
    "noun.group",
    "noun.location",
    "noun.motive",
    "noun.object",
    "noun.person",
    "noun.phenomenon",
    "noun.plant",
    "noun.possession",
    "noun.process",
    "noun.quantity",
    "noun.relation",
    "noun.shape",
    "noun.state",
    "noun.substance",
    "noun.time",
    "verb.body",
    "verb.change",
    "verb.cognition",
    "verb.communication",
    "verb.competition",
    "verb.consumption",
    "verb.contact",
    "verb.creation",
    "verb.emotion",
    "verb.motion",
    "verb.perception",
    "verb.possession",
    "verb.social",
    "verb.stative",
    "verb.weather",
    "adj.ppl",
)
# The separator of the glosses of WN18's merged entities in kg-bert's text.
_MERGED_GLOSSES = "   "
# The synset types (ss_type) each file holds; `s` is an adjective satellite.
_SYNSET_TYPES = {"noun": ("n",), "verb": ("v",), "adj": ("a", "s"), "adv": ("r",)}


@dataclasses.dataclass(frozen=True)
class Categories:
    """One category label per entity of a vocabulary.

    Attributes:
      names: the categories [C] that label at least one entity (Freebase: alphabetical;
        WordNet: in lexicographer file order), `OTHER` last when rare ones were folded into it.
      labels: int32 [V], an index into `names`, -1 for an unlabelled entity.
      multi: bool [V], the labelled entities the rule chose among several categories for
        (Freebase: types in several domains, secondary ones included; WordNet: WN18's merged
        synsets).
      source: the files the labels come from.
    """

    names: tuple[str, ...]
    labels: np.ndarray
    multi: np.ndarray
    source: str

    @functools.cached_property
    def counts(self) -> np.ndarray:
        """int64 [C]: labelled entities per category."""
        return np.bincount(self.labels[self.labels >= 0], minlength=len(self.names))

    @property
    def num_labelled(self) -> int:
        return int(np.count_nonzero(self.labels >= 0))

    @property
    def num_multi(self) -> int:
        return int(np.count_nonzero(self.multi))


@dataclasses.dataclass(frozen=True)
class Synset:
    """One synset line of a WordNet `data.*` file (wndb(5WN)).

    Attributes:
      offset: the 8-digit byte offset of the line in its file, as written.
      part: the file's part of speech (`WORDNET_PARTS`).
      lex_filenum: the lexicographer file number, an index into `LEXNAMES`.
      words: the synset's words as written (`land_reform`, `galore(ip)`).
      gloss: the gloss, stripped.
    """

    offset: str
    part: str
    lex_filenum: int
    words: tuple[str, ...]
    gloss: str


def read_entity_types(path: str | os.PathLike) -> list[tuple[str, str]]:
    """Reads an FB15kET file of `mid<TAB>/type/path` lines.

    Returns:
      The (entity, type) pairs in file order, duplicates kept.

    Raises:
      DataError: the file is missing or not UTF-8; a line without exactly two tab-separated
        columns, an empty entity, or a type that is not a `/`-rooted path (file and line named).
    """
    path = os.fspath(path)
    pairs = []
    for line_number, line in _lines(path):
        columns = line.split("\t")
        if len(columns) != 2:
            raise DataError(
                f"{path}:{line_number}: expected 2 tab-separated columns (entity, type), "
                f"got {len(columns)}: {line[:120]!r}"
            )
        entity, type_path = (c.strip() for c in columns)
        if not entity or not re.fullmatch(r"(/[^/\s]+)+", type_path):
            raise DataError(
                f"{path}:{line_number}: expected an entity and a type like /film/film: "
                f"{line[:120]!r}"
            )
        pairs.append((entity, type_path))
    return pairs


def _lines(path: str) -> Iterator[tuple[int, str]]:
    """The non-blank lines of a UTF-8 text file with their 1-based numbers, line ends stripped."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: file not found")
    try:
        with open(path, encoding="utf-8", newline="") as f:
            for line_number, line in enumerate(f, start=1):
                line = line.rstrip("\r\n")
                if line.strip():
                    yield line_number, line
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not valid UTF-8 ({e})") from e


def read_wordnet_data(path: str | os.PathLike) -> list[Synset]:
    """Reads a WordNet `data.{noun,verb,adj,adv}` file; the part of speech is the file's suffix.

    Lines starting with two spaces (the licence header) are skipped. Every synset line is
    checked: its offset is the byte offset of the line, its lexicographer file number is one
    of `LEXNAMES`, its synset type belongs to the file, its word count matches, and a ` | `
    separates the gloss.

    Returns:
      The synsets in file order.

    Raises:
      DataError: the file is missing, not named data.<part>, or has a malformed line (file and
        line named).
    """
    path = os.fspath(path)
    part = pathlib.Path(path).name.removeprefix("data.")
    if part not in WORDNET_PARTS:
        raise DataError(f"{path}: expected a file named data.{{{','.join(WORDNET_PARTS)}}}")
    if not os.path.isfile(path):
        raise DataError(f"{path}: file not found")
    synsets = []
    position = 0
    with open(path, "rb") as f:
        for line_number, raw in enumerate(f, start=1):
            start, position = position, position + len(raw)
            if raw.startswith(b"  ") or not raw.strip():
                continue
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as e:
                raise DataError(f"{path}:{line_number}: not valid UTF-8 ({e})") from e
            synsets.append(_parse_synset(line, part, start, f"{path}:{line_number}"))
    return synsets


def _parse_synset(line: str, part: str, start: int, where: str) -> Synset:
    head, bar, gloss = line.partition(" | ")
    fields = head.split()
    try:
        if not bar:
            raise ValueError("no ' | ' before the gloss")
        offset, lex_filenum, synset_type, word_count = fields[:4]
        if not (len(offset) == 8 and offset.isdigit() and int(offset) == start):
            raise ValueError(f"offset {offset!r} is not the line's byte offset {start:08d}")
        number = int(lex_filenum) if len(lex_filenum) == 2 and lex_filenum.isdigit() else -1
        if not 0 <= number < len(LEXNAMES):
            raise ValueError(f"lex_filenum {lex_filenum!r} is not 00..{len(LEXNAMES) - 1}")
        if synset_type not in _SYNSET_TYPES[part]:
            raise ValueError(f"synset type {synset_type!r} does not belong in data.{part}")
        num_words = int(word_count, 16)
        words = tuple(fields[4 : 4 + 2 * num_words : 2])
        if num_words == 0 or len(fields) < 5 + 2 * num_words:
            raise ValueError(f"{num_words} words announced, fewer given")
    except ValueError as e:
        raise DataError(f"{where}: malformed synset line ({e}): {line[:120]!r}") from e
    return Synset(offset, part, number, words, gloss.strip())


def freebase_categories(
    keys: Sequence[str],
    pairs: Iterable[tuple[str, str]],
    *,
    secondary: Iterable[str] = SECONDARY_DOMAINS,
    min_count: int = 1,
    source: str = "",
) -> Categories:
    """One coarse Freebase type per entity, by the rule of the module docstring.

    Args:
      keys: the entity names (Freebase mids), in id order [V].
      pairs: (entity, type path) pairs; entities not in `keys` are ignored.
      secondary: the domains that count only for entities with no type elsewhere.
      min_count: categories with fewer labelled entities are folded into `OTHER`.
      source: recorded in the result.

    Returns:
      The labels, -1 for entities without a type.
    """
    index = {key: i for i, key in enumerate(keys)}
    secondary = frozenset(secondary)
    domains: dict[int, collections.Counter] = collections.defaultdict(collections.Counter)
    for entity, type_path in dict.fromkeys(pairs):
        if entity in index:
            domains[index[entity]][type_path.split("/")[1]] += 1
    counted = {
        i: collections.Counter({d: n for d, n in found.items() if d not in secondary}) or found
        for i, found in domains.items()
    }
    popularity = collections.Counter(d for found in counted.values() for d in found)
    chosen = {
        i: min(found, key=lambda d, found=found: (-found[d], -popularity[d], d))
        for i, found in counted.items()
    }
    multi = [i for i, found in domains.items() if len(found) > 1]
    return _categories(len(keys), chosen, sorted, min_count, multi, source)


def wordnet_categories(
    keys: Sequence[str],
    texts: Mapping[str, str],
    synsets: Iterable[Synset],
    *,
    min_count: int = 1,
    source: str = "",
) -> Categories:
    """The lexicographer file of each entity's synset, by the rule of the module docstring.

    Args:
      keys: the entity names (8-digit synset offsets), in id order [V].
      texts: entity name -> "lemma, gloss" (WN18RR's `kg-bert/entity2text.txt`).
      synsets: the synsets of all four `data.*` files (`read_wordnet_data`).
      min_count: categories with fewer labelled entities are folded into `OTHER`.
      source: recorded in the result.

    Returns:
      The labels, names from `LEXNAMES`; -1 for entities without text or synset.
    """
    by_gloss: dict[str, list[Synset]] = collections.defaultdict(list)
    for synset in synsets:
        by_gloss[synset.gloss].append(synset)
    chosen, unmatched, multi = {}, [], []
    for i, key in enumerate(keys):
        lemma, _, glosses = texts.get(key, "").partition(", ")
        parts = [g.strip() for g in glosses.split(_MERGED_GLOSSES)]
        lemma = _word(lemma)
        candidates = [
            s for g in parts for s in by_gloss.get(g, ()) if lemma in {_word(w) for w in s.words}
        ]
        if not candidates:
            unmatched.append(key)
            continue
        if len(parts) > 1:
            multi.append(i)
        offset = int(key) if key.isdigit() else 0
        best = min(
            candidates,
            key=lambda s: (abs(int(s.offset) - offset), WORDNET_PARTS.index(s.part)),
        )
        chosen[i] = LEXNAMES[best.lex_filenum]
    if unmatched:
        logging.warning(
            "%s: no synset for %d of %d entities (labelled -1): %s",
            source,
            len(unmatched),
            len(keys),
            ", ".join(unmatched[:10]),
        )
    return _categories(len(keys), chosen, _lexname_order, min_count, multi, source)


def _word(word: str) -> str:
    return re.sub(r"\([a-z]+\)$", "", word).replace("_", " ").strip().lower()


def _lexname_order(names: Iterable[str]) -> list[str]:
    return sorted(names, key=LEXNAMES.index)


def _categories(
    num_entities: int,
    chosen: dict[int, str],
    order: Callable[[Iterable[str]], list[str]],
    min_count: int,
    multi: list[int],
    source: str,
) -> Categories:
    """Numbers the chosen categories (rare ones folded into `OTHER`) into a `Categories`."""
    if min_count < 1:
        raise ValueError(f"min_count must be at least 1, got {min_count}")
    sizes = collections.Counter(chosen.values())
    chosen = {i: c if sizes[c] >= min_count else OTHER for i, c in chosen.items()}
    names = order({c for c in chosen.values() if c != OTHER})
    names = (*names, OTHER) if OTHER in chosen.values() else tuple(names)
    ids = {c: n for n, c in enumerate(names)}
    labels = np.full(num_entities, -1, np.int32)
    for i, c in chosen.items():
        labels[i] = ids[c]
    mask = np.zeros(num_entities, bool)
    mask[multi] = True
    return Categories(names, labels, mask, source)


def read_category_file(
    path: str | os.PathLike, keys: Sequence[str], *, min_count: int = 1
) -> Categories:
    """Categories from a user's file of `entity<TAB>category` lines (one label per entity).

    Args:
      path: the file; entities are the dataset's keys (names in its triple files).
      keys: the entity names, in id order [V]; lines naming other entities are ignored.
      min_count: categories with fewer labelled entities are folded into `OTHER`.

    Returns:
      The labels (categories sorted by name), -1 for entities the file does not list.

    Raises:
      DataError: a missing or non-UTF-8 file, a line without exactly two tab-separated
        non-empty columns, or an entity given two different categories (file and line named).
    """
    path = os.fspath(path)
    index = {key: i for i, key in enumerate(keys)}
    chosen: dict[int, str] = {}
    for line_number, line in _lines(path):
        columns = [c.strip() for c in line.split("\t")]
        if len(columns) != 2 or not all(columns):
            raise DataError(
                f"{path}:{line_number}: expected 2 tab-separated non-empty columns "
                f"(entity, category): {line[:120]!r}"
            )
        entity, category = columns
        if entity not in index:
            continue
        previous = chosen.setdefault(index[entity], category)
        if previous != category:
            raise DataError(
                f"{path}:{line_number}: {entity} has two categories, {previous!r} and {category!r}"
            )
    return _categories(len(keys), chosen, sorted, min_count, [], path)


def load_categories(
    name: str,
    keys: Sequence[str],
    data_dir: str | os.PathLike | None = None,
    *,
    min_count: int = 1,
) -> Categories:
    """The categories of a catalog dataset's entities, from the files beside its folder.

    The data root is the parent of the dataset's local folder (`catalog.local_folder`), laid
    out like ../shared/data: FB15k-237 reads `ENTITY_TYPE_FILES`; WN18RR reads the `data.*`
    files of `WORDNET_FOLDER` and its own `kg-bert/entity2text.txt`.

    Args:
      name: `fb15k237` or `wn18rr` (folder spellings accepted).
      keys: the dataset's entity names, in id order (`KGDataset.entities.names`).
      data_dir: searched before `$KGJAX_DATA_DIR`, as by `catalog.load_dataset`.
      min_count: categories with fewer labelled entities are folded into `OTHER`.

    Returns:
      The labels.

    Raises:
      DataError: a dataset without categories, no local copy, or a missing or malformed file.
    """
    name = catalog.canonical_name(name)
    if name not in ("fb15k237", "wn18rr"):
        raise DataError(f"{name}: entity categories exist for fb15k237 and wn18rr only")
    folder = catalog.local_folder(name, data_dir)
    if folder is None:
        raise DataError(
            f"{name}: no local copy; entity categories need the data folder "
            "(set KGJAX_DATA_DIR or pass data_dir)"
        )
    root = folder.parent
    if name == "fb15k237":
        files = [root / f for f in ENTITY_TYPE_FILES]
        pairs = [pair for file in files for pair in read_entity_types(file)]
        return freebase_categories(
            keys, pairs, min_count=min_count, source=", ".join(map(str, files))
        )
    text_file = folder / descriptions.ENTITY_SOURCES["kg-bert"]
    texts = descriptions.read_key_text_file(text_file)
    data_files = [root / WORDNET_FOLDER / f"data.{part}" for part in WORDNET_PARTS]
    synsets = [s for file in data_files for s in read_wordnet_data(file)]
    return wordnet_categories(
        keys, texts, synsets, min_count=min_count, source=f"{text_file}, {root / WORDNET_FOLDER}"
    )


def split_labelled(
    categories: Categories, fractions: Sequence[float], *, seed: int, stratify: bool = True
) -> tuple[np.ndarray, ...]:
    """Splits the labelled entities into disjoint parts, e.g. pre-training and held out.

    Part k takes the entities at positions round(F_{k-1} n) .. round(F_k n) of a seeded order
    of the n labelled entities, F_k the sum of the first k fractions; the entities after the
    last part (when the fractions sum to less than 1) are in none. Without stratification the
    order is a permutation. With it, each category's members, in a seeded random order, get the
    evenly spaced keys (j + u_c) / n_c (j = 0..n_c-1, u_c one uniform draw per category) and
    the order sorts the keys: every part then holds each category's share to within a couple
    of entities, and a category too small for a part lands in it with the right probability.

    Args:
      categories: the labels.
      fractions: the share of the labelled entities in each part, each in (0, 1], sum <= 1.
      seed: seeds the order; the same seed and labels give the same parts.
      stratify: whether to keep the category proportions in every part.

    Returns:
      One sorted int32 array of entity ids per fraction.

    Raises:
      ValueError: fractions outside (0, 1] or summing to more than 1, or a part that would be
        empty.
    """
    fractions = [float(f) for f in fractions]
    if not fractions or any(not 0 < f <= 1 for f in fractions) or sum(fractions) > 1 + 1e-9:
        raise ValueError(f"fractions must be in (0, 1] and sum to at most 1, got {fractions}")
    rng = np.random.default_rng(seed)
    ids = np.flatnonzero(categories.labels >= 0)
    labels = categories.labels[ids]
    if stratify:
        keys = np.empty(len(ids))
        for c in range(len(categories.names)):
            members = np.flatnonzero(labels == c)
            keys[rng.permutation(members)] = (np.arange(len(members)) + rng.random()) / len(members)
        order = np.lexsort((rng.random(len(ids)), keys))
    else:
        order = rng.permutation(len(ids))
    bounds = np.round(np.cumsum([0.0, *fractions]) * len(ids)).astype(np.int64)
    if np.any(np.diff(bounds) == 0):
        raise ValueError(
            f"fractions {fractions} of {len(ids)} labelled entities leave a part empty"
        )
    return tuple(
        np.sort(ids[order[a:b]]).astype(np.int32)
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    )
