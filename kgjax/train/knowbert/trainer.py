"""KnowBERT (Peters et al., EMNLP 2019) over WordNet (KnowBERT-W, trained on WordNet's gloss
examples) or FB15k-237 (trained on its linked description corpus), on the shared host loop.

  config -> validate -> knowledge base (`knowledge_bases`, `data.kb`) -> gold sentences
  (WordNet: the span using the synset's own lemma; FB15k-237: every linked mention) ->
  held-out split by group (synset; described entity; seeded), seeded subsets -> candidate
  spans of every sentence -> encoder (LM1 | LM2) and tokenizer -> frozen entity table ->
  sentences as static arrays -> workdir -> host_loop.run(family) -> evaluation -> results.json

Each step: B training sentences, BERT-corrupted; KAR links their candidate spans and mixes
the entities into LM1's output; the loss is the linker's cross-entropy at the gold spans plus
the masked-token loss (`step.py`). The encoder learns at `optimizer.encoder_lr`, KAR and the
token head at `optimizer.lr`; the entity table never changes.

Evaluation, on the held-out sentences (WordNet: examples of synsets that are never a gold
label in training; FB15k-237: descriptions of held-out entities):
  - linking: the answer for a gold mention is the candidate with the highest psi at its
    span, on the uncorrupted sentence; no answer where the span is not a kept candidate
    span. Scored as WSD (`kgjax.data.wsd.score_answers`: P = correct / answered, R = correct
    / all mentions, F1), beside the prior alone (the most tagged or most connected
    candidate: the most frequent sense), and the accuracy where the gold is among the
    candidates; the same again on the ambiguous mentions alone (a kept span with more than
    one candidate: `linking/held_out_ambiguous`), where the prior alone can be wrong;
  - masked language modelling on the same sentences (one seeded corruption per sentence):
    loss, accuracy and perplexity with KAR and with KAR bypassed in the same parameters. The
    plain encoder trained without KAR on the same sentences and budget is the run with
    `encoder.kar=False` (configs/knowbert.py's `wordnet_mlm` row), evaluated the same way.

`KnowBertRun.link(params, sentences)` links new sentences (lists of words) with any
parameters of the run: every candidate span with its entities, priors and linker scores.

One device for now: the encoder, KAR and the table are replicated.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import tokenizers
from tqdm import tqdm

from kgjax.checkpoints import Checkpointer
from kgjax.config import ConfigError
from kgjax.data import wordnet as wordnet_lib
from kgjax.data import wsd
from kgjax.data.wordnet_candidates import Candidates
from kgjax.models.knowbert import KnowledgeAttentionRecontextualisation
from kgjax.models.lm import pretrained
from kgjax.train import host_loop
from kgjax.train import workdir as workdir_lib
from kgjax.train.knowbert import config as kb_config
from kgjax.train.knowbert import entities as entities_lib
from kgjax.train.knowbert import knowledge_bases as kb_lib
from kgjax.train.knowbert import sentences as sentences_lib
from kgjax.train.knowbert.step import (
    KnowBert,
    LossWeights,
    TrainState,
    make_evaluate,
    make_link,
    make_train_chunk,
)
from kgjax.train.optimizers import two_rate_optimizer

__all__ = ["KnowBertRun", "SpanScores", "build", "restore", "train"]

_SUBSET = 0x5B  # salts the seeded subsets of sentences apart from the held-out split


class SpanScores(NamedTuple):
    """One candidate span of a linked sentence.

    Attributes:
      words: (first, last) word, inclusive.
      synsets: its candidate entities (synset ids, mids), highest prior first.
      priors: their priors.
      scores: their linker scores psi.
    """

    words: tuple[int, int]
    synsets: tuple[str, ...]
    priors: tuple[float, ...]
    scores: tuple[float, ...]


def _subset(items: Sequence, size: int, seed: int, stream: int) -> list:
    """A seeded subset of `size` items in their order; all of them for size 0."""
    if not size or size >= len(items):
        return list(items)
    chosen = np.random.default_rng([seed, _SUBSET, stream]).choice(len(items), size, replace=False)
    return [items[i] for i in np.sort(chosen)]


def _optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """optimizer.lr for KAR and the token head, optimizer.encoder_lr for the encoder (same
    optimizer and schedule)."""
    return two_rate_optimizer(config, ("encoder",), labels=("new", "encoder"))


@dataclasses.dataclass(frozen=True)
class KnowBertRun:
    """Everything a run is built from, before its workdir is touched.

    Attributes:
      config: the run's.
      kb: the knowledge base.
      lm: the pretrained encoder (config split at k, weights, tokenizer).
      tokenizer: `lm.tokenizer` truncating and padding to L.
      table: the frozen entity table.
      model: LM1 | KAR | LM2 and the token head.
      train: the training sentences; held_out: the held-out ones.
      held_out_examples: the held-out sentences (words, gold mentions, group).
      mask_id: the [MASK] token's id.
      counts: examples found and missed, sentences and groups per part.
    """

    config: ml_collections.ConfigDict
    kb: kb_lib.KnowledgeBase
    lm: pretrained.Pretrained
    tokenizer: tokenizers.Tokenizer
    table: entities_lib.EntityTable
    model: KnowBert
    train: sentences_lib.Sentences
    held_out: sentences_lib.Sentences
    held_out_examples: tuple[kb_lib.LinkedExample, ...]
    mask_id: int
    counts: dict

    @property
    def wordnet(self) -> wordnet_lib.WordNet:
        """The WordNet database of a WordNet run.

        Raises:
          AttributeError: the run's knowledge base is not WordNet.
        """
        if not isinstance(self.kb, kb_lib.WordNetBase):
            raise AttributeError(f"a {self.kb.name} run has no WordNet")
        return self.kb.wordnet

    def initial_state(self, optimizer: optax.GradientTransformation) -> TrainState:
        """Step 0: the pretrained encoder, a fresh KAR and token head."""
        key = jax.random.fold_in(jax.random.key(self.config.seed), 0x4B)
        width = self.table.vectors.shape[1]

        @jax.jit  # one program: op by op, every initialiser would compile on its own
        def initial(key, encoder_params):
            params = self.model.init(key, encoder_params, width)
            return TrainState(step=jnp.int32(0), params=params, opt_state=optimizer.init(params))

        # A copy: the first step donates the state, and `lm.params` must outlive it.
        state = initial(key, jax.tree.map(jnp.array, self.lm.params))
        # Committed to the device as a restored state is: a resumed run then compiles the
        # same programs as a fresh one (and finds them in JAX's compilation cache).
        return jax.device_put(state, jax.devices()[0])

    def prepare(
        self,
        sentences: Sequence[Sequence[str]],
        tokenizer: tokenizers.Tokenizer | None = None,
        num_spans: int | None = None,
        progress: bool = False,
    ) -> sentences_lib.Sentences:
        """New sentences as KAR reads them: their candidate spans found by the run's generator
        with its limits, the candidates' rows of the run's table (no gold).

        Args:
          sentences: lists of words (`wordnet_examples.tokenise` splits a text so).
          tokenizer: truncating and padding to some L; None: the run's (`data.max_length`).
          num_spans: S; None: the run's `data.max_spans`.
        """
        return _prepare(
            self.config, tokenizer or self.tokenizer, self.lm.config.pad_token_id, self.table,
            sentences, _candidates(self.config, self.kb, sentences, progress),
            num_spans=num_spans,
        )  # fmt: skip

    def link(self, params: dict, sentences: Sequence[Sequence[str]]) -> list[list[SpanScores]]:
        """Links sentences: each candidate span's entities, priors and linker scores psi.

        Args:
          params: the run's parameters (a state's `params`).
          sentences: lists of words (`wordnet_examples.tokenise` splits a text so).

        Returns:
          Per sentence, its kept candidate spans (the first S of L word pieces) in word order.

        Raises:
          ValueError: the run has no KAR (`encoder.kar` False).
        """
        if not self.model.use_kar:
            raise ValueError("a run without KAR (encoder.kar=False) has no linker")
        prepared = self.prepare(sentences)
        size = self.config.eval.batch_size
        link = make_link(self.model)
        table = jnp.asarray(self.table.vectors)
        out = []
        for start in range(0, len(prepared), size):
            rows = np.arange(start, start + size)
            rows[rows >= len(prepared)] = -1
            scores = np.asarray(link(params, table, prepared.take(rows)))
            for b, j in enumerate(rows[rows >= 0]):
                spans = []
                for s in np.flatnonzero(prepared.span_mask[j]):
                    real = prepared.candidate_mask[j, s]
                    spans.append(
                        SpanScores(
                            words=tuple(int(w) for w in prepared.word_spans[j, s]),
                            synsets=tuple(
                                self.table.synsets[r] for r in prepared.candidate_ids[j, s, real]
                            ),
                            priors=tuple(float(p) for p in prepared.candidate_priors[j, s, real]),
                            scores=tuple(float(x) for x in scores[b, s, real]),
                        )
                    )
                out.append(spans)
        return out


def _candidates(
    config: ml_collections.ConfigDict,
    kb: kb_lib.KnowledgeBase,
    words: Sequence[Sequence[str]],
    progress: bool = False,
) -> list[Candidates]:
    """The candidates of each sentence with the config's span and candidate limits."""
    data = config.data
    return [
        kb.candidates(w, data.max_span_words, data.max_candidates)
        for w in tqdm(words, desc="candidates", unit="sentence", disable=not progress)
    ]


