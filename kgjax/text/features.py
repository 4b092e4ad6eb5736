"""Per-entity feature arrays from text: description sentences, their vectors, feature files.

MMRNS (`kgjax.train.kge.mmrns`) reads an entity's first sentences as L sentence vectors;
this is where descriptions become those [V, L, D] arrays (host side, NumPy).

Shapes: V entities, L sentences (or regions) per entity, D feature width.
"""

from __future__ import annotations

import os
import pathlib
import re
from collections.abc import Callable

import ml_collections
import numpy as np

from kgjax.config import ConfigError

# Feature sources besides a file path.
NO_FEATURES = "none"
SYNTHETIC = "synthetic"  # random features, to test the code path only
DESCRIPTIONS = "descriptions"  # text only: sentence vectors from the language module
# A sentence ends at . ! ? before a capital (or an opening quote or bracket and a capital), or
# at StAR's " -- " between a name and its description; not after initials ("J.J. Abrams") or
# a common abbreviation ("No. 1", "Mt. Fuji").
_BOUNDARY = re.compile(r"[.!?]\s+(?=[\"'(\[]?[A-Z])|\s+--\s+")
_INITIALS = re.compile(r"(?:[A-Za-z]\.)*[A-Za-z]\.?")
_ABBREVIATIONS = frozenset({
    "mr", "mrs", "ms", "dr", "prof", "st", "mt", "ft", "jr", "sr", "no", "nos", "vs", "etc",
    "inc", "co", "corp", "ltd", "gen", "col", "lt", "sgt", "rev",
})  # fmt: skip


def split_sentences(text: str, max_sentences: int) -> list[str]:
    """The first `max_sentences` sentences of a description (see `_BOUNDARY`).

    The reference encodes each description sentence by sentence and keeps the first four.
    """
    sentences, start = [], 0
    for match in _BOUNDARY.finditer(text):
        if match.group().strip() != "--":
            words = text[start : match.start()].split()
            last = words[-1] if words else ""
            if _INITIALS.fullmatch(last) or last.lower() in _ABBREVIATIONS:
                continue
        end = match.start() + (match.group().strip() != "--")
        sentences.append(text[start:end].strip())
        start = match.end()
    sentences.append(text[start:].strip())
    sentences = [s for s in sentences if s]
    return (sentences or ["-"])[:max_sentences]


def description_features(
    texts: list[str], num_sentences: int, encode
) -> tuple[np.ndarray, np.ndarray]:
    """Sentence vectors of each text, cropped and padded to `num_sentences`.

    Args:
      texts: one description per entity (V).
      num_sentences: L.
      encode: fn(list of n sentences) -> float [n, D].

    Returns:
      (float32 [V, L, D] with zero rows on padding, bool [V, L] mask).
    """
    split = [split_sentences(text, num_sentences) for text in texts]
    vectors = np.asarray(encode([s for sentences in split for s in sentences]), np.float32)
    features = np.zeros((len(texts), num_sentences, vectors.shape[1]), np.float32)
    mask = np.zeros((len(texts), num_sentences), bool)
    start = 0
    for row, sentences in enumerate(split):
        features[row, : len(sentences)] = vectors[start : start + len(sentences)]
        mask[row, : len(sentences)] = True
        start += len(sentences)
    return features, mask


def sentence_features(
    text: ml_collections.ConfigDict,
    data: ml_collections.ConfigDict,
    entity_names,
    num_sentences: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Sentence vectors of the entities' descriptions, as `text` (a run's `config.text`) says.

    Sentences are mean-pooled (the sentence-transformers embedding, as MMRNS's SBERT
    vectors), whatever `text.pooling` says: the entity's mention is in one sentence.

    Args:
      text: the `text` section (source, descriptions_dir, encoder, max_length).
      data: the `data` section, where the descriptions are when `text.descriptions_dir` is "".
      entity_names: the V entity names, in id order.
      num_sentences: L.

    Returns:
      (float32 [V, L, Dt] with zero rows on padding, bool [V, L] mask).
    """
    from kgjax.data import descriptions
    from kgjax.models.lm import pretrained
    from kgjax.text import encode
    from kgjax.text.init import descriptions_folder

    texts = descriptions.entity_descriptions(
        descriptions_folder(text, data), entity_names, text.source or None
    ).texts
    model = pretrained.load_pretrained(text.encoder or None)
    return description_features(
        list(texts),
        num_sentences,
        lambda sentences: encode.encode_texts(
            sentences, model, pooling="mean", max_length=text.max_length, progress=False
        ),
    )


def load_features(
    source: str,
    key: str,
    num_entities: int,
    shape: tuple[int, int],
    seed: int,
    sentences: Callable[[int], tuple[np.ndarray, np.ndarray]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-entity features [V, L, D] and their mask [V, L] from a source.

    Args:
      source: `DESCRIPTIONS`, `SYNTHETIC`, or a .npy/.npz file holding "features" [V, L, D]
        and optionally a bool "mask" [V, L] (False on padding).
      key: the config key that named the source, for error messages.
      num_entities: V.
      shape: (L, D).
      seed: seeds the synthetic features (with the length of `key`'s last part).
      sentences: fn(L) -> (features, mask), the description sentence vectors
        (`sentence_features`); needed for `DESCRIPTIONS` only.

    Raises:
      ConfigError: a source that cannot be read or does not match `shape`.
    """
    modality = key.rpartition(".")[2]
    expected = (num_entities, *shape)
    if source == SYNTHETIC:
        rng = np.random.default_rng([seed, len(modality)])
        features = rng.standard_normal(expected).astype(np.float32)
        # Ragged lengths, so that masking is exercised.
        lengths = rng.integers(1, shape[0] + 1, num_entities)
        mask = np.arange(shape[0])[None, :] < lengths[:, None]
        return np.where(mask[..., None], features, 0.0).astype(np.float32), mask
    if source == DESCRIPTIONS:
        features, mask = sentences(shape[0])
    else:
        path = pathlib.Path(os.path.expanduser(source))
        if not path.is_file():
            raise ConfigError(
                f"{key}: {source!r} is not {NO_FEATURES!r}, {SYNTHETIC!r}, "
                f"{DESCRIPTIONS!r} or a .npy/.npz file"
            )
        loaded = np.load(path)
        if isinstance(loaded, np.ndarray):
            features, mask = loaded.astype(np.float32), np.ones(loaded.shape[:2], bool)
        else:
            with loaded:
                if "features" not in loaded.files:
                    raise ConfigError(f"{key}: {path} has no 'features' array")
                features = np.asarray(loaded["features"], np.float32)
                mask = (
                    np.asarray(loaded["mask"], bool)
                    if "mask" in loaded.files
                    else np.ones(features.shape[:2], bool)
                )
    if features.shape != expected or mask.shape != expected[:2]:
        raise ConfigError(
            f"{key}: features of shape {features.shape} (mask {mask.shape}); expected "
            f"{expected} for {num_entities} entities (set num_* and *_width to match)"
        )
    return features, mask
