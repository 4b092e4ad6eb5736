"""The WordNet 3.0 database: synsets, lemmas, pointers, glosses, sense keys, tag counts, morphy.

Host side only (plain Python and NumPy); never imports jax. Shapes: V synsets, R pointer
symbols, E distinct pointers.

Reads the "dict" files of a WordNet 3.0 database folder, laid out like
../shared/data/wordnet-3.0 (Debian's `wordnet-base` and `wordnet-sense-index` 1:3.0-37), in the
formats of wndb(5WN) and senseidx(5WN): `data.{noun,verb,adj,adv}`, `index.{noun,verb,adj,adv}`,
`index.sense` and the exception lists `{noun,verb,adj,adv}.exc`. Lines starting with two spaces
(the licence header of the data and index files) are skipped; every other line is checked
field by field, and a malformed one raises `DataError` naming the file and line. Each part is
read on first use (`WordNet` loads nothing up front), the whole database in a few seconds.

Synset ids. An offset is a byte position within one `data.<pos>` file, so it names a synset
only together with the file: a synset's id is its 8-digit offset, a hyphen and its synset type
(`ss_type`): `09213565-n`, `02422681-v`, `00001740-a`, `00004980-r`, and `s` for an adjective
satellite, `01686037-s`. Satellites live in `data.adj` with the head adjectives, and the files
themselves name them with `a` (pointers, `index.adj`); `WordNet.synset` therefore also answers
`01686037-a` with the satellite, while every id this module returns uses `s`. Parts of speech
are given as the letters `n`, `v`, `a`, `r` (`s` means `a` where a file is chosen).

Glosses (`Synset.definition`, `Synset.examples`). A gloss is a definition followed by example
sentences in double quotes, separated by semicolons (`sloping land (especially the slope beside
a body of water); "they pulled the canoe up on the bank"; "he sat on the bank of the river..."`).
The definition is the text before the first double quote that starts the gloss or follows
`; ` or `: ` (70 glosses introduce their first example with a colon), less trailing
punctuation; a quote elsewhere belongs to the definition (`especially in the phrase "make
strides"`). The examples are the double-quoted parts after it, quotes removed; text outside
the quotes there is dropped (740 glosses attribute a quotation, `"..."- Henry Miller`), and an
unclosed quote (20 glosses have an odd number) runs to the end of the gloss. A few glosses
write an example without quotes (`focus once again; The physicist refocused the light beam`);
it stays in the definition.

Sense keys (senseidx(5WN)): `lemma%ss_type:lex_filenum:lex_id:head_word:head_id`, e.g.
`bank%1:17:01::`, ss_type 1 noun, 2 verb, 3 adjective, 4 adverb, 5 satellite. `index.sense`
gives each key's synset offset, sense number and tag count (times tagged in the semantic
concordances: the frequency prior). `cntlist.rev` is not read: its tag counts equal
`index.sense`'s where both have a key, but it holds 1,992 keys that are not WordNet 3.0 senses
and stale sense numbers for 713 others. `WordNet.senses(lemma, pos)` lists a lemma's senses in
`index.<pos>`'s order, which is WordNet's sense numbering (most tagged first).

Morphology (`WordNet.morphy`), as WordNet's morphy (morph.c): the form is lower-cased, blanks
become `_`; a form in `<pos>.exc` gives the base forms listed there and no rule is tried;
otherwise the detachment rules of its part of speech (`DETACHMENT_RULES`: nouns `-s`, `-ses`,
`-xes`, `-zes`, `-ches`, `-shes`, `-men`, `-ies`; verbs `-s`, `-ies`, `-es`, `-ed`, `-ing`;
adjectives `-er`, `-est`; adverbs none) each replace a suffix, nouns ending in `ss` or of two
letters or fewer get none, and a noun ending in `ful` has the rules applied to the part before
it (`boxesful` -> `boxful`). A collocation (words joined by `_` or `-`) also tries every
combination of its words' own forms (`ran_away` -> `run_away`, `attorneys_general` ->
`attorney_general`), which covers morph.c's collocation and verb-preposition handling. Unlike
morph.c, which stops at the first rule whose result is a lemma, every rule is tried; the form
itself comes first when it is a lemma, and only lemmas of `index.<pos>` are kept.

The pointer graph (`WordNet.graph`): every pointer of every synset (semantic and lexical, the
latter taken as a link between their synsets) as a (head, relation, tail) triple over all
synsets, relations named by `POINTER_NAMES`, duplicates (lexical pointers between several word
pairs of the same two synsets) removed.

Princeton offsets and WN18RR (`WordNet.at_princeton_offset`). WN18RR (and WN18, and tools built
on Princeton's WordNet 3.0 release) name synsets by Princeton's offsets without a part of
speech. This copy is Debian's, and Debian re-generated the database after two edits, so some
of its offsets differ from Princeton's:
  - the verb hypernym cycle of Princeton's 3.0 (`inhibit` 02423762 is both hypernym and
    hyponym of `restrain` 02422663; OMW and NLTK patch it too) is cut: `inhibit`'s hypernym
    becomes `suppress` 00612841, whose line gains an 18-byte pointer (` ~ 02423762 v 0000`) and
    `restrain`'s loses one. The verbs in between, Princeton 00613018 to 02422663, are 18 bytes
    further on here (`abandon` 00613393 is 00613411);
  - one line of `data.adj` grew by one byte (a gloss edit), somewhere between Princeton's
    01680836 (same here) and 01686439 (`original`, 01686440 here): the adjectives from
    01686439 on are 1 byte further on.
Nouns and adverbs are unchanged. Read naively, 5,597 of WN18RR's 40,943 entity ids are no
synset offset of this copy (5,017 verbs, 580 adjectives) and 182 more land on a wrong or
incomplete set of synsets; with the shifts undone all 40,943 resolve: 40,711 to one synset,
232 to several (230 to two, one to three, one to four: WN18 merged the synsets of different
parts of speech that share a Princeton offset into one entity, and WN18RR's triples of such an
entity come from any of them). The evidence: each entity's "lemma, gloss" text
(`wn18rr/kg-bert/entity2text.txt`) names a synset of this copy whose offset is the entity's
plus exactly 0, 18 (verbs, in the range above) or 1 (adjectives, above it), and 92,997 of
WN18RR's 93,003 triples are pointers of this copy between the resolved synsets, with the
symbol `WN18RR_SYMBOLS` gives. Of the 6 others, one is the cycle edit itself (`inhibit`
`_hypernym` `restrain`, Princeton's pointer) and 5 are `_derivationally_related_form` from a
noun to an adjective whose `+` pointer this copy has only from the adjective to the noun
(`strictness` / `strict`, `capability` / `capable`, ...); noun lines have the same length in
both versions, so Princeton's nouns lack those pointers too. Between 01680836 and 01686439
the edited adjective line is not known, so a Princeton offset there is looked up both as is
and 1 byte further on (no two synset lines are a byte apart); no WN18RR entity falls there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import itertools
import os
import pathlib
import re
from collections.abc import Collection, Iterator, Mapping
from typing import NamedTuple

import numpy as np

from kgjax.data.categories import LEXNAMES
from kgjax.data.triples import DataError

FOLDER = "wordnet-3.0"
# The letters of the four files, with the file's name and the synset types it holds.
PARTS = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}
SYNSET_TYPES = {"n": ("n",), "v": ("v",), "a": ("a", "s"), "r": ("r",)}
# senseidx(5WN): the ss_type digit of a sense key.
SENSE_KEY_TYPES = {"1": "n", "2": "v", "3": "a", "4": "r", "5": "s"}
# wninput(5WN): pointer symbol -> relation name, in the order of the graph's relations.
POINTER_NAMES = {
    "!": "antonym",
    "@": "hypernym",
    "@i": "instance_hypernym",
    "~": "hyponym",
    "~i": "instance_hyponym",
    "#m": "member_holonym",
    "#s": "substance_holonym",
    "#p": "part_holonym",
    "%m": "member_meronym",
    "%s": "substance_meronym",
    "%p": "part_meronym",
    "=": "attribute",
    "+": "derivationally_related_form",
    "*": "entailment",
    ">": "cause",
    "^": "also_see",
    "$": "verb_group",
    "&": "similar_to",
    "<": "participle_of",
    "\\": "pertainym",
    ";c": "domain_topic",
    "-c": "domain_topic_member",
    ";r": "domain_region",
    "-r": "domain_region_member",
    ";u": "domain_usage",
    "-u": "domain_usage_member",
}
# WN18RR's relations as the WordNet pointer symbols they are (checked on the real data).
WN18RR_SYMBOLS = {
    "_hypernym": "@",
    "_instance_hypernym": "@i",
    "_derivationally_related_form": "+",
    "_also_see": "^",
    "_member_meronym": "%m",
    "_has_part": "%p",
    "_synset_domain_topic_of": ";c",
    "_member_of_domain_usage": "-u",
    "_member_of_domain_region": "-r",
    "_verb_group": "$",
    "_similar_to": "&",
}
# morph.c's rules of detachment: (suffix, ending) per part of speech, in its order.
DETACHMENT_RULES = {
    "n": (
        ("s", ""),
        ("ses", "s"),
        ("xes", "x"),
        ("zes", "z"),
        ("ches", "ch"),
        ("shes", "sh"),
        ("men", "man"),
        ("ies", "y"),
    ),
    "v": (
        ("s", ""),
        ("ies", "y"),
        ("es", "e"),
        ("es", ""),
        ("ed", "e"),
        ("ed", ""),
        ("ing", "e"),
        ("ing", ""),
    ),
    "a": (("er", ""), ("est", ""), ("er", "e"), ("est", "e")),
    "r": (),
}
# The offsets of this copy that differ from Princeton's 3.0 release (module docstring):
# (part, first, last Princeton offset, shift); `_ADJ_UNKNOWN` is the span holding the edit.
_PRINCETON_SHIFTS = (("v", 613018, 2422663, 18), ("a", 1686439, 99999999, 1))
_ADJ_UNKNOWN = (1680837, 1686438)
# Hexadecimal numbers of 1 and 2 digits (lex_id, w_cnt, word numbers), in either case.
_HEX = {f"{i:0{w}{c}}": i for w in (1, 2) for i in range(16**w) for c in "xX"}
_LEX_FILENUMS = {f"{i:02d}": i for i in range(len(LEXNAMES))}
_MARKER = re.compile(r"\((a|p|ip)\)$")
_SENSE_KEY = re.compile(r"([^%\s]+)%([1-5]):(\d\d):(\d\d):([^:\s]*):(\d\d)?")
_EXAMPLE_START = re.compile(r'(?:^|[;:]\s*)"')
_QUOTED = re.compile(r'"([^"]*)(?:"|$)')


class Lemma(NamedTuple):
    """A word of a synset.

    Attributes:
      name: as the lexicographer wrote it, case kept, `_` for blanks (`Aruba`, `land_reform`).
      lex_id: with the lemma and lexicographer file, identifies the sense (0-15).
      marker: an adjective's syntactic marker, `a` (prenominal), `p` (predicate), `ip`
        (immediately postnominal) or empty.
    """

    name: str
    lex_id: int
    marker: str


class Pointer(NamedTuple):
    """A pointer from a synset (or one of its words) to another.

    Attributes:
      symbol: the pointer symbol (`POINTER_NAMES`).
      target: the target synset's id.
      source_word: the word number (1-based) in the source synset, 0 for a semantic pointer
        (between the synsets).
      target_word: the word number in the target synset, 0 for a semantic pointer.
    """

    symbol: str
    target: str
    source_word: int
    target_word: int


class Sense(NamedTuple):
    """A line of `index.sense`.

    Attributes:
      key: the sense key (`bank%1:17:01::`).
      synset: the id of its synset.
      number: the sense number of the lemma in its part of speech (1 = most tagged).
      tag_count: times the sense is tagged in the semantic concordances (0 = never).
    """

    key: str
    synset: str
    number: int
    tag_count: int


@dataclasses.dataclass(frozen=True, slots=True)
class Synset:
    """One synset line of a `data.<pos>` file (wndb(5WN)).

    Attributes:
      id: `<offset>-<ss_type>` (module docstring).
      offset: the 8-digit byte offset of the line in its file, as written.
      pos: the synset type: `n`, `v`, `a`, `s` (adjective satellite) or `r`.
      lex_filenum: the lexicographer file number, an index into `LEXNAMES`.
      lemmas: the words, in order (word numbers count from 1).
      pointers: the pointers, in order.
      frames: verbs only: (generic frame number, word number or 0 for all words) pairs.
      gloss: the gloss as written, stripped.
    """

    id: str
    offset: str
    pos: str
    lex_filenum: int
    lemmas: tuple[Lemma, ...]
    pointers: tuple[Pointer, ...]
    frames: tuple[tuple[int, int], ...]
    gloss: str

    @property
    def definition(self) -> str:
        """The gloss's definition (the module docstring's rule)."""
        return split_gloss(self.gloss)[0]

    @property
    def examples(self) -> tuple[str, ...]:
        """The gloss's example sentences, quotes removed."""
        return split_gloss(self.gloss)[1]

    @property
    def lexname(self) -> str:
        """The lexicographer file's name (`noun.object`)."""
        return LEXNAMES[self.lex_filenum]

    @property
    def words(self) -> tuple[str, ...]:
        """The lemma names, as written."""
        return tuple(lemma.name for lemma in self.lemmas)


