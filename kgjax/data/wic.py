"""WiC, the Word-in-Context dataset (Pilehvar and Camacho-Collados, NAACL 2019).

Host side only (plain Python); never imports jax.

Files ($KGJAX_DATA_DIR/wic, CC BY-NC 4.0: never copied into the repository): per split
(`train`, `dev`, `test`) a `<split>.data.txt` of tab-separated lines
  target_word <TAB> PoS <TAB> index1-index2 <TAB> sentence_1 <TAB> sentence_2
(PoS `N` or `V`; the sentences already tokenised, words separated by single blanks; index_i
the target's 0-based word position in sentence_i, which holds an inflected form of the
target, not always the lemma itself) and a `<split>.gold.txt` of one `T` (same sense) or `F`
per line, line for line.
"""

from __future__ import annotations

import dataclasses
import os

from kgjax.data.triples import DataError

__all__ = ["FOLDER", "POS_TAGS", "SPLITS", "WicPair", "read_split", "read_wic"]

FOLDER = "wic"
SPLITS = ("train", "dev", "test")
POS_TAGS = ("N", "V")
_GOLD = {"T": True, "F": False}


@dataclasses.dataclass(frozen=True)
class WicPair:
    """One instance: a target word in two sentences.

    Attributes:
      lemma: the target word (its lemma).
      pos: "N" or "V".
      words1, words2: the two sentences' words.
      target1, target2: the target's word position in each.
      label: True where the target has the same sense in both; None without a gold file.
    """

    lemma: str
    pos: str
    words1: tuple[str, ...]
    words2: tuple[str, ...]
    target1: int
    target2: int
    label: bool | None


def _lines(path: str) -> list[str]:
    if not os.path.isfile(path):
        raise DataError(f"{path}: file not found")
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return [line.rstrip("\r\n") for line in f]
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not valid UTF-8 ({e})") from e


def _pair(line: str, where: str) -> tuple[str, str, tuple[str, ...], tuple[str, ...], int, int]:
    columns = line.split("\t")
    if len(columns) != 5:
        raise DataError(
            f"{where}: expected 5 tab-separated columns (word, PoS, index1-index2, sentence 1, "
            f"sentence 2), got {len(columns)}: {line[:120]!r}"
        )
    lemma, pos, indices, first, second = columns
    if not lemma.strip():
        raise DataError(f"{where}: empty target word")
    if pos not in POS_TAGS:
        raise DataError(f"{where}: PoS {pos!r} is not one of {POS_TAGS}")
    parts = indices.split("-")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise DataError(f"{where}: indices {indices!r} are not 'index1-index2'")
    words = (tuple(first.split()), tuple(second.split()))
    targets = (int(parts[0]), int(parts[1]))
    for n, (w, t) in enumerate(zip(words, targets, strict=True), start=1):
        if t >= len(w):
            raise DataError(f"{where}: index{n} {t} is beyond sentence {n}'s {len(w)} words")
    return lemma, pos, *words, *targets


def read_wic(data_path: str | os.PathLike, gold_path: str | os.PathLike | None = None):
    """The pairs of a `.data.txt` file and, if given, their labels from a `.gold.txt` file.

    Returns:
      list[WicPair] in file order (labels None without `gold_path`).

    Raises:
      DataError: a missing or non-UTF-8 file, a malformed line (file and line named), a gold
        file whose line count differs, or an empty data file.
    """
    data_path = os.fspath(data_path)
    lines = _lines(data_path)
    while lines and not lines[-1].strip():  # a final newline or blank lines at the end
        lines.pop()
    if not lines:
        raise DataError(f"{data_path}: no pairs (the file is empty)")
    labels: list[bool | None] = [None] * len(lines)
    if gold_path is not None:
        gold_path = os.fspath(gold_path)
        gold = _lines(gold_path)
        while gold and not gold[-1].strip():
            gold.pop()
        if len(gold) != len(lines):
            raise DataError(
                f"{gold_path}: {len(gold)} labels for the {len(lines)} pairs of {data_path}"
            )
        for number, value in enumerate(gold, start=1):
            if value.strip() not in _GOLD:
                raise DataError(f"{gold_path}:{number}: expected T or F, got {value[:40]!r}")
        labels = [_GOLD[value.strip()] for value in gold]
    return [
        WicPair(*_pair(line, f"{data_path}:{number}"), label=label)
        for number, (line, label) in enumerate(zip(lines, labels, strict=True), start=1)
    ]


def read_split(data_dir: str | os.PathLike | None, split: str) -> list[WicPair]:
    """A split's pairs with their gold labels, from `<data_dir>/wic/`.

    Args:
      data_dir: the folder holding wic/; None or "": $KGJAX_DATA_DIR.
      split: one of `SPLITS`.

    Raises:
      DataError: no data folder, or the files' problems (`read_wic`).
    """
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {SPLITS}")
    data_dir = data_dir or os.environ.get("KGJAX_DATA_DIR", "")
    if not data_dir:
        raise DataError("no data folder for WiC: set KGJAX_DATA_DIR or data.data_dir")
    folder = os.path.join(data_dir, FOLDER)
    return read_wic(
        os.path.join(folder, f"{split}.data.txt"), os.path.join(folder, f"{split}.gold.txt")
    )
