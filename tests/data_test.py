"""Tests of kgjax.data.triples and kgjax.data.catalog.

Real datasets come from $KGJAX_DATA_DIR, else ../shared/data next to the repository; tests that
need them are skipped when neither exists. Prepared TFDS copies go to a temporary folder, never
the home directory, and nothing touches the network.
"""

import logging
import os
import pathlib
import random
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds

from kgjax.data import builders, catalog, triples
from kgjax.data.triples import DataError

REPO = pathlib.Path(__file__).resolve().parent.parent
DATA_DIR = pathlib.Path(os.environ.get("KGJAX_DATA_DIR") or REPO.parent / "shared" / "data")
requires_data = pytest.mark.skipif(
    not DATA_DIR.is_dir(),
    reason=f"no real datasets at {DATA_DIR}: set KGJAX_DATA_DIR to a copy of ../shared/data",
)


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    """One prepared-data folder for the whole file, so each dataset is prepared once."""
    return tmp_path_factory.mktemp("tfds")


@pytest.fixture
def no_data_dir(monkeypatch):
    monkeypatch.delenv("KGJAX_DATA_DIR", raising=False)
    monkeypatch.delenv("KGJAX_TFDS_DIR", raising=False)


@pytest.fixture
def shared_data_dir(monkeypatch):
    monkeypatch.setenv("KGJAX_DATA_DIR", str(DATA_DIR))
    monkeypatch.delenv("KGJAX_TFDS_DIR", raising=False)


def _write(folder: pathlib.Path, files: dict[str, str]) -> pathlib.Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_bytes(text.encode())
    return folder


class _Closeable:
    """Stands in for a socket: the download tests never touch the network."""

    def close(self):
        pass


def _splits(train: str, valid: str, test: str) -> dict[str, str]:
    return {"train.txt": train, "valid.txt": valid, "test.txt": test}


# --- triples.py: parsing ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, error",
    [
        ("a\tr\tb\n\nc\tr\n", ":3: expected 3 tab-separated columns.*got 2"),
        ("\n\n", ": no triples"),
        ("a\tr\tb\na\t \tb\n", ":2: empty name"),
    ],
    ids=["wrong_column_count", "empty_file", "empty_name"],
)
def test_malformed_file_is_named_with_the_line(tmp_path, text, error):
    path = tmp_path / "train.txt"
    path.write_text(text)
    with pytest.raises(DataError, match=f"^{path}{error}"):
        triples.read_triples_file(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match=f"^{tmp_path / 'nope.txt'}: file not found"):
        triples.read_triples_file(tmp_path / "nope.txt")


def test_crlf_is_stripped(tmp_path):
    path = tmp_path / "train.txt"
    path.write_bytes(b"/m/01\t/a/b.c\t/m/02\r\n/m/02\t/a/b.c\t/m/03\r\n")
    assert triples.read_triples_file(path) == [
        ("/m/01", "/a/b.c", "/m/02"),
        ("/m/02", "/a/b.c", "/m/03"),
    ]


def test_leading_zeros_are_kept(tmp_path):
    folder = _write(
        tmp_path / "wn",
        _splits(
            "00260881\t_hypernym\t00001740\n",
            "00001740\t_hypernym\t00260881\n",
            "00260881\t_hypernym\t00001740\n",
        ),
    )
    dataset = triples.load_folder(folder)
    assert dataset.entities.names == ("00260881", "00001740")


# --- triples.py: vocabularies -----------------------------------------------------------------


@pytest.mark.parametrize("split", ["valid", "test"])
def test_relation_unseen_in_train_is_an_error(tmp_path, split):
    files = _splits("a\tr\tb\n", "a\tr\tb\n", "a\tr\tb\n")
    files[f"{split}.txt"] = "a\tr\tb\nb\tnew_relation\ta\n"
    folder = _write(tmp_path / "kg", files)
    with pytest.raises(
        DataError, match=f"{split}.txt: triple 2 .*'new_relation' is not in the training split"
    ):
        triples.load_folder(folder)


def test_fixed_vocabulary_unknown_entity_is_an_error():
    raw = {"train": [("a", "r", "b")], "valid": [("a", "r", "c")], "test": [("a", "r", "b")]}
    with pytest.raises(DataError, match="valid: triple 1 .*entity 'c' is not in the fixed"):
        triples.build_dataset("kg", raw, {"valid": "valid"}, entities=["b", "a"], relations=["r"])
    dataset = triples.build_dataset(
        "kg", {**raw, "valid": [("b", "r", "a")]}, entities=["b", "a"], relations=["s", "r"]
    )
    np.testing.assert_array_equal(dataset.train, [[1, 1, 0]])