def _prepare(
    config: ml_collections.ConfigDict,
    tokenizer: tokenizers.Tokenizer,
    pad_id: int,
    table: entities_lib.EntityTable,
    words: Sequence[Sequence[str]],
    candidates: Sequence[Candidates],
    gold=None,
    num_spans: int | None = None,
) -> sentences_lib.Sentences:
    """`sentences.prepare` with the config's budgets (S: `num_spans` if given) and the table's
    rows."""
    return sentences_lib.prepare(
        words, candidates, table.rows, tokenizer, pad_id=pad_id,
        num_spans=num_spans or config.data.max_spans, num_candidates=config.data.max_candidates,
        gold=gold,
    )  # fmt: skip


def build(
    config: ml_collections.ConfigDict,
    progress: bool = True,
    wordnet: wordnet_lib.WordNet | None = None,
) -> KnowBertRun:
    """Validates the config, reads the knowledge base and the encoder, builds the table and
    sentences.

    Args:
      wordnet: an already loaded WordNet for a WordNet run (else read from `data.data_dir`).

    Raises:
      ConfigError, DataError, CheckpointError: bad config, data or encoder folder.
    """
    kb_config.validate(config)
    data = config.data
    kb = kb_lib.load(data.kb, data.data_dir or None, data.prior, wordnet)
    examples, example_counts = kb.examples()
    train_examples, held_examples = kb.split(examples, data.held_out_fraction, config.seed)
    train_examples = _subset(train_examples, data.num_train_sentences, config.seed, 0)
    held_examples = _subset(held_examples, data.num_held_out_sentences, config.seed, 1)
    parts = {"train": train_examples, "held_out": held_examples}

    path = config.encoder.path or pretrained.default_model_path()
    num_layers = pretrained.load_config(path).num_layers
    if not config.encoder.split_layer < num_layers:
        raise ConfigError(
            f"config.encoder.split_layer: {config.encoder.split_layer} leaves LM2 empty "
            f"({num_layers} layers)"
        )
    lm = pretrained.load_pretrained(path, split_layer=config.encoder.split_layer)
    if lm.tokenizer is None:
        raise ConfigError(f"config.encoder.path: {lm.path} has no tokenizer.json")
    mask_id = lm.tokenizer.token_to_id("[MASK]")
    if mask_id is None:
        raise ConfigError(f"config.encoder.path: {lm.path}'s tokenizer has no [MASK] token")

    words = {part: [e.words for e in examples] for part, examples in parts.items()}
    candidates = {part: _candidates(config, kb, w, progress) for part, w in words.items()}
    used = {
        synset
        for part in candidates.values()
        for sentence in part
        for span in sentence.synsets
        for synset in span
    }
    table = entities_lib.build_table(config.entities, kb, used, lm, progress)
    width = table.vectors.shape[1]
    if width % config.kar.num_heads:
        raise ConfigError(
            f"config.kar.num_heads: {config.kar.num_heads} does not divide the entity width {width}"
        )
    tokenizer = pretrained.fixed_length_tokenizer(
        lm.tokenizer, data.max_length, lm.config.pad_token_id
    )
    prepared = {
        part: _prepare(
            config,
            tokenizer,
            lm.config.pad_token_id,
            table,
            words[part],
            candidates[part],
            [e.gold for e in examples],
        )
        for part, examples in parts.items()
    }
    group = "synsets" if kb.name == "wordnet" else "groups"
    counts = {
        **example_counts,
        **{f"{part}_{group}": len({e.group for e in ex}) for part, ex in parts.items()},
    }
    return KnowBertRun(
        config=config,
        kb=kb,
        lm=lm,
        tokenizer=tokenizer,
        table=table,
        model=KnowBert(
            encoder=lm.config,
            kar=KnowledgeAttentionRecontextualisation(**config.kar),
            use_kar=config.encoder.kar,
        ),
        train=prepared["train"],
        held_out=prepared["held_out"],
        held_out_examples=tuple(held_examples),
        mask_id=mask_id,
        counts=counts,
    )


