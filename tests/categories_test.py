"""Tests for kgjax.data.categories: parsers and rules on hand-made files, splits, the real data."""

import os
import pathlib
import re

import numpy as np
import pytest

from kgjax.data import categories
from kgjax.data.categories import Categories, Synset
from kgjax.data.triples import DataError

DATA_DIR = pathlib.Path(
    os.environ.get("KGJAX_DATA_DIR") or pathlib.Path(__file__).parents[1] / ".." / "shared" / "data"
)


def _real(*paths):
    for path in paths:
        if not (DATA_DIR / path).exists():
            pytest.skip(
                f"{DATA_DIR / path} not found; runs with KGJAX_DATA_DIR set to the shared data"
            )


def _keys(dataset):
    file = DATA_DIR / dataset / "entities.dict"
    return [line.rstrip("\n").split("\t")[1] for line in open(file, encoding="utf-8")]


# --- FB15kET types ------------------------------------------------------------------------------


def test_read_entity_types(tmp_path):
    file = tmp_path / "ET_valid.txt"
    file.write_text("/m/01\t/film/film\r\n\n/m/02\t/base/aareas/schema/cu/province\n")
    assert categories.read_entity_types(file) == [
        ("/m/01", "/film/film"),
        ("/m/02", "/base/aareas/schema/cu/province"),
    ]
    for bad in ("/m/03", "/m/03\t/film/film\textra", "/m/03\tfilm/film", "\t/film/film"):
        file.write_text(f"/m/01\t/film/film\n\n{bad}\n")
        with pytest.raises(DataError, match=re.escape(f"{file}:3:")):
            categories.read_entity_types(file)
    with pytest.raises(DataError, match="file not found"):
        categories.read_entity_types(tmp_path / "absent.txt")


def _label(result, key, keys):
    label = result.labels[keys.index(key)]
    return None if label < 0 else result.names[label]


def test_freebase_one_label_rule():
    keys = ["most", "tie_popular", "tie_alpha", "secondary", "only_base", "dup", "untyped", "x"]
    pairs = [
        ("most", "/music/artist"),
        ("most", "/film/actor"),
        ("most", "/film/director"),
        # award and film tie; film is the domain of more entities (3 against 1).
        ("tie_popular", "/award/winner"),
        ("tie_popular", "/film/actor"),
        # sports and chess tie, each the domain of this entity only: alphabetical.
        ("tie_alpha", "/sports/team"),
        ("tie_alpha", "/chess/player"),
        # base and user count only for entities with no other domain.
        ("secondary", "/base/a/x"),
        ("secondary", "/base/b/y"),
        ("secondary", "/user/z/w"),
        ("secondary", "/people/person"),
        ("only_base", "/user/a/b"),
        ("only_base", "/base/a/x"),
        ("only_base", "/base/a/y"),
        # A pair listed twice (in ET_valid and ET_test) counts once: a tie, film wins.
        ("dup", "/music/album"),
        ("dup", "/music/album"),
        ("dup", "/film/film"),
        ("not_in_vocabulary", "/location/country"),
    ]
    result = categories.freebase_categories(keys, pairs)
    got = {key: _label(result, key, keys) for key in keys}
    assert got == {
        "most": "film",
        "tie_popular": "film",
        "tie_alpha": "chess",
        "secondary": "people",
        "only_base": "base",
        "dup": "film",
        "untyped": None,
        "x": None,
    }
    assert result.names == ("base", "chess", "film", "people")
    assert result.labels.dtype == np.int32 and result.labels.shape == (len(keys),)
    np.testing.assert_array_equal(result.counts, [1, 1, 3, 1])
    assert result.num_labelled == 6
    assert [k for k, m in zip(keys, result.multi, strict=True) if m] == [
        "most",
        "tie_popular",
        "tie_alpha",
        "secondary",
        "only_base",
        "dup",
    ]
    # The pair order does not matter.
    again = categories.freebase_categories(keys, pairs[::-1])
    np.testing.assert_array_equal(again.labels, result.labels)

    # Without secondary domains, base wins on counts.
    plain = categories.freebase_categories(keys, pairs, secondary=())
    assert _label(plain, "secondary", keys) == "base"


def test_min_count_folds_rare_categories():
    keys = [f"/m/{i}" for i in range(6)]
    pairs = [(k, "/film/film") for k in keys[:3]] + [
        (keys[3], "/music/album"),
        (keys[4], "/award/winner"),
    ]
    result = categories.freebase_categories(keys, pairs, min_count=2)
    assert result.names == ("film", categories.OTHER)
    np.testing.assert_array_equal(result.labels, [0, 0, 0, 1, 1, -1])
    with pytest.raises(ValueError, match="min_count"):
        categories.freebase_categories(keys, pairs, min_count=0)


