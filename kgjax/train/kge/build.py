"""Assembling a KGE run from its config: data, model, layout, sampler, optimizer, state, step.

`build(config, V, R)` is the one place a KGE run is put together: the trainer, reading a run
back (`kgjax.runs`), the AOT check, the benchmarks and the tests all call it. It reads the
root config and hands each component its own section (`make_model(config.model, ...)`,
`negatives.from_config(config.negatives)`, `make_optimizer(config.optimizer, ...)`,
`make_layout(config.mesh, ...)`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os

import jax
import ml_collections
import numpy as np
import optax

from kgjax import config as config_lib
from kgjax.checkpoints import Checkpointer
from kgjax.config import ConfigError
from kgjax.data.triples import KGDataset
from kgjax.evaluation.link_prediction import Evaluator
from kgjax.models import kge as kge_models
from kgjax.models.kge.base import Params
from kgjax.parallel.layout import DEFAULT_AXES, Layout
from kgjax.text.features import sentence_features
from kgjax.train.kge import config as kge_config
from kgjax.train.kge import negatives
from kgjax.train.kge.distillation import DistillationSettings
from kgjax.train.kge.state import TrainData, TrainState
from kgjax.train.kge.step import StepSettings, make_train_chunk
from kgjax.train.optimizers import make_optimizer
from kgjax.train.workdir import CHECKPOINT_DIR, CONFIG_FILE, VOCAB_FILE


def load_dataset(data: ml_collections.ConfigDict) -> KGDataset:
    """The dataset a run's `data` section names (`catalog.load_section`)."""
    from kgjax.data import catalog  # deferred: tensorflow-datasets is slow to import

    return catalog.load_section(data)


def make_model(
    model: ml_collections.ConfigDict, num_entities: int, num_relations: int
) -> kge_models.KGEModel:
    """The KGE model a run's `model` section names, for V entities and R relations."""
    hparams = {key: value for key, value in model.items() if key != "name"}
    return kge_models.get(model.name, num_entities, num_relations, **hparams)


def make_layout(
    mesh: ml_collections.ConfigDict | None, model: kge_models.KGEModel, devices=None
) -> Layout:
    """The mesh of a run's `mesh` section over `devices` (default: all), with the model's
    table sizes.

    Raises:
      ConfigError: the mesh does not fit the devices.
    """
    mesh = mesh or ml_collections.ConfigDict({"axes": DEFAULT_AXES})
    try:
        return Layout.create(
            model.num_entities,
            model.num_relations,
            mesh.axes,
            devices,
            bool(mesh.get("shard_relations", False)),
            rules=mesh.get("rules", ()),
        )
    except ValueError as error:
        raise ConfigError(f"config.mesh.axes: {error}") from None


def step_settings(config: ml_collections.ConfigDict) -> StepSettings:
    """The training step's static settings, from the sections that shape the step."""
    adversarial = config.negatives.sampler == "self_adversarial"
    loss, training = config.loss, config.training
    return StepSettings(
        batch_size=config.batch_size,
        adversarial_temperature=(config.negatives.adversarial_temperature if adversarial else None),
        row_sparse=config.optimizer.row_sparse,
        optimizer=config.optimizer.name,
        self_negative=config.negatives.self_negative,
        # The rest are the sections' own keys, under the same names.
        **{key: loss[key] for key in _LOSS_SETTINGS},
        **{key: training[key] for key in _TRAINING_SETTINGS},
    )