def restore(
    workdir: str, progress: bool = False, wordnet: wordnet_lib.WordNet | None = None
) -> tuple[KnowBertRun, dict]:
    """A trained run, rebuilt from its saved config, and its latest checkpoint's parameters.

    Args:
      workdir: a `knowbert` run's folder (config.json and checkpoints/).
      wordnet: an already loaded WordNet for a WordNet run (else read from the saved
        `data.data_dir`).

    Returns:
      (the run's `KnowBertRun`, its parameters: what `link` and the evaluation read).

    Raises:
      ConfigError: the folder holds no knowbert config or no checkpoint.
    """
    config_path = os.path.join(workdir, workdir_lib.CONFIG_FILE)
    if not os.path.isfile(config_path):
        raise ConfigError(f"{workdir}: no {workdir_lib.CONFIG_FILE}; not a run's folder")
    config = kb_config.load(config_path)
    if config.get("trainer") != "knowbert":
        raise ConfigError(f"{config_path}: trainer {config.get('trainer')!r}, not 'knowbert'")
    setup = build(config, progress, wordnet)
    checkpointer = Checkpointer(os.path.join(workdir, workdir_lib.CHECKPOINT_DIR))
    try:
        abstract = jax.eval_shape(lambda: setup.initial_state(_optimizer(config)))
        state = checkpointer.restore(abstract)
    except FileNotFoundError:
        raise ConfigError(f"{workdir} holds no checkpoint") from None
    finally:
        checkpointer.close()
    return setup, state.params