# --- WordNet ------------------------------------------------------------------------------------

_HEADER = "  1 This software and database is being provided to you, the LICENSEE\n"


def _write_data(path, bodies):
    """Writes a data.* file whose synset lines carry their true byte offsets.

    Returns:
      The offsets of the synsets, in order.
    """
    text, offsets = _HEADER, []
    for body in bodies:
        offsets.append(f"{len(text.encode()):08d}")
        text += f"{offsets[-1]} {body}  \n"
    path.write_text(text)
    return offsets


def test_read_wordnet_data(tmp_path):
    file = tmp_path / "data.adj"
    offsets = _write_data(
        file,
        [
            "00 a 02 able 0 able(a) 1 001 ! 00002098 a 0101 | (usually followed by `to')",
            "05 s 01 galore(ip) 0 000 | in great numbers",
        ],
    )
    assert categories.read_wordnet_data(file) == [
        Synset(offsets[0], "adj", 0, ("able", "able(a)"), "(usually followed by `to')"),
        Synset(offsets[1], "adj", 5, ("galore(ip)",), "in great numbers"),
    ]
    good = "00 a 01 able 0 000 | gloss"
    for bad in (
        "00 a 01 able 0 000 no gloss separator",
        "45 a 01 able 0 000 | lex_filenum out of range",
        "00 n 01 able 0 000 | a noun in data.adj",
        "00 a 03 able 0 000 | fewer words than announced",
    ):
        _write_data(file, [good, bad])
        with pytest.raises(DataError, match=re.escape(f"{file}:3: malformed synset line")):
            categories.read_wordnet_data(file)
    # An offset that is not the line's byte position.
    file.write_text(_HEADER + "00000001 00 a 01 able 0 000 | gloss\n")
    with pytest.raises(DataError, match=re.escape(f"{file}:2:") + ".*byte offset"):
        categories.read_wordnet_data(file)
    with pytest.raises(DataError, match="expected a file named data"):
        categories.read_wordnet_data(tmp_path / "lexnames")


def test_wordnet_rule():
    noun = "noun"  # the file a synset came from
    synsets = [
        Synset("00000100", noun, 18, ("Saxony",), "an area in Germany"),
        # WN18 merged these two (same offset, different files); the lemma picks the verb.
        Synset("00000200", noun, 5, ("grill",), "a framework of metal bars"),
        Synset("00000200", "verb", 31, ("grill", "interrogate"), "examine thoroughly"),
        # Listed twice under one lemma and gloss: the closest offset wins.
        Synset("00000300", noun, 13, ("barleycorn",), "a grain of barley"),
        Synset("00900000", noun, 20, ("barleycorn",), "a grain of barley"),
        # This copy's offset is 18 bytes on from the entity's; the text still finds it.
        Synset("00000418", "verb", 35, ("cover",), "provide with a covering"),
        Synset("00000500", "adj", 0, ("galore(ip)",), "in great numbers"),
    ]
    keys = ["00000100", "00000200", "00000300", "00000400", "00000500", "00000600"]
    texts = {
        "00000100": "saxony, an area in Germany",
        "00000200": "interrogate, a framework of metal bars   examine thoroughly",
        "00000300": "barleycorn, a grain of barley",
        "00000400": "cover, provide with a covering",
        "00000500": "galore, in great numbers",
        "00000600": "missing, no such gloss",
    }
    result = categories.wordnet_categories(keys, texts, synsets)
    assert [_label(result, key, keys) for key in keys] == [
        "noun.person",
        "verb.cognition",
        "noun.food",
        "verb.contact",
        "adj.all",
        None,
    ]
    # Names come in lexicographer file order.
    assert result.names == ("adj.all", "noun.food", "noun.person", "verb.cognition", "verb.contact")
    np.testing.assert_array_equal(result.multi, [False, True, False, False, False, False])


def test_lexnames_match_the_man_page():
    _real("wordnet-3.0/man/lexnames.5WN")
    page = (DATA_DIR / "wordnet-3.0/man/lexnames.5WN").read_text(encoding="utf-8")
    rows = [(int(n), name) for n, name in re.findall(r"^(\d\d)\t(\S+)\s*\t", page, re.M)]
    assert rows == list(enumerate(categories.LEXNAMES))
    assert len(categories.LEXNAMES) == 45


# --- splits -------------------------------------------------------------------------------------