def test_fixed_entities_with_relations_from_the_data():
    raw = {"train": [("a", "r", "b")], "valid": [("b", "r", "a")], "test": [("a", "r", "b")]}
    dataset = triples.build_dataset("kg", raw, entities=["b", "a"])
    assert dataset.relations.names == ("r",)
    np.testing.assert_array_equal(dataset.valid, [[0, 0, 1]])


def test_entities_only_in_valid_or_test_are_kept_and_counted(tmp_path):
    folder = _write(
        tmp_path / "kg",
        _splits("a\tr\tb\nb\ts\ta\n", "a\tr\tc\nc\ts\tb\n", "d\tr\te\na\ts\tb\n"),
    )
    dataset = triples.load_folder(folder)
    # Train entities first, then in order of first appearance in valid, then test.
    assert dataset.entities.names == ("a", "b", "c", "d", "e")
    assert dataset.unseen_entities == {"valid": 1, "test": 2}
    np.testing.assert_array_equal(dataset.test, [[3, 0, 4], [0, 1, 1]])
    assert "1 in valid, 2 in test" in dataset.summary()


# --- triples.py: indices and weights ----------------------------------------------------------


def test_triple_index_matches_a_python_set():
    rng = np.random.default_rng(0)
    num_entities, num_relations = 40, 5
    # Entities 35..39 never appear: their CSR rows must be empty. Duplicates must be dropped.
    rows = np.stack(
        [
            rng.integers(0, 35, 600),
            rng.integers(0, num_relations, 600),
            rng.integers(0, 35, 600),
        ],
        axis=1,
    )
    rows = np.concatenate([rows, rows[:50]])
    index = triples.TripleIndex.build(rows, num_entities)
    known = {tuple(row) for row in rows.tolist()}
    assert index.num_triples == len(known)
    for offsets in (index.tail_offsets, index.head_offsets):
        assert offsets.dtype == np.int32 and offsets.shape == (num_entities + 1,)
        assert offsets[0] == 0 and offsets[-1] == len(known)
        assert np.all(np.diff(offsets) >= 0)
    for entity in range(num_entities):
        lo, hi = index.tail_offsets[entity], index.tail_offsets[entity + 1]
        tails = list(
            zip(index.tail_relation[lo:hi].tolist(), index.tail_entity[lo:hi].tolist(), strict=True)
        )
        assert tails == sorted((r, t) for h, r, t in known if h == entity)
        lo, hi = index.head_offsets[entity], index.head_offsets[entity + 1]
        heads = list(
            zip(index.head_relation[lo:hi].tolist(), index.head_entity[lo:hi].tolist(), strict=True)
        )
        assert heads == sorted((r, h) for h, r, t in known if t == entity)
    tails_per_query, heads_per_query = {}, {}
    for h, r, t in known:
        tails_per_query[h, r] = tails_per_query.get((h, r), 0) + 1
        heads_per_query[r, t] = heads_per_query.get((r, t), 0) + 1
    assert index.max_tails == max(tails_per_query.values())
    assert index.max_heads == max(heads_per_query.values())


def _rotate_count_frequency(triples_list, start=4):
    """count_frequency of the RotatE reference (TrainDataset), transcribed."""
    count = {}
    for head, relation, tail in triples_list:
        if (head, relation) not in count:
            count[(head, relation)] = start
        else:
            count[(head, relation)] += 1
        if (tail, -relation - 1) not in count:
            count[(tail, -relation - 1)] = start
        else:
            count[(tail, -relation - 1)] += 1
    return count


def test_subsampling_weights_match_the_rotate_reference():
    rng = random.Random(0)
    train = [(rng.randrange(12), rng.randrange(3), rng.randrange(12)) for _ in range(400)]
    count = _rotate_count_frequency(train)
    # RotatE: subsampling_weight = sqrt(1 / (count[(h, r)] + count[(t, -r - 1)])).
    expected = [np.sqrt(1 / (count[(h, r)] + count[(t, -r - 1)])) for h, r, t in train]
    weights = triples.subsampling_weights(np.array(train, np.int32))
    assert weights.dtype == np.float32 and weights.shape == (400,)
    np.testing.assert_allclose(weights, expected, rtol=1e-6)


