"""Tests for kgjax.data.wsd: the NAF reader on small files and the real sets, MFS, scoring."""

import os
import pathlib

import pytest

from kgjax.data import wsd
from kgjax.data.triples import DataError

DATA_DIR = pathlib.Path(
    os.environ.get("KGJAX_DATA_DIR") or pathlib.Path(__file__).parents[1] / ".." / "shared" / "data"
)

# Senseval-2's layout: lexical keys after `%`, `;` between alternatives, `U`, a token (the
# comma) outside every term, sentences counted from 1.
SENSEVAL2_NAF = """<?xml version='1.0' encoding='UTF-8'?>
<NAF><text>
  <wf id="w0" sent="1" offset="0">The</wf>
  <wf id="w1" sent="1" offset="4">art</wf>
  <wf id="w2" sent="1" offset="7">,</wf>
  <wf id="w3" sent="2" offset="9">peculiar</wf>
  <wf id="w4" sent="2" offset="18">others</wf>
</text><terms>
  <term id="t0" pos="DT" lemma="the" type="open"><span><target id="w0"/></span></term>
  <term id="t1" pos="NN" lemma="art" type="close"><span><target id="w1"/></span>
    <externalReferences>
      <externalRef reference="3" resource="WordNet-eng171" reftype="sense_number"/>
      <externalRef reference="1:09:00::" resource="WordNet-eng171" reftype="lexical_key"/>
      <externalRef reference="eng30-05638987-n" reftype="synset" resource="WordNet-eng30"/>
    </externalReferences></term>
  <term id="t3" pos="JJ" lemma="peculiar" type="close"><span><target id="w3"/></span>
    <externalReferences>
      <externalRef reference="5:00:00:specific:00;5:00:00:nonsense:00" reftype="lexical_key"
        resource="WordNet-eng171"/>
    </externalReferences></term>
  <term id="t4" pos="NNS" lemma="other" type="close"><span><target id="w4"/></span>
    <externalReferences>
      <externalRef reference="U" resource="WordNet-eng171" reftype="lexical_key"/>
    </externalReferences></term>
</terms></NAF>
"""
# SemEval-2007's: whole keys, one per reference, the Penn tag in morphofeat.
SEMEVAL2007_NAF = """<?xml version='1.0' encoding='UTF-8'?>
<NAF xml:lang="en" version="1.0"><text>
  <wf id="w0" sent="0">shaped</wf>
  <wf id="w1" sent="0">it</wf>
</text><terms>
  <term id="t1" type="open" lemma="shape" pos="V" morphofeat="VBN"><span><target id="w0"/></span>
    <externalReferences>
      <externalRef reference="d02.s10.t47" resource="SemEval2010_task17" reftype="original_id"/>
      <externalRef reference="shape%2:36:00::" resource="WordNet-2.1" reftype="sense"/>
      <externalRef reference="shape%2:30:00::" resource="WordNet-2.1" reftype="sense"/>
    </externalReferences></term>
  <term id="t2" type="close" lemma="it" pos="Q" morphofeat="PRP"><span><target id="w1"/></span>
  </term>
</terms></NAF>
"""


def _write(root, name, files):
    folder = root / wsd.FOLDER / name
    folder.mkdir(parents=True)
    for file_name, text in files.items():
        (folder / file_name).write_text(text)
    return folder


def _real_set(name, wn):
    if not (DATA_DIR / wsd.FOLDER / name).is_dir():
        pytest.skip(f"{DATA_DIR / wsd.FOLDER / name} not found; runs with the shared data")
    return wsd.load_wsd(name, wn, DATA_DIR)


def test_senseval2_layout_keys_get_their_lemma_and_map_or_not(tmp_path, wn):
    _write(tmp_path, "senseval2", {"d00.naf": SENSEVAL2_NAF})
    data = wsd.load_wsd("senseval2", wn, tmp_path)
    (document,) = data.documents
    assert document.name == "d00"
    assert document.sentences == (("The", "art", ","), ("peculiar", "others"))
    art, peculiar, other = document.terms  # t0 has no gold key: not a tagged term
    assert art == wsd.Term(
        "t1", 0, (1,), "art", "NN", "n", ("art%1:09:00::",), (wn.sense("art%1:09:00::").synset,)
    )
    assert (peculiar.sentence, peculiar.tokens, peculiar.pos) == (1, (0,), "a")
    assert peculiar.keys == ("peculiar%5:00:00:specific:00", "peculiar%5:00:00:nonsense:00")
    assert peculiar.synsets == (wn.sense(peculiar.keys[0]).synset, None)  # no such 3.0 key
    assert peculiar.gold == {wn.sense(peculiar.keys[0]).synset}
    assert other.keys == ("U",) and other.synsets == (None,) and other.gold == frozenset()
    assert data.counts() == wsd.Counts(
        num_documents=1,
        num_sentences=2,
        num_tokens=5,
        num_terms=3,
        num_keys=4,
        num_unassignable=1,
        num_keys_mapped=2,
        num_terms_mapped=2,
    )