def _language(nll: np.ndarray, hits: np.ndarray, weights: np.ndarray) -> dict:
    """Means over every predicted token (not over batch means)."""
    count = int(weights.sum())
    loss = float((nll * weights).sum() / max(count, 1))
    return {
        "token_loss": loss,
        "token_accuracy": float((hits * weights).sum() / max(count, 1)),
        "token_perplexity": math.exp(loss),
        "token_targets": count,
    }


def _answers(setup: KnowBertRun, values: np.ndarray, indices: np.ndarray) -> list[str | None]:
    """Per held-out gold mention, the candidate with the highest value at its span, or None
    where its span is not kept.

    Args:
      values: float [G, B, S, C] scores per slot of the evaluation batches.
      indices: int [G, B] their sentences (-1 at padding).
    """
    held = setup.held_out
    where = {int(j): (g, b) for (g, b), j in np.ndenumerate(indices) if j >= 0}
    answers: list[str | None] = []
    for j, slot in zip(held.mention_sentence, held.mention_slot, strict=True):
        if slot < 0:
            answers.append(None)
            continue
        valid = held.candidate_mask[j, slot]
        best = int(np.argmax(np.where(valid, values[(*where[int(j)], slot)], -np.inf)))
        answers.append(setup.table.synsets[held.candidate_ids[j, slot, best]])
    return answers


def _linking(answers: dict[str, list], golds: list, linkable: int, selected: np.ndarray) -> dict:
    """Each system's scores over the mentions `selected` (bool [M])."""
    chosen = np.flatnonzero(selected)
    block = {}
    for name, given in answers.items():
        scores = wsd.score_answers([given[m] for m in chosen], [golds[m] for m in chosen])
        block[name] = {
            **scores._asdict(),
            "accuracy_where_gold_is_a_candidate": scores.correct / max(linkable, 1),
        }
    return block


def evaluate(setup: KnowBertRun, evaluate_fn, table, params, batches) -> dict:
    """Held-out linking and masked-LM metrics (module docstring)."""
    clean, corrupted, indices = batches
    out = jax.tree.map(np.asarray, evaluate_fn(params, table, clean, corrupted))
    weights = np.asarray(corrupted.token_weights, np.float64)
    results = {
        "language/held_out": {
            "without_kar": _language(out["plain_nll"], out["plain_hits"], weights),
        }
    }
    if "scores" not in out:
        return results
    results["language/held_out"]["with_kar"] = _language(out["kar_nll"], out["kar_hits"], weights)
    held = setup.held_out
    priors = np.where(np.asarray(clean.candidate_mask), np.asarray(clean.candidate_priors), -1.0)
    answers = {
        "kar": _answers(setup, out["scores"], indices),
        "prior": _answers(setup, priors, indices),
    }
    golds = [{entity} for entity in held.mention_entity]
    kept = held.mention_slot >= 0
    slot = np.maximum(held.mention_slot, 0)
    among = held.gold[held.mention_sentence, slot] >= 0
    ambiguous = kept & (held.candidate_mask[held.mention_sentence, slot].sum(-1) > 1)
    every = np.ones(len(golds), bool)
    results["linking/held_out"] = {
        **_linking(answers, golds, int((kept & among).sum()), every),
        "examples": len(golds),
        "gold_in_candidates": int((kept & among).sum()),
    }
    results["linking/held_out_ambiguous"] = {
        **_linking(answers, golds, int((ambiguous & among).sum()), ambiguous),
        "mentions": int(ambiguous.sum()),
        "gold_in_candidates": int((ambiguous & among).sum()),
    }
    return results