# --- catalog.py -------------------------------------------------------------------------------


def test_embedded_umls_loads_offline_and_is_reused(tfds_dir, no_data_dir, monkeypatch):
    dataset = catalog.load_dataset("umls", tfds_dir=tfds_dir, download=False)
    assert (dataset.num_entities, dataset.num_relations) == (135, 46)
    assert {s: len(a) for s, a in dataset.splits.items()} == {
        "train": 5216,
        "valid": 652,
        "test": 661,
    }
    assert dataset.source == str(catalog._EMBEDDED_DIR / "umls" / "train.txt")
    # Same ids, same order as parsing the text directly: file order survives the round trip.
    direct = triples.load_folder(catalog._EMBEDDED_DIR / "umls")
    assert dataset.entities == direct.entities and dataset.relations == direct.relations
    for split in triples.SPLITS:
        np.testing.assert_array_equal(dataset.splits[split], direct.splits[split])
    assert [p.name for p in tfds_dir.iterdir() if p.name.startswith("umls-")] != []

    def no_parsing(path):
        raise AssertionError(f"parsed {path} again")

    monkeypatch.setattr(triples, "read_triples_file", no_parsing)
    again = catalog.load_dataset(tfds_dir=tfds_dir, download=False)  # umls is the default
    for split in triples.SPLITS:
        np.testing.assert_array_equal(again.splits[split], dataset.splits[split])


def test_embedded_umls_is_the_shared_copy():
    for split in triples.SPLITS:
        embedded = catalog._EMBEDDED_DIR / "umls" / f"{split}.txt"
        assert builders.sha256_file(embedded) == catalog._CONFIGS["umls"].sha256[split]


def test_fast_reader_matches_the_tfds_data_source(tfds_dir, no_data_dir):
    catalog.load_dataset("umls", tfds_dir=tfds_dir, download=False)
    (prepared,) = tfds_dir.glob("umls-*")
    builder = builders.KgjaxTriples(config="umls", data_dir=str(prepared))
    for split in triples.SPLITS:
        records = sorted(builder.as_data_source(split), key=lambda record: record["index"])
        assert [r["index"] for r in records] == list(range(len(records)))
        expected = [
            (r["head"].decode(), r["relation"].decode(), r["tail"].decode()) for r in records
        ]
        assert catalog._read_split(builder, split) == expected


def test_unexpected_record_layout_falls_back_to_tfds_decoding(tfds_dir, no_data_dir):
    from array_record.python import array_record_module
    from tensorflow_datasets.proto import tf_example_pb2

    catalog.load_dataset("umls", tfds_dir=tfds_dir, download=False)
    (prepared,) = tfds_dir.glob("umls-*")
    builder = builders.KgjaxTriples(config="umls", data_dir=str(prepared))
    (instruction,) = builder.info.splits["valid"].file_instructions
    records = array_record_module.ArrayRecordReader(instruction.filename).read(0, 5)
    odd = tf_example_pb2.Example()
    for key, value in (("head", b"h\xc3\xa9"), ("relation", b"r"), ("tail", b"t"), ("x", b"y")):
        odd.features.feature[key].bytes_list.value.append(value)
    odd.features.feature["index"].int64_list.value.append(300)
    records.insert(2, odd.SerializeToString())
    with pytest.raises(catalog._UnexpectedLayout):
        catalog._decode_records_fast(records)
    columns = catalog._decode_records(records, builder.info.features)
    generic = [builder.info.features.deserialize_example_np(r) for r in records]
    assert columns["head"] == [g["head"].decode() for g in generic]
    assert columns["head"][2] == "hé"
    np.testing.assert_array_equal(columns["index"], [g["index"] for g in generic])


