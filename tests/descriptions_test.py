"""Tests for kgjax.data.descriptions: texts on tiny fixtures and on the real data, mention spans."""

import json
import os
import pathlib
import re

import numpy as np
import pytest
import tokenizers
from tokenizers import models, normalizers, pre_tokenizers, processors

from kgjax.data import descriptions
from kgjax.data.triples import DataError

DATA_DIR = pathlib.Path(
    os.environ.get("KGJAX_DATA_DIR", pathlib.Path(__file__).parents[1] / ".." / "shared" / "data")
)


def _real(dataset):
    folder = DATA_DIR / dataset
    if not folder.is_dir():
        pytest.skip(f"{folder} not found; set KGJAX_DATA_DIR to the shared data folder to run")
    return folder


def _dict_keys(file):
    return [line.rstrip("\n").split("\t")[1] for line in open(file, encoding="utf-8")]


# --- the real data ----------------------------------------------------------------------------


def test_fb15k237_sources(tmp_path):
    folder = _real("fb15k-237")
    keys = _dict_keys(folder / "entities.dict")
    star = descriptions.entity_descriptions(folder, keys)
    assert len(star.texts) == 14541 and not star.fallback
    assert star.source.endswith("star/fb-entity2text-new.txt")
    i = keys.index("/m/06rf7")
    assert star.texts[i].startswith("Schleswig-Holstein -- Schleswig-Holstein is the northernmost")
    assert star.mentions[i] == "Schleswig-Holstein"
    # Escapes are undone; a line cut before an escaped quote loses its dangling backslash.
    assert star.texts[keys.index("/m/021b_")] == 'Carol Kane -- Carolyn Laurie "Carol'
    assert not any(re.search(r'\\[n"rt]|\\$', t) for t in star.texts)

    names = descriptions.entity_descriptions(folder, keys, source="kg-bert")
    assert names.texts[i] == names.mentions[i] == "Schleswig-Holstein"

    wikidata = descriptions.entity_descriptions(folder, keys, source="wikidata")
    assert len(wikidata.fallback) == 26 and "/m/01htzx" in wikidata.fallback
    j = keys.index("/m/01htzx")
    assert wikidata.texts[j] == names.texts[j]
    with pytest.raises(DataError, match="no text for 26 of 14541 entities"):
        descriptions.entity_descriptions(folder, keys, source="wikidata", missing="error")

    # A folder derived by `kgjax split` (another name, its split.json naming the source)
    # defaults to the source's descriptions, not to bare names.
    derived = tmp_path / "fb15k237_inductive"
    derived.mkdir()
    (derived / "star").symlink_to(folder / "star")
    (derived / "split.json").write_text(json.dumps({"source": str(folder)}))
    assert descriptions.entity_descriptions(derived, keys).texts == star.texts
    (derived / "split.json").unlink()
    with pytest.raises(DataError, match="kg-bert/entity2text.txt: file not found"):
        descriptions.entity_descriptions(derived, keys)  # no manifest: the name's default

    relations = descriptions.relation_descriptions(folder, _dict_keys(folder / "relations.dict"))
    assert len(relations.texts) == 237 and not relations.fallback
    assert relations.texts[relations.keys.index("/music/artist/origin")] == "music artist origin"


def test_wn18rr_and_umls():
    wn18rr = _real("wn18rr")
    keys = _dict_keys(wn18rr / "entities.dict")
    d = descriptions.entity_descriptions(wn18rr, keys)
    assert len(d.texts) == 40943 and not d.fallback
    i = keys.index("00590383")
    assert d.texts[i] == "chieftainship, the position of chieftain"
    assert d.mentions[i] == "chieftainship"

    umls = _real("umls")
    keys = (umls / "kg-bert" / "entities.txt").read_text(encoding="utf-8").split("\n")
    d = descriptions.entity_descriptions(umls, keys)
    assert len(d.texts) == 135 and not d.fallback
    i = keys.index("idea_or_concept")
    assert d.texts[i].startswith("In philosophy, ideas are")
    assert d.mentions[i] == "idea or concept"


# --- tiny fixtures ------------------------------------------------------------------------------


def _write(folder, name, text):
    file = folder / name
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(text, encoding="utf-8")


