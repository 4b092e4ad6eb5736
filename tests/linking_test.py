"""Tests for kgjax.data.linking: aliases, greedy linking, ambiguity, the corpus file, statistics."""

import json
import os
import pathlib
import re

import pytest

from kgjax.data import descriptions, linking, triples
from kgjax.data.triples import DataError

DATA_DIR = pathlib.Path(
    os.environ.get("KGJAX_DATA_DIR", pathlib.Path(__file__).parents[1] / ".." / "shared" / "data")
)


def _linker(aliases, train=()):
    """A linker over (entity, alias) pairs and (head, relation, tail) training triples."""
    return linking.Linker(linking.AliasTable.build(aliases), linking.TrainingGraph.build(train))


def _found(linked):
    """(surface, entity) of each mention, in text order."""
    return [(linked.text[m.start : m.end], m.entity) for m in linked.mentions]


# --- matching ---------------------------------------------------------------------------------


def test_longest_alias_wins():
    linker = _linker([("nyc", "New York City"), ("ny", "New York"), ("york", "York")])
    linked = linker.link("d", "She moved to New York City in 1990, then to York.")
    assert _found(linked) == [("New York City", "nyc"), ("York", "york")]
    assert (linked.mentions[0].start, linked.mentions[0].end) == (13, 26)


def test_mentions_never_overlap():
    # Greedy from the left: "machine learning" takes "learning", so "learning theory" is lost.
    linker = _linker([("ml", "machine learning"), ("lt", "learning theory"), ("t", "theory")])
    linked = linker.link("d", "a machine learning theory")
    assert _found(linked) == [("machine learning", "ml"), ("theory", "t")]
    ends = [(m.start, m.end) for m in linked.mentions]
    assert all(end <= next_start for (_, end), (next_start, _) in zip(ends, ends[1:], strict=False))


def test_token_boundaries():
    linker = _linker(
        [("ion", "ion"), ("art", "art"), ("holstein", "Holstein"), ("chicago", "Chicago"),
         ("france", "France"), ("miami", "The U")]
    )  # fmt: skip
    text = (
        "Union artists of martial art in Schleswig-Holstein, a Chicago-based band "
        "from France's south and the U.S. west."
    )
    assert _found(linker.link("d", text)) == [
        ("art", "art"),
        ("Chicago", "chicago"),
        ("France", "france"),
    ]


def test_leading_article_gives_way_to_a_longer_match():
    linker = _linker([("west_point", "The Academy"), ("ampas", "Academy of Motion Picture Arts")])
    text = "Honoured by the Academy of Motion Picture Arts; he went to the Academy."
    assert _found(linker.link("d", text)) == [
        ("Academy of Motion Picture Arts", "ampas"),
        ("the Academy", "west_point"),
    ]


def test_a_longer_capitalised_name_is_no_mention():
    linker = _linker([("laura", "Laura"), ("film", "film")])
    text = "A film produced by Laura Ziskin, and Laura alone. National Film Awards."
    assert _found(linker.link("d", text)) == [("film", "film"), ("Laura", "laura")]


def test_case_rules():
    linker = _linker([("usa", "US"), ("may", "May"), ("actor", "actor"), ("the_us", "the US")])
    # "the US" is all stop words once folded, so dropped; "US" (an acronym) is matched exactly.
    text = "Let us say: in May the US actor may act. Actor."
    assert _found(linker.link("d", text)) == [
        ("May", "may"),
        ("US", "usa"),
        ("actor", "actor"),
        ("Actor", "actor"),
    ]


def test_alias_table_normalises_and_drops():
    table = linking.AliasTable.build(
        [
            ("a", "  Denton,  Texas "),
            ("b", "denton , texas"),
            ("c", "'' My Fair Lady ''"),
            ("d", "1999"),
            ("d", "$"),
            ("e", "W"),
            ("e", "en"),
            ("f", "The"),
            ("f", "This"),
            ("g", "UK"),
        ]
    )
    assert table.folded[("denton", ",", "texas")] == {(0, 2): ("a",), (): ("b",)}
    assert table.candidates("Denton, Texas") == ("a", "b")
    assert table.candidates("denton, texas") == ("b",)  # "a" was written with capitals
    assert table.candidates("My Fair Lady") == ("c",)
    assert table.candidates("UK") == ("g",) and table.candidates("uk") == ()
    assert table.dropped == {"no letter": 2, "too short": 2, "stop words": 2}
    assert len(table) == 3