def split_gloss(gloss: str) -> tuple[str, tuple[str, ...]]:
    """Splits a gloss into its definition and example sentences, by the module docstring's rule.

    Returns:
      (definition, examples); the definition is empty for a gloss of examples only.
    """
    match = _EXAMPLE_START.search(gloss)
    end = len(gloss) if match is None else match.start()
    definition = gloss[:end].strip().rstrip(";:,").rstrip()
    if match is None:
        return definition, ()
    examples = tuple(e.strip() for e in _QUOTED.findall(gloss, match.end() - 1) if e.strip())
    return definition, examples


def load_wordnet(data_dir: str | os.PathLike | None = None) -> WordNet:
    """The WordNet database in `<data_dir>/wordnet-3.0`, else `$KGJAX_DATA_DIR/wordnet-3.0`.

    Raises:
      DataError: neither is set, or the folder does not exist.
    """
    root = data_dir if data_dir is not None else os.environ.get("KGJAX_DATA_DIR") or None
    if root is None:
        raise DataError(f"no data_dir given and KGJAX_DATA_DIR not set: where is {FOLDER}/?")
    return WordNet(pathlib.Path(os.path.expanduser(root)) / FOLDER)


class WordNet:
    """A WordNet 3.0 database folder, each part read on first use.

    Attributes:
      folder: the folder of the database files.
    """

    def __init__(self, folder: str | os.PathLike):
        """Args:
          folder: holds `data.*`, `index.*`, `index.sense` and `*.exc`.

        Raises:
          DataError: the folder does not exist.
        """
        self.folder = pathlib.Path(folder)
        if not self.folder.is_dir():
            raise DataError(f"{self.folder}: WordNet folder not found")

    # --- synsets ---------------------------------------------------------------------------------

    @functools.cached_property
    def synsets(self) -> Mapping[str, Synset]:
        """Every synset by id, in file order (noun, verb, adj, adv), satellites under `-s`.

        Raises:
          DataError: a missing file, or a malformed line (file and line named): an offset that
            is not the line's byte position, a lexicographer file outside `LEXNAMES`, a synset
            type of another file, a count that does not match its fields, a pointer to no
            synset, a verb without frames or another synset with fields after its pointers.
        """
        synsets = {}
        with _collector_paused():
            for part in PARTS:
                path = self.folder / f"data.{PARTS[part]}"
                for line_number, position, line in self._data_lines(part):
                    try:
                        synset = self._parse_synset(line, part, position)
                    except ValueError as e:
                        raise DataError(f"{path}:{line_number}: {e}: {line[:120]!r}") from e
                    synsets[synset.id] = synset
        return synsets

    def synset(self, synset_id: str) -> Synset:
        """The synset with this id; a satellite also answers to `<offset>-a`.

        Raises:
          KeyError: no such synset.
        """
        synset = self.synsets.get(synset_id)
        if synset is None and synset_id.endswith("-a"):
            synset = self.synsets.get(synset_id[:-1] + "s")
        if synset is None:
            raise KeyError(f"no synset {synset_id!r} in {self.folder}")
        return synset

    @functools.cached_property
    def _types(self) -> dict[str, dict[str, str]]:
        """part -> offset -> synset type, from a quick pass over the data files."""
        return {
            part: {line[:8]: line[12:13] for _, _, line in self._data_lines(part)} for part in PARTS
        }

    def _id(self, offset: str, part: str) -> str | None:
        """The id of the synset at `offset` of `data.<part>`, or None."""
        synset_type = self._types[part].get(offset)
        return None if synset_type is None else f"{offset}-{synset_type}"

    def _data_lines(self, part: str) -> Iterator[tuple[int, int, str]]:
        """(line number, byte offset, text) of each synset line of `data.<part>`."""
        path = self.folder / f"data.{PARTS[part]}"
        if not path.is_file():
            raise DataError(f"{path}: file not found")
        position = 0
        for line_number, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
            start, position = position, position + len(raw) + 1
            if raw.startswith(b"  ") or not raw.strip():
                continue
            try:
                yield line_number, start, raw.decode("ascii").rstrip("\r")
            except UnicodeDecodeError as e:
                raise DataError(f"{path}:{line_number}: not ASCII ({e})") from e

    def _parse_synset(self, line: str, part: str, position: int) -> Synset:
        head, bar, gloss = line.partition(" | ")
        if not bar:
            raise ValueError("no ' | ' before the gloss")
        fields = head.split()
        if len(fields) < 6:
            raise ValueError("too few fields")
        offset, lex_filenum, synset_type, word_count = fields[:4]
        if not (len(offset) == 8 and offset.isdigit() and int(offset) == position):
            raise ValueError(f"offset {offset!r} is not the line's byte offset {position:08d}")
        if lex_filenum not in _LEX_FILENUMS:
            raise ValueError(f"lex_filenum {lex_filenum!r} is not 00..{len(LEXNAMES) - 1}")
        if synset_type not in SYNSET_TYPES[part]:
            raise ValueError(f"synset type {synset_type!r} does not belong in data.{PARTS[part]}")
        num_words = _hex(word_count, 2, "w_cnt")
        at = 4 + 2 * num_words
        if num_words == 0 or len(fields) <= at:
            raise ValueError(f"{num_words} words announced, fewer given")
        lemmas = []
        for i in range(4, at, 2):
            name, marker = fields[i], ""
            found = _MARKER.search(name) if part == "a" else None
            if found is not None:
                name, marker = name[: found.start()], found.group(1)
            lex_id = _HEX.get(fields[i + 1]) if len(fields[i + 1]) == 1 else None
            if lex_id is None:
                raise ValueError(f"lex_id {fields[i + 1]!r} is not a hexadecimal digit")
            lemmas.append(Lemma(name, lex_id, marker))
        if at >= len(fields) or not (len(fields[at]) == 3 and fields[at].isdigit()):
            raise ValueError("no 3-digit pointer count after the words")
        num_pointers = int(fields[at])
        pointers = []
        types = self._types
        for i in range(at + 1, at + 1 + 4 * num_pointers, 4):
            if i + 4 > len(fields):
                raise ValueError(f"{num_pointers} pointers announced, fewer given")
            symbol, target, target_part, words = fields[i : i + 4]
            source_word, target_word = _HEX.get(words[:2]), _HEX.get(words[2:])
            if symbol not in POINTER_NAMES:
                raise ValueError(f"unknown pointer symbol {symbol!r}")
            if len(words) != 4 or source_word is None or target_word is None:
                raise ValueError(f"source/target {words!r} is not 4 hexadecimal digits")
            if source_word > num_words:
                raise ValueError(f"pointer from word {source_word} of {num_words}")
            target_type = types[target_part].get(target) if target_part in types else None
            if target_type is None:
                raise ValueError(f"pointer to {target} {target_part}, which is no synset")
            pointers.append(Pointer(symbol, f"{target}-{target_type}", source_word, target_word))
        rest = fields[at + 1 + 4 * num_pointers :]
        frames = ()
        if part == "v":
            num_frames = int(rest[0]) if rest and len(rest[0]) == 2 and rest[0].isdigit() else -1
            if num_frames < 1 or len(rest) != 1 + 3 * num_frames or set(rest[1::3]) != {"+"}:
                raise ValueError("expected the frames: f_cnt, then + f_num w_num per frame")
            frames = tuple(
                (_decimal(f, 2, "f_num"), _hex(w, 2, "w_num"))
                for f, w in zip(rest[2::3], rest[3::3], strict=True)
            )
        elif rest:
            raise ValueError(f"unexpected fields after the pointers: {' '.join(rest[:4])!r}")
        return Synset(
            f"{offset}-{synset_type}",
            offset,
            synset_type,
            _LEX_FILENUMS[lex_filenum],
            tuple(lemmas),
            tuple(pointers),
            frames,
            gloss.strip(),
        )

    # --- the lemma index and sense keys ----------------------------------------------------------

    @functools.cached_property
    def _index(self) -> dict[str, dict[str, tuple[str, ...]]]:
        """part -> lemma -> synset ids in sense order, from `index.<pos>`."""
        with _collector_paused():
            return {part: self._read_index(part) for part in PARTS}

    def _read_index(self, part: str) -> dict[str, tuple[str, ...]]:
        path = self.folder / f"index.{PARTS[part]}"
        index = {}
        for line_number, line in _text_lines(path):
            if line.startswith("  "):
                continue
            fields = line.split()
            try:
                lemma, pos, synset_count, pointer_count = fields[:4]
                if pos != part:
                    raise ValueError(f"part of speech {pos!r} in index.{PARTS[part]}")
                num_synsets, num_pointers = int(synset_count), int(pointer_count)
                offsets = fields[6 + num_pointers :]
                if len(offsets) != num_synsets or int(fields[4 + num_pointers]) != num_synsets:
                    raise ValueError(f"{num_synsets} synsets announced, {len(offsets)} given")
                ids = tuple(self._id(offset, part) for offset in offsets)
                if None in ids:
                    raise ValueError(f"offset {offsets[ids.index(None)]} is no synset")
            except (ValueError, IndexError) as e:
                raise DataError(f"{path}:{line_number}: {e}: {line[:120]!r}") from e
            index[lemma] = ids
        return index

    def lemma_synsets(self, lemma: str, pos: str) -> tuple[str, ...]:
        """The synsets of a lemma (as in the index: lower case, `_` for blanks), in sense order.

        Returns:
          Their ids; empty for a lemma not in `index.<pos>`.
        """
        return self._index[_part(pos)].get(lemma, ())

    def lemmas(self, pos: str) -> Collection[str]:
        """The lemmas of `index.<pos>` (lower case, `_` for blanks), in the file's order."""
        return self._index[_part(pos)].keys()

    @functools.cached_property
    def _senses(self) -> dict[str, Sense]:
        """Sense key -> `Sense`, from `index.sense`."""
        with _collector_paused():
            return dict(self._read_senses(self.folder / "index.sense"))

    def _read_senses(self, path: pathlib.Path) -> Iterator[tuple[str, Sense]]:
        for line_number, line in _text_lines(path):
            fields = line.split()
            try:
                if len(fields) != 4:
                    raise ValueError(f"expected 4 fields, got {len(fields)}")
                key, offset, number, tag_count = fields
                match = _SENSE_KEY.fullmatch(key)
                if match is None:
                    raise ValueError(f"{key!r} is not a sense key")
                synset_type = SENSE_KEY_TYPES[match.group(2)]
                synset_id = self._id(offset, _part(synset_type))
                if synset_id is None or synset_id[-1] != synset_type:
                    raise ValueError(f"no synset {offset}-{synset_type}")
                sense = Sense(key, synset_id, int(number), int(tag_count))
            except ValueError as e:
                raise DataError(f"{path}:{line_number}: {e}: {line[:120]!r}") from e
            yield key, sense

    @functools.cached_property
    def _sense_of(self) -> dict[tuple[str, str], Sense]:
        """(lemma, synset id) -> its `Sense`."""
        senses = self._senses
        with _collector_paused():
            return {(key.partition("%")[0], s.synset): s for key, s in senses.items()}

    def sense(self, key: str) -> Sense:
        """The `index.sense` line of a sense key (compared in lower case).

        Raises:
          KeyError: no such sense key.
        """
        sense = self._senses.get(key.lower())
        if sense is None:
            raise KeyError(f"no sense key {key!r} in {self.folder / 'index.sense'}")
        return sense

    def synset_of_key(self, key: str) -> Synset:
        """The synset of a sense key (`bank%1:17:01::` -> the slope beside a body of water).

        Raises:
          KeyError: no such sense key.
        """
        return self.synsets[self.sense(key).synset]

    def senses(self, lemma: str, pos: str) -> tuple[Sense, ...]:
        """A lemma's senses in a part of speech, in WordNet's sense order, with tag counts.

        Returns:
          One `Sense` per synset of `lemma_synsets(lemma, pos)`; empty for an unknown lemma.

        Raises:
          DataError: `index.<pos>` lists a synset that `index.sense` has no key for.
        """
        senses = []
        for synset_id in self.lemma_synsets(lemma, pos):
            sense = self._sense_of.get((lemma, synset_id))
            if sense is None:
                raise DataError(f"{self.folder}: no sense key for {lemma!r} in {synset_id}")
            senses.append(sense)
        return tuple(senses)

    # --- morphology ------------------------------------------------------------------------------

    @functools.cached_property
    def _exceptions(self) -> dict[str, dict[str, tuple[str, ...]]]:
        """part -> inflected form -> base forms, from `<pos>.exc`."""
        exceptions = {}
        for part, name in PARTS.items():
            path = self.folder / f"{name}.exc"
            table = {}
            for line_number, line in _text_lines(path):
                fields = line.split()
                if len(fields) < 2:
                    raise DataError(
                        f"{path}:{line_number}: expected a form and its base forms: {line!r}"
                    )
                table[fields[0]] = tuple(fields[1:])
            exceptions[part] = table
        return exceptions

    def exceptions(self, pos: str) -> Mapping[str, tuple[str, ...]]:
        """The exception list of a part of speech: inflected form -> base forms."""
        return self._exceptions[_part(pos)]

    def morphy(self, word: str, pos: str) -> tuple[str, ...]:
        """The lemmas of `index.<pos>` that `word` is or may be an inflection of (module docs).

        Args:
          word: a word or collocation, any case, blanks or `_` between words.
          pos: `n`, `v`, `a` (or `s`) or `r`.

        Returns:
          The lemmas, the form itself first when it is one; empty when none is found.
        """
        part = _part(pos)
        lemmas = self._index[part]
        form = "_".join(word.lower().split())
        found = [form, *self._base_forms(form, part)]
        pieces = re.split(r"([_-])", form)
        if len(pieces) > 1:
            options = [
                [piece, *(f for f in self._base_forms(piece, part) if f in lemmas)]
                if piece not in ("_", "-")
                else [piece]
                for piece in pieces
            ]
            found.extend("".join(combination) for combination in itertools.product(*options))
        return tuple(f for f in dict.fromkeys(found) if f in lemmas)

    def _base_forms(self, form: str, part: str) -> list[str]:
        """Exception-list or detached forms of one form (unchecked against the index)."""
        listed = self._exceptions[part].get(form)
        if listed is not None:
            return list(listed)
        stem, ending = form, ""
        if part == "n":
            if form.endswith("ful"):
                stem, ending = form[:-3], "ful"
            elif form.endswith("ss") or len(form) <= 2:
                return []
        return [
            stem[: len(stem) - len(suffix)] + replacement + ending
            for suffix, replacement in DETACHMENT_RULES[part]
            if stem.endswith(suffix) and len(stem) > len(suffix)
        ]

    # --- the graph and other versions' offsets ---------------------------------------------------

    def graph(self) -> tuple[tuple[str, ...], tuple[str, ...], np.ndarray]:
        """Every pointer as a triple over all synsets, for training KGE embeddings on WordNet.

        Returns:
          entities: the synset ids [V], in file order (noun, verb, adj, adv);
          relations: the relation names [R] (`POINTER_NAMES`) of the symbols that occur, in
            `POINTER_NAMES` order;
          triples: int32 [E, 3] (head, relation, tail) ids, distinct, sorted.
        """
        entities = tuple(self.synsets)
        entity_ids = {name: i for i, name in enumerate(entities)}
        symbols = {p.symbol for s in self.synsets.values() for p in s.pointers}
        relations = tuple(s for s in POINTER_NAMES if s in symbols)
        relation_ids = {symbol: i for i, symbol in enumerate(relations)}
        with _collector_paused():
            flat = [
                (entity_ids[s.id], relation_ids[p.symbol], entity_ids[p.target])
                for s in self.synsets.values()
                for p in s.pointers
            ]
        triples = np.unique(np.asarray(flat, dtype=np.int32).reshape(-1, 3), axis=0)
        return entities, tuple(POINTER_NAMES[s] for s in relations), triples

    def at_princeton_offset(self, offset: str) -> tuple[str, ...]:
        """The synsets at an offset of Princeton's WordNet 3.0 release, in all four files.

        WN18RR's entity names are such offsets (module docstring: how they map to this copy).

        Args:
          offset: 8 digits, as WN18RR writes them (`00260881`).

        Returns:
          The ids of the synsets found, in the order noun, verb, adj, adv; several for an
          offset that synsets of different parts of speech share (WN18's merged entities).

        Raises:
          ValueError: the offset is not 8 digits.
        """
        if not (len(offset) == 8 and offset.isdigit()):
            raise ValueError(f"a synset offset has 8 digits: {offset!r}")
        princeton = int(offset)
        found = []
        for part in PARTS:
            candidates = [princeton]
            for shifted_part, first, last, shift in _PRINCETON_SHIFTS:
                if part == shifted_part and first <= princeton <= last:
                    candidates = [princeton + shift]
            if part == "a" and _ADJ_UNKNOWN[0] <= princeton <= _ADJ_UNKNOWN[1]:
                candidates = [princeton, princeton + 1]
            for candidate in candidates:
                synset_id = self._id(f"{candidate:08d}", part)
                if synset_id is not None:
                    found.append(synset_id)
                    break
        return tuple(found)


