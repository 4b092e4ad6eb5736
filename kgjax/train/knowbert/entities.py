"""KnowBERT's frozen entity table: one row per entity of the knowledge base.

KnowBERT's WordNet entity embeddings concatenate TuckER embeddings of the WordNet graph with
GenSen embeddings of each synset's gloss (Peters et al., EMNLP 2019, section 4.1). Here:
  - the default rows are MiniLM's sentence embeddings of each entity's text
    (`KnowledgeBase.entity_text`: for WordNet "<lemma>, <lemma>, ...: <definition>", lemmas
    with blanks for `_`, the definition without its examples, which are the linker's training
    sentences; for FB15k-237 "<name>: <Wikidata description>") through the whole encoder,
    mean-pooled over the tokens, not normalised (`kgjax.text.encode.encode_texts`, "mean"
    pooling, cached on disk under $KGJAX_CACHE_DIR or ~/.cache/kgjax);
  - or the rows of a file: an .npz with `vectors` [V, De] and `synsets` or `entities` [V]
    (keys as the knowledge base names them; a WordNet `-a` for a satellite is read as its
    `-s`), a `kgjax export` .npz of a KGE run (`entity_embeddings`, `entity_names`; complex
    rows as [real parts, imaginary parts], `fb15k237_candidates.kge_entity_table`), or an
    .npy [V, De] with a text file of V keys, one per line;
  - and optionally a second table of the same formats concatenated after the first along
    the width (the KGE embeddings of the graph: TuckER of WordNet's pointers, RotatE of
    FB15k-237, `fb15k237_candidates.write_entity_table`).
Which entities get a row (`config.entities.rows`): those of the first source that are
candidates of the sentences used ("candidates"), or all of them ("all"), in the source's
order (WordNet's file order, FB15k-237's vocabulary order, for the default).

Shapes: V rows, De entity width.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence

import ml_collections
import numpy as np

from kgjax.data.fb15k237_candidates import kge_entity_table
from kgjax.data.triples import DataError
from kgjax.models.lm import pretrained
from kgjax.text import encode
from kgjax.train.knowbert.knowledge_bases import KnowledgeBase

__all__ = ["EntityTable", "build_table", "read_table", "table_statistics"]


@dataclasses.dataclass(frozen=True)
class EntityTable:
    """Attributes:
    synsets: the entity key of each row (a synset id, a Freebase mid).
    vectors: float32 [V, De].
    source: where the rows came from, for results.json.
    """

    synsets: tuple[str, ...]
    vectors: np.ndarray
    source: str

    @property
    def rows(self) -> dict[str, int]:
        """Entity key -> row."""
        return {synset: row for row, synset in enumerate(self.synsets)}


def read_table(path: str, synsets_path: str, kb: KnowledgeBase) -> EntityTable:
    """A table file: an .npz (`vectors`, `synsets` or `entities`; or a `kgjax export`) or an
    .npy with a key list.

    Raises:
      DataError: a file that is unreadable, lacks an array, disagrees with its key list in
        length, names an entity the knowledge base does not have, or names one twice.
    """
    try:
        if path.endswith(".npz"):
            with np.load(path, allow_pickle=False) as arrays:
                keys = next((k for k in ("synsets", "entities") if k in arrays.files), None)
                exported = "entity_embeddings" in arrays.files  # a KGE run's `kgjax export`
                if not exported and ("vectors" not in arrays.files or keys is None):
                    raise DataError(
                        f"{path}: has {sorted(arrays.files)}; needs vectors and synsets (or "
                        "entities), or a `kgjax export`'s entity_embeddings and entity_names"
                    )
                if not exported:
                    vectors, ids = arrays["vectors"], [str(s) for s in arrays[keys]]
            if exported:
                table = kge_entity_table(path)
                vectors, ids = table.vectors, list(table.entities)
        else:
            vectors = np.load(path, allow_pickle=False)
            with open(synsets_path) as f:
                ids = [line.strip() for line in f if line.strip()]
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable entity table ({e})") from e
    if vectors.ndim != 2 or len(vectors) != len(ids):
        raise DataError(
            f"{path}: vectors of shape {vectors.shape} for {len(ids)} keys (needs [V, De])"
        )
    try:
        canonical = [kb.canonical(s) for s in ids]
    except KeyError as e:
        raise DataError(f"{path}: {e.args[0]}") from None
    if len(set(canonical)) != len(canonical):
        raise DataError(f"{path}: an entity has more than one row")
    return EntityTable(tuple(canonical), np.asarray(vectors, np.float32), path)


def _text_table(
    synsets: Sequence[str],
    kb: KnowledgeBase,
    lm: pretrained.Pretrained,
    section: ml_collections.ConfigDict,
    progress: bool,
) -> EntityTable:
    vectors = encode.encode_texts(
        [kb.entity_text(s) for s in synsets],
        lm,
        pooling="mean",
        max_length=section.max_length,
        batch_size=section.batch_size,
        progress=progress,
    )
    return EntityTable(tuple(synsets), vectors, f"{kb.name} text embeddings of {lm.path}")


def build_table(
    section: ml_collections.ConfigDict,
    kb: KnowledgeBase,
    candidates: Collection[str],
    lm: pretrained.Pretrained | None,
    progress: bool = True,
) -> EntityTable:
    """The entity table `config.entities` describes (module docstring).

    Args:
      section: `config.entities`.
      kb: the knowledge base.
      candidates: the candidate entities of the sentences used (rows="candidates").
      lm: the encoder of the default builder (unused with `section.path`).
      progress: show the encoding's progress bar.

    Returns:
      The table, float32 [V, De].

    Raises:
      DataError: an unreadable table file, or an extra table without a row for a synset of
        the first one.
    """
    candidates = set(candidates)

    def chosen(ids):
        return [s for s in ids if s in candidates] if section.rows == "candidates" else list(ids)

    if section.path:
        full = read_table(section.path, section.synsets_path, kb)
        keep = chosen(full.synsets)
        rows = full.rows
        table = EntityTable(
            tuple(keep), full.vectors[[rows[s] for s in keep]].reshape(len(keep), -1), full.source
        )
    else:
        table = _text_table(chosen(kb.entity_keys), kb, lm, section, progress)
    if not section.extra_path:
        return table
    extra = read_table(section.extra_path, section.extra_synsets_path, kb)
    extra_rows = extra.rows
    missing = [s for s in table.synsets if s not in extra_rows]
    if missing:
        raise DataError(
            f"{section.extra_path}: no row for {len(missing)} entities of the entity table, "
            f"e.g. {missing[:3]}"
        )
    order = [extra_rows[s] for s in table.synsets]
    vectors = np.concatenate([table.vectors, extra.vectors[order].reshape(len(order), -1)], axis=1)
    return EntityTable(table.synsets, vectors, f"{table.source} + {extra.source}")


def table_statistics(table: EntityTable) -> dict:
    """Rows, width and source of a table, for results.json."""
    return {
        "rows": len(table.synsets),
        "width": int(table.vectors.shape[1]),
        "source": table.source,
    }