def _scalars(results: dict) -> dict[str, float]:
    scalars = {}
    for variant, block in results["language/held_out"].items():
        scalars[f"held_out/token_loss_{variant}"] = block["token_loss"]
        scalars[f"held_out/token_accuracy_{variant}"] = block["token_accuracy"]
    for name, block in results.get("linking/held_out", {}).items():
        if isinstance(block, dict):
            scalars[f"held_out/linking_f1_{name}"] = block["f1"]
    return scalars


def train(
    config: ml_collections.ConfigDict,
    workdir: str,
    progress: bool = True,
    wordnet: wordnet_lib.WordNet | None = None,
) -> dict:
    """Trains KnowBERT, evaluates it and writes `<workdir>/results.json`; resumes.

    Nothing is written before the config, the encoder and the data validate.

    Args:
      wordnet: an already loaded WordNet for a WordNet run (else read from `data.data_dir`).

    Returns:
      {"linking/held_out": {"kar", "prior": {correct, attempted, total, precision, recall,
      f1, accuracy_where_gold_is_a_candidate}, "examples" (gold mentions),
      "gold_in_candidates"} and "linking/held_out_ambiguous" (the same over the mentions
      with more than one candidate, and "mentions") (with KAR),
      "language/held_out": {"with_kar" (with KAR), "without_kar": {token_loss,
      token_accuracy, token_perplexity, token_targets}}, "sentences": {"train", "held_out":
      `sentences.prepare`'s counts}, "examples", "entities", "steps", "train_seconds",
      "steps_per_second", ...}.

    Raises:
      ConfigError, DataError, CheckpointError: bad config, data or encoder folder.
      TrainingDiverged: the loss became NaN or Inf.
    """
    setup = build(config, progress, wordnet)
    workdir_lib.claim(workdir, config, kb_config.load, kb_config.differences)
    optimizer = _optimizer(config)
    run_chunk = make_train_chunk(
        setup.model, optimizer, LossWeights(config.loss.linker_weight, config.loss.token_weight)
    )
    table = jnp.asarray(setup.table.vectors)
    corruption = dict(
        mask_id=setup.mask_id,
        vocab_size=setup.lm.config.vocab_size,
        rate=config.masking.rate,
        max_predictions=config.masking.max_predictions,
    )
    batcher = sentences_lib.Batcher(
        setup.train, batch_size=config.batch_size, seed=config.seed, **corruption
    )
    length = kb_config.chunk_length(config)

    def train_chunk(state):
        start = int(state.step)
        return run_chunk(state, table, batcher.chunk(range(start, start + length)))

    held_out_batches = sentences_lib.evaluation_batches(
        setup.held_out, config.eval.batch_size, config.seed, **corruption
    )
    evaluate_fn = make_evaluate(setup.model)

    def evaluate_state(state) -> dict:
        return evaluate(setup, evaluate_fn, table, state.params, held_out_batches)

    checkpointer = host_loop.open_checkpointer(workdir, config.checkpoint.max_to_keep)
    writer = host_loop.open_writer(workdir)
    try:
        family = host_loop.Family(
            initial_state=lambda: setup.initial_state(optimizer),
            abstract_state=lambda: jax.eval_shape(lambda: setup.initial_state(optimizer)),
            train_chunk=train_chunk,
            chunk_length=length,
            evaluations={"knowbert": lambda state: _scalars(evaluate_state(state))},
        )
        outcome = host_loop.run(family, kb_config.cadence(config), checkpointer, writer, progress)
        results = evaluate_state(outcome.state)
        writer.write(outcome.step, "final", _scalars(results))
        results.update(
            steps=int(outcome.step),
            train_seconds=outcome.train_seconds,
            steps_per_second=outcome.steps_per_second,
            sentences={"train": dict(setup.train.counts), "held_out": dict(setup.held_out.counts)},
            examples=setup.counts,
            entities=entities_lib.table_statistics(setup.table),
            encoder=str(setup.lm.path),
            split_layer=setup.lm.config.split_layer,
            device=str(jax.devices()[0].device_kind),
            jax_version=jax.__version__,
        )
        workdir_lib.write_json(os.path.join(workdir, workdir_lib.RESULTS_FILE), results)
        return results
    finally:
        checkpointer.close()
        writer.close()
