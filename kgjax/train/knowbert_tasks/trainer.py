"""Downstream tasks for MiniLM and KnowBERT-W, fine-tuned on the shared host loop: WiC and
SemEval-2010 Task 8.

  config -> validate -> the task's examples (WiC: train/dev/test; SemEval: train less a
  seeded dev split, test) -> the encoder: plain MiniLM, or a `knowbert` run's latest
  parameters (`knowbert.trainer.restore`) with, where `kar` is set, its KAR layer and entity
  table and each text's candidate spans from its own generator -> examples as static arrays
  -> workdir -> host_loop.run(family) -> dev and test evaluation -> results.json

Each step: B training examples, the classifier's cross-entropy (`step.py`); the encoder and
KAR learn at `optimizer.encoder_lr`, the new head at `optimizer.lr`; the entity table never
changes. Every `eval_every_steps` the dev set is scored (`dev/accuracy`, and for SemEval
`dev/official_f1`) for monitoring; the final parameters are evaluated on dev and test.

Scores:
  - WiC: accuracy (Pilehvar and Camacho-Collados: binary, balanced); answers written to
    `<workdir>/answers/<split>.txt`, one T or F per line as the gold files.
  - SemEval-2010 Task 8: the official score, the scorer's macro-averaged F1 over the 9
    relations with directionality, Other excluded: answers and key in the official format,
    `semeval2010_task8_scorer-v1.2.pl` run by perl, its output kept in
    `<workdir>/answers/<split>_scorer.txt` and its official line parsed; accuracy besides.

One device: the encoder, KAR and the table are replicated.
"""

from __future__ import annotations

import dataclasses
import os
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from tqdm import tqdm

from kgjax.config import ConfigError
from kgjax.data import semeval2010, wic
from kgjax.models.knowbert import KnowledgeAttentionRecontextualisation
from kgjax.models.lm import pretrained
from kgjax.train import host_loop
from kgjax.train import workdir as workdir_lib
from kgjax.train.knowbert import trainer as knowbert_trainer
from kgjax.train.knowbert.step import KnowBert
from kgjax.train.knowbert_tasks import config as tasks_config
from kgjax.train.knowbert_tasks import inputs
from kgjax.train.knowbert_tasks.step import Classifier, TrainState, make_predict, make_train_chunk
from kgjax.train.optimizers import two_rate_optimizer

__all__ = ["TaskRun", "build", "train"]

ANSWERS_DIR = "answers"
_DEV_SPLIT = 0x62  # salts SemEval's dev draw apart from other uses of its seed
_HEAD_KEY, _DROPOUT_KEY = 0x63, 0x64
_WIC_LABELS = ("F", "T")  # label id -> the gold files' letter


@dataclasses.dataclass(frozen=True)
class Part:
    """One split: its examples as arrays, and what its scorer needs.

    Attributes:
      examples: the arrays.
      ids: SemEval's sentence ids (the answer format's keys); () for WiC.
    """

    examples: inputs.Examples
    ids: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class TaskRun:
    """Everything a run is built from, before its workdir is touched.

    Attributes:
      config: the run's.
      model: the classifier.
      encoder_params: the encoder's starting parameters (MiniLM's, or the knowbert run's).
      kar_params: the knowbert run's KAR (with KAR), else None.
      table: float32 [V, De] the knowbert run's entity table (with KAR), else [1, 1] zeros.
      parts: "train", "dev", "test".
      labels: the task's label names, by id.
      source: where the encoder came from, for results.json.
    """

    config: ml_collections.ConfigDict
    model: Classifier
    encoder_params: dict
    kar_params: dict | None
    table: np.ndarray
    parts: dict[str, Part]
    labels: tuple[str, ...]
    source: dict

    def initial_state(self, optimizer: optax.GradientTransformation) -> TrainState:
        """Step 0: the starting encoder (and KAR), a fresh head."""
        key = jax.random.fold_in(jax.random.key(self.config.seed), _HEAD_KEY)

        @jax.jit  # one program: op by op, every initialiser would compile on its own
        def initial(key, encoder_params, kar_params):
            params = self.model.init(key, encoder_params, kar_params)
            return TrainState(step=jnp.int32(0), params=params, opt_state=optimizer.init(params))

        # Copies: the first step donates the state, and the starting parameters outlive it.
        copy = jax.tree.map(jnp.array, (self.encoder_params, self.kar_params))
        return jax.device_put(initial(key, *copy), jax.devices()[0])


