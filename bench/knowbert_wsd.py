"""KnowBERT-W's entity linker as a word-sense disambiguation system on Senseval-2 and
SemEval-2007, against the most frequent sense and a text-only linker (CPU-sized runs).

Run (from the repository root, after the three seeds of `configs/knowbert.py:wordnet` have
finished):
  KGJAX_DATA_DIR=../shared/data python bench/knowbert_wsd.py \
      --workdirs=runs/knowbert_wordnet_s0,runs/knowbert_wordnet_s1,runs/knowbert_wordnet_s2 \
      --out=bench/results/knowbert_wsd

For each finished run (`restore`: its config and latest parameters), both all-words sets of
`kgjax.data.wsd` (gold keys mapped to WordNet 3.0 through `index.sense`) are linked with
`KnowBertRun.link`, and every sense-tagged term is answered by:
  kar   the candidate with the highest linker score psi at the term's span (KnowBERT-W);
  mfs   the candidate with the highest prior at the same span: the most frequent sense among
        the same candidates (the span's most tagged ones with a table row, as `link` gets
        them; priors are smoothed tag counts, so this is the most tagged one), whatever the
        context;
  text  a text-only linker with no training: the cosine between MiniLM's mean-pooled
        embedding of the context and each candidate's gloss embedding (the MiniLM part of the
        entity table: "<lemmas>: <definition>", mean-pooled, as `knowledge_bases.WordNetBase.entity_text`),
        argmax; a Lesk-like baseline;
and, for reference, `wsd.most_frequent_sense` (mfs_lemma: the most tagged sense of the
term's given lemma in its part of speech, over all of WordNet, not the span's candidates).
Scored with `wsd.score` (P = correct / attempted, R = correct / all terms, F1) per set and on
both sets' terms together (ALL here: Senseval-2 + SemEval-2007 only, not Raganato et al.'s
ALL, which adds Senseval-3, SemEval-2013 and SemEval-2015).

From a term to a span (counted in the report's mapping table):
  - the words linked are the file's tokens with each token written with `_` (the files'
    collocations: `belong_to`, `Church_of_England`) split into its words, so that the
    candidate generator looks the span up as WordNet writes the collocation;
  - a word with `-` is kept whole where WordNet knows it (`well-known`), else closed up
    where WordNet knows that (`church-goers` -> `churchgoers`, `prize-fighter`), else split at
    its hyphens, which are dropped (`change-ringing` -> `change ringing`, looked up as
    `change_ringing`);
  - a term (one token in these files) maps to the span from its first word to its last; it
    is answered only if that span is a candidate span of `link`'s output (no nearby span is
    tried: a shorter or longer one names other lemmas). Terms whose span is no candidate get
    no answer and count against recall.
Candidate filters (each reported): none, every candidate of the span (the linker's own
task: the surface form alone); pos, those of the term's part of speech (the files' tag,
automatic; a term with a tag of no WordNet part keeps all); lemma, those that are senses of
the term's lemma in its part of speech, as a WSD system given lemma and part of speech
answers (allenai/kb's WSD evaluation builds its candidates from the gold lemma and part of
speech, `get_mentions_from_gold_span_lemma_pos`).
Contexts (each reported):
  sentence  `link` on whole sentences, the run's budgets L and S raised to fit the longest
            sentence (every candidate span kept; L at most the encoder's positions): the
            linker sees more spans and tokens than in training (gloss examples, L 32, S 16);
  window    one `link` row per term at the run's own L and S: the term's words, grown a word
            at a time to the right and then the left while the window fits in L word pieces
            and the term's span stays among the first S candidate spans.
The text-only linker embeds the same context (the sentence, or the term's window).

Entity table: the run's table (`entities.rows="candidates"` has rows only for the candidate
synsets of the run's gloss sentences) is completed with a row for every candidate synset of
the WSD sentences, from the same source (MiniLM gloss embeddings encoded the same way, or the
same table file, and the same extra table): what `entities.rows="all"` would have given. The
report counts the terms whose gold synset among their span's candidates had a row in the
run's own table.

Headline (wsd.json's `sets`, which bench/knowbert_wordnet.py reads): whole sentences and the
lemma filter, the standard all-words setting.

Held-out gloss examples: the linking F1 with KAR and with the prior alone that the trainer
wrote to each run's results.json (`linking/held_out`).

Writes <workdir>/wsd.json per run, appends each to <out>.runs.jsonl (an invocation skips the
runs already there at the same step), and <out>.{json,md}: mean ± sample standard deviation
over the runs.

Published, for context: Peters et al. (EMNLP 2019), Table 2 "Fine-grained WSD F1", read
from a public transcription of the table (the paper's own text was not in the reference
corpus): WordNet first-sense baseline 65.2, ELMo 69.2, BERT-base 73.1, BERT-large 73.9,
KnowBert-WordNet 74.9, KnowBert-W+W 75.1, on Raganato et al.'s ALL set. KnowBert-W is
BERT-base (12 layers, KAR after layer 10) with TuckER + GenSen entity embeddings, its linker
trained on SemCor and WordNet's examples, and answers with candidates from the gold lemma and
part of speech (allenai/kb's bin/evaluate_wsd_official.py); ours is a 6-layer MiniLM whose
linker saw only WordNet's gloss examples, in a CPU-sized run (configs/knowbert.py:wordnet,
the steps each run took are in the report), on two of ALL's five sets: the figures are not
comparable.
"""

