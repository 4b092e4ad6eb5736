"""Tests for kgjax.data.wordnet_candidates on the real WordNet 3.0 database."""

import numpy as np
import pytest

from kgjax.data.wordnet_candidates import MAX_CANDIDATES, find_candidates, pad_candidates


def _by_span(candidates):
    """span -> {synset id: prior}."""
    return {
        span: dict(zip(synsets, priors, strict=True))
        for span, synsets, priors in zip(
            candidates.spans, candidates.synsets, candidates.priors, strict=True
        )
    }


def test_bank_has_all_its_senses_with_add_one_priors_most_tagged_first(wn):
    candidates = find_candidates(["Bank"], wn)
    assert candidates.spans == ((0, 0),)
    senses = wn.senses("bank", "n") + wn.senses("bank", "v")  # no adjective or adverb "bank"
    total = sum(sense.tag_count + 1 for sense in senses)
    expected = {sense.synset: (sense.tag_count + 1) / total for sense in senses}
    assert _by_span(candidates)[(0, 0)] == pytest.approx(expected, rel=1e-12)
    # bank%1:17:01:: (sloping land, 25 tags) is the most tagged sense: first, highest prior.
    river = wn.synset_of_key("bank%1:17:01::").id
    priors = candidates.priors[0]
    assert candidates.synsets[0][0] == river
    assert priors[0] > max(priors[1:])
    assert list(priors) == sorted(priors, reverse=True)


def test_inflected_forms_resolve_through_morphy(wn):
    banks = find_candidates(["banks"], wn).synsets[0]
    assert wn.synset_of_key("bank%1:17:01::").id in banks  # banks -> bank
    assert wn.synset_of_key("banks%1:18:00::").id in banks  # and the lemma "banks" itself
    ran = find_candidates(["ran"], wn).synsets[0]  # only the verb's exception list knows it
    assert ran[0] == wn.synset_of_key("run%2:38:00::").id  # run's most tagged verb sense
    assert set(ran) <= {sense.synset for sense in wn.senses("run", "v")}


def test_multiword_lemmas_are_found_up_to_max_span_words(wn):
    words = ["From", "New", "York", "to", "the", "United", "States", "of", "America"]
    found = _by_span(find_candidates(words, wn))
    assert wn.synset_of_key("new_york%1:15:01::").id in found[(1, 2)]
    assert wn.synset_of_key("united_states%1:15:00::").id in found[(5, 6)]
    assert (4, 4) not in found  # "the" is no lemma
    assert (5, 8) not in found  # four words
    america = wn.synset_of_key("united_states_of_america%1:15:00::").id
    assert america in _by_span(find_candidates(words, wn, max_span_words=4))[(5, 8)]
    single = find_candidates(words, wn, max_span_words=1)
    assert all(first == last for first, last in single.spans)
    assert (1, 1) in single.spans and (2, 2) in single.spans  # "New", "York"


def test_priors_sum_to_one_over_at_most_30_of_the_most_tagged(wn):
    candidates = find_candidates(
        ["The", "bank", "will", "run", "a", "test", "of", "the", "new", "run"], wn
    )
    assert candidates.spans == tuple(sorted(candidates.spans))
    for synsets, priors in zip(candidates.synsets, candidates.priors, strict=True):
        assert 1 <= len(synsets) <= MAX_CANDIDATES
        assert len(set(synsets)) == len(synsets)
        assert sum(priors) == pytest.approx(1.0, abs=1e-12)
        assert list(priors) == sorted(priors, reverse=True)
    # "run" has 57 senses (16 nouns, 41 verbs): the 30 kept are the most tagged.
    run = candidates.synsets[candidates.spans.index((3, 3))]
    counts = {s.synset: s.tag_count for s in wn.senses("run", "n") + wn.senses("run", "v")}
    assert len(counts) == 57 and len(run) == MAX_CANDIDATES
    dropped = set(counts) - set(run)
    assert min(counts[synset] for synset in run) >= max(counts[synset] for synset in dropped)
    assert len(find_candidates(["run"], wn, max_candidates=5).synsets[0]) == 5


def test_padding_to_static_arrays(wn):
    candidates = find_candidates(["The", "bank", "ran"], wn)
    assert candidates.spans == ((1, 1), (2, 2))
    every = sorted({synset for synsets in candidates.synsets for synset in synsets})
    rows = {synset: row for row, synset in enumerate(every, start=1)}
    padded = pad_candidates(candidates, rows, num_spans=4, num_candidates=MAX_CANDIDATES)
    assert padded.spans.shape == (4, 2) and padded.spans.dtype == np.int32
    assert padded.candidate_ids.shape == (4, 30) and padded.candidate_ids.dtype == np.int32
    assert padded.candidate_priors.shape == (4, 30) and padded.candidate_priors.dtype == np.float32
    np.testing.assert_array_equal(padded.spans, [(1, 1), (2, 2), (0, 0), (0, 0)])
    np.testing.assert_array_equal(padded.span_mask, [True, True, False, False])
    for s, (synsets, priors) in enumerate(zip(candidates.synsets, candidates.priors, strict=True)):
        n = len(synsets)
        np.testing.assert_array_equal(padded.candidate_mask[s], np.arange(30) < n)
        np.testing.assert_array_equal(padded.candidate_ids[s, :n], [rows[x] for x in synsets])
        np.testing.assert_allclose(padded.candidate_priors[s, :n], priors, rtol=1e-6)
    mask = padded.candidate_mask
    assert not mask[2:].any()
    assert (padded.candidate_ids[~mask] == 0).all() and (padded.candidate_priors[~mask] == 0).all()
    np.testing.assert_allclose(padded.candidate_priors.sum(axis=1), [1, 1, 0, 0], atol=1e-6)

    with pytest.raises(ValueError, match="more than S = 1"):
        pad_candidates(candidates, rows, num_spans=1, num_candidates=30)
    with pytest.raises(ValueError, match="more than C = 5"):
        pad_candidates(candidates, rows, num_spans=4, num_candidates=5)
    with pytest.raises(KeyError, match=every[0]):
        pad_candidates(candidates, {x: row for x, row in rows.items() if x != every[0]}, 4, 30)
