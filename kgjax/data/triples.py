"""Triples on the host: parsing, vocabularies, the dataset record and its indices.

Host side only (NumPy); never imports jax. Everything the device later sees is a
plain int32/float32 array built here.

Shapes: V entities, R relations, n triples, columns of a triple array are (head, relation, tail).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Iterable, Sequence

import numpy as np

SPLITS = ("train", "valid", "test")
# Labelled false triples of the evaluation splits, for triple classification (optional).
NEGATIVES_FILES = {"valid": "valid_negatives.txt", "test": "test_negatives.txt"}


class DataError(ValueError):
    """A dataset file or folder that cannot be used, with the file (and line) named."""


class UnknownNameError(KeyError):
    """An entity or relation name that is not in the vocabulary (close matches listed)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def parse_triples(lines: Iterable[str], source: str) -> list[tuple[str, str, str]]:
    """Parses tab-separated `head<TAB>relation<TAB>tail` lines.

    CRLF endings (FB15k-237) are stripped; names are kept as strings (WN18RR ids keep
    their leading zeros). Blank lines are skipped.

    Args:
      lines: the file's lines.
      source: the file name, used in error messages.

    Returns:
      The triples in file order.

    Raises:
      DataError: a line without exactly three non-empty tab-separated columns, or no triple at all.
    """
    return [triple for _, triple in _numbered_triples(lines, source)]