def test_fallback_and_errors_on_a_fixture(tmp_path):
    folder = tmp_path / "tiny"
    _write(folder, "kg-bert/entity2text.txt", "e1\tAlpha Centauri\ne2\t\ne3\tGamma")
    _write(folder, "kg-bert/relation2text.txt", "r1\torbits")
    _write(
        folder,
        "star/fb-entity2text-new.txt",
        'e1\tAlpha Centauri -- A \\"star\\"\\nsystem\\\ne3\tGamma',
    )

    d = descriptions.entity_descriptions(folder, ["e1", "e2", "e3", "the_unknown_one"])
    # The default source of an unknown dataset is kg-bert; e2's text is empty.
    assert d.texts == ("Alpha Centauri", "e2", "Gamma", "the unknown one")
    assert d.fallback == ("e2", "the_unknown_one")
    with pytest.raises(DataError, match=r"entity2text.txt: no text for 2 of 4 entities: e2, the_"):
        descriptions.entity_descriptions(
            folder, ["e1", "e2", "e3", "the_unknown_one"], missing="error"
        )

    star = descriptions.entity_descriptions(folder, ["e1", "e2", "e3"], source="star")
    assert star.texts == ('Alpha Centauri -- A "star" system', "e2", "Gamma")
    assert star.mentions == ("Alpha Centauri", "e2", "Gamma")
    assert star.fallback == ("e2",)

    r = descriptions.relation_descriptions(folder, ["r1", "/people/person/place_of_birth"])
    assert r.texts == ("orbits", "people person place of birth")

    with pytest.raises(
        DataError, match=r"wikidata/entity2wikidata.json: file not found .*'kg-bert', 'star'"
    ):
        descriptions.entity_descriptions(folder, ["e1"], source="wikidata")
    with pytest.raises(DataError, match="unknown entity text source 'dbpedia'"):
        descriptions.entity_descriptions(folder, ["e1"], source="dbpedia")
    _write(folder, "kg-bert/relation2text.txt", "r1\torbits\nr2 without a tab")
    with pytest.raises(DataError, match=r"relation2text.txt:2: expected key<TAB>text"):
        descriptions.relation_descriptions(folder, ["r1"])


def test_wikidata_and_lemma_rules(tmp_path):
    folder = tmp_path / "fb15k-237"
    entries = {
        "/m/1": {"label": "Denton", "description": "city in Texas", "alternatives": []},
        "/m/2": {"label": "Nowhere", "description": None},
    }
    _write(folder, "wikidata/entity2wikidata.json", json.dumps(entries))
    _write(folder, "kg-bert/entity2text.txt", "/m/3\tSomewhere, Else")
    d = descriptions.entity_descriptions(folder, ["/m/1", "/m/2", "/m/3"], source="wikidata")
    assert d.texts == ("Denton -- city in Texas", "Nowhere", "Somewhere, Else")
    assert d.mentions == ("Denton", "Nowhere", "Somewhere, Else")
    assert d.fallback == ("/m/3",)

    wn = tmp_path / "wn18rr"
    _write(wn, "kg-bert/entity2text.txt", "00001\tland reform, a redistribution of land")
    d = descriptions.entity_descriptions(wn, ["00001"])
    assert d.mentions == ("land reform",)


# --- mention spans ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wordpiece():
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "sun", "is", "a", "star", "union"]
    vocab += ["ion", "hol", "##stein", "-", "sch", "##les", "##wig", "."]
    tokenizer = tokenizers.Tokenizer(
        models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]")
    )
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.BertProcessing(("[SEP]", 3), ("[CLS]", 2))
    tokenizer.enable_truncation(8)
    tokenizer.enable_padding(length=8, pad_id=0, pad_token="[PAD]")
    return tokenizer


@pytest.mark.parametrize(
    ("text", "mention", "span"),
    [
        ("The Sun is a star.", "Sun", (2, 2)),  # JAKET's example: (3, 3) counting from 1
        ("the sun is a star", "SUN", (2, 2)),  # case-insensitive
        ("The Sun is a star.", "sun is", (2, 3)),
        ("Schleswig-Holstein is a star", "Schleswig-Holstein", (1, 6)),  # word pieces
        ("Schleswig-Holstein", "Holstein", (5, 6)),
        ("the sun is a star. the sun", "sun", (2, 2)),  # the first occurrence
        ("union is a star", "ion", (0, 0)),  # whole words only: absent -> [CLS]
        ("the star is a star is a sun", "sun", (0, 0)),  # truncated away -> [CLS]
        ("the sun", "", (0, 0)),
    ],
)
def test_mention_span(wordpiece, text, mention, span):
    assert descriptions.mention_span(wordpiece.encode(text), text, mention) == span


def test_mention_spans_batch(wordpiece):
    texts = ["The Sun is a star.", "a star"]
    spans = descriptions.mention_spans(wordpiece.encode_batch(texts), texts, ["star", "moon"])
    assert spans.dtype == np.int32
    np.testing.assert_array_equal(spans, [[5, 5], [0, 0]])
    with pytest.raises(ValueError, match="2 encodings, 2 texts, 1 mentions"):
        descriptions.mention_spans(wordpiece.encode_batch(texts), texts, ["star"])