from __future__ import annotations

import argparse
import collections
import copy
import dataclasses
import functools
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import numpy as np

from kgjax.data import wordnet as wordnet_lib
from kgjax.data import wsd
from kgjax.data.wordnet_candidates import find_candidates, synset_tag_counts
from kgjax.models.lm import pretrained
from kgjax.text import encode
from kgjax.train.knowbert import entities as entities_lib
from kgjax.train.knowbert.trainer import KnowBertRun, SpanScores, restore

from common import finished_results, machine, read_runs_log, write_results

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILTERS = ("none", "pos", "lemma")
HEADLINE_FILTER = "lemma"  # wsd.json's "sets": the standard setting, lemma and tag given
CONTEXTS = ("sentence", "window")
ALL = "all"  # both sets' terms scored together
SET_NAMES = {"senseval2": "Senseval-2", "semeval2007_task17": "SemEval-2007", ALL: "ALL (both)"}
# Peters et al. (EMNLP 2019), Table 2, as the module docstring says where it comes from.
PUBLISHED = (
    "Published, for context (Peters et al., EMNLP 2019, Table 2, fine-grained WSD F1 on "
    "Raganato et al.'s ALL: Senseval-2, -3, SemEval-2007, -2013, -2015; lemma and part of "
    "speech given; read from a public transcription of the table): WordNet first sense "
    "65.2, BERT-base 73.1, KnowBert-WordNet 74.9 "
    "(BERT-base, 12 layers; linker trained on SemCor and WordNet's examples). Not comparable: "
    "here a 6-layer MiniLM, a linker trained on WordNet's gloss examples only, in a CPU-sized "
    "run (the steps above), and ALL is Senseval-2 + SemEval-2007."
)
DEFAULT_WORKDIRS = ",".join(f"runs/knowbert_wordnet_s{seed}" for seed in range(3))
_LENGTH_STEP = 8  # the sentence context's L is rounded up to a multiple of this


class LinkedSentence(NamedTuple):
    """A sentence's tokens as the words given to `link`.

    Attributes:
      words: the words.
      ranges: per token, its (first, last) word.
      choices: how many tokens took each choice (`link_words`).
    """

    words: tuple[str, ...]
    ranges: tuple[tuple[int, int], ...]
    choices: Mapping[str, int]


def link_words(tokens: Sequence[str], known: Callable[[str], bool]) -> LinkedSentence:
    """Splits a sentence's tokens into the words `link` reads (module docstring).

    Args:
      tokens: the tokens as the file gives them.
      known: whether WordNet has candidates for a word (any part of speech, via morphy).

    Returns:
      The words, each token's word range, and per choice ("underscore_split", "hyphen_kept",
      "hyphen_closed", "hyphen_split") the number of tokens (or `_` parts) that took it.
    """
    words: list[str] = []
    ranges = []
    choices: collections.Counter = collections.Counter()
    for token in tokens:
        first = len(words)
        parts = [p for p in token.split("_") if p] or [token]
        choices["underscore_split"] += len(parts) > 1
        for part in parts:
            pieces = [p for p in part.split("-") if p]
            if len(pieces) < 2:
                words.append(part)
            elif known(part):
                choices["hyphen_kept"] += 1
                words.append(part)
            elif known("".join(pieces)):
                choices["hyphen_closed"] += 1
                words.append("".join(pieces))
            else:
                choices["hyphen_split"] += 1
                words.extend(pieces)
        ranges.append((first, len(words) - 1))
    return LinkedSentence(tuple(words), tuple(ranges), {k: v for k, v in choices.items() if v})