def _data_folder(config: ml_collections.ConfigDict, folder: str) -> str:
    data_dir = config.data.data_dir or os.environ.get("KGJAX_DATA_DIR", "")
    if not data_dir:
        raise ConfigError("config.data.data_dir: '' and KGJAX_DATA_DIR is not set")
    return os.path.join(data_dir, folder)


def _wic_examples(config: ml_collections.ConfigDict):
    """{split: (words, marked spans, label ids, ())}: each pair as one text with a [SEP]."""
    out = {}
    for split in wic.SPLITS:
        pairs = wic.read_split(config.data.data_dir or None, split)
        words, marked = [], []
        for p in pairs:
            offset = len(p.words1) + 1
            words.append((*p.words1, inputs.SEPARATOR, *p.words2))
            marked.append(((p.target1, p.target1), (offset + p.target2, offset + p.target2)))
        out[split] = (words, marked, [int(p.label) for p in pairs], ())
    return out


def _marked_sentence(sentence: semeval2010.Sentence):
    """The words with "$" around e1 and "#" around e2, and the two opening markers' words."""
    ends = {sentence.e1[0]: "$", sentence.e2[0]: "#"}
    closes = {sentence.e1[1]: "$", sentence.e2[1]: "#"}
    words, opening = [], {}
    for position, word in enumerate(sentence.words):
        if position in ends:
            opening[ends[position]] = len(words)
            words.append(ends[position])
        words.append(word)
        if position in closes:
            words.append(closes[position])
    return tuple(words), ((opening["$"], opening["$"]), (opening["#"], opening["#"]))


def _semeval_examples(config: ml_collections.ConfigDict):
    """{split: (words, marked spans, label ids, ids)}; dev drawn from TRAIN_FILE."""
    folder = _data_folder(config, semeval2010.FOLDER)
    train = semeval2010.read_semeval(os.path.join(folder, semeval2010.TRAIN_FILE))
    test = semeval2010.read_semeval(os.path.join(folder, semeval2010.TEST_FILE))
    if config.data.num_dev >= len(train):
        raise ConfigError(
            f"config.data.num_dev: {config.data.num_dev} leaves no training sentence of "
            f"{len(train)}"
        )
    rng = np.random.default_rng([config.data.split_seed, _DEV_SPLIT])
    is_dev = np.zeros(len(train), bool)
    is_dev[rng.choice(len(train), config.data.num_dev, replace=False)] = True
    index = {label: i for i, label in enumerate(semeval2010.LABELS)}
    out = {}
    for split, sentences in (
        ("train", [s for s, d in zip(train, is_dev, strict=True) if not d]),
        ("dev", [s for s, d in zip(train, is_dev, strict=True) if d]),
        ("test", test),
    ):
        marked = [_marked_sentence(s) for s in sentences]
        out[split] = (
            [w for w, _ in marked],
            [m for _, m in marked],
            [index[s.label] for s in sentences],
            tuple(s.id for s in sentences),
        )
    return out


