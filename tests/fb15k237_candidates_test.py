"""Tests for kgjax.data.fb15k237_candidates: alias spans, priors, gold sentences, the table."""

import json
import math
import os
import pathlib

import numpy as np
import pytest

from kgjax.data import fb15k237_candidates as fc
from kgjax.data import linking
from kgjax.data.triples import DataError

DATA_DIR = pathlib.Path(
    os.environ.get("KGJAX_DATA_DIR", pathlib.Path(__file__).parents[1] / ".." / "shared" / "data")
)


def _index(aliases, weights=None):
    return fc.AliasIndex(linking.AliasTable.build(aliases), weights or {})


def _found(words, candidates):
    """{span text: (entities, priors)} of `find_candidates`' result."""
    return {
        " ".join(words[first : last + 1]): (entities, priors)
        for (first, last), entities, priors in zip(
            candidates.spans, candidates.synsets, candidates.priors, strict=True
        )
    }


# --- candidate spans --------------------------------------------------------------------------


def test_all_spans_up_to_the_limit_overlapping():
    index = _index(
        [("nyc", "New York City"), ("ny", "New York"), ("york", "York"), ("city", "city")]
    )
    words = ["She", "moved", "to", "New", "York", "City", "."]
    found = fc.find_candidates(words, index)
    assert found.spans == ((3, 4), (3, 5), (4, 4), (5, 5))
    assert _found(words, found) == {
        "New York": (("ny",), (1.0,)),
        "New York City": (("nyc",), (1.0,)),
        "York": (("york",), (1.0,)),
        "City": (("city",), (1.0,)),
    }
    # Spans longer than max_span_words are not tried.
    assert fc.find_candidates(words, index, max_span_words=2).spans == ((3, 4), (4, 4), (5, 5))


def test_normalisation_and_case_rules():
    index = _index(
        [("denton", "Denton,Texas"), ("usa", "US"), ("may", "May"), ("actor", "actor"),
         ("lady", "'' My Fair Lady ''"), ("obrien", "Conan O'Brien"), ("cafe", "Café Müller")]
    )  # fmt: skip
    # Punctuation inside a word splits as in the alias; case-folding and NFKC apply.
    words = ["Denton,", "TEXAS", "us", "US", "may", "May", "Actor", "My", "Fair", "Lady",
             "Conan", "O’Brien", "Ｃａｆé", "Müller"]  # fmt: skip
    found = _found(words, fc.find_candidates(words, index))
    assert set(found) == {
        "Denton, TEXAS",
        "US",
        "May",
        "Actor",
        "My Fair Lady",
        "Conan O’Brien",
        "Ｃａｆé Müller",
    }
    # A capitalised alias word needs a capital in the text; an acronym matches as written.
    assert not fc.find_candidates(["denton", ",", "texas", "may"], index).spans


def test_words_without_tokens_never_start_or_end_a_span():
    index = _index([("sf", "San Francisco")])
    words = ["", "San", "", "Francisco", ""]
    assert fc.find_candidates(words, index).spans == ((1, 3),)


def test_priors_degree_weighted_sum_to_one_and_cut_at_c():
    aliases = [("spr_il", "Springfield"), ("spr_ma", "Springfield"), ("spr_mo", "Springfield")]
    weights = {"spr_il": 3, "spr_ma": 1, "spr_mo": 3}  # deg + 1
    index = _index(aliases, weights)

    def springfield(index, **limits):
        found = fc.find_candidates(["Springfield"], index, **limits)
        assert found.spans == ((0, 0),)
        return found.synsets[0], found.priors[0]

    entities, priors = springfield(index)
    # Highest prior first, ties by key.
    assert entities == ("spr_il", "spr_mo", "spr_ma")
    np.testing.assert_allclose(priors, [3 / 7, 3 / 7, 1 / 7])
    entities, priors = springfield(index, max_candidates=2)
    assert entities == ("spr_il", "spr_mo") and priors == (0.5, 0.5)
    entities, priors = springfield(index, max_candidates=1)
    assert entities == ("spr_il",) and priors == (1.0,)
    # Uniform: no weights.
    _, priors = springfield(_index(aliases))
    np.testing.assert_allclose(priors, [1 / 3] * 3)
    for bad in ({"max_span_words": 0}, {"max_candidates": 0}):
        with pytest.raises(ValueError, match="must be >= 1"):
            fc.find_candidates(["Springfield"], index, **bad)