def term_span(term: wsd.Term, ranges: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """The (first, last) word of a term: from its first token's first word to its last
    token's last word."""
    return ranges[term.tokens[0]][0], ranges[term.tokens[-1]][1]


def window(
    pieces: Sequence[int],
    spans: Sequence[tuple[int, int]],
    span: tuple[int, int],
    max_pieces: int,
    max_spans: int,
) -> tuple[int, int]:
    """The words around a span that `link` keeps it in at budgets L and S.

    Grows (first, last) of `span` a word at a time, to the right then the left, while the
    window's word pieces fit in `max_pieces` and at most `max_spans` of the candidate spans
    inside the window come before `span` or are it (in `find_candidates`' order: by first
    word, then last), so that `sentences.prepare` keeps it among the first S. Stops when
    neither side can grow.

    Args:
      pieces: word pieces of each word of the sentence.
      spans: the sentence's candidate spans (first, last).
      span: the term's span.
      max_pieces: L less the two special tokens.
      max_spans: S.

    Returns:
      (first, last) word of the window; `span` itself if even that does not fit.
    """

    def fits(first: int, last: int) -> bool:
        size = sum(pieces[first : last + 1])
        before = sum(first <= s[0] and s[1] <= last and tuple(s) <= tuple(span) for s in spans)
        return size <= max_pieces and before <= max_spans

    first, last = span
    grew = True
    while grew:
        grew = False
        if last + 1 < len(pieces) and fits(first, last + 1):
            last, grew = last + 1, True
        if first > 0 and fits(first - 1, last):
            first, grew = first - 1, True
    return first, last


def allowed(
    term: wsd.Term, name: str, wordnet: wordnet_lib.WordNet
) -> Callable[[str], bool] | None:
    """Which synsets a candidate filter lets through for a term; None lets every one through.

    Args:
      name: "none"; "pos" (synsets of the term's part of speech, satellites with
        adjectives; None for a term whose tag names no part); "lemma" (the senses of the
        term's lemma through morphy in its part of speech, in all four without one).

    Raises:
      ValueError: an unknown filter.
    """
    if name == "none" or (name == "pos" and not term.pos):
        return None
    if name == "pos":
        types = wordnet_lib.SYNSET_TYPES[term.pos]
        return lambda synset: synset.rsplit("-", 1)[-1] in types
    if name == "lemma":
        parts = (term.pos,) if term.pos else tuple(wordnet_lib.PARTS)
        return frozenset(synset_tag_counts(term.lemma, wordnet, parts)).__contains__
    raise ValueError(f"unknown filter {name!r}; one of {FILTERS}")


def choose(
    synsets: Sequence[str], values: Sequence[float], keep: Callable[[str], bool] | None
) -> str | None:
    """The synset with the highest value among those `keep` lets through (all for None);
    the first of equal values; None if none is left."""
    best, best_value = None, -np.inf
    for synset, value in zip(synsets, values, strict=True):
        if (keep is None or keep(synset)) and value > best_value:
            best, best_value = synset, value
    return best


def cosines(context: np.ndarray, glosses: np.ndarray) -> np.ndarray:
    """Cosine of one context vector [D] with each gloss vector [n, D]; 0 for a zero vector."""
    norms = np.linalg.norm(glosses, axis=-1) * np.linalg.norm(context)
    return np.divide(glosses @ context, norms, out=np.zeros(len(glosses)), where=norms > 0)


def mean_sd(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for one value)."""
    values = np.asarray(values, np.float64)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else None


# --- one run -----------------------------------------------------------------------------


def _gloss_vectors(
    setup: KnowBertRun, synsets: Sequence[str], progress: bool
) -> dict[str, np.ndarray]:
    """MiniLM gloss embeddings of `synsets`, encoded as the default entity table encodes
    them (the run's own rows where its table is that default, so nothing is encoded twice)."""
    out = {}
    if not setup.config.entities.path:
        width = setup.lm.config.hidden_size
        rows = setup.table.rows
        out = {s: setup.table.vectors[rows[s], :width] for s in synsets if s in rows}
    missing = sorted(set(synsets) - set(out))
    if missing:
        section = setup.config.entities
        vectors = encode.encode_texts(
            [setup.kb.entity_text(s) for s in missing],
            setup.lm,
            pooling="mean",
            max_length=section.max_length,
            batch_size=section.batch_size,
            progress=progress,
        )
        out.update(zip(missing, vectors, strict=True))
    return out


def complete_table(
    setup: KnowBertRun, synsets: Sequence[str], glosses: Mapping[str, np.ndarray]
) -> tuple[entities_lib.EntityTable, int]:
    """The run's table with a row added for each of `synsets` it lacks, from the run's own
    sources (its table file or `glosses`, then its extra table), as `rows="all"` builds them.

    Returns:
      (the table, rows added); a synset the sources lack stays without a row.
    """
    table, section = setup.table, setup.config.entities
    own = table.rows  # a property that builds the dict on every read
    missing = [s for s in sorted(set(synsets)) if s not in own]
    if not missing:
        return table, 0
    if section.path:
        source = entities_lib.read_table(section.path, section.synsets_path, setup.kb)
        rows = source.rows
        missing = [s for s in missing if s in rows]
        vectors = source.vectors[[rows[s] for s in missing]]
    else:
        vectors = np.stack([glosses[s] for s in missing])
    if section.extra_path:
        extra = entities_lib.read_table(section.extra_path, section.extra_synsets_path, setup.kb)
        rows = extra.rows
        keep = [i for i, s in enumerate(missing) if s in rows]
        missing = [missing[i] for i in keep]
        vectors = np.concatenate([vectors[keep], extra.vectors[[rows[s] for s in missing]]], axis=1)
    added = entities_lib.EntityTable(
        table.synsets + tuple(missing),
        np.concatenate([table.vectors, vectors.reshape(len(missing), -1)]).astype(np.float32),
        f"{table.source} + {len(missing)} rows for the WSD sentences' candidates",
    )
    return added, len(missing)


class Site(NamedTuple):
    """A sense-tagged term where `link` reads it.

    Attributes:
      term: the term.
      sentence: its sentence's index in the flat list of both sets' sentences.
      span: its (first, last) word there.
      candidates: the candidate synsets at that span, None if it is no candidate span.
      priors: their priors.
      filters: per candidate filter, `allowed`'s answer for the term.
    """

    term: wsd.Term
    sentence: int
    span: tuple[int, int]
    candidates: tuple[str, ...] | None
    priors: tuple[float, ...] | None
    filters: Mapping[str, Callable[[str], bool] | None]


def _with_rows(site: Site, rows: Mapping[str, int]) -> SpanScores | None:
    """A site's candidates that have a table row, as a `SpanScores` without scores; None if
    none has (or the site has no candidate span)."""
    kept = [(s, p) for s, p in zip(site.candidates or (), site.priors or (), strict=True)
            if s in rows]  # fmt: skip
    if not kept:
        return None
    return SpanScores(site.span, *map(tuple, zip(*kept, strict=True)), scores=())


def _at(spans: Sequence[SpanScores], span: tuple[int, int]) -> SpanScores | None:
    return next((s for s in spans if s.words == tuple(span)), None)


def _sentence_length(setup: KnowBertRun, pieces: Sequence[np.ndarray]) -> int:
    """L of the sentence context: the longest sentence with [CLS] and [SEP], rounded up, at
    most the encoder's positions."""
    longest = max(int(p.sum()) for p in pieces) + 2
    rounded = -(-longest // _LENGTH_STEP) * _LENGTH_STEP
    return min(rounded, setup.lm.config.max_position_embeddings)


def _link_sentences(setup, params, words, budgets):
    """`link` on whole sentences with the budgets raised to `budgets` (L, S)."""
    config = copy.deepcopy(setup.config)
    config.data.max_length, config.data.max_spans = budgets
    tokenizer = pretrained.fixed_length_tokenizer(
        setup.lm.tokenizer, budgets[0], setup.lm.config.pad_token_id
    )
    return dataclasses.replace(setup, config=config, tokenizer=tokenizer).link(params, words)


def _contexts(setup, params, context, sites, words, candidates, pieces, budgets):
    """Per set, per site: its span's `SpanScores` and the text the text-only linker embeds
    for it (None, None where the span has no candidates)."""
    if context == "sentence":
        linked = _link_sentences(setup, params, words, budgets)
        out = {}
        for name, rows in sites.items():
            out[name] = []
            for s in rows:
                found = _at(linked[s.sentence], s.span) if s.candidates else None
                out[name].append((found, " ".join(words[s.sentence]) if found else None))
        return out
    data = setup.config.data
    windows = {}  # (set, site) -> (first, last)
    for name, rows in sites.items():
        for i, s in enumerate(rows):
            if s.candidates:
                windows[name, i] = window(
                    pieces[s.sentence], candidates[s.sentence].spans, s.span,
                    data.max_length - 2, data.max_spans,
                )  # fmt: skip
    parts = [words[sites[name][i].sentence][a : b + 1] for (name, i), (a, b) in windows.items()]
    linked = dict(zip(windows, setup.link(params, parts), strict=True))
    out = {}
    for name, rows in sites.items():
        out[name] = []
        for i, s in enumerate(rows):
            if (name, i) not in windows:
                out[name].append((None, None))
                continue
            first, last = windows[name, i]
            found = _at(linked[name, i], (s.span[0] - first, s.span[1] - first))
            text = " ".join(words[s.sentence][first : last + 1])
            out[name].append((found, text if found else None))
    return out


def evaluate_run(
    workdir: str,
    wordnet: wordnet_lib.WordNet,
    sets: Mapping[str, wsd.WsdSet],
    contexts: Sequence[str],
    progress: bool = False,
) -> dict:
    """Everything the report needs from one finished run (module docstring).

    Returns:
      {"scores": {system: {filter: {set or "all": `wsd.Scores` as a dict}}}, "mapping":
      {set: counts of the term-to-span mapping}, "sets": {set: {"kar", "mfs", "text",
      "mfs_lemma": scores}} (sentence context, lemma filter), "held_out", "table",
      "budgets", "agreement", "steps", "seconds"}.
    """
    start, cpu_start = time.perf_counter(), time.process_time()
    setup, params = restore(workdir, wordnet=wordnet)
    seconds = {"restore": round(time.perf_counter() - start, 1)}
    data = setup.config.data
    known = functools.lru_cache(maxsize=None)(lambda form: bool(synset_tag_counts(form, wordnet)))

    # Both sets' sentences as linked words, their candidates and word pieces.
    index, linked_words = {}, []
    for name, wsd_set in sets.items():
        for d, document in enumerate(wsd_set.documents):
            for i, tokens in enumerate(document.sentences):
                index[name, d, i] = len(linked_words)
                linked_words.append(link_words(tokens, known))
    words = [w.words for w in linked_words]
    candidates = [
        find_candidates(w, wordnet, data.max_span_words, data.max_candidates) for w in words
    ]
    encodings = setup.lm.tokenizer.encode_batch([list(w) for w in words], is_pretokenized=True)
    pieces = [
        np.bincount([i for i in e.word_ids if i is not None], minlength=len(w))
        for w, e in zip(words, encodings, strict=True)
    ]
    synsets = sorted({s for c in candidates for span in c.synsets for s in span})
    started = time.perf_counter()
    glosses = _gloss_vectors(setup, synsets, progress)
    own_rows = setup.table.rows
    table, rows_added = complete_table(setup, synsets, glosses)
    seconds["glosses_and_table"] = round(time.perf_counter() - started, 1)
    setup = dataclasses.replace(setup, table=table)
    budgets = (_sentence_length(setup, pieces), max(len(c.spans) for c in candidates))

    sites, mapping = {}, {}
    for name, wsd_set in sets.items():
        rows, counts, choices = [], collections.Counter(), collections.Counter()
        for d, document in enumerate(wsd_set.documents):
            for i in range(len(document.sentences)):
                choices.update(linked_words[index[name, d, i]].choices)
            for term in document.terms:
                k = index[name, d, term.sentence]
                span = term_span(term, linked_words[k].ranges)
                found = dict(zip(candidates[k].spans, candidates[k].synsets, strict=True))
                priors = dict(zip(candidates[k].spans, candidates[k].priors, strict=True))
                filters = {f: allowed(term, f, wordnet) for f in FILTERS}
                rows.append(Site(term, k, span, found.get(span), priors.get(span), filters))
                gold = term.gold & set(found.get(span, ()))
                counts["terms_mapped"] += bool(term.gold)
                counts["term_span_is_a_candidate_span"] += bool(term.gold) and span in found
                counts["gold_among_span_candidates"] += bool(gold)
                counts["gold_has_a_row_in_the_runs_table"] += any(s in own_rows for s in gold)
                for f in ("pos", "lemma"):
                    keep = filters[f]
                    counts[f"gold_among_span_candidates_{f}"] += any(
                        keep is None or keep(s) for s in gold
                    )
        sites[name] = rows
        mapping[name] = {
            "counts": wsd_set.counts()._asdict(),
            **counts,
            "choices": dict(choices),
        }

    answers: dict = {}  # system -> filter -> set -> answers

    def record(system: str, name: str, found: Sequence, values: Sequence) -> None:
        for f in FILTERS:
            answers.setdefault(system, {}).setdefault(f, {})[name] = [
                choose(s.synsets, v, site.filters[f]) if s is not None else None
                for site, s, v in zip(sites[name], found, values, strict=True)
            ]

    for context in contexts:
        started = time.perf_counter()
        per_site = _contexts(setup, params, context, sites, words, candidates, pieces, budgets)
        texts = sorted({text for rows in per_site.values() for _, text in rows if text})
        vectors = dict(
            zip(
                texts,
                encode.encode_texts(
                    texts, setup.lm, pooling="mean",
                    max_length=budgets[0] if context == "sentence" else data.max_length,
                    batch_size=setup.config.eval.batch_size, progress=progress,
                ),
                strict=True,
            )
        )  # fmt: skip
        for name, rows in per_site.items():
            found = [s for s, _ in rows]
            record(f"kar_{context}", name, found, [s.scores if s else () for s in found])
            record(
                f"text_{context}", name, found,
                [cosines(vectors[t], np.stack([glosses[x] for x in s.synsets])) if s else ()
                 for s, t in rows],
            )  # fmt: skip
        seconds[f"context_{context}"] = round(time.perf_counter() - started, 1)
    # The most frequent sense reads no context: the span's candidates with a table row, as
    # `link` gets them, whatever budget a context has.
    table_rows = table.rows
    for name, rows in sites.items():
        found = [_with_rows(s, table_rows) for s in rows]
        record("mfs", name, found, [s.priors if s else () for s in found])

    terms = {name: [s.term for s in rows] for name, rows in sites.items()}
    scores = {
        system: {f: _scores(by_set, terms) for f, by_set in by_filter.items()}
        for system, by_filter in answers.items()
    }
    lemma_mfs = {name: list(wsd.most_frequent_sense(t, wordnet)) for name, t in terms.items()}
    scores["mfs_lemma"] = {"none": _scores(lemma_mfs, terms)}
    results = finished_results(workdir) or {}
    held = results.get("linking/held_out", {})
    seconds["total"] = round(time.perf_counter() - start, 1)
    # CPU seconds of every thread: wall time on a shared machine says little.
    seconds["cpu"] = round(time.process_time() - cpu_start, 1)
    return {
        "scores": scores,
        "mapping": mapping,
        "held_out": {k: held[k] for k in ("kar", "prior", "examples", "gold_in_candidates")
                     if k in held},
        # How often the span's most frequent sense (lemma filter) is not wsd's.
        "agreement": {
            "mfs_lemma_differs": {
                name: sum(
                    a is not None and b is not None and a != b
                    for a, b in zip(answers["mfs"]["lemma"][name], lemma_mfs[name], strict=True)
                )
                for name in terms
            }
        },
        "table": {
            "rows_in_run": len(own_rows),
            "rows_added": rows_added,
            "candidate_synsets": len(synsets),
            "source": table.source,
        },
        "budgets": {
            "run": {"max_length": data.max_length, "max_spans": data.max_spans},
            "sentence": {"max_length": budgets[0], "max_spans": budgets[1]},
        },
        "sets": _headline(scores, contexts[0] if "sentence" not in contexts else "sentence"),
        "steps": int(results.get("steps", -1)),
        "seconds": seconds,
    }  # fmt: skip


def _headline(scores: dict, context: str) -> dict:
    """{set: {system: scores}} in the standard WSD setting (the term's lemma and part of
    speech given: the lemma filter) and whole sentences: the block bench/knowbert_wordnet.py
    reads from wsd.json."""
    systems = {"kar": f"kar_{context}", "mfs": "mfs", "text": f"text_{context}"}
    sets = {}
    for short, system in systems.items():
        for name, block in scores[system][HEADLINE_FILTER].items():
            sets.setdefault(name, {})[short] = block
    for name, block in scores["mfs_lemma"]["none"].items():
        sets[name]["mfs_lemma"] = block
    return sets


def _scores(by_set: Mapping[str, list], terms: Mapping[str, list]) -> dict:
    """`wsd.score` per set and on all sets' terms together."""
    out = {name: wsd.score(answers, terms[name])._asdict() for name, answers in by_set.items()}
    everything = [a for name in by_set for a in by_set[name]]
    out[ALL] = wsd.score(everything, [t for name in by_set for t in terms[name]])._asdict()
    return out


# --- the report --------------------------------------------------------------------------


def summarise(runs: Sequence[dict]) -> dict:
    """Mean and sample standard deviation over runs of every score and held-out figure.

    Returns:
      {"scores": {system: {filter: {set: {"f1", "precision", "recall": (mean, sd)}}}},
      "held_out": {"kar", "prior": {"f1": (mean, sd)}}, "runs": n}.
    """
    first = runs[0]
    table: dict = {"scores": {}, "held_out": {}, "runs": len(runs)}
    for system, by_filter in first["scores"].items():
        for f, by_set in by_filter.items():
            for name in by_set:
                table["scores"].setdefault(system, {}).setdefault(f, {})[name] = {
                    metric: mean_sd([r["scores"][system][f][name][metric] for r in runs])
                    for metric in ("f1", "precision", "recall")
                }
    for system in ("kar", "prior"):
        values = [r["held_out"][system]["f1"] for r in runs if system in r["held_out"]]
        if values:
            table["held_out"][system] = {"f1": mean_sd(values)}
    return table


def _cell(value: tuple[float, float | None]) -> str:
    mean, sd = value
    return f"{mean:.3f}" if sd is None else f"{mean:.3f} ± {sd:.3f}"


_SYSTEM_NAMES = {
    "kar_sentence": "KnowBERT-W linker (psi), sentence",
    "kar_window": "KnowBERT-W linker (psi), window",
    "mfs": "most frequent sense (prior), same candidates",
    "text_sentence": "text-only (MiniLM context · gloss), sentence",
    "text_window": "text-only (MiniLM context · gloss), window",
    "mfs_lemma": "`wsd.most_frequent_sense` (lemma + tag, all of WordNet)",
}


def markdown(summary: dict, runs: Sequence[dict], meta: dict) -> str:
    """The report: F1 per system, filter and set; held-out F1; the term-to-span counts."""
    names = list(runs[0]["scores"]["mfs"]["none"])
    lines = [
        f"### WSD F1 of KnowBERT-W's linker ({summary['runs']} run(s): mean ± sample sd)",
        "",
        "| system | candidates | " + " | ".join(SET_NAMES.get(n, n) for n in names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for system in _SYSTEM_NAMES:
        for f, by_set in summary["scores"].get(system, {}).items():
            cells = [_cell(by_set[n]["f1"]) for n in names]
            lines.append(f"| {_SYSTEM_NAMES[system]} | {f} | " + " | ".join(cells) + " |")
    lines += ["", "### Held-out gloss examples (the trainer's results.json)", ""]
    lines += ["| linker | F1 |", "|---|---|"]
    for system, label in (("kar", "KnowBERT-W (psi)"), ("prior", "prior alone")):
        if system in summary["held_out"]:
            lines.append(f"| {label} | {_cell(summary['held_out'][system]['f1'])} |")
    mapping = runs[0]["mapping"]
    lines += [
        "",
        "### From terms to spans (the same for every run of one config, but the table rows)",
        "",
        "| | " + " | ".join(SET_NAMES.get(n, n) for n in mapping) + " |",
        "|---|" + "---|" * len(mapping),
    ]
    rows = [
        ("tagged terms", lambda m: m["counts"]["num_terms"]),
        ("gold keys (U included)", lambda m: m["counts"]["num_keys"]),
        ("keys mapped to WordNet 3.0", lambda m: m["counts"]["num_keys_mapped"]),
        ("terms with a mapped key", lambda m: m["terms_mapped"]),
        ("... whose span is a candidate span", lambda m: m["term_span_is_a_candidate_span"]),
        ("... with a gold synset among its candidates", lambda m: m["gold_among_span_candidates"]),
        ("... also of the term's tag (pos filter)", lambda m: m["gold_among_span_candidates_pos"]),
        ("... also a sense of its lemma (lemma filter)",
         lambda m: m["gold_among_span_candidates_lemma"]),
        ("... with a row in the first run's own table",
         lambda m: m["gold_has_a_row_in_the_runs_table"]),
        ("tokens split at `_`", lambda m: m["choices"].get("underscore_split", 0)),
        ("hyphenated words kept whole", lambda m: m["choices"].get("hyphen_kept", 0)),
        ("hyphenated words closed up", lambda m: m["choices"].get("hyphen_closed", 0)),
        ("hyphenated words split", lambda m: m["choices"].get("hyphen_split", 0)),
        ("best recall any answer rule can reach (none filter)",
         lambda m: f"{m['gold_among_span_candidates'] / m['counts']['num_terms']:.3f}"),
    ]  # fmt: skip
    for label, get in rows:
        lines.append(f"| {label} | " + " | ".join(str(get(m)) for m in mapping.values()) + " |")
    first = runs[0]
    lines += [
        "",
        f"Entity table: {first['table']['rows_in_run']} rows in the run, "
        f"{first['table']['rows_added']} added for the {first['table']['candidate_synsets']} "
        f"candidate synsets of the WSD sentences. Budgets: the run's L {first['budgets']['run']['max_length']}"
        f", S {first['budgets']['run']['max_spans']} (window context); sentence context L "
        f"{first['budgets']['sentence']['max_length']}, S {first['budgets']['sentence']['max_spans']}. "
        f"The span's most frequent sense (lemma filter) differs from `wsd.most_frequent_sense` on "
        + ", ".join(f"{v} {SET_NAMES.get(k, k)}" for k, v in first["agreement"]["mfs_lemma_differs"].items())
        + " terms (ties between lemmas, or a sense beyond the span's 30 candidates).",
        "",
        "Runs: " + ", ".join(f"{r['workdir']} (step {r['steps']}, {r['seconds']['total']:.0f} s, "
                     f"{r['seconds'].get('cpu', 0):.0f} CPU s)" for r in runs) + ".",
        "",
        PUBLISHED,
        "",
        f"{meta['device']} ({meta['cpu_count']} cores), jax {meta['jax']}, Python {meta['python']}; "
        f"`{meta['command']}`",
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdirs", default=DEFAULT_WORKDIRS, help="comma-separated runs")
    parser.add_argument("--contexts", default=",".join(CONTEXTS))
    parser.add_argument("--out", default=os.path.join(REPO, "bench", "results", "knowbert_wsd"))
    parser.add_argument("--report_only", action="store_true", help="tabulate the log only")
    parser.add_argument("--progress", action="store_true", help="progress bars of encodings")
    args = parser.parse_args()
    workdirs = [w for w in args.workdirs.split(",") if w]
    contexts = args.contexts.split(",")
    unknown = [c for c in contexts if c not in CONTEXTS]
    if unknown:
        parser.error(f"unknown contexts {unknown}; of {CONTEXTS}")

    log_path = f"{args.out}.runs.jsonl"
    os.makedirs(os.path.dirname(os.path.abspath(log_path)) or ".", exist_ok=True)
    done = read_runs_log(log_path, ("workdir", "steps"))
    wordnet = sets = None
    runs = []
    for workdir in workdirs:
        results = finished_results(workdir)
        if results is None:
            print(f"{workdir}: no finished run (results.json); skipped", flush=True)
            continue
        key = (os.path.abspath(workdir), int(results.get("steps", -1)))
        if key not in done and not args.report_only:
            if wordnet is None:
                wordnet = wordnet_lib.load_wordnet(os.environ.get("KGJAX_DATA_DIR") or None)
                sets = {name: wsd.load_wsd(name, wordnet) for name in wsd.SETS}
            entry = evaluate_run(workdir, wordnet, sets, contexts, args.progress)
            entry["workdir"] = key[0]
            with open(os.path.join(workdir, "wsd.json"), "w") as f:
                json.dump(entry, f, indent=2)
                f.write("\n")
            with open(log_path, "a") as f:
                f.write(json.dumps(entry) + "\n")
            done[key] = entry
            print(json.dumps({"workdir": workdir, "seconds": entry["seconds"]}), flush=True)
        if key in done:
            runs.append(done[key])
    if not runs:
        raise SystemExit("no run to report")

    meta = {
        **machine(),
        "command": f"python bench/knowbert_wsd.py --workdirs={args.workdirs} "
        f"--contexts={args.contexts}",
    }
    summary = summarise(runs)
    text = markdown(summary, runs, meta)
    write_results(args.out, {"meta": meta, "summary": summary, "runs": runs}, text)
    print(text)


if __name__ == "__main__":
    main()