@requires_data
@pytest.mark.parametrize(
    "name, counts",
    [
        ("nations", (14, 55, 1592, 199, 201)),
        ("countries_s1", (271, 2, 1110, 24, 24)),
        ("wn18rr", (40943, 11, 86835, 3034, 3134)),
    ],
)
def test_catalog_from_kgjax_data_dir(name, counts, tfds_dir, shared_data_dir, caplog):
    with caplog.at_level(logging.WARNING):
        dataset = catalog.load_dataset(name, tfds_dir=tfds_dir, download=False)
    assert dataset.name == name
    assert dataset.source == str(DATA_DIR / name / "train.txt")
    splits = tuple(len(dataset.splits[s]) for s in triples.SPLITS)
    assert (dataset.num_entities, dataset.num_relations, *splits) == counts
    assert all(a.dtype == np.int32 and a.shape[1] == 3 for a in dataset.splits.values())
    # The same names and ids as parsing the text directly (Countries has non-ASCII names).
    direct = triples.load_folder(DATA_DIR / name)
    assert dataset.entities == direct.entities and dataset.relations == direct.relations
    np.testing.assert_array_equal(dataset.valid, direct.valid)
    if name == "countries_s1":
        # The train file repeats `micronesia locatedin oceania`: 1,111 lines, 1,110 triples.
        assert "countries_s1/train: dropped 1 exact duplicate triple(s) of 1111" in caplog.text
    if name == "wn18rr":
        assert all(len(e) == 8 and e.isdigit() for e in dataset.entities.names)
        assert any(e.startswith("0") for e in dataset.entities.names)
        assert dataset.unseen_entities == {"valid": 198, "test": 209}


@requires_data
def test_data_dir_argument_and_folder_spellings(tfds_dir, no_data_dir):
    dataset = catalog.load_dataset("Nations", data_dir=DATA_DIR, tfds_dir=tfds_dir)
    assert (dataset.num_entities, len(dataset.train)) == (14, 1592)
    assert catalog.canonical_name("FB15k-237") == "fb15k237"
    assert catalog.canonical_name("fb15k-237") == "fb15k237"
    assert catalog.canonical_name("countries_S2") == "countries_s2"
    assert catalog.NAMES == (
        "nations",
        "umls",
        "kinships",
        "countries_s1",
        "countries_s2",
        "countries_s3",
        "wn18rr",
        "fb15k237",
    )


@requires_data
def test_changed_local_files_are_not_served_stale(tmp_path, tfds_dir, no_data_dir):
    data = tmp_path / "data"
    shutil.copytree(DATA_DIR / "nations", data / "nations")
    first = catalog.load_dataset("nations", data_dir=data, tfds_dir=tfds_dir)
    train = (data / "nations" / "train.txt").read_text().splitlines(keepends=True)
    (data / "nations" / "train.txt").write_text("".join(train[:-10]))
    second = catalog.load_dataset("nations", data_dir=data, tfds_dir=tfds_dir)
    assert (len(first.train), len(second.train)) == (1592, 1582)
    assert len(list(tfds_dir.glob("nations-*"))) == 2


def test_malformed_catalog_file_names_file_and_line(tmp_path, no_data_dir):
    data = tmp_path / "data"
    _write(data / "umls", _splits("a\tr\tb\n", "a\tr\tb\n", "a\tr\tb\na\tr\n"))
    with pytest.raises(DataError, match=f"^{data / 'umls' / 'test.txt'}:2: expected 3"):
        catalog.load_dataset("umls", data_dir=data, tfds_dir=tmp_path / "tfds")
    # Nothing half-written is left to be reused.
    assert not list((tmp_path / "tfds").glob("umls-*/**/dataset_info.json"))


def test_unknown_name_lists_names_and_close_matches():
    with pytest.raises(DataError, match="unknown dataset 'umsl'; known: nations, umls, .*fb15k237"):
        catalog.load_dataset("umsl")
    with pytest.raises(DataError, match="did you mean fb15k237"):
        catalog.load_dataset("fb15k-238")


def test_no_local_copy_and_no_download_says_where_it_looked(tmp_path, no_data_dir):
    with pytest.raises(DataError) as error:
        catalog.load_dataset("kinships", tfds_dir=tmp_path, download=False)
    message = str(error.value)
    for part in ("data_dir: not set", "$KGJAX_DATA_DIR: not set", "only umls", "download=False"):
        assert part in message
    assert "<DIR>/kinships/" in message and "config.data.data_dir" in message


def test_no_network_fails_fast(tmp_path, no_data_dir, monkeypatch):
    def unreachable(address, timeout):
        raise OSError("network is unreachable")

    monkeypatch.setattr(catalog.socket, "create_connection", unreachable)
    with pytest.raises(DataError, match="raw.githubusercontent.com cannot be reached"):
        catalog.load_dataset("fb15k237", tfds_dir=tmp_path, download=True)


