"""SemEval-2010 Task 8 (Hendrickx et al., 2010): relation classification between two marked
nominals, its answer format and its official scorer.

Host side only (plain Python and a `perl` subprocess); never imports jax.

Files ($KGJAX_DATA_DIR/semeval2010_task8, CRLF endings): `TRAIN_FILE.TXT` (8,000 sentences)
and `TEST_FILE_FULL.TXT` (2,717), blocks of
  <id> <TAB> "<sentence with <e1>...</e1> and <e2>...</e2>>"
  <label>
  Comment: <free text>
  <blank line>
with 19 labels: 9 relations in either direction, `Relation(e1,e2)` or `Relation(e2,e1)`,
and `Other`. Each sentence becomes words (`wordnet_examples.tokenise` of the text between
the tags, the tags dropped) and the word spans of e1 and e2.

The official answer format is one `<id> <TAB> <label>` line per sentence (`write_answers`);
the official scorer `semeval2010_task8_scorer-v1.2.pl` reads a proposed and a key file of it
(`run_scorer`) and prints, last, the official score: the macro-averaged F1 over the 9
relations with directionality taken into account, `Other` excluded (`official_score`).
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
from collections.abc import Sequence

from kgjax.data.triples import DataError
from kgjax.data.wordnet_examples import tokenise

__all__ = [
    "FOLDER",
    "LABELS",
    "OTHER",
    "RELATIONS",
    "SCORER",
    "TEST_FILE",
    "TRAIN_FILE",
    "Sentence",
    "official_score",
    "read_semeval",
    "run_scorer",
    "write_answers",
]

FOLDER = "semeval2010_task8"
TRAIN_FILE = "TRAIN_FILE.TXT"
TEST_FILE = "TEST_FILE_FULL.TXT"
SCORER = "semeval2010_task8_scorer-v1.2.pl"
RELATIONS = (
    "Cause-Effect",
    "Component-Whole",
    "Content-Container",
    "Entity-Destination",
    "Entity-Origin",
    "Instrument-Agency",
    "Member-Collection",
    "Message-Topic",
    "Product-Producer",
)
OTHER = "Other"
# Label ids: Other first, then each relation's (e1,e2) and (e2,e1).
LABELS = (OTHER,) + tuple(
    f"{relation}({a},{b})" for relation in RELATIONS for a, b in (("e1", "e2"), ("e2", "e1"))
)

_HEAD = re.compile(r'(\d+)\t"(.*)"')
_TAG = re.compile(r"</?e[12]>")
_OFFICIAL = re.compile(
    r"<<< The official score is \(9\+1\)-way evaluation with directionality taken into "
    r"account: macro-averaged F1 = ([0-9.]+)% >>>"
)


@dataclasses.dataclass(frozen=True)
class Sentence:
    """One labelled sentence.

    Attributes:
      id: its id in the file (the answer format's key).
      words: its words, the entity tags removed.
      e1, e2: (first, last) word of each nominal, inclusive.
      label: one of `LABELS`.
    """

    id: str
    words: tuple[str, ...]
    e1: tuple[int, int]
    e2: tuple[int, int]
    label: str


def _words_and_spans(text: str, where: str):
    """Words of a tagged sentence and the (first, last) word of e1 and e2."""
    tags = _TAG.findall(text)
    if sorted(tags) != sorted(["<e1>", "</e1>", "<e2>", "</e2>"]):
        raise DataError(f"{where}: expected one <e1>...</e1> and one <e2>...</e2>, got {tags}")
    pieces = _TAG.split(text)  # text between the tags, in order
    words: list[str] = []
    opened: dict[str, int] = {}
    spans: dict[str, tuple[int, int]] = {}
    for piece, tag in zip(pieces, [*tags, None], strict=True):
        words.extend(tokenise(piece))
        if tag is None:
            break
        name = tag.strip("</>")
        if not tag.startswith("</"):
            if opened:  # nested or overlapping nominals
                raise DataError(f"{where}: <{name}> opens inside another nominal")
            opened[name] = len(words)
            continue
        if name not in opened:
            raise DataError(f"{where}: </{name}> closes before <{name}> opens")
        first = opened.pop(name)
        if len(words) == first:
            raise DataError(f"{where}: <{name}> holds no word")
        spans[name] = (first, len(words) - 1)
    return tuple(words), spans["e1"], spans["e2"]


def read_semeval(path: str | os.PathLike) -> list[Sentence]:
    """The labelled sentences of `TRAIN_FILE.TXT` or `TEST_FILE_FULL.TXT`, in file order.

    Raises:
      DataError: a missing or non-UTF-8 file, a malformed block (file and line named: a
        first line that is not `<id> TAB "<text>"`, a missing or unknown label, tags that
        are not one <e1> and one <e2> around words), a repeated id, or no sentence at all.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"{path}: file not found")
    try:
        with open(path, encoding="utf-8", newline="") as f:
            lines = [line.rstrip("\r\n") for line in f]
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not valid UTF-8 ({e})") from e
    out: list[Sentence] = []
    seen: set[str] = set()
    number = 0
    while number < len(lines):
        if not lines[number].strip():
            number += 1
            continue
        where = f"{path}:{number + 1}"
        head = _HEAD.fullmatch(lines[number])
        if head is None:
            raise DataError(f'{where}: expected <id> TAB "<sentence>", got {lines[number][:120]!r}')
        sentence_id, text = head.groups()
        if sentence_id in seen:
            raise DataError(f"{where}: id {sentence_id} appears twice")
        seen.add(sentence_id)
        label = lines[number + 1].strip() if number + 1 < len(lines) else ""
        if label not in LABELS:
            raise DataError(f"{path}:{number + 2}: label {label!r} is not one of the 19 labels")
        words, e1, e2 = _words_and_spans(text, where)
        out.append(Sentence(sentence_id, words, e1, e2, label))
        number += 2
        if number < len(lines) and lines[number].startswith("Comment"):
            number += 1
    if not out:
        raise DataError(f"{path}: no sentences (the file is empty)")
    return out