_LOSS_SETTINGS = (
    "subsampling", "regularizer", "regularization", "entity_weight", "relation_weight",
)  # fmt: skip
_TRAINING_SETTINGS = (
    "regime", "reciprocal", "label_smoothing", "entity_dropout", "relation_dropout",
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class KGEBuild:
    """A KGE run's parts, and the calls that make its state, data, step and evaluator.

    Attributes:
      model: the KGE model (interaction + tables).
      layout: where every array lives (mesh, padded and split tables).
      sampler: the negative sampler (`kgjax.train.kge.negatives`).
      optimizer, schedule: the optax transformation and its learning-rate schedule.
      settings: the step's static settings, without a distillation teacher's (`train_chunk`
        reads the teacher only when training, so that a distilled run reads back without it).
      config: the run's config (read for the data and text sections by `train_data`).
    """

    model: kge_models.KGEModel
    layout: Layout
    sampler: object
    optimizer: optax.GradientTransformation
    schedule: optax.Schedule
    settings: StepSettings
    config: ml_collections.ConfigDict

    def initial_state(self, key: jax.Array) -> TrainState:
        """Fresh parameters drawn straight into their shards: no device holds a whole table."""
        return TrainState.create_sharded(self.model, self.sampler, self.optimizer, key, self.layout)

    def abstract_state(self) -> TrainState:
        """The state's shapes with their shardings: the target of a checkpoint restore."""
        return TrainState.abstract(self.model, self.sampler, self.optimizer, self.layout)

    def features(self, dataset: KGDataset) -> dict[str, np.ndarray]:
        """The fixed per-entity arrays the sampler reads ({} for most samplers), on the host."""
        config = self.config
        sentences = functools.partial(
            sentence_features, config.text, config.data, dataset.entities.names
        )
        return self.sampler.features(dataset.num_entities, config.seed, sentences)

    def train_data(self, dataset: KGDataset) -> TrainData:
        """The training split, its index, the sampler's features and the distillation
        teacher's parameters (if any) on the layout's devices."""
        config = self.config
        return TrainData.from_dataset(
            dataset,
            config.loss.subsampling,
            self.features(dataset),
            self.layout,
            reciprocal=config.training.reciprocal,
            queries=config.training.regime == "KvsAll",
            teacher=self.teacher_params(dataset),
        )

    def train_chunk(self, length: int):
        """The jitted call running `length` steps: fn(state, data, root_key) -> (state,
        metrics [length]); the state is donated and keeps its shardings."""
        state_sharding = jax.tree.map(lambda x: x.sharding, self.abstract_state())
        settings = self.settings
        if self.config.distillation.teacher_workdir:
            settings = dataclasses.replace(settings, distillation=self.distillation())
        return make_train_chunk(
            self.model, self.sampler, self.optimizer, self.schedule, settings, length,
            self.layout, state_sharding,
        )  # fmt: skip

    def distillation(self, dataset: KGDataset | None = None) -> DistillationSettings | None:
        """The distillation's static settings with the teacher's model, from the teacher's
        saved config (`config.distillation`); None without a teacher.

        Args:
          dataset: when given, the teacher's entities and relations must be its own.

        Raises:
          ConfigError: naming `distillation.teacher_workdir`: no finished KGE run there, or
            one over other entities or relations; naming `mesh.axes`: a 1vsAll or KvsAll
            student whose entity table is split (its [B, V] scores are never gathered).
        """
        section = self.config.distillation
        if not section.teacher_workdir:
            return None
        if self.config.training.regime != "negative_sampling" and self.layout.size("entity") > 1:
            raise ConfigError(
                f"config.mesh.axes: distillation in {self.config.training.regime} needs the "
                "entity table whole on each device (model axis 1)"
            )
        teacher = _teacher_config(section.teacher_workdir, dataset)
        num_relations = self.model.num_relations
        if self.config.training.reciprocal:
            num_relations //= 2
        teacher_relations = num_relations * (2 if teacher.training.reciprocal else 1)
        return DistillationSettings(
            teacher=make_model(teacher.model, self.model.num_entities, teacher_relations),
            teacher_reciprocal=bool(teacher.training.reciprocal),
            num_relations=num_relations,
            temperature=section.temperature,
            weight=section.weight,
            soft_label_weighting=section.soft_label_weighting,
        )

    def teacher_params(self, dataset: KGDataset) -> Params | None:
        """The distillation teacher's parameters from its latest checkpoint, replicated on this
        run's devices and outside any optimizer state; None without a teacher.

        Raises:
          ConfigError: as `distillation`, or no checkpoint in the teacher's workdir.
        """
        settings = self.distillation(dataset)
        if settings is None:
            return None
        workdir = self.config.distillation.teacher_workdir
        model = settings.teacher
        devices = list(self.layout.mesh.devices.flat)
        layout = Layout.create(model.num_entities, model.num_relations, DEFAULT_AXES, devices)
        parts = build(
            _teacher_config(workdir), dataset.num_entities, dataset.num_relations,
            model=model, layout=layout,
        )  # fmt: skip
        try:
            state, _ = restore_state(parts, workdir)
        except FileNotFoundError:
            raise ConfigError(
                f"config.distillation.teacher_workdir: {workdir} holds no checkpoint"
            ) from None
        return state.params

    @property
    def inverse_offset(self) -> int | None:
        """R when relations are reciprocal (r + R is r's inverse), else None."""
        return self.model.num_relations // 2 if self.config.training.reciprocal else None

    def evaluator(self, dataset: KGDataset) -> Evaluator:
        """Filtered link prediction on the layout's devices (heads through the inverse
        relations when they are reciprocal)."""
        batch_size = self.config.evaluation.batch_size
        return Evaluator(self.model, dataset, batch_size, self.layout, self.inverse_offset)


def build(
    config: ml_collections.ConfigDict,
    num_entities: int,
    num_relations: int,
    devices=None,
    *,
    model: kge_models.KGEModel | None = None,
    layout: Layout | None = None,
) -> KGEBuild:
    """The parts of the run `config` describes, for V entities and R relations.

    With `training.reciprocal` the model has 2R relations: r and its inverse r + R.

    Args:
      devices: the devices the mesh spans (default: all of them).
      model: a model to use instead of the config's (benchmarks of model variants).
      layout: a layout to use instead of the config's mesh (reading a run back elsewhere).

    Raises:
      ConfigError: the mesh does not fit the devices.
    """
    if config.training.reciprocal:
        num_relations *= 2
    model = model or make_model(config.model, num_entities, num_relations)
    optimizer, schedule = make_optimizer(config.optimizer, config.num_steps)
    return KGEBuild(
        model=model,
        layout=layout or make_layout(config.get("mesh"), model, devices),
        sampler=negatives.from_config(config.negatives),
        optimizer=optimizer,
        schedule=schedule,
        settings=step_settings(config),
        config=config,
    )


def restore_state(parts: KGEBuild, workdir: str) -> tuple[TrainState, int]:
    """The latest checkpoint of the run in `workdir`, onto `parts`' layout.

    Returns:
      (the state, its step).

    Raises:
      FileNotFoundError: no checkpoint in the workdir.
    """
    checkpointer = Checkpointer(
        os.path.join(workdir, CHECKPOINT_DIR), parts.config.checkpoint.max_to_keep
    )
    try:
        step = checkpointer.latest_step()
        if step is None:
            raise FileNotFoundError(f"{checkpointer.directory}: no checkpoint")
        return checkpointer.restore(parts.abstract_state(), step), step
    finally:
        checkpointer.close()


def _teacher_config(workdir: str, dataset: KGDataset | None = None) -> ml_collections.ConfigDict:
    """The saved config of the KGE run a distillation teacher names, its vocabulary checked
    against `dataset` when given.

    Raises:
      ConfigError: naming `distillation.teacher_workdir`.
    """
    key = "config.distillation.teacher_workdir"
    paths = {name: os.path.join(workdir, name) for name in (CONFIG_FILE, VOCAB_FILE)}
    for name, path in paths.items():
        if not os.path.isfile(path):
            raise ConfigError(
                f"{key}: {workdir} has no {name}; is it a finished `kgjax train` run?"
            )
    family = config_lib.load(paths[CONFIG_FILE], {"trainer": "kge"}).trainer
    if family != "kge":
        raise ConfigError(f"{key}: {workdir} is a {family!r} run, not a KGE one")
    if dataset is not None:
        with open(paths[VOCAB_FILE]) as f:
            vocab = json.load(f)
        entities, relations = tuple(vocab["entities"]), tuple(vocab["relations"])
        if entities != dataset.entities.names or relations != dataset.relations.names:
            raise ConfigError(
                f"{key}: {workdir} was trained on other entity or relation ids "
                f"({len(entities)} entities, {len(relations)} relations) than {dataset.name!r} "
                f"({dataset.num_entities}, {dataset.num_relations}); teacher and student must "
                "share the dataset's ids"
            )
    return kge_config.load(paths[CONFIG_FILE])