@requires_data
def test_download_path_checks_and_caches_the_pinned_files(tmp_path, no_data_dir, monkeypatch):
    """The download branch end to end, with the network replaced by the local copies."""
    fetched = []

    def download(self, urls):
        fetched.extend(urls.values())
        return {s: DATA_DIR / "nations" / url.rsplit("/", 1)[1] for s, url in urls.items()}

    monkeypatch.setattr(catalog.socket, "create_connection", lambda *a, **k: _Closeable())
    monkeypatch.setattr(tfds.download.DownloadManager, "download", download)
    dataset = catalog.load_dataset("nations", tfds_dir=tmp_path)
    assert fetched == [
        "https://raw.githubusercontent.com/pykeen/pykeen/05c7bbb20c952f3e5e958e694344ace4005b1bbb"
        f"/src/pykeen/datasets/nations/{split}.txt"
        for split in triples.SPLITS
    ]
    assert (dataset.num_entities, len(dataset.train), dataset.source) == (14, 1592, fetched[0])
    # Cached under the pinned checksums: no network the second time, and the same folder a
    # byte-identical local copy maps to.
    monkeypatch.setattr(tfds.download.DownloadManager, "download", None)
    catalog.load_dataset("nations", tfds_dir=tmp_path, download=False)
    local = catalog.load_dataset("nations", data_dir=DATA_DIR, tfds_dir=tmp_path)
    np.testing.assert_array_equal(local.train, dataset.train)
    assert len(list(tmp_path.glob("nations-*"))) == 1


def test_download_with_wrong_checksum_is_an_error(tmp_path, no_data_dir, monkeypatch):
    _write(tmp_path / "fake", _splits("a\tr\tb\n", "a\tr\tb\n", "a\tr\tb\n"))
    monkeypatch.setattr(catalog.socket, "create_connection", lambda *a, **k: _Closeable())
    monkeypatch.setattr(
        tfds.download.DownloadManager,
        "download",
        lambda self, urls: {s: tmp_path / "fake" / f"{s}.txt" for s in urls},
    )
    with pytest.raises(DataError, match="kinships/train.txt: SHA-256 .* differs from the expected"):
        catalog.load_dataset("kinships", tfds_dir=tmp_path / "tfds")


def test_data_dir_that_does_not_exist_is_an_error(tmp_path, no_data_dir):
    with pytest.raises(DataError, match="data_dir=.*missing: folder not found"):
        catalog.load_dataset("umls", data_dir=tmp_path / "missing", tfds_dir=tmp_path)


def test_user_folder_path_drops_duplicates(tmp_path, caplog):
    folder = _write(
        tmp_path / "mine",
        _splits("a\tr\tb\nb\tr\tc\na\tr\tb\n", "a\tr\tc\n", "c\tr\ta\nc\tr\ta\n"),
    )
    with caplog.at_level(logging.WARNING):
        dataset = catalog.load_dataset(path=folder, tfds_dir=tmp_path / "unused")
    assert dataset.name == "mine"
    np.testing.assert_array_equal(dataset.train, [[0, 0, 1], [1, 0, 2]])
    np.testing.assert_array_equal(dataset.test, [[2, 0, 0]])
    assert "mine/train: dropped 1" in caplog.text and "mine/test: dropped 1" in caplog.text
    assert not (tmp_path / "unused").exists()


@requires_data
@pytest.mark.slow
@pytest.mark.parametrize(
    "through_tfds",
    [
        False,
        pytest.param(
            True,
            marks=pytest.mark.skipif(
                not os.environ.get("KGJAX_LONG_TESTS"),
                reason="a TFDS build of FB15k-237's 310k triples, about 25 s, beyond CI's "
                "budget (the builder is CI-tested on nations, countries_s1 and wn18rr; the "
                "same file reader on FB15k-237 by the other case); set KGJAX_LONG_TESTS=1",
            ),
        ),
    ],
)
def test_fb15k237(tmp_path, shared_data_dir, through_tfds):
    if through_tfds:
        dataset = catalog.load_dataset("fb15k237", tfds_dir=tmp_path, download=False)
    else:
        dataset = triples.load_folder(DATA_DIR / "fb15k-237")
    splits = tuple(len(dataset.splits[s]) for s in triples.SPLITS)
    assert (dataset.num_entities, dataset.num_relations, *splits) == (
        14541,
        237,
        272115,
        17535,
        20466,
    )
    assert dataset.unseen_entities == {"valid": 8, "test": 29}
    # CRLF files: no carriage return may survive in a name.
    assert not any("\r" in n for n in dataset.entities.names + dataset.relations.names)
