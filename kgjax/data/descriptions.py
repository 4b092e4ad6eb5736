"""Entity and relation description texts, and where an entity is mentioned in its own text.

Host side only: plain Python and NumPy (and `tokenizers` encodings); never imports jax.

Sources, under a dataset folder laid out like `../shared/data/<dataset>/` (see its README):

- `kg-bert`: `kg-bert/entity2text.txt`; the name (FB15k-237, UMLS) or "lemma, definition"
  (WN18RR). Mention: the name, or the lemma.
- `kg-bert-long`: `kg-bert/entity2textlong.txt`, a paragraph (UMLS). Mention: the kg-bert name.
- `star`: `star/fb-entity2text-new.txt`, "Name -- first sentence" (FB15k-237). Mention: Name.
- `wikidata`: `wikidata/entity2wikidata.json`, "label -- description" (FB15k-237). Mention:
  the label.
- relations: `kg-bert/relation2text.txt`, e.g. "music artist origin". Mention: the whole text.

Defaults: FB15k-237 `star`, WN18RR `kg-bert`, UMLS `kg-bert-long`, any other folder `kg-bert`.
The mention is the entity's name, which JAKET (Yu et al., AAAI 2022) locates in the entity's
own description to pool its vector from (`mention_span`).

Fallback: an entity or relation that the source has no (non-empty) text for gets its name
from `kg-bert/entity2text.txt` when that file has it (for WN18RR the whole "lemma,
definition"), otherwise its key made readable (`/music/artist/origin` -> "music artist
origin", `idea_or_concept` -> "idea or concept"); such keys are listed in
`Descriptions.fallback`. With `missing="error"` they raise instead.

Shapes: n texts, L tokens.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
from collections.abc import Sequence

import numpy as np
import tokenizers

from kgjax.data.triples import DataError

ENTITY_SOURCES = {
    "kg-bert": "kg-bert/entity2text.txt",
    "kg-bert-long": "kg-bert/entity2textlong.txt",
    "star": "star/fb-entity2text-new.txt",
    "wikidata": "wikidata/entity2wikidata.json",
}
RELATION_FILE = "kg-bert/relation2text.txt"
DEFAULT_ENTITY_SOURCE = {"fb15k-237": "star", "wn18rr": "kg-bert", "umls": "kg-bert-long"}
# Datasets whose kg-bert entity text is "lemma, definition" (the lemma is the mention).
_LEMMA_FIRST = ("wn18rr",)
_MISSING = ("name", "error")


@dataclasses.dataclass(frozen=True)
class Descriptions:
    """Texts aligned with a vocabulary.

    Attributes:
      keys: the vocabulary (entity or relation keys), in id order.
      texts: the description of each key.
      mentions: the name to look for in each text (JAKET's mention of the entity).
      fallback: the keys whose text is the fallback (the source had none).
      source: the file the texts were read from.
    """

    keys: tuple[str, ...]
    texts: tuple[str, ...]
    mentions: tuple[str, ...]
    fallback: tuple[str, ...]
    source: str


def read_key_text_file(path: str | os.PathLike) -> dict[str, str]:
    """Reads a `key<TAB>text` file (kg-bert, StAR); the last line may lack a newline.

    Returns:
      key -> text (stripped; an empty text stays empty).

    Raises:
      DataError: the file is missing, not UTF-8, or has a line without a tab (line named).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"{path}: file not found")
    texts = {}
    try:
        with open(path, encoding="utf-8", newline="") as f:
            for line_number, line in enumerate(f, start=1):
                line = line.rstrip("\r\n")
                if not line.strip():
                    continue
                key, tab, text = line.partition("\t")
                if not tab:
                    raise DataError(f"{path}:{line_number}: expected key<TAB>text: {line[:120]!r}")
                texts[key] = text.strip()
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not valid UTF-8 ({e})") from e
    return texts


def read_json_file(path: str | os.PathLike, error: type[Exception] = DataError):
    """Reads a UTF-8 JSON file (descriptions here, model configs in `kgjax.models.lm`).

    Args:
      error: the exception class to raise, the caller's room's (default `DataError`).

    Returns:
      The JSON value.

    Raises:
      error: the file is missing, not UTF-8 or not JSON (the file named).
    """
    file = pathlib.Path(path)
    if not file.is_file():
        raise error(f"{file}: file not found")
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise error(f"{file}: not a valid UTF-8 JSON file ({e})") from e