# --- ambiguity and self-mentions --------------------------------------------------------------


def test_ambiguity_resolved_by_adjacency_then_degree():
    aliases = [("spr_il", "Springfield"), ("spr_ma", "Springfield"), ("spr_mo", "Springfield")]
    aliases += [("por_or", "Portland"), ("por_me", "Portland")]
    train = [
        ("lincoln", "lived_in", "spr_il"),
        ("spr_il", "in", "illinois"),
        ("hub", "road_to", "spr_ma"),
        ("hub", "road_to", "spr_mo"),
        ("spr_mo", "in", "missouri"),
        ("x", "near", "spr_mo"),
        ("hub", "road_to", "por_or"),
        ("hub", "road_to", "por_me"),
    ]  # training degrees: spr_il 2, spr_ma 1, spr_mo 3, por_or 1, por_me 1
    linker = _linker(aliases, train)
    # The one neighbour wins although spr_mo has the higher degree.
    (m,) = linker.link("lincoln", "He lived in Springfield.").mentions
    assert (m.entity, m.candidates, m.rule) == ("spr_il", 3, "adjacency")
    # Two neighbours: the higher degree; equal degrees: the alphabetically first key.
    first, second = linker.link("hub", "Roads to Springfield and Portland.").mentions
    assert (first.entity, first.rule) == ("spr_mo", "adjacency")
    assert (second.entity, second.candidates, second.rule) == ("por_me", 2, "adjacency")
    # No neighbour: the highest training degree overall.
    (m,) = linker.link("nobody", "Springfield.").mentions
    assert (m.entity, m.rule) == ("spr_mo", "degree")
    graph = linking.TrainingGraph.build(train + [("spr_il", "self", "spr_il")])
    assert graph.degree["spr_il"] == 3 and graph.degree["spr_ma"] == 1
    assert graph.neighbours["hub"] == {"spr_ma", "spr_mo", "por_or", "por_me"}


def test_self_mentions():
    linker = _linker(
        [
            ("paris", "Paris"),
            ("paris_tx", "Paris"),
            ("france", "France"),
            ("paris", "City of Light"),
        ]
    )
    linked = linker.link("paris", "Paris -- Paris, the City of Light, is the capital of France.")
    assert linked.self_mentions == ((0, 5), (9, 14), (20, 33))
    assert _found(linked) == [("France", "france")]
    # Another entity's description links the same alias to a candidate (no neighbours: degree).
    assert _found(linker.link("louvre", "A museum in Paris.")) == [("Paris", "paris")]


# --- files ------------------------------------------------------------------------------------


def _write_folder(root: pathlib.Path) -> pathlib.Path:
    """A tiny dataset folder named like FB15k-237 (so StAR texts are its default)."""
    folder = root / "fb15k-237"
    for sub in ("kg-bert", "star", "wikidata"):
        (folder / sub).mkdir(parents=True)
    (folder / "train.txt").write_text(
        "/m/paris\t/located_in\t/m/france\n/m/hugo\t/born_in\t/m/france\n"
        "/m/hugo\t/lived_in\t/m/paris\n"
    )
    (folder / "valid.txt").write_text("/m/paris_tx\t/located_in\t/m/texas\n")
    (folder / "test.txt").write_text("/m/hugo\t/located_in\t/m/france\n")
    (folder / "kg-bert" / "entity2text.txt").write_text(
        "/m/paris\tParis\n/m/france\tFrance-GB\n/m/hugo\tVictor Hugo\n/m/paris_tx\tParis\n"
        "/m/texas\tTexas\n/m/other\tNot In The Graph\n"
    )
    (folder / "star" / "fb-entity2text-new.txt").write_text(
        "/m/paris\tParis -- Paris is the capital of France.\n"
        "/m/france\tFrance -- France is a country; Victor Hugo wrote there.\n"
        "/m/hugo\tVictor Hugo -- Hugo was a French writer who lived in Paris.\n"
        "/m/paris_tx\tParis -- Paris is a city in Texas.\n"
        "/m/texas\tTexas -- Texas is a state.\n"
    )
    (folder / "wikidata" / "entity2wikidata.json").write_text(
        json.dumps(
            {
                "/m/hugo": {"label": "Victor Hugo", "alternatives": ["Hugo"]},
                "/m/paris_tx": {"label": "Paris", "alternatives": None},
                "/m/other": {"label": "Hugo", "alternatives": []},
            }
        )
    )
    return folder