def build(config: ml_collections.ConfigDict, progress: bool = True) -> TaskRun:
    """Validates the config, reads the task's data and the encoder (and KAR), makes the arrays.

    Raises:
      ConfigError, DataError, CheckpointError: bad config, data, encoder folder or run.
    """
    tasks_config.validate(config)
    if config.task == "wic":
        raw, labels = _wic_examples(config), _WIC_LABELS
    else:
        raw, labels = _semeval_examples(config), semeval2010.LABELS

    run = None
    if config.knowbert_workdir:
        run, run_params = knowbert_trainer.restore(config.knowbert_workdir, progress)
        if config.kar and not run.model.use_kar:
            raise ConfigError(
                f"config.kar: True, but {config.knowbert_workdir} was trained without KAR "
                "(encoder.kar=False)"
            )
        lm_config, lm_tokenizer = run.lm.config, run.lm.tokenizer
        encoder_params, path = run_params["encoder"], run.lm.path
        kar = run.model.kar
        kar_params = run_params["kar"] if config.kar else None
        table = run.table.vectors if config.kar else np.zeros((1, 1), np.float32)
    else:
        lm = pretrained.load_pretrained(config.encoder.path or None)
        if lm.tokenizer is None:
            raise ConfigError(f"config.encoder.path: {lm.path} has no tokenizer.json")
        lm_config, lm_tokenizer, encoder_params, path = lm.config, lm.tokenizer, lm.params, lm.path
        kar, kar_params, table = KnowledgeAttentionRecontextualisation(), None, np.zeros((1, 1))
    if lm_tokenizer.token_to_id(inputs.SEPARATOR) is None:
        raise ConfigError(f"the encoder's tokenizer ({path}) has no {inputs.SEPARATOR} token")
    tokenizer = pretrained.fixed_length_tokenizer(
        lm_tokenizer, config.data.max_length, lm_config.pad_token_id
    )
    parts = {}
    for split, (words, marked, label_ids, ids) in raw.items():
        candidates = None
        if config.kar:
            candidates = run.prepare(words, tokenizer, config.candidates.max_spans, progress)
        examples = inputs.encode(
            words, marked, label_ids, tokenizer, pad_id=lm_config.pad_token_id,
            candidates=candidates,
        )  # fmt: skip
        parts[split] = Part(examples, ids)
    model = Classifier(
        knowbert=KnowBert(encoder=lm_config, kar=kar, use_kar=config.kar),
        num_labels=len(labels),
        pooling=config.model.pooling,
        dropout=config.model.dropout,
    )
    source = {
        "encoder": str(path),
        "knowbert_workdir": config.knowbert_workdir,
        "kar": bool(config.kar),
    }
    if config.kar:
        source["entities"] = {"rows": len(run.table.synsets), "width": int(table.shape[1])}
    return TaskRun(
        config=config,
        model=model,
        encoder_params=encoder_params,
        kar_params=kar_params,
        table=np.asarray(table, np.float32),
        parts=parts,
        labels=labels,
        source=source,
    )


def _optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """optimizer.lr for the head, optimizer.encoder_lr for the encoder and KAR."""
    return two_rate_optimizer(config, ("encoder", "kar"), labels=("head", "encoder"))


def _predict(predict_fn, table, params, batches, num_examples: int) -> np.ndarray:
    """int [N] the predicted label ids of a split, from its per-bucket batches
    (`inputs.evaluation_batches`)."""
    predicted = np.zeros(num_examples, np.int64)
    for stacked, indices in batches:
        for g, rows in enumerate(indices):
            batch = jax.tree.map(lambda a, g=g: a[g], stacked)
            labels = np.argmax(np.asarray(predict_fn(params, table, batch)), -1)
            predicted[rows[rows >= 0]] = labels[rows >= 0]
    return predicted


def evaluate(
    setup: TaskRun, split: str, predicted: np.ndarray, folder: str | None
) -> dict[str, float | int | str]:
    """A split's scores from its predicted label ids (module docstring).

    Args:
      folder: where answers (and SemEval's key and scorer output) are written.

    Returns:
      {"accuracy", "examples"} and for SemEval "official_f1" (percent) and "scorer_output".
    """
    part = setup.parts[split]
    gold = np.asarray(part.examples.arrays.labels)
    result: dict[str, float | int | str] = {
        "accuracy": float((predicted == gold).mean()),
        "examples": len(gold),
    }
    if folder is None:
        return result
    os.makedirs(folder, exist_ok=True)
    names = [setup.labels[i] for i in predicted]
    if setup.config.task == "wic":
        path = os.path.join(folder, f"{split}.txt")
        with open(path, "w") as f:
            f.writelines(f"{name}\n" for name in names)
        result["answers"] = path
        return result
    answers = os.path.join(folder, f"{split}_answers.txt")
    key = os.path.join(folder, f"{split}_key.txt")
    semeval2010.write_answers(answers, part.ids, names)
    semeval2010.write_answers(key, part.ids, [setup.labels[i] for i in gold])
    output = semeval2010.run_scorer(
        answers,
        key,
        os.path.join(_data_folder(setup.config, semeval2010.FOLDER), semeval2010.SCORER),
        setup.config.data.perl,
    )
    scorer_path = os.path.join(folder, f"{split}_scorer.txt")
    with open(scorer_path, "w") as f:
        f.write(output)
    result.update(
        official_f1=semeval2010.official_score(output), answers=answers,
        scorer_output=scorer_path,
    )  # fmt: skip
    return result