def _readable(key: str) -> str:
    return re.sub(r"[/_.\s]+", " ", key).strip() or key


def _unescape_star(text: str) -> str:
    # The StAR file keeps the Freebase dump's escapes (\", \n, \r, \t), and 93 lines are cut
    # right before an escaped quote, leaving a dangling backslash.
    text = re.sub(r"(\\[nrt])+", " ", text.replace('\\"', '"'))
    return re.sub(r"\s+", " ", text.rstrip("\\")).strip()


def _read_source(folder: pathlib.Path, dataset: str, source: str) -> dict[str, tuple[str, str]]:
    """key -> (text, mention) for one entity source."""
    file = folder / ENTITY_SOURCES[source]
    if source == "kg-bert":
        texts = read_key_text_file(file)
        if dataset in _LEMMA_FIRST:
            return {k: (t, t.split(", ", 1)[0].strip()) for k, t in texts.items()}
        return {k: (t, t) for k, t in texts.items()}
    if source == "kg-bert-long":
        names = _names(folder, dataset)
        return {k: (t, names.get(k, _readable(k))) for k, t in read_key_text_file(file).items()}
    if source == "star":
        entries = {}
        for key, line in read_key_text_file(file).items():
            name, _, description = line.partition(" -- ")
            name = _unescape_star(name)
            description = _unescape_star(description)
            entries[key] = (f"{name} -- {description}" if description else name, name)
        return entries
    entries = {}
    for key, entry in read_json_file(file).items():
        label = (entry.get("label") or "").strip()
        description = (entry.get("description") or "").strip()
        if label:
            entries[key] = (f"{label} -- {description}" if description else label, label)
    return entries


def _names(folder: pathlib.Path, dataset: str) -> dict[str, str]:
    """key -> kg-bert name (the fallback text); empty when the dataset has no such file."""
    file = folder / ENTITY_SOURCES["kg-bert"]
    if not file.is_file():
        return {}
    return {k: t for k, t in read_key_text_file(file).items() if t}


def _align(
    keys: Sequence[str],
    entries: dict[str, tuple[str, str]],
    fallback_names: dict[str, str],
    source: pathlib.Path,
    missing: str,
    kind: str,
) -> Descriptions:
    if missing not in _MISSING:
        raise ValueError(f"missing must be one of {_MISSING}, got {missing!r}")
    texts, mentions, fallback = [], [], []
    for key in keys:
        text, mention = entries.get(key, ("", ""))
        if not text:
            fallback.append(key)
            text = fallback_names.get(key) or _readable(key)
            mention = text
        texts.append(text)
        mentions.append(mention)
    if fallback and missing == "error":
        shown = ", ".join(fallback[:10]) + (", ..." if len(fallback) > 10 else "")
        raise DataError(f"{source}: no text for {len(fallback)} of {len(keys)} {kind}: {shown}")
    return Descriptions(tuple(keys), tuple(texts), tuple(mentions), tuple(fallback), str(source))


def dataset_kind(folder: pathlib.Path) -> str:
    """The name that picks a folder's defaults (its source, the WN18RR lemma rule): the
    folder's own, or, for a folder `kgjax split` derived (its `split.json` names the source
    folder), the source's, so that an inductive split of fb15k-237 reads StAR's descriptions
    as fb15k-237 does rather than falling back to bare names."""
    manifest = folder / "split.json"
    if manifest.is_file():
        try:
            source = json.loads(manifest.read_text()).get("source")
        except (ValueError, UnicodeDecodeError) as e:
            raise DataError(f"{manifest}: not valid JSON ({e})") from e
        if source:
            return pathlib.Path(source).name.lower()
    return folder.name.lower()