def test_link_folder(tmp_path):
    folder = _write_folder(tmp_path)
    corpus, aliases = linking.link_folder(folder)
    assert aliases.candidates("France") == ("/m/france",)  # the "-GB" suffix is gone
    assert aliases.candidates("Hugo") == ("/m/hugo",)  # /m/other is not in the graph
    assert aliases.candidates("Paris") == ("/m/paris", "/m/paris_tx")
    by_entity = {t.entity: t for t in corpus}
    assert [t.entity for t in corpus] == [
        "/m/paris",
        "/m/france",
        "/m/hugo",
        "/m/paris_tx",
        "/m/texas",
    ]
    assert by_entity["/m/paris"].self_mentions == ((0, 5), (9, 14))
    assert _found(by_entity["/m/paris"]) == [("France", "/m/france")]
    # "Paris" in Hugo's text: /m/paris is his neighbour, /m/paris_tx is not.
    (paris,) = [m for m in by_entity["/m/hugo"].mentions if m.entity.startswith("/m/paris")]
    assert (paris.entity, paris.rule) == ("/m/paris", "adjacency")
    assert _found(by_entity["/m/france"]) == [("Victor Hugo", "/m/hugo")]
    assert _found(by_entity["/m/paris_tx"]) == [("Texas", "/m/texas")]


def test_jsonl_round_trip(tmp_path):
    corpus = [
        linking.LinkedText(
            "/m/a",
            "Ä text — with ünicode",
            (linking.Mention(0, 1, "/m/b", 2, "degree"),),
            ((2, 6),),
        ),
        linking.LinkedText("/m/b", "no mentions", ()),
    ]
    path = tmp_path / "sub" / "corpus.jsonl"
    linking.write_jsonl(path, corpus)
    assert linking.read_jsonl(path) == corpus
    assert len(path.read_text(encoding="utf-8").splitlines()) == 2


def test_statistics_hand_counted():
    corpus = [
        linking.LinkedText(
            "a",
            "Alpha is near Beta and Gamma.",  # 6 tokens
            (
                linking.Mention(14, 18, "b", 1, "unique"),
                linking.Mention(23, 28, "g", 3, "adjacency"),
            ),
            ((0, 5),),
        ),
        linking.LinkedText(
            "b",
            "Beta -- Beta knows Gamma, Gamma and Delta.",  # 8 tokens
            (
                linking.Mention(19, 24, "g", 2, "degree"),
                linking.Mention(26, 31, "g", 2, "adjacency"),
                linking.Mention(36, 41, "d", 1, "unique"),
            ),
            ((0, 4), (8, 12)),
        ),
        linking.LinkedText("c", "Nothing here", ()),  # 2 tokens
    ]
    stats = linking.corpus_statistics(corpus)
    assert stats == {
        "texts": 3,
        "tokens": 16,
        "mentions": 5,
        "self_mentions": 3,
        "distinct_entities": 3,
        "texts_with_mentions": 2,
        "mentions_per_text": 5 / 3,
        "mentions_per_text_median": 2,
        "ambiguous_mentions": 3,
        "resolved_by_adjacency": 2,
        "resolved_by_degree": 1,
        "adjacency_share": 2 / 3,
    }


