"""Reading a trained KGE run back from its workdir: evaluate, predict, export.

The workdir's layout is `kgjax.train.workdir`'s; the run is put together again by the KGE
trainer's `build`, onto the devices at hand.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os

import jax
import ml_collections
import numpy as np

from kgjax import config as config_lib
from kgjax.checkpoints import Checkpointer
from kgjax.config import ConfigError
from kgjax.data.triples import Vocabulary
from kgjax.evaluation.link_prediction import Evaluator, score_all
from kgjax.evaluation.metrics import link_prediction_metrics
from kgjax.evaluation.relation_categories import relation_results
from kgjax.evaluation.triple_classification import triple_classification_results
from kgjax.models.kge import KGEModel, Params
from kgjax.models.lm import pretrained
from kgjax.parallel.layout import MODEL, Layout
from kgjax.train.kge import build as build_lib
from kgjax.train.kge import config as kge_config
from kgjax.train.workdir import CHECKPOINT_DIR, CONFIG_FILE, VOCAB_FILE, write_json


class RunError(RuntimeError):
    """A workdir that does not hold what the command needs."""


@dataclasses.dataclass
class TrainedRun:
    """A run read back from its workdir: config, vocabularies, model and parameters.

    Attributes:
      layout: the devices the parameters were restored onto (see `restore`).
      sharded_params: the tables as the layout holds them (padded, split): what
        `Evaluator` and `link_prediction.score_all` take.
      inverse_offset: R when the run trained reciprocal relations (r + R is r's inverse,
        through which heads are predicted), else None.
    """

    workdir: str
    config: ml_collections.ConfigDict
    entities: Vocabulary
    relations: Vocabulary
    model: KGEModel
    layout: Layout
    sharded_params: Params
    step: int
    inverse_offset: int | None = None  # R when trained with reciprocal relations

    @functools.cached_property
    def params(self) -> dict[str, np.ndarray]:
        """The parameters as the model makes them (tables [V, De], [R, Dr], and any
        interaction weights), as NumPy on this host."""
        return self.layout.unpad_params(jax.tree.map(self.layout.fetch, self.sharded_params))


def restore(workdir: str, devices=None) -> TrainedRun:
    """Reads the config, vocabularies and latest checkpoint of a run onto the current devices.

    The parameters go onto the mesh of the run's config when it fits `devices` (default:
    all); otherwise the tables are split over all of them (a run trained on 8 devices reads
    back on 1, and one trained on 1 onto 8).

    Raises:
      RunError: the workdir has no config, vocabulary or checkpoint.
    """

    config_path = os.path.join(workdir, CONFIG_FILE)
    if os.path.isfile(config_path):
        family = config_lib.load(config_path, {"trainer": "kge"}).trainer
        if family != "kge":
            raise RunError(
                f"{workdir}: a {family!r} run; evaluate, predict and export read KGE runs "
                f"(its evaluation is in {workdir}/results.json)"
            )
    for name in (CONFIG_FILE, VOCAB_FILE):
        if not os.path.isfile(os.path.join(workdir, name)):
            raise RunError(f"{workdir}: no {name}; is this the workdir of a `kgjax train` run?")
    config = kge_config.load(os.path.join(workdir, CONFIG_FILE))
    with open(os.path.join(workdir, VOCAB_FILE)) as f:
        vocab = json.load(f)
    entities, relations = (
        Vocabulary(tuple(vocab["entities"])),
        Vocabulary(tuple(vocab["relations"])),
    )
    try:
        parts = build_lib.build(config, len(entities), len(relations), devices)
    except ConfigError:
        # The run's mesh does not fit these devices: split the tables over all of them.
        model_relations = len(relations) * (2 if config.training.reciprocal else 1)
        model = build_lib.make_model(config.model, len(entities), model_relations)
        layout = Layout.create(
            model.num_entities,
            model.num_relations,
            (("data", 1), (MODEL, -1)),
            devices,
            bool(config.get("mesh", {}).get("shard_relations", False)),
            rules=config.get("mesh", {}).get("rules", ()),
        )
        parts = build_lib.build(config, len(entities), len(relations), model=model, layout=layout)
    try:
        state, step = build_lib.restore_state(parts, workdir)
    except FileNotFoundError:
        directory = os.path.abspath(os.path.join(workdir, CHECKPOINT_DIR))
        raise RunError(f"{workdir}: no checkpoint in {directory}") from None
    return TrainedRun(
        workdir, config, entities, relations, parts.model, parts.layout, state.params, step,
        parts.inverse_offset,
    )  # fmt: skip


def evaluate_run(workdir: str, splits=("valid", "test")) -> dict:
    """Re-evaluates the latest checkpoint of a run on `splits`.

    Returns:
      {"step": ..., "<split>": metrics}, with the training run's "per_category" and
      "per_relation" blocks when `splits` has "test", and "triple_classification" when the
      dataset has labelled negatives; also written to `<workdir>/eval_step_<step>.json`.
    """
    run = restore(workdir)
    dataset = build_lib.load_dataset(run.config.data)
    if dataset.entities != run.entities or dataset.relations != run.relations:
        raise RunError(
            f"{workdir}: the dataset {dataset.name!r} no longer matches the run's vocabulary "
            f"({dataset.num_entities} entities / {dataset.num_relations} relations now, "
            f"{len(run.entities)} / {len(run.relations)} at training)"
        )
    batch_size = run.config.evaluation.batch_size
    evaluator = Evaluator(run.model, dataset, batch_size, run.layout, run.inverse_offset)
    ranks = {split: evaluator.ranks(run.sharded_params, split) for split in splits}
    results = {
        "step": run.step,
        **{split: link_prediction_metrics(*split_ranks) for split, split_ranks in ranks.items()},
    }
    results.update(
        triple_classification_results(
            run.model, run.sharded_params, dataset, batch_size, run.layout
        )
    )
    if "test" in ranks:
        results.update(
            relation_results(ranks["test"], dataset.test, dataset.train, dataset.relations.names)
        )
    write_json(os.path.join(workdir, f"eval_step_{run.step}.json"), results)
    return results


def predict(
    workdir: str,
    relation: str,
    head: str | None = None,
    tail: str | None = None,
    top_k: int = 10,
) -> list[tuple[str, float]]:
    """Top-k tails of (head, relation, ?) or heads of (?, relation, tail), with scores.

    Raises:
      ValueError: not exactly one of head and tail given.
      KeyError: an unknown name (the message lists close matches).
    """
    if (head is None) == (tail is None):
        raise ValueError("give exactly one of --head (predict tails) or --tail (predict heads)")
    run = restore(workdir)
    r = np.asarray([run.relations.id(relation, "relation")])
    anchor = np.asarray([run.entities.id(head if head is not None else tail, "entity")])
    # Each device scores its own rows of the table; only the [V] scores come back.
    scores = score_all(
        run.model, run.sharded_params, anchor, r, head is not None, run.layout, run.inverse_offset
    )[0]
    top = np.argsort(-scores, kind="stable")[: min(top_k, len(scores))]
    return [(run.entities.names[i], float(scores[i])) for i in top]


def export(workdir: str, out: str) -> dict[str, tuple]:
    """Writes a run's reusable parts: a KGE run's embeddings (mathematical form) and id-to-name
    maps to an .npz file; a JAKET pre-training run's language model as a model folder `out`
    (config.json, model.safetensors, tokenizer.json: `pretrained.save_pretrained`), which any
    `encoder`/`memory.encoder`/`text.encoder` key accepts.

    Returns:
      {array name: shape} of what was written.
    """
    saved = config_lib.load(os.path.join(workdir, CONFIG_FILE), {"trainer": "kge"})
    if saved.trainer == "jaket":
        return export_language_model(workdir, saved, out)
    run = restore(workdir)
    arrays = {f"{key}_embeddings": value for key, value in run.model.embeddings(run.params).items()}
    arrays["entity_names"] = np.asarray(run.entities.names)
    arrays["relation_names"] = np.asarray(run.relations.names)
    tmp = f"{out}.tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, out)
    return {key: value.shape for key, value in arrays.items()}


def export_language_model(workdir: str, saved: ml_collections.ConfigDict, out: str) -> dict:
    """The language model of a `jaket` run's latest checkpoint as a model folder."""
    checkpointer = Checkpointer(os.path.join(workdir, CHECKPOINT_DIR))
    try:
        params = checkpointer.read()["params"]["encoder"]
    except FileNotFoundError:
        raise ConfigError(f"{workdir} holds no checkpoint") from None
    finally:
        checkpointer.close()
    source = saved.encoder.path or pretrained.default_model_path()
    pretrained.save_pretrained(out, params, source)
    leaves, _ = jax.tree_util.tree_flatten_with_path(params)
    return {jax.tree_util.keystr(path): np.shape(value) for path, value in leaves}