def _write_folder(root: pathlib.Path) -> pathlib.Path:
    """A tiny dataset folder named like FB15k-237 (StAR texts are its default)."""
    folder = root / "fb15k-237"
    for sub in ("kg-bert", "star", "wikidata"):
        (folder / sub).mkdir(parents=True)
    (folder / "train.txt").write_text(
        "/m/paris\t/located_in\t/m/france\n/m/hugo\t/born_in\t/m/france\n"
        "/m/hugo\t/lived_in\t/m/paris\n/m/paris\t/twin\t/m/paris\n"
    )
    (folder / "valid.txt").write_text("/m/paris_tx\t/located_in\t/m/texas\n")
    (folder / "test.txt").write_text("/m/hugo\t/located_in\t/m/france\n")
    (folder / "kg-bert" / "entity2text.txt").write_text(
        "/m/paris\tParis\n/m/france\tFrance-GB\n/m/hugo\tVictor Hugo\n/m/paris_tx\tParis\n"
        "/m/texas\tTexas"
    )
    (folder / "star" / "fb-entity2text-new.txt").write_text(
        "/m/paris\tParis -- Paris is the capital of France.\n"
        "/m/france\tFrance -- France is a country; Victor Hugo wrote there.\n"
        "/m/hugo\tVictor Hugo -- Hugo was a French writer who lived in Paris.\n"
        "/m/paris_tx\tParis -- Paris is a city in Texas.\n"
        "/m/texas\tTexas -- Texas is a state; Paris is a city there.\n"
    )
    (folder / "wikidata" / "entity2wikidata.json").write_text(
        json.dumps({"/m/hugo": {"label": "Victor Hugo", "alternatives": ["Hugo"]}})
    )
    return folder


def test_index_from_folder_weights_by_training_degree(tmp_path):
    folder = _write_folder(tmp_path)
    index = fc.AliasIndex.from_folder(folder)
    # Training degrees: paris 3 (the self-loop once), paris_tx 0 (valid only).
    assert index.priors(["Paris"], 30) == [("/m/paris", 4 / 5), ("/m/paris_tx", 1 / 5)]
    uniform = fc.AliasIndex.from_folder(folder, prior="uniform")
    assert uniform.priors(["Paris"], 30) == [("/m/paris", 0.5), ("/m/paris_tx", 0.5)]
    assert index.priors(["Hugo"], 30) == [("/m/hugo", 1.0)]
    with pytest.raises(ValueError, match="prior must be one of"):
        fc.AliasIndex.from_folder(folder, prior="anchors")


# --- linker supervision -----------------------------------------------------------------------


def test_linked_sentences_gold_spans_and_rules(tmp_path):
    corpus, _ = linking.link_folder(_write_folder(tmp_path))
    sentences = {s.entity: s for s in fc.linked_sentences(corpus)}
    hugo = sentences["/m/hugo"]
    assert hugo.words[:4] == ("Victor", "Hugo", "-", "-")
    gold = [(" ".join(hugo.words[a : b + 1]), e, r) for (a, b), e, r in hugo.gold]
    # "Paris" in Hugo's text: his neighbour /m/paris, not /m/paris_tx.
    assert gold == [
        ("Victor Hugo", "/m/hugo", "self"),
        ("Hugo", "/m/hugo", "self"),
        ("Paris", "/m/paris", "adjacency"),
    ]
    # Texas's "Paris": no neighbour among the candidates, so rule "degree", not gold by default.
    assert [g.rule for g in sentences["/m/texas"].gold] == ["self", "self"]
    every = {s.entity: s for s in fc.linked_sentences(corpus, (*fc.GOLD_RULES, "degree"))}
    assert every["/m/texas"].gold[-1][1:] == ("/m/paris", "degree")
    only_others = fc.linked_sentences(corpus, ("unique", "adjacency"))
    assert all(g.rule != "self" for s in only_others for g in s.gold)
    with pytest.raises(ValueError, match="unknown rules"):
        fc.linked_sentences(corpus, ("guess",))
    # Every gold mention is a candidate span of its sentence, with the gold among its entities.
    index = fc.AliasIndex.from_folder(tmp_path / "fb15k-237")
    for sentence in every.values():
        found = fc.find_candidates(sentence.words, index)
        by_span = dict(zip(found.spans, found.synsets, strict=True))
        assert all(g.entity in by_span[g.span] for g in sentence.gold)


