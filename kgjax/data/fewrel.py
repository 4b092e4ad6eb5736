"""FewRel 1.0 (Han et al., EMNLP 2018): few-shot relation classification, and seeded episodes.

Host side only (plain Python and NumPy); never imports jax.

Files (../shared/data/fewrel, thunlp/FewRel's `data/`, MIT): `val_wiki.json` (16 Wikidata
relations x 700 instances, both ends Wikidata-linked), `val_nyt.json` (25 x 100) and
`val_pubmed.json` (10 x 100), each a JSON object relation -> [instance], an instance
  {"tokens": [str], "h": [name, id, [[token positions], ...]], "t": [name, id, [[...]]]}
(id a Wikidata Q-id in val_wiki and val_nyt, a UMLS CUI in val_pubmed). An
instance's head and tail are the first occurrence of each (`positions[0]`): FewRel lists
repeated occurrences after it.

Episodes (`episodes`): N-way K-shot with Q queries per class, as FewRel's evaluation draws
them: N relations without replacement, then K + Q distinct instances of each (support first),
all from one generator seeded by `seed`, so every system sees the same episodes. Shapes: E
episodes, N ways, K shots, Q queries per way.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence

import numpy as np

from kgjax.data.triples import DataError

__all__ = ["Episodes", "FewRelInstance", "Mention", "episodes", "read_fewrel"]


@dataclasses.dataclass(frozen=True)
class Mention:
    """An entity in an instance: its name, id ("" if none), first and last token (inclusive)."""

    name: str
    entity_id: str
    first: int
    last: int


@dataclasses.dataclass(frozen=True)
class FewRelInstance:
    """One sentence with a head and a tail entity, labelled with their relation."""

    relation: str
    tokens: tuple[str, ...]
    head: Mention
    tail: Mention

    @property
    def text(self) -> str:
        """The tokens joined by single spaces (the form FewRel's tokens were cut from)."""
        return " ".join(self.tokens)

    def char_span(self, mention: Mention) -> tuple[int, int]:
        """(start, end) character offsets of a mention in `text`, end exclusive."""
        start = sum(len(t) + 1 for t in self.tokens[: mention.first])
        end = start + len(" ".join(self.tokens[mention.first : mention.last + 1]))
        return start, end


def _mention(raw, where: str, num_tokens: int) -> Mention:
    try:
        name, entity_id, occurrences = raw
        positions = [int(p) for p in occurrences[0]]
    except (TypeError, ValueError, IndexError) as error:
        raise DataError(f"{where}: expected [name, id, [[positions]]], got {raw!r}") from error
    if not positions or min(positions) < 0 or max(positions) >= num_tokens:
        raise DataError(f"{where}: positions {positions} outside the {num_tokens} tokens")
    return Mention(str(name), str(entity_id or ""), min(positions), max(positions))


def read_fewrel(path: str | os.PathLike) -> list[FewRelInstance]:
    """Every instance of a FewRel JSON file, relation by relation in file order.

    Raises:
      DataError: a missing file, or an instance that is not FewRel's shape (file, relation
        and index named).
    """
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except FileNotFoundError:
        raise DataError(f"{path}: no such FewRel file") from None
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not JSON ({error})") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected an object relation -> instances")
    out = []
    for relation, instances in raw.items():
        for i, item in enumerate(instances):
            where = f"{path}: {relation}[{i}]"
            if not isinstance(item, dict) or not {"tokens", "h", "t"} <= set(item):
                raise DataError(f"{where}: expected an object with tokens, h and t")
            tokens = tuple(str(t) for t in item["tokens"])
            out.append(
                FewRelInstance(
                    relation,
                    tokens,
                    _mention(item["h"], f"{where}.h", len(tokens)),
                    _mention(item["t"], f"{where}.t", len(tokens)),
                )
            )
    return out


@dataclasses.dataclass(frozen=True)
class Episodes:
    """E seeded episodes over a list of instances.

    Attributes:
      support: int [E, N, K] instance indices, way n's shots in row n.
      query: int [E, N * Q] instance indices.
      labels: int [E, N * Q] each query's way in [0, N).
      relations: [E, N] each way's relation name.
    """

    support: np.ndarray
    query: np.ndarray
    labels: np.ndarray
    relations: np.ndarray


def episodes(
    relations: Sequence[str],
    num_ways: int,
    num_shots: int,
    num_queries: int,
    num_episodes: int,
    seed: int,
) -> Episodes:
    """N-way K-shot episodes with Q queries per way.

    Args:
      relations: each instance's relation [n] (`[i.relation for i in read_fewrel(...)]`).
      num_ways, num_shots, num_queries: N, K, Q.
      num_episodes: E.
      seed: the generator's seed (every system evaluated on one seed sees the same episodes).

    Raises:
      ValueError: fewer than N relations, or a relation with fewer than K + Q instances.
    """
    relations = np.asarray(relations)
    names, inverse = np.unique(relations, return_inverse=True)
    if len(names) < num_ways:
        raise ValueError(f"{num_ways}-way episodes need {num_ways} relations, got {len(names)}")
    members = [np.flatnonzero(inverse == r) for r in range(len(names))]
    needed = num_shots + num_queries
    short = [str(names[r]) for r, m in enumerate(members) if len(m) < needed]
    if short:
        raise ValueError(f"relations with fewer than K + Q = {needed} instances: {short}")
    rng = np.random.default_rng(seed)
    support = np.empty((num_episodes, num_ways, num_shots), np.int64)
    query = np.empty((num_episodes, num_ways, num_queries), np.int64)
    chosen = np.empty((num_episodes, num_ways), np.int64)
    for e in range(num_episodes):
        chosen[e] = rng.choice(len(names), num_ways, replace=False)
        for n, r in enumerate(chosen[e]):
            picks = rng.choice(members[r], needed, replace=False)
            support[e, n], query[e, n] = picks[:num_shots], picks[num_shots:]
    labels = np.broadcast_to(np.arange(num_ways)[None, :, None], query.shape)
    return Episodes(
        support=support,
        query=query.reshape(num_episodes, -1),
        labels=labels.reshape(num_episodes, -1).copy(),
        relations=names[chosen],
    )
