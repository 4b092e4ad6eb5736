"""Tests for kgjax.data.wordnet_examples on the real WordNet 3.0 database."""

import pytest

from kgjax.data.wordnet_examples import gloss_examples, lemma_span, split_by_synset, tokenise


@pytest.fixture(scope="module")
def subset(wn):
    """Every 40th synset (about 2,900; the whole database takes seconds)."""
    ids = list(wn.synsets)[::40]
    return ids, gloss_examples(wn, ids)


def _used(example):
    first, last = example.span
    return example.tokens[first : last + 1]


def test_tokens_keep_hyphens_and_apostrophes_inside_words():
    assert tokenise("he had writer's block, a well-known (rare) thing.") == (
        *("he", "had", "writer's", "block", ",", "a", "well-known"),
        *("(", "rare", ")", "thing", "."),
    )


def test_bank_examples_use_bank(wn):
    river = wn.synset_of_key("bank%1:17:01::")
    found = gloss_examples(wn, [river.id])
    assert found.missed == ()
    assert [(e.span, e.synset) for e in found.examples] == [((7, 7), river.id), ((4, 4), river.id)]
    assert found.examples[0].tokens == tokenise("they pulled the canoe up on the bank")
    assert [_used(e) for e in found.examples] == [("bank",), ("bank",)]


def test_inflected_and_multiword_uses_are_found_through_morphy(wn):
    run = wn.synset_of_key("run%2:38:00::")
    assert run.words == ("run",) and "The children ran to the store" in run.examples
    (ran,) = [e for e in gloss_examples(wn, [run.id]).examples if "ran" in e.tokens]
    assert ran.span == (2, 2)  # "ran" is no lemma of the synset: morphy's verb exceptions
    light_up = wn.synset("00291873-v")
    assert {"light", "light_up"} <= set(light_up.words)
    # The longest use wins: "lit up" (light_up), not "lit" (light); then the leftmost.
    assert lemma_span(tokenise("they lit up the room and lit up the sky"), light_up, wn) == (1, 2)
    assert lemma_span(tokenise("nothing here"), light_up, wn) is None


def test_hyphens_and_underscores_match_and_compounds_use_their_part(wn):
    scot_free = wn.synset("00260835-r")
    assert scot_free.words == ("scot_free",)
    (went,) = gloss_examples(wn, [scot_free.id]).examples
    assert _used(went) == ("scot-free",)
    minded = wn.synset("01683497-s")
    assert minded.words == ("minded",) and minded.examples == ("civic-minded", "career-minded")
    found = gloss_examples(wn, [minded.id]).examples
    assert [e.span for e in found] == [(0, 0), (0, 0)]  # rule 2: the whole compound


def test_examples_without_a_lemma_are_counted_as_missed(wn):
    tell_off = wn.synset("00825666-v")
    assert tell_off.words == ("tell_off", "brush_down")
    found = gloss_examples(wn, [tell_off.id])
    # "told ... off": both words, but apart.
    assert ("00825666-v", "She told the misbehaving student off") in found.missed
    assert found.num_examples == len(tell_off.examples)


def test_counts_are_consistent(wn, subset):
    ids, found = subset
    assert found.num_examples == len(found.examples) + len(found.missed)
    assert found.num_examples == sum(len(wn.synset(i).examples) for i in ids)
    assert 0 < len(found.missed) < found.num_examples / 20  # about 1.7% on the whole database
    in_subset = set(ids)
    for example in found.examples:
        first, last = example.span
        assert example.synset in in_subset and 0 <= first <= last < len(example.tokens)
    for synset_id, text in found.missed:
        assert text in wn.synset(synset_id).examples


def test_split_by_synset_is_seeded_disjoint_and_complete(subset):
    examples = subset[1].examples
    train, held_out = split_by_synset(examples, 0.2, seed=3)
    synsets = {e.synset for e in examples}
    held_out_synsets = {e.synset for e in held_out}
    assert len(held_out_synsets) == round(0.2 * len(synsets))
    assert held_out_synsets.isdisjoint(e.synset for e in train)
    assert sorted(train + held_out) == sorted(examples)
    assert split_by_synset(examples[::-1], 0.2, seed=3)[1] == held_out[::-1]  # order-free draw
    assert split_by_synset(examples, 0.2, seed=3) == (train, held_out)
    assert split_by_synset(examples, 0.2, seed=4)[1] != held_out
    assert split_by_synset(examples, 0.0, seed=3) == (examples, ())
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        split_by_synset(examples, 1.5, seed=3)