def _scalars(split: str, result: dict) -> dict[str, float]:
    keys = ("accuracy", "official_f1")
    return {f"{split}/{key}": float(result[key]) for key in keys if key in result}


def train(config: ml_collections.ConfigDict, workdir: str, progress: bool = True) -> dict:
    """Fine-tunes on the task, evaluates dev and test, writes `<workdir>/results.json`;
    resumes.

    Nothing is written before the config, the data and the encoder (or knowbert run) load.

    Returns:
      {"<task>/dev", "<task>/test": {"accuracy", "examples", "answers", and for SemEval
      "official_f1" (the official score, percent) and "scorer_output" (the scorer's output
      file)},
      "inputs": {split: counts}, "system": where the encoder came from, "steps",
      "train_seconds", "steps_per_second", "device", "jax_version"}.

    Raises:
      ConfigError, DataError, CheckpointError: bad config, data, encoder or knowbert run.
      TrainingDiverged: the loss became NaN or Inf.
    """
    setup = build(config, progress)
    workdir_lib.claim(workdir, config, tasks_config.load, tasks_config.differences)
    optimizer = _optimizer(config)
    dropout_key = jax.random.fold_in(jax.random.key(config.seed), _DROPOUT_KEY)
    run_chunk = make_train_chunk(setup.model, optimizer, dropout_key)
    table = jnp.asarray(setup.table)
    buckets = inputs.bucket_lengths(config.data.length_buckets, config.data.max_length)
    train_examples = setup.parts["train"].examples
    order = inputs.TrainingOrder(
        train_examples.arrays.mask.sum(-1), buckets, config.batch_size, config.seed
    )
    length = tasks_config.chunk_length(config)

    def train_chunk(state):
        start = int(state.step)
        chunk = [train_examples.take(order.indices(t)) for t in range(start, start + length)]
        return run_chunk(state, table, inputs.trim(inputs.stack(chunk), buckets))

    batches = {
        split: inputs.evaluation_batches(
            setup.parts[split].examples, config.eval.batch_size, buckets
        )
        for split in ("dev", "test")
    }
    predict_fn = make_predict(setup.model)
    answers = os.path.join(workdir, ANSWERS_DIR)

    def evaluate_split(state, split, folder):
        size = len(setup.parts[split].examples)
        predicted = _predict(predict_fn, table, state.params, batches[split], size)
        return evaluate(setup, split, predicted, folder)

    checkpointer = host_loop.open_checkpointer(workdir, config.checkpoint.max_to_keep)
    writer = host_loop.open_writer(workdir)
    try:
        family = host_loop.Family(
            initial_state=lambda: setup.initial_state(optimizer),
            abstract_state=lambda: jax.eval_shape(lambda: setup.initial_state(optimizer)),
            train_chunk=train_chunk,
            chunk_length=length,
            evaluations={
                "dev": lambda state: _scalars("dev", evaluate_split(state, "dev", answers))
            },
        )
        outcome = host_loop.run(
            family, tasks_config.cadence(config), checkpointer, writer, progress
        )
        scores = {split: evaluate_split(outcome.state, split, answers) for split in batches}
        final = {
            key: v for split, block in scores.items() for key, v in _scalars(split, block).items()
        }
        writer.write(outcome.step, "final", final)
        # "<task>/<split>" blocks, as `kgjax train` prints them.
        results = {f"{config.task}/{split}": block for split, block in scores.items()}
        results.update(
            task=config.task,
            inputs={split: dict(part.examples.counts) for split, part in setup.parts.items()},
            system=setup.source,
            steps=int(outcome.step),
            train_seconds=outcome.train_seconds,
            steps_per_second=outcome.steps_per_second,
            device=str(jax.devices()[0].device_kind),
            jax_version=jax.__version__,
        )
        workdir_lib.write_json(os.path.join(workdir, workdir_lib.RESULTS_FILE), results)
        if progress:
            tqdm.write(
                f"{config.task}: " + "  ".join(f"{k} {v:.4f}" for k, v in final.items()),
                file=sys.stderr,
            )
        return results
    finally:
        checkpointer.close()
        writer.close()