def _numbered_triples(lines: Iterable[str], source: str) -> list[tuple[int, tuple[str, str, str]]]:
    """`parse_triples`, each triple with its 1-based line number."""
    triples = []
    for line_number, line in enumerate(lines, start=1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        columns = line.split("\t")
        if len(columns) != 3:
            raise DataError(
                f"{source}:{line_number}: expected 3 tab-separated columns "
                f"(head, relation, tail), got {len(columns)}: {line[:120]!r}"
            )
        if any(not c.strip() for c in columns):
            raise DataError(f"{source}:{line_number}: empty name in {line[:120]!r}")
        triples.append((line_number, (columns[0], columns[1], columns[2])))
    if not triples:
        raise DataError(f"{source}: no triples (the file is empty)")
    return triples


def read_triples_file(path: str | os.PathLike) -> list[tuple[str, str, str]]:
    """Reads one split file; see `parse_triples`.

    Raises:
      DataError: the file is missing, not UTF-8, or malformed (file and line named).
    """
    return [triple for _, triple in _read_numbered_triples(path)]


def _read_numbered_triples(path: str | os.PathLike) -> list[tuple[int, tuple[str, str, str]]]:
    """`read_triples_file`, each triple with its 1-based line number."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"{path}: file not found")
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return _numbered_triples(f, path)
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not valid UTF-8 ({e})") from e


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """A bijection between names and contiguous int32 ids."""

    names: tuple[str, ...]

    @functools.cached_property
    def index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}

    def __len__(self) -> int:
        return len(self.names)

    def id(self, name: str, kind: str = "name") -> int:
        """Returns the id of `name`.

        Raises:
          UnknownNameError: `name` is not in the vocabulary; the message lists close matches.
        """
        try:
            return self.index[name]
        except KeyError:
            import difflib

            close = difflib.get_close_matches(name, self.names, n=5, cutoff=0.6)
            hint = f"; close matches: {', '.join(close)}" if close else ""
            raise UnknownNameError(f"unknown {kind} {name!r}{hint}") from None


@dataclasses.dataclass(frozen=True)
class KGDataset:
    """A link-prediction dataset: vocabularies and int32 [n, 3] (head, relation, tail) splits.

    Entities that appear only in valid/test are kept in the vocabulary (after the train
    entities) and listed in `unseen_entities`; ranking counts them as candidates like any other.

    `negatives` holds labelled false triples of the evaluation splits for triple
    classification ({"valid": int32 [m, 3], "test": ...}, see `read_negatives`), or nothing.
    """

    name: str
    entities: Vocabulary
    relations: Vocabulary
    splits: dict[str, np.ndarray]
    source: str = ""
    negatives: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    @property
    def num_entities(self) -> int:
        return len(self.entities)

    @property
    def num_relations(self) -> int:
        return len(self.relations)

    @property
    def train(self) -> np.ndarray:
        return self.splits["train"]

    @property
    def valid(self) -> np.ndarray:
        return self.splits["valid"]

    @property
    def test(self) -> np.ndarray:
        return self.splits["test"]

    @functools.cached_property
    def unseen_entities(self) -> dict[str, int]:
        """Per evaluation split, how many of its entities never occur in train."""
        seen = np.zeros(self.num_entities, bool)
        seen[self.train[:, 0]] = True
        seen[self.train[:, 2]] = True
        out = {}
        for split in ("valid", "test"):
            ids = np.unique(self.splits[split][:, [0, 2]])
            out[split] = int((~seen[ids]).sum())
        return out

    def summary(self) -> str:
        counts = " / ".join(f"{len(self.splits[s]):,}" for s in SPLITS)
        unseen = self.unseen_entities
        negatives = " / ".join(f"{len(rows):,}" for rows in self.negatives.values())
        return (
            f"{self.name}: {self.num_entities:,} entities, {self.num_relations:,} relations, "
            f"train/valid/test {counts} triples; entities absent from train: "
            f"{unseen['valid']} in valid, {unseen['test']} in test"
            + (f"; labelled negatives valid/test {negatives}" if negatives else "")
        )

    def triple_index(self, splits: Sequence[str] = SPLITS) -> TripleIndex:
        """All known true triples of `splits`, for filtering."""
        return TripleIndex.build(
            np.concatenate([self.splits[s] for s in splits]), self.num_entities
        )


def build_dataset(
    name: str,
    raw_splits: dict[str, list[tuple[str, str, str]]],
    sources: dict[str, str] | None = None,
    entities: Sequence[str] | None = None,
    relations: Sequence[str] | None = None,
) -> KGDataset:
    """Maps string triples to ids.

    Without fixed vocabularies, entities and relations are numbered in order of first
    appearance in train, then valid, then test, so train entities come first. With fixed
    vocabularies (`entities`, `relations`), a name outside them is an error.

    Args:
      name: the dataset's name.
      raw_splits: split name -> (head, relation, tail) names, for all of train/valid/test.
      sources: split name -> file, for error messages.
      entities, relations: optional fixed vocabularies.

    Returns:
      The dataset.

    Raises:
      DataError: a missing split, a name outside a fixed vocabulary, or a relation of
        valid/test that never occurs in train (its embedding would never be trained).
    """
    sources = sources or {}
    for split in SPLITS:
        if split not in raw_splits:
            raise DataError(f"{name}: missing split {split!r}")
    # Each vocabulary is fixed on its own: a fixed entity list with relations read from the
    # data (or the reverse) is a normal use.
    fixed = {"entity": entities is not None, "relation": relations is not None}
    entity_ids: dict[str, int] = {e: i for i, e in enumerate(entities or ())}
    relation_ids: dict[str, int] = {r: i for i, r in enumerate(relations or ())}
    arrays = {}
    for split in SPLITS:
        where = sources.get(split, f"{name}/{split}")
        rows = np.empty((len(raw_splits[split]), 3), np.int32)
        for i, (h, r, t) in enumerate(raw_splits[split]):
            for column, (table, value, kind) in enumerate(
                (
                    (entity_ids, h, "entity"),
                    (relation_ids, r, "relation"),
                    (entity_ids, t, "entity"),
                )
            ):
                found = table.get(value)
                if found is None:
                    if fixed[kind] or (kind == "relation" and split != "train"):
                        raise DataError(
                            f"{where}: triple {i + 1} ({h}, {r}, {t}): {kind} {value!r} is not "
                            f"in the {'fixed vocabulary' if fixed[kind] else 'training split'}"
                        )
                    found = table[value] = len(table)
                rows[i, column] = found
        arrays[split] = rows
    return KGDataset(
        name=name,
        entities=Vocabulary(tuple(entity_ids)),
        relations=Vocabulary(tuple(relation_ids)),
        splits=arrays,
        source=sources.get("train", ""),
    )


def load_folder(path: str | os.PathLike, name: str | None = None) -> KGDataset:
    """Loads a user folder holding `train.txt`, `valid.txt` and `test.txt`, and the labelled
    negatives `valid_negatives.txt` and `test_negatives.txt` if it has them.

    Raises:
      DataError: the folder or a file is missing or malformed (see `read_negatives`).
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise DataError(f"{path}: dataset folder not found")
    files = {s: os.path.join(path, f"{s}.txt") for s in SPLITS}
    raw = {s: read_triples_file(f) for s, f in files.items()}
    dataset = build_dataset(name or os.path.basename(os.path.normpath(path)), raw, files)
    negatives = read_negatives(path, dataset.entities, dataset.relations)
    return dataclasses.replace(dataset, negatives=negatives) if negatives else dataset


def read_negatives(
    folder: str | os.PathLike, entities: Vocabulary, relations: Vocabulary
) -> dict[str, np.ndarray]:
    """Reads the labelled negatives beside a folder's splits, for triple classification.

    `valid_negatives.txt` and `test_negatives.txt` hold false triples in the splits' format
    (as WN11 and FB13 ship them: true triples with one end corrupted); both files or neither.

    Args:
      folder: the dataset folder.
      entities, relations: the dataset's vocabularies; every name must be in them.

    Returns:
      {"valid": int32 [m, 3], "test": int32 [m', 3]} in file order (repeated lines kept: each
      line is one labelled example), or {} when neither file exists.

    Raises:
      DataError: only one of the two files; a malformed line, or a name that is in none of
        train, valid and test (file and line named, close matches listed).
    """
    files = {s: os.path.join(os.fspath(folder), f) for s, f in NEGATIVES_FILES.items()}
    missing = [f for f in files.values() if not os.path.isfile(f)]
    if len(missing) == len(files):
        return {}
    if missing:
        raise DataError(
            f"{missing[0]}: file not found; triple classification needs both "
            f"{' and '.join(NEGATIVES_FILES.values())}, or neither"
        )
    out = {}
    for split, path in files.items():
        numbered = _read_numbered_triples(path)
        rows = np.empty((len(numbered), 3), np.int32)
        for i, (line_number, (h, r, t)) in enumerate(numbered):
            try:
                rows[i] = (
                    entities.id(h, "entity"),
                    relations.id(r, "relation"),
                    entities.id(t, "entity"),
                )
            except UnknownNameError as e:
                raise DataError(
                    f"{path}:{line_number}: {e} (in none of train, valid, test)"
                ) from None
        out[split] = rows
    return out


@dataclasses.dataclass(frozen=True)
class TripleIndex:
    """Known true triples in two sorted layouts (CSR), for filtering on the device.

    Tail side: triples sorted by (head, relation, tail); the triples with head h are rows
    `tail_offsets[h]:tail_offsets[h + 1]` of `tail_relation`/`tail_entity`. Head side: the
    same sorted by (tail, relation, head). All arrays int32, duplicates removed.

    Attributes:
      tail_offsets: [V + 1]. tail_relation, tail_entity: [n] (relation, tail) per head.
      head_offsets: [V + 1]. head_relation, head_entity: [n] (relation, head) per tail.
      max_tails: the most true tails of any (head, relation) pair.
      max_heads: the most true heads of any (relation, tail) pair.
    """

    tail_offsets: np.ndarray
    tail_relation: np.ndarray
    tail_entity: np.ndarray
    head_offsets: np.ndarray
    head_relation: np.ndarray
    head_entity: np.ndarray
    max_tails: int
    max_heads: int

    @classmethod
    def build(cls, triples: np.ndarray, num_entities: int) -> TripleIndex:
        """Args: triples: int [n, 3]; num_entities: V."""
        triples = np.unique(np.asarray(triples, np.int64).reshape(-1, 3), axis=0)
        h, r, t = triples.T

        def side(anchor, rel, other):
            order = np.lexsort((other, rel, anchor))
            anchor, rel, other = anchor[order], rel[order], other[order]
            offsets = np.zeros(num_entities + 1, np.int64)
            np.add.at(offsets, anchor + 1, 1)
            offsets = np.cumsum(offsets)
            # Longest run of one (anchor, relation) pair: the filter budget of a query.
            if len(anchor):
                key_change = np.flatnonzero((np.diff(anchor) != 0) | (np.diff(rel) != 0)) + 1
                runs = np.diff(np.concatenate([[0], key_change, [len(anchor)]]))
                longest = int(runs.max())
            else:
                longest = 0
            return offsets.astype(np.int32), rel.astype(np.int32), other.astype(np.int32), longest

        to, tr, te, max_tails = side(h, r, t)
        ho, hr, he, max_heads = side(t, r, h)
        return cls(to, tr, te, ho, hr, he, max_tails, max_heads)

    @property
    def num_triples(self) -> int:
        return len(self.tail_entity)


def subsampling_weights(train: np.ndarray) -> np.ndarray:
    """Frequency-based subsampling weights of the RotatE reference (word2vec style).

    weight(h, r, t) = 1 / sqrt(count(h, r) + count(t, r^-1)), where the reference's counts
    start at 4 for the first occurrence and add one per further occurrence.

    Args:
      train: int [n, 3].

    Returns:
      float32 [n].
    """
    h, r, t = (np.asarray(train[:, i], np.int64) for i in range(3))
    num_relations = int(r.max()) + 1 if len(r) else 1
    head_key = h * num_relations + r
    tail_key = t * num_relations + r
    _, head_inverse, head_counts = np.unique(head_key, return_inverse=True, return_counts=True)
    _, tail_inverse, tail_counts = np.unique(tail_key, return_inverse=True, return_counts=True)
    # Each reference count is 4 + (occurrences - 1).
    counts = head_counts[head_inverse] + tail_counts[tail_inverse] + 6
    return (1.0 / np.sqrt(counts)).astype(np.float32)