@pytest.mark.parametrize(
    "line, message",
    [
        ("not json", "not a linked-text record"),
        ('["a list"]', "expected an object"),
        ('{"entity": "/m/a", "text": "abc", "mentions": []}', "self_mentions"),
        ('{"entity": "/m/a", "text": "abc", "mentions": [[0, 9, "/m/b", 1, "unique"]], '
         '"self_mentions": []}', "outside the text"),
        ('{"entity": "/m/a", "text": "abc", "mentions": [[2, 1, "/m/b", 1, "unique"]], '
         '"self_mentions": []}', "reversed"),
        ('{"entity": "/m/a", "text": "abc", "mentions": [[0, 1, "/m/b", 1, "guess"]], '
         '"self_mentions": []}', "bad mention"),
    ],
)  # fmt: skip
def test_malformed_corpus_line_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "corpus.jsonl"
    good = '{"entity": "/m/a", "text": "abc", "mentions": [], "self_mentions": []}'
    path.write_text(f"{good}\n\n{line}\n")
    with pytest.raises(DataError, match=f"{re.escape(str(path))}:3: .*{message}"):
        linking.read_jsonl(path)


def test_malformed_alias_files(tmp_path):
    folder = _write_folder(tmp_path)
    names = folder / "kg-bert" / "entity2text.txt"
    names.write_text("/m/paris\tParis\n/m/france France\n")
    with pytest.raises(DataError, match=f"{re.escape(str(names))}:2: expected key<TAB>text"):
        linking.read_aliases(folder, ["/m/paris"])
    names.unlink()
    wikidata = folder / "wikidata" / "entity2wikidata.json"
    wikidata.write_text(json.dumps({"/m/paris": {"label": "Paris", "alternatives": "Paname"}}))
    with pytest.raises(DataError, match=f"{re.escape(str(wikidata))}: entry '/m/paris'"):
        linking.read_aliases(folder, ["/m/paris"])
    wikidata.write_text(json.dumps({"/m/paris": "Paris"}))
    with pytest.raises(DataError, match=f"{re.escape(str(wikidata))}: entry '/m/paris'"):
        linking.read_aliases(folder, ["/m/paris"])
    wikidata.unlink()
    with pytest.raises(DataError, match="neither"):
        linking.read_aliases(folder, ["/m/paris"])


# --- the real data ----------------------------------------------------------------------------


def test_fb15k237_known_links():
    folder = DATA_DIR / "fb15k-237"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found; set KGJAX_DATA_DIR to the shared data folder to run")
    keys = [line.split("\t")[1] for line in (folder / "entities.dict").read_text().splitlines()]
    described = {"/m/01yjl", "/m/016ywr"}  # the Chicago Cubs, Jeremy Irons
    # Only the described entities' triples: every check below is a unique alias or adjacency,
    # which need no degrees (and reading the whole graph takes a second or two).
    with open(folder / "train.txt", encoding="utf-8") as f:
        lines = [line for line in f if any(key in line for key in described)]
    train = [t for t in triples.parse_triples(lines, "train.txt") if {t[0], t[2]} & described]
    graph = linking.TrainingGraph.build(train)
    linker = linking.Linker(linking.read_aliases(folder, keys), graph)
    texts = descriptions.entity_descriptions(folder, keys)
    text_of = dict(zip(keys, texts.texts, strict=True))

    cubs = linker.link("/m/01yjl", text_of["/m/01yjl"])
    # "The Chicago Cubs are a professional baseball team located in Chicago, Illinois, USA."
    assert cubs.self_mentions[:2] == ((0, 12), (20, 32))
    linked = _found(cubs)
    assert ("baseball", "/m/018jz") in linked  # the team's sport, a training neighbour
    assert ("Chicago, Illinois", "/m/01_d4") in linked  # its location, a training neighbour
    assert ("/m/01yjl", "/sports/sports_team/sport", "/m/018jz") in train

    # "Jeremy John Irons is an English actor.": "English" is English people (his neighbour),
    # not the English language, the more frequent candidate.
    irons = linker.link("/m/016ywr", text_of["/m/016ywr"])
    english = next(m for m in irons.mentions if irons.text[m.start : m.end] == "English")
    assert (english.entity, english.rule) == ("/m/02w7gg", "adjacency")
    assert "/m/02hrh1q" in {m.entity for m in irons.mentions}  # actor