def test_mention_off_token_boundaries_is_an_error():
    text = linking.LinkedText("/m/a", "Parisian", (linking.Mention(0, 5, "/m/p", 1, "unique"),))
    with pytest.raises(ValueError, match="not on token boundaries"):
        fc.linked_sentences([text])


def test_split_by_text_is_seeded_and_disjoint():
    sentences = [fc.LinkedSentence(f"/m/{i}", ("w",), ()) for i in range(20)]
    train, held_out = fc.split_by_text(sentences, 0.25, seed=3)
    assert len(held_out) == 5 and len(train) == 15
    assert {s.entity for s in train}.isdisjoint(s.entity for s in held_out)
    assert fc.split_by_text(sentences[::-1], 0.25, seed=3)[1] == held_out[::-1]
    assert fc.split_by_text(sentences, 0.25, seed=4)[1] != held_out
    with pytest.raises(ValueError, match="held_out_fraction"):
        fc.split_by_text(sentences, 1.5, seed=0)


# --- the entity table -------------------------------------------------------------------------


def test_entity_table_from_a_complex_export(tmp_path):
    # A RotatE-like export: complex64 [V, D] whose real and imaginary parts are the halves of
    # the trained [V, 2D] table.
    table = np.arange(3 * 4, dtype=np.float32).reshape(3, 4)
    export = tmp_path / "export.npz"
    np.savez(
        export,
        entity_embeddings=(table[:, :2] + 1j * table[:, 2:]).astype(np.complex64),
        entity_names=np.asarray(["/m/a", "/m/b", "/m/c"]),
        relation_embeddings=np.zeros((1, 2), np.complex64),
    )
    rows = fc.kge_entity_table(export)
    assert rows.entities == ("/m/a", "/m/b", "/m/c")
    np.testing.assert_array_equal(rows.vectors, table)
    assert rows.vectors.dtype == np.float32
    reordered = fc.kge_entity_table(export, ["/m/c", "/m/a"])
    np.testing.assert_array_equal(reordered.vectors, table[[2, 0]])
    with pytest.raises(DataError, match="no embedding for 1 entities"):
        fc.kge_entity_table(export, ["/m/a", "/m/z"])
    out = tmp_path / "tables" / "fb15k237.npz"
    fc.write_entity_table(out, reordered)
    with np.load(out) as arrays:
        assert sorted(arrays.files) == ["entities", "vectors"]
        np.testing.assert_array_equal(arrays["vectors"], table[[2, 0]])
        assert arrays["entities"].tolist() == ["/m/c", "/m/a"]


def test_entity_table_from_a_real_export_and_bad_files(tmp_path):
    export = tmp_path / "transe.npz"
    vectors = np.ones((2, 3), np.float32)
    np.savez(export, entity_embeddings=vectors, entity_names=np.asarray(["/m/a", "/m/b"]))
    np.testing.assert_array_equal(fc.kge_entity_table(export).vectors, vectors)
    np.savez(tmp_path / "bad.npz", vectors=vectors)
    with pytest.raises(DataError, match="not a `kgjax export`"):
        fc.kge_entity_table(tmp_path / "bad.npz")
    with pytest.raises(DataError, match="not a readable KGE export"):
        fc.kge_entity_table(tmp_path / "absent.npz")


# --- real data --------------------------------------------------------------------------------


@pytest.mark.skipif(
    not os.environ.get("KGJAX_LONG_TESTS"),
    reason="reads all of FB15k-237 (about 30 s on 2 cores); set KGJAX_LONG_TESTS=1 to run",
)
def test_fb15k237_known_candidates():
    folder = DATA_DIR / "fb15k-237"
    if not (folder / "train.txt").is_file():
        pytest.skip(f"{folder} not found; set KGJAX_DATA_DIR to the shared data folder to run")
    index = fc.AliasIndex.from_folder(folder)
    words = ["Barack", "Obama", "studied", "at", "Harvard", "University", "in", "the", "US", "."]
    found = _found(words, fc.find_candidates(words, index))
    assert found["Barack Obama"] == (("/m/02mjmr",), (1.0,))
    assert found["US"][0] == ("/m/09c7w0",)
    assert "/m/03ksy" in found["Harvard University"][0]
    for _, priors in found.values():
        assert math.isclose(sum(priors), 1.0)
