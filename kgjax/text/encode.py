"""Batch-encodes texts (entity and relation descriptions) into vectors, cached on disk.

    model = pretrained.load_pretrained()                    # MiniLM, LM1 = layers 1..3
    d = descriptions.entity_descriptions(folder, entity_names)
    vectors = encode_texts(d.texts, model, mentions=d.mentions)   # float32 [V, D]

Pooling:
  - "mention" (JAKET, Yu et al., AAAI 2022): the mean of the LM1 outputs at the first and last
    token of the entity's mention in its own description (`descriptions.mention_span`). Only
    LM1 (layers 1..k) runs.
  - "mean": the masked mean of the final hidden states (all layers), i.e. the
    sentence-transformers embedding before its L2 normalisation.

Every text is truncated and padded to `max_length` tokens and every batch has `batch_size` rows
(the last one padded), so the jitted encoder compiles once. Results are cached as `.npy` under
`<cache dir>/encodings/`, keyed by the model's fingerprint and config, the pooling, the
length, and a hash of the texts (and mentions); files are written to a temporary name and
renamed, so a crashed run never leaves a truncated entry.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import pathlib
import tempfile
from collections.abc import Sequence

import jax
import numpy as np
import tokenizers
import tqdm

from kgjax.data import descriptions
from kgjax.models.lm import encoder, pretrained

POOLINGS = ("mention", "mean")
_CACHE_FORMAT = 1


def default_cache_dir(cache_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """`cache_dir` if given, else $KGJAX_CACHE_DIR, else ~/.cache/kgjax."""
    if cache_dir is not None:
        return pathlib.Path(cache_dir)
    if os.environ.get("KGJAX_CACHE_DIR"):
        return pathlib.Path(os.environ["KGJAX_CACHE_DIR"])
    return pathlib.Path.home() / ".cache" / "kgjax"


@functools.partial(jax.jit, static_argnames=("config", "pooling"))
def _pooled(params, ids, mask, spans, *, config, pooling):
    """[B, L] ids, mask, [B, 2] spans -> [B, D] pooled vectors."""
    if pooling == "mention":
        return encoder.mention_pool(encoder.lower(params, ids, mask, config=config), spans)
    return encoder.mean_pool(encoder.forward(params, ids, mask, config=config), mask)


@dataclasses.dataclass(frozen=True)
class TokenisedTexts:
    """Texts as fixed-length arrays, ready for `pool`.

    Attributes:
      ids, mask: int32 [n, L] token ids and 1 on real tokens.
      spans: int32 [n, 2] the mention's (first, last) token ("mention" pooling; else zeros).
    """

    ids: np.ndarray
    mask: np.ndarray
    spans: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


def tokenise_texts(
    texts: Sequence[str],
    mentions: Sequence[str] | None,
    tokenizer: tokenizers.Tokenizer,
    pad_token_id: int,
    pooling: str,
    max_length: int,
) -> TokenisedTexts:
    """Tokenises once what `pool` encodes, possibly many times with changing parameters
    (JAKET's memory refresh)."""
    fixed = pretrained.fixed_length_tokenizer(tokenizer, max_length, pad_token_id)
    encodings = fixed.encode_batch(list(texts))
    spans = np.zeros((len(encodings), 2), np.int32)
    if pooling == "mention":
        spans[:] = descriptions.mention_spans(encodings, texts, mentions)
    return TokenisedTexts(
        ids=np.array([e.ids for e in encodings], np.int32).reshape(-1, max_length),
        mask=np.array([e.attention_mask for e in encodings], np.int32).reshape(-1, max_length),
        spans=spans,
    )


def pool(
    params: dict,
    config: encoder.EncoderConfig,
    tokenised: TokenisedTexts,
    pooling: str,
    batch_size: int,
    progress: bool = False,
) -> np.ndarray:
    """Encodes tokenised texts with the given parameters: float32 [n, D].

    Every device call has `batch_size` rows (the last padded), so the encoder compiles once.
    """
    n, max_length = tokenised.ids.shape
    padded = -(-n // batch_size) * batch_size
    # Padded rows: padding ids, an all-zero mask (attention stays finite) and span (0, 0).
    ids = np.full((padded, max_length), config.pad_token_id, np.int32)
    mask = np.zeros((padded, max_length), np.int32)
    spans = np.zeros((padded, 2), np.int32)
    ids[:n], mask[:n], spans[:n] = tokenised.ids, tokenised.mask, tokenised.spans

    out = np.empty((padded, config.hidden_size), np.float32)
    pending = None
    with tqdm.tqdm(total=n, unit="text", desc=f"encoding ({pooling})", disable=not progress) as bar:
        # One batch in flight while the previous one is copied back: the device never waits
        # on the host, and the bar advances with finished work, not with dispatches.
        for start in range(0, padded + batch_size, batch_size):
            current = None
            if start < padded:
                rows = slice(start, start + batch_size)
                current = (
                    start,
                    _pooled(
                        params, ids[rows], mask[rows], spans[rows], config=config, pooling=pooling
                    ),
                )
            if pending is not None:
                done, vectors = pending
                out[done : done + batch_size] = np.asarray(vectors)
                bar.update(min(batch_size, n - done))
            pending = current
    return out[:n]


def _compute(
    texts: Sequence[str],
    mentions: Sequence[str] | None,
    model: pretrained.Pretrained,
    pooling: str,
    max_length: int,
    batch_size: int,
    progress: bool,
) -> np.ndarray:
    """Tokenises and encodes without the cache: float32 [n, D]."""
    tokenised = tokenise_texts(
        texts, mentions, model.tokenizer, model.config.pad_token_id, pooling, max_length
    )
    return pool(model.params, model.config, tokenised, pooling, batch_size, progress)


def _cache_key(
    texts: Sequence[str],
    mentions: Sequence[str] | None,
    model: pretrained.Pretrained,
    pooling: str,
    max_length: int,
) -> str:
    digest = hashlib.sha256()
    for text in (*texts, *(mentions if pooling == "mention" else ())):
        data = text.encode("utf-8")
        # Length-prefixed so that no two different lists hash the same bytes.
        digest.update(len(data).to_bytes(8, "little") + data)
    settings = {
        "format": _CACHE_FORMAT,
        "model": model.fingerprint,
        "config": dataclasses.asdict(model.config),
        "pooling": pooling,
        "max_length": max_length,
        "num_texts": len(texts),
        "texts": digest.hexdigest(),
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def encode_texts(
    texts: Sequence[str],
    model: pretrained.Pretrained,
    *,
    pooling: str = "mention",
    mentions: Sequence[str] | None = None,
    max_length: int = 64,
    batch_size: int = 64,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> np.ndarray:
    """Encodes texts into one vector each.

    Args:
      texts: the n texts.
      model: the encoder, its parameters and tokenizer; the cache trusts `model.fingerprint`
        to identify `model.params` (replace it when the parameters change).
      pooling: "mention" or "mean" (see the module docstring).
      mentions: for "mention" pooling, the n strings to locate in the texts.
      max_length: L, tokens per text including special tokens (longer texts are truncated).
      batch_size: rows per device call.
      cache: read and write the on-disk cache.
      cache_dir: the cache root; None for $KGJAX_CACHE_DIR or ~/.cache/kgjax.
      progress: show a tqdm progress bar.

    Returns:
      float32 [n, D].

    Raises:
      ValueError: an unknown pooling, missing or misaligned mentions, or a model without a
        tokenizer.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    if pooling == "mention" and (mentions is None or len(mentions) != len(texts)):
        raise ValueError('pooling="mention" needs one mention per text')
    if model.tokenizer is None:
        raise ValueError(f"{model.path}: the model folder has no tokenizer.json")
    if not cache:
        return _compute(texts, mentions, model, pooling, max_length, batch_size, progress)

    folder = default_cache_dir(cache_dir) / "encodings"
    file = folder / f"{_cache_key(texts, mentions, model, pooling, max_length)}.npy"
    if file.is_file():
        return np.load(file)
    vectors = _compute(texts, mentions, model, pooling, max_length, batch_size, progress)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, suffix=".tmp", delete=False) as f:
        try:
            np.save(f, vectors)
        except BaseException:
            os.unlink(f.name)
            raise
    os.replace(f.name, file)
    return vectors