def entity_descriptions(
    dataset_dir: str | os.PathLike,
    keys: Sequence[str],
    source: str | None = None,
    missing: str = "name",
) -> Descriptions:
    """Entity descriptions for a vocabulary.

    Args:
      dataset_dir: the dataset's folder, e.g. `../shared/data/fb15k-237`; its name picks the
        default source and the WN18RR lemma rule.
      keys: the entity keys (e.g. `Vocabulary.names`), in id order.
      source: one of `ENTITY_SOURCES`; None for the dataset's default.
      missing: "name" (fallback text, see the module docstring) or "error".

    Returns:
      The texts and mentions, aligned with `keys`.

    Raises:
      DataError: an unknown or absent source, a malformed file, or (with missing="error")
        keys without text.
    """
    folder = pathlib.Path(dataset_dir)
    dataset = dataset_kind(folder)
    source = source or DEFAULT_ENTITY_SOURCE.get(dataset, "kg-bert")
    if source not in ENTITY_SOURCES:
        raise DataError(f"unknown entity text source {source!r}; known: {sorted(ENTITY_SOURCES)}")
    file = folder / ENTITY_SOURCES[source]
    if not file.is_file():
        present = [s for s, f in ENTITY_SOURCES.items() if (folder / f).is_file()]
        raise DataError(f"{file}: file not found (sources present in {folder}: {present})")
    entries = _read_source(folder, dataset, source)
    return _align(keys, entries, _names(folder, dataset), file, missing, "entities")


def relation_descriptions(
    dataset_dir: str | os.PathLike, keys: Sequence[str], missing: str = "name"
) -> Descriptions:
    """Relation descriptions from `kg-bert/relation2text.txt`; the mention is the whole text.

    Args:
      dataset_dir: the dataset's folder.
      keys: the relation keys, in id order.
      missing: "name" (the key made readable) or "error".

    Returns:
      The texts, aligned with `keys`.

    Raises:
      DataError: the file is missing or malformed, or (with missing="error") keys without text.
    """
    file = pathlib.Path(dataset_dir) / RELATION_FILE
    entries = {k: (t, t) for k, t in read_key_text_file(file).items()}
    return _align(keys, entries, {}, file, missing, "relations")


def mention_span(encoding: tokenizers.Encoding, text: str, mention: str) -> tuple[int, int]:
    """The token span of the first occurrence of `mention` in `text`, as JAKET locates it.

    The match is case-insensitive and on whole words ("Ion" is not found in "Union"). Token
    positions are 0-based and count the leading special token: in "[CLS] The Sun is ..." the
    mention "Sun" is (2, 2), which JAKET, counting from 1, writes (3, 3). When the mention is
    absent, or truncated away, the span is the first token (0, 0): JAKET's position 1.

    Args:
      encoding: `text` tokenised by a `tokenizers.Tokenizer` (with character offsets).
      text: the text that was tokenised.
      mention: the string to find.

    Returns:
      (start, end), end inclusive.
    """
    mention = mention.strip()
    match = re.search(rf"(?<!\w){re.escape(mention)}(?!\w)", text, re.IGNORECASE)
    if not mention or match is None:
        return 0, 0
    return token_span(encoding, *match.span()) or (0, 0)


def token_span(encoding: tokenizers.Encoding, start: int, end: int) -> tuple[int, int] | None:
    """The first and last real, non-special tokens overlapping characters [start, end), or
    None when truncation cut the span off."""
    covered = [
        i
        for i, ((s, e), special, real) in enumerate(
            zip(
                encoding.offsets,
                encoding.special_tokens_mask,
                encoding.attention_mask,
                strict=True,
            )
        )
        if real and not special and s < end and e > start
    ]
    return (covered[0], covered[-1]) if covered else None


def mention_spans(
    encodings: Sequence[tokenizers.Encoding], texts: Sequence[str], mentions: Sequence[str]
) -> np.ndarray:
    """`mention_span` for each text: int32 [n, 2] (start, end), end inclusive.

    Raises:
      ValueError: the three sequences differ in length.
    """
    if not len(encodings) == len(texts) == len(mentions):
        raise ValueError(
            f"got {len(encodings)} encodings, {len(texts)} texts, {len(mentions)} mentions"
        )
    spans = [mention_span(e, t, m) for e, t, m in zip(encodings, texts, mentions, strict=True)]
    return np.asarray(spans, np.int32).reshape(len(spans), 2)
