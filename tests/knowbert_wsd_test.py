"""bench/knowbert_wsd.py: the term-to-span mapping, the windows, answer selection under each
candidate filter, the text-only linker's choice and the report's means and deviations against
brute-force versions; end to end on a tiny trained run under KGJAX_LONG_TESTS."""

import dataclasses
import importlib.util
import os
import sys

import numpy as np
import pytest
import tokenizers
from conftest import DATA_DIR
from knowbert_trainer_test import folder, tiny_config  # noqa: F401 (folder: a fixture)

from kgjax.data import wsd
from kgjax.data.wordnet_candidates import find_candidates, synset_tag_counts
from kgjax.models.lm import pretrained
from kgjax.train.knowbert import sentences
from kgjax.train.knowbert.trainer import SpanScores, train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def bench():
    """bench/knowbert_wsd.py as a module, with bench/ on the path for its `import common`."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(os.path.join(REPO, "bench"))
        path = os.path.join(REPO, "bench", "knowbert_wsd.py")
        spec = importlib.util.spec_from_file_location("knowbert_wsd", path)
        module = importlib.util.module_from_spec(spec)
        patch.setitem(sys.modules, "knowbert_wsd", module)
        spec.loader.exec_module(module)
        yield module


def _term(tokens, lemma="x", pos="", synsets=("s",)):
    return wsd.Term(
        id="t", sentence=0, tokens=tuple(tokens), lemma=lemma, tag="", pos=pos,
        keys=("k",) * len(synsets), synsets=tuple(synsets),
    )  # fmt: skip


def test_link_words_splits_collocations_and_hyphens(bench):
    known = {"well-known", "churchgoers", "change_ringing"}.__contains__
    tokens = ["The", "church-goers", "belong_to", "a", "well-known", "change-ringing", "-",
              "Church_of_England", "--"]  # fmt: skip
    linked = bench.link_words(tokens, known)
    assert linked.words == (
        "The", "churchgoers", "belong", "to", "a", "well-known", "change", "ringing", "-",
        "Church", "of", "England", "--",
    )  # fmt: skip
    assert linked.choices == {
        "underscore_split": 2, "hyphen_kept": 1, "hyphen_closed": 1, "hyphen_split": 1,
    }  # fmt: skip
    # Brute force: a token's words are those the tokens up to it add.
    for i, token in enumerate(tokens):
        before = len(bench.link_words(tokens[:i], known).words)
        after = len(bench.link_words(tokens[: i + 1], known).words)
        assert linked.ranges[i] == (before, after - 1)
        term = _term([i])
        first, last = bench.term_span(term, linked.ranges)
        assert linked.words[first : last + 1] == bench.link_words([token], known).words


def _fits(pieces, spans, span, first, last, max_pieces, max_spans):
    before = [s for s in spans if first <= s[0] and s[1] <= last and s <= span]
    return sum(pieces[first : last + 1]) <= max_pieces and len(before) <= max_spans


def test_window_fits_and_cannot_grow(bench):
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(1, 14))
        pieces = rng.integers(1, 4, n).tolist()
        spans = sorted(
            {(int(a), int(min(a + rng.integers(0, 3), n - 1))) for a in rng.integers(0, n, 2 * n)}
        )
        span = spans[int(rng.integers(len(spans)))]
        max_pieces, max_spans = int(rng.integers(1, 12)), int(rng.integers(1, 6))
        first, last = bench.window(pieces, spans, span, max_pieces, max_spans)
        assert first <= span[0] and span[1] <= last
        if not _fits(pieces, spans, span, *span, max_pieces, max_spans):
            assert (first, last) == span  # nothing fits: the span alone
            continue
        assert _fits(pieces, spans, span, first, last, max_pieces, max_spans)
        # Maximal: no window one word wider on either side fits.
        assert last + 1 == n or not _fits(pieces, spans, span, first, last + 1, max_pieces,
                                          max_spans)  # fmt: skip
        assert first == 0 or not _fits(pieces, spans, span, first - 1, last, max_pieces,
                                       max_spans)  # fmt: skip


def test_window_keeps_the_span_where_prepare_keeps_spans(bench, wn):
    """Real Senseval-2 sentences through `sentences.prepare` at L 24, S 6: the term's span is
    always among the kept spans of its window."""
    path = pretrained.default_model_path() / pretrained.TOKENIZER_FILE
    if not path.is_file():
        pytest.skip("the MiniLM package ships no tokenizer.json here")
    raw = tokenizers.Tokenizer.from_file(str(path))
    raw.no_padding()
    raw.no_truncation()
    length, num_spans = 24, 6
    fixed = pretrained.fixed_length_tokenizer(raw, length, pad_token_id=0)
    found_in = {}  # sentence -> its candidates
    document = wsd.load_wsd("senseval2", wn, DATA_DIR).documents[0]
    checked = 0
    for term in document.terms[:30]:
        linked = bench.link_words(document.sentences[term.sentence], lambda _: False)
        words = linked.words
        if term.sentence not in found_in:
            found_in[term.sentence] = find_candidates(words, wn, 3, 30)
        found = found_in[term.sentence]
        span = bench.term_span(term, linked.ranges)
        if span not in found.spans:
            continue
        word_ids = raw.encode(list(words), is_pretokenized=True).word_ids
        pieces = np.bincount([w for w in word_ids if w is not None], minlength=len(words))
        first, last = bench.window(pieces, found.spans, span, length - 2, num_spans)
        part = words[first : last + 1]
        candidates = find_candidates(part, wn, 3, 30)
        rows = {s: 0 for c in candidates.synsets for s in c}
        prepared = sentences.prepare(
            [part], [candidates], rows, fixed, pad_id=0, num_spans=num_spans, num_candidates=30
        )
        kept = {tuple(w) for w in prepared.word_spans[0][prepared.span_mask[0]]}
        assert (span[0] - first, span[1] - first) in kept
        checked += 1
    assert checked >= 15


def _brute_choice(synsets, values, keep):
    order = sorted(range(len(synsets)), key=lambda i: (-values[i], i))
    return next((synsets[i] for i in order if keep is None or keep(synsets[i])), None)


def test_choose_against_brute_force(bench):
    rng = np.random.default_rng(1)
    for _ in range(500):
        n = int(rng.integers(0, 6))
        synsets = [f"{i:08d}-{'nvasr'[rng.integers(5)]}" for i in range(n)]
        values = rng.integers(0, 3, n).astype(float).tolist()  # ties on purpose
        allowed = (
            set(rng.choice(synsets, int(rng.integers(0, n + 1)), replace=False)) if n else set()
        )
        for keep in (None, allowed.__contains__, lambda s: s.endswith(("-a", "-s"))):
            assert bench.choose(synsets, values, keep) == _brute_choice(synsets, values, keep)


def test_filters(bench, wn):
    noun = _term([0], lemma="banks", pos="n")
    keep = bench.allowed(noun, "lemma", wn)
    senses = synset_tag_counts("banks", wn, ("n",))
    assert senses and all(keep(s) for s in senses)
    assert not any(keep(s) for s in synset_tag_counts("bank", wn, ("v",)))
    adjective = bench.allowed(_term([0], pos="a"), "pos", wn)
    assert adjective("00001740-a") and adjective("00001740-s") and not adjective("00001740-n")
    assert bench.allowed(_term([0], pos=""), "pos", wn) is None  # no part: every candidate
    assert bench.allowed(noun, "none", wn) is None
    with pytest.raises(ValueError, match="unknown filter"):
        bench.allowed(noun, "gloss", wn)


def test_text_only_linker_picks_the_nearest_gloss(bench):
    context = np.array([1.0, 1.0, 0.0])
    glosses = np.array([[0.0, 0.0, 5.0], [3.0, 2.0, 0.0], [0.0, 0.0, 0.0], [10.0, 0.0, 1.0]])
    cosines = bench.cosines(context, glosses)
    expected = [0.0, 5 / np.sqrt(13) / np.sqrt(2), 0.0, 10 / np.sqrt(101) / np.sqrt(2)]
    np.testing.assert_allclose(cosines, expected, rtol=1e-12)
    span = SpanScores((0, 0), ("a-n", "b-n", "c-n", "d-v"), (0.4, 0.3, 0.2, 0.1), (0, 0, 0, 0))
    assert bench.choose(span.synsets, cosines, None) == "b-n"  # cosine, not the dot product
    assert bench.choose(span.synsets, cosines, lambda s: s.endswith("-v")) == "d-v"


def _run(f1s, held):
    scores = {name: {"f1": f, "precision": f + 0.1, "recall": f - 0.1} for name, f in f1s.items()}
    return {"scores": {"kar_sentence": {"pos": scores}}, "held_out": {"kar": {"f1": held}}}


def test_summary_means_and_sample_deviations(bench):
    runs = [
        _run({"senseval2": 0.5, "all": 0.4}, 0.30),
        _run({"senseval2": 0.6, "all": 0.6}, 0.32),
        _run({"senseval2": 0.7, "all": 0.2}, 0.37),
    ]
    summary = bench.summarise(runs)
    cell = summary["scores"]["kar_sentence"]["pos"]
    assert cell["senseval2"]["f1"] == pytest.approx((0.6, 0.1))
    assert cell["all"]["f1"] == pytest.approx((0.4, 0.2))
    assert cell["all"]["precision"] == pytest.approx((0.5, 0.2))
    mean, sd = summary["held_out"]["kar"]["f1"]
    assert mean == pytest.approx(0.33) and sd == pytest.approx(np.std([0.3, 0.32, 0.37], ddof=1))
    assert summary["runs"] == 3
    assert bench.mean_sd([0.25]) == (0.25, None)  # one run: no deviation
    assert bench._cell((0.6, 0.1)) == "0.600 ± 0.100" and bench._cell((0.25, None)) == "0.250"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, wn, folder):  # noqa: F811
    """A tiny KnowBERT-W run (knowbert_trainer_test's encoder and random table file)."""
    workdir = str(tmp_path_factory.mktemp("wsd_run"))
    config = tiny_config(folder, num_steps=20, eval_every_steps=20)
    train(config, workdir, progress=False, wordnet=wn)
    return workdir


@pytest.mark.skipif(
    not os.environ.get("KGJAX_LONG_TESTS"),
    reason="trains a tiny KnowBERT run and evaluates it on a slice of both WSD sets, about "
    "60 s on 2 cores, beyond CI's 7-minute budget; set KGJAX_LONG_TESTS=1",
)
def test_end_to_end_on_a_tiny_run(bench, tiny_run, wn):
    sets = {}
    for name in wsd.SETS:
        full = wsd.load_wsd(name, wn, DATA_DIR)
        document = full.documents[0]
        cut = [t for t in document.terms if t.sentence < 4]
        sets[name] = dataclasses.replace(
            full,
            documents=(dataclasses.replace(document, sentences=document.sentences[:4],
                                           terms=tuple(cut)),),
        )  # fmt: skip
    results = bench.evaluate_run(tiny_run, wn, sets, bench.CONTEXTS)
    scores = results["scores"]
    for name in [*wsd.SETS, "all"]:
        terms = sets[name].terms if name != "all" else [t for s in sets.values() for t in s.terms]
        attempted = {}
        for system in ("kar_sentence", "kar_window", "mfs", "text_sentence", "text_window"):
            for f in bench.FILTERS:
                assert scores[system][f][name]["total"] == len(terms)
                attempted[system, f] = scores[system][f][name]["attempted"]
                assert attempted[system, f] <= attempted[system, "none"]
        # Both linkers answer wherever the context kept the term's span; the most frequent
        # sense wherever the span is a candidate span (the tiny encoder's 32 positions cut
        # the sentence context, not the windows).
        for context in bench.CONTEXTS:
            assert attempted[f"kar_{context}", "none"] == attempted[f"text_{context}", "none"]
        assert attempted["kar_window", "none"] == attempted["mfs", "none"] == len(terms)
        assert attempted["kar_sentence", "none"] <= len(terms)
        assert scores["mfs_lemma"]["none"][name]["total"] == len(terms)
    senseval2 = scores["kar_sentence"]["none"]["senseval2"]
    assert senseval2["attempted"] < senseval2["total"]  # its first sentences exceed 32 pieces
    # The span's most frequent sense under the lemma filter is wsd.most_frequent_sense here.
    assert results["agreement"]["mfs_lemma_differs"] == dict.fromkeys(wsd.SETS, 0)
    for name in wsd.SETS:
        assert results["sets"][name]["mfs"] == scores["mfs"]["lemma"][name]
        assert results["sets"][name]["mfs"] == results["sets"][name]["mfs_lemma"]
    # The tiny run's table holds only its sentences' candidates: rows were added from its file.
    assert results["table"]["rows_added"] > 0
    assert results["budgets"]["sentence"]["max_length"] == 32  # the tiny encoder's positions
    assert set(results["held_out"]) >= {"kar", "prior"}