def write_answers(path: str | os.PathLike, ids: Sequence[str], labels: Sequence[str]) -> None:
    """Writes answers (or a key) in the official format: `<id> TAB <label>` per line.

    Raises:
      ValueError: a label that is not one of `LABELS`, or ids and labels of unequal length.
    """
    if len(ids) != len(labels):
        raise ValueError(f"{len(ids)} ids but {len(labels)} labels")
    unknown = sorted(set(labels) - set(LABELS))
    if unknown:
        raise ValueError(f"labels not in the task's 19: {unknown[:5]}")
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(f"{i}\t{label}\n" for i, label in zip(ids, labels, strict=True))


def run_scorer(
    proposed: str | os.PathLike,
    key: str | os.PathLike,
    scorer: str | os.PathLike,
    perl: str = "perl",
) -> str:
    """Runs the official scorer on a proposed answer file against a key file.

    Returns:
      The scorer's output (its confusion matrices and P/R/F1 tables, `official_score` last).

    Raises:
      DataError: the scorer is missing, or perl cannot run it or exits with an error.
    """
    scorer = os.fspath(scorer)
    if not os.path.isfile(scorer):
        raise DataError(f"{scorer}: the official scorer is not there")
    try:
        done = subprocess.run(
            [perl, scorer, os.fspath(proposed), os.fspath(key)],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError as e:
        raise DataError(f"{perl}: cannot run the scorer {scorer} ({e})") from e
    if done.returncode != 0:
        raise DataError(f"{scorer} exited with {done.returncode}: {done.stderr.strip()[-500:]}")
    return done.stdout


def official_score(output: str) -> float:
    """The official score (macro-averaged F1 in percent, (9+1)-way, direction-aware, Other
    excluded) from the scorer's output.

    Raises:
      DataError: the output has no official-score line.
    """
    found = _OFFICIAL.search(output)
    if found is None:
        raise DataError(f"no official score in the scorer's output: {output.strip()[-300:]!r}")
    return float(found.group(1))