def _synthetic(sizes, unlabelled=50, seed=0):
    labels = np.concatenate(
        [np.full(n, c) for c, n in enumerate(sizes)] + [np.full(unlabelled, -1)]
    )
    labels = np.random.default_rng(seed).permutation(labels).astype(np.int32)
    names = tuple(f"c{c}" for c in range(len(sizes)))
    return Categories(names, labels, np.zeros(len(labels), bool), "synthetic")


@pytest.mark.parametrize("stratify", [True, False])
def test_split_labelled(stratify):
    data = _synthetic([400, 250, 90, 31, 7, 1])
    n = data.num_labelled
    parts = categories.split_labelled(data, [0.7, 0.2], seed=3, stratify=stratify)
    assert [len(p) for p in parts] == [round(0.7 * n), round(0.9 * n) - round(0.7 * n)]
    for part in parts:
        assert part.dtype == np.int32 and np.all(np.diff(part) > 0)
        assert np.all(data.labels[part] >= 0)
    assert not np.intersect1d(*parts).size
    again = categories.split_labelled(data, [0.7, 0.2], seed=3, stratify=stratify)
    for a, b in zip(parts, again, strict=True):
        np.testing.assert_array_equal(a, b)
    other = categories.split_labelled(data, [0.7, 0.2], seed=4, stratify=stratify)
    assert not np.array_equal(parts[0], other[0])
    if stratify:
        for part, fraction in zip(parts, [0.7, 0.2], strict=True):
            counts = np.bincount(data.labels[part], minlength=len(data.names))
            assert np.abs(counts - fraction * data.counts).max() <= 2


def test_split_whole_and_errors():
    data = _synthetic([30, 20])
    (whole,) = categories.split_labelled(data, [1.0], seed=0)
    np.testing.assert_array_equal(whole, np.flatnonzero(data.labels >= 0))
    for bad in ([], [0.0], [0.6, 0.5], [1.5]):
        with pytest.raises(ValueError, match="fractions"):
            categories.split_labelled(data, bad, seed=0)
    with pytest.raises(ValueError, match="empty"):
        categories.split_labelled(data, [0.99, 0.001], seed=0)


def test_load_categories_other_datasets():
    with pytest.raises(DataError, match="fb15k237 and wn18rr only"):
        categories.load_categories("umls", ["a"])


# --- the real data ------------------------------------------------------------------------------


def test_fb15k237_real():
    _real("fb15k-237/entities.dict", *categories.ENTITY_TYPE_FILES)
    keys = _keys("fb15k-237")
    result = categories.load_categories("fb15k-237", keys, DATA_DIR)
    print(
        f"FB15k-237: {result.num_labelled} of {len(keys)} entities typed, "
        f"{len(result.names)} categories, {result.num_multi} with types in several domains"
    )
    assert len(keys) == 14541
    assert 10_500 < result.num_labelled < 11_600  # 11,286 per the data README
    assert 40 < len(result.names) < 80 and "film" in result.names
    assert result.counts.sum() == result.num_labelled and result.counts.min() >= 1
    assert result.labels[keys.index("/m/027rn")] >= 0
    pretrain, heldout = categories.split_labelled(result, [0.8, 0.2], seed=0)
    assert len(pretrain) + len(heldout) == result.num_labelled
    folded = categories.load_categories("fb15k237", keys, DATA_DIR, min_count=50)
    assert folded.names[-1] == categories.OTHER and folded.counts[:-1].min() >= 50


def test_wn18rr_real():
    _real(
        "wn18rr/entities.dict",
        "wn18rr/kg-bert/entity2text.txt",
        *(f"wordnet-3.0/data.{part}" for part in categories.WORDNET_PARTS),
    )
    keys = _keys("wn18rr")
    result = categories.load_categories("wn18rr", keys, DATA_DIR)
    print(
        f"WN18RR: {result.num_labelled} of {len(keys)} entities labelled, "
        f"{len(result.names)} lexnames, {result.num_multi} merged synsets; largest: "
        + ", ".join(f"{result.names[c]} {result.counts[c]}" for c in np.argsort(-result.counts)[:5])
    )
    assert len(keys) == 40943 and result.num_labelled == len(keys)
    assert len(result.names) <= 45 and set(result.names) <= set(categories.LEXNAMES)
    # "land reform" (a noun.act in WordNet) keeps its offset; "cover" (verb.contact) is 18
    # bytes on in this copy of data.verb.
    assert result.names[result.labels[keys.index("00260881")]] == "noun.act"
    assert result.names[result.labels[keys.index("01332730")]] == "verb.contact"