def write_graph_folder(
    wordnet: WordNet,
    folder: str | os.PathLike,
    num_held_out_pairs: int = 2000,
    seed: int = 0,
) -> dict:
    """Writes `WordNet.graph()` as a KGE dataset folder: train.txt, valid.txt, test.txt.

    Lines are `head<TAB>relation<TAB>tail` with synset ids and pointer names, which any
    `--config.data.path` reads. WordNet states most pointers in both directions (hypernym and
    hyponym, meronym and holonym, ...), so a held-out triple whose mirror stayed in training
    would be answered by that mirror (WN18's leak, which WN18RR removed). The held-out parts
    are therefore drawn as unordered synset pairs: every triple between the two synsets,
    either way round, leaves training together. A pair is drawn only while both synsets keep
    a training triple. The first half of the drawn pairs goes to valid, the rest to test.

    Args:
      folder: created if missing; existing split files are overwritten.
      num_held_out_pairs: synset pairs drawn out of training (seeded).

    Returns:
      {"entities", "relations", "triples": {split: count}, "held_out_pairs"}.
    """
    entities, relations, triples = wordnet.graph()
    pairs, pair_of = np.unique(np.sort(triples[:, [0, 2]], axis=1), axis=0, return_inverse=True)
    pair_of = pair_of.reshape(-1)
    per_pair = np.bincount(pair_of, minlength=len(pairs))
    # Training triples each synset is in (a self-loop counts once per end).
    degree = np.bincount(triples[:, [0, 2]].reshape(-1), minlength=len(entities))
    drawn = []
    for p in np.random.default_rng(seed).permutation(len(pairs)):
        if len(drawn) == num_held_out_pairs:
            break
        head, tail = pairs[p]
        if head != tail and degree[head] > per_pair[p] and degree[tail] > per_pair[p]:
            degree[head] -= per_pair[p]
            degree[tail] -= per_pair[p]
            drawn.append(p)
    split_of_pair = np.zeros(len(pairs), np.int8)  # 0 train, 1 valid, 2 test
    half = len(drawn) // 2
    split_of_pair[drawn[:half]] = 1
    split_of_pair[drawn[half:]] = 2
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    counts = {}
    for code, split in enumerate(("train", "valid", "test")):
        part = triples[split_of_pair[pair_of] == code]
        with open(folder / f"{split}.txt", "w") as f:
            f.writelines(f"{entities[h]}\t{relations[r]}\t{entities[t]}\n" for h, r, t in part)
        counts[split] = len(part)
    return {
        "entities": len(entities),
        "relations": len(relations),
        "triples": counts,
        "held_out_pairs": len(drawn),
    }


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pauses Python's cyclic garbage collector while a table is built.

    Building a few hundred thousand tuples would otherwise set off collections that rescan the
    growing heap again and again (half the load time); the tables hold no reference cycles.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _part(pos: str) -> str:
    """The file letter of a part of speech (`s` -> `a`)."""
    part = "a" if pos == "s" else pos
    if part not in PARTS:
        raise ValueError(f"part of speech must be one of n, v, a, s, r; got {pos!r}")
    return part


def _hex(text: str, width: int, field: str) -> int:
    value = _HEX.get(text) if len(text) == width else None
    if value is None:
        raise ValueError(f"{field} {text!r} is not a {width}-digit hexadecimal number")
    return value


def _decimal(text: str, width: int, field: str) -> int:
    if len(text) != width or not text.isdigit():
        raise ValueError(f"{field} {text!r} is not a {width}-digit decimal number")
    return int(text)


def _raw_lines(path: pathlib.Path) -> Iterator[tuple[int, bytes]]:
    """The lines of a file as bytes, line ends kept, with their 1-based numbers."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with open(path, "rb") as f:
        yield from enumerate(f, start=1)


def _text_lines(path: pathlib.Path) -> Iterator[tuple[int, str]]:
    """The non-blank lines of an ASCII file, line ends stripped, with their 1-based numbers."""
    for line_number, raw in _raw_lines(path):
        try:
            line = raw.decode("ascii").rstrip("\r\n")
        except UnicodeDecodeError as e:
            raise DataError(f"{path}:{line_number}: not ASCII ({e})") from e
        if line.strip():
            yield line_number, line