def test_semeval2007_layout_whole_keys_and_the_penn_tag(tmp_path, wn):
    _write(tmp_path, "semeval2007_task17", {"d01.naf": SEMEVAL2007_NAF})
    (term,) = wsd.load_wsd("semeval2007_task17", wn, tmp_path).terms
    assert (term.tag, term.pos) == ("VBN", "v")  # morphofeat, not ixa's letter V
    assert term.keys == ("shape%2:36:00::", "shape%2:30:00::")
    assert term.synsets == tuple(wn.sense(key).synset for key in term.keys)


@pytest.mark.parametrize(
    "text, message",
    [
        (SENSEVAL2_NAF.replace("</terms>", ""), "not well-formed XML"),
        (SENSEVAL2_NAF.replace('<target id="w3"/>', '<target id="w9"/>'), "token ids"),
        (
            SENSEVAL2_NAF.replace('<target id="w4"/>', '<target id="w2"/><target id="w4"/>'),
            "crosses",
        ),
        (SENSEVAL2_NAF.replace(' sent="2" offset="18"', ""), "without id, sent or text"),
    ],
)
def test_malformed_files_raise_naming_the_file(tmp_path, wn, text, message):
    folder = _write(tmp_path, "senseval2", {"d00.naf": SENSEVAL2_NAF, "d01.naf": text})
    with pytest.raises(DataError, match=message) as error:
        wsd.load_wsd("senseval2", wn, tmp_path)
    assert str(folder / "d01.naf") in str(error.value)


def test_missing_or_empty_folders_and_unknown_sets_raise(tmp_path, wn):
    with pytest.raises(DataError, match="folder not found"):
        wsd.load_wsd("senseval2", wn, tmp_path)
    _write(tmp_path, "senseval2", {})
    with pytest.raises(DataError, match="no .naf files"):
        wsd.load_wsd("senseval2", wn, tmp_path)
    with pytest.raises(ValueError, match="unknown WSD set"):
        wsd.load_wsd("senseval3", wn, tmp_path)


def test_real_sets_counts_as_documented(wn):
    senseval2 = _real_set("senseval2", wn)
    assert senseval2.counts() == wsd.Counts(3, 238, 5589, 2473, 2589, 89, 2350, 2248)
    first = senseval2.documents[0]
    assert first.sentences[0][:6] == ("The", "art", "of", "change-ringing", "is", "peculiar")
    assert first.terms[0].keys == ("art%1:09:00::",)
    semeval = _real_set("semeval2007_task17", wn)
    assert semeval.counts() == wsd.Counts(3, 128, 3238, 465, 466, 10, 455, 454)
    unmapped = {k for t in semeval.terms for k, s in zip(t.keys, t.synsets, strict=True) if not s}
    assert unmapped == {"U", "undergo%2:39:00::"}


def test_most_frequent_sense_on_the_real_sets(wn):
    # (correct, attempted, total) of MFS over every tagged term: F1 0.591 and 0.520.
    for name, expected in [
        ("senseval2", (1441, 2406, 2473)),
        ("semeval2007_task17", (239, 454, 465)),
    ]:
        terms = _real_set(name, wn).terms
        assert wsd.score(wsd.most_frequent_sense(terms, wn), terms)[:3] == expected


def _term(lemma, pos, gold=()):
    return wsd.Term("t", 0, (0,), lemma, "", pos, (), tuple(gold))


def test_most_frequent_sense_by_tag_count_within_the_terms_pos(wn):
    river = wn.sense("bank%1:17:01::").synset  # 25 tags, bank's most tagged sense
    terms = [
        _term("bank", "n"),
        _term("bank", "v"),  # the verb's most tagged sense, not the noun's
        _term("ran", "v"),  # through morphy: run
        _term("bank", ""),  # no part of speech: all four tried
        _term("abacus", "n"),  # both senses never tagged: the first in sense order
        _term("zzzzqx", "n"),
    ]
    assert wsd.most_frequent_sense(terms, wn) == (
        river,
        wn.sense("bank%2:38:00::").synset,
        wn.sense("run%2:38:00::").synset,
        river,
        wn.senses("abacus", "n")[0].synset,
        None,
    )


def test_score_counts_as_the_standard_scorer():
    terms = [_term("a", "n", ["x"]), _term("b", "n", ["y"]), _term("c", "n", ["z"])]
    terms.append(_term("d", "n", ["w", "v"]))
    scores = wsd.score(["x", None, "q", "v"], terms)
    # correct 2 (x, v among w/v), attempted 3, total 4: P 2/3, R 1/2, F1 4/7.
    assert scores[:3] == (2, 3, 4)
    assert scores.precision == pytest.approx(2 / 3)
    assert scores.recall == pytest.approx(1 / 2)
    assert scores.f1 == pytest.approx(4 / 7)
    assert wsd.score([None, None], terms[:2]) == wsd.Scores(0, 0, 2, 0.0, 0.0, 0.0)
    assert wsd.score([None], [_term("u", "n", [None])]).total == 1  # unmapped gold counts
    with pytest.raises(ValueError, match="3 answers for 4 terms"):
        wsd.score(["x", "y", "z"], terms)
