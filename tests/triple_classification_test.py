"""Triple classification: thresholds against a brute force, labelled negatives read from a
folder, and the results.json blocks of a short run on UMLS with negatives files."""

import importlib.util
import io
import json
import os
import pathlib
import shutil
from contextlib import redirect_stdout

import jax
import numpy as np
import pytest

from kgjax import cli
from kgjax.config import override
from kgjax.data.triples import NEGATIVES_FILES, DataError, load_folder
from kgjax.evaluation import triple_classification as tc
from kgjax.evaluation.link_prediction import score_triples
from kgjax.evaluation.relation_categories import CATEGORIES
from kgjax.models import kge
from kgjax.train.kge.trainer import train

REPO = pathlib.Path(__file__).resolve().parents[1]
UMLS = REPO / "kgjax" / "data" / "embedded" / "umls"


def brute_force_threshold(scores, labels):
    """Every score (and -inf) tried as the threshold; the lowest of the most accurate."""
    candidates = np.concatenate([[-np.inf], np.sort(np.unique(scores))])
    accuracy = [np.mean((scores > c) == labels) for c in candidates]
    return candidates[int(np.argmax(accuracy))], max(accuracy)


def random_examples(rng, n, num_relations):
    # Few distinct scores: ties within and across labels are common.
    scores = rng.integers(0, 6, n).astype(np.float32)
    labels = rng.random(n) < 0.5
    relations = rng.integers(0, num_relations, n)
    return scores, labels, relations


@pytest.mark.parametrize("seed", range(4))
def test_best_threshold_matches_the_brute_force(seed):
    rng = np.random.default_rng(seed)
    for n in (1, 2, 7, 40):
        scores, labels, _ = random_examples(rng, n, 1)
        threshold, accuracy = tc.best_threshold(scores, labels)
        expected, expected_accuracy = brute_force_threshold(scores, labels)
        assert accuracy == expected_accuracy
        np.testing.assert_array_equal(scores > threshold, scores > expected)
        # The cut lies halfway to the next distinct score (or beyond all of them).
        above = scores[scores > expected]
        if np.isfinite(expected) and len(above):
            assert threshold == (expected + above.min()) / 2


def test_best_threshold_by_hand():
    # Tied scores of both labels fall on one side; the lowest of equal cuts wins.
    scores = np.array([1.0, 2.0, 2.0, 3.0, 5.0])
    labels = np.array([False, True, False, True, True])
    assert tc.best_threshold(scores, labels) == (1.5, 0.8)
    assert tc.best_threshold(scores, np.ones(5, bool)) == (-np.inf, 1.0)
    assert tc.best_threshold(scores, np.zeros(5, bool)) == (np.inf, 1.0)


@pytest.mark.parametrize("seed", range(3))
def test_classify_matches_the_brute_force(seed):
    rng = np.random.default_rng(seed)
    num_relations = 6
    valid = random_examples(rng, 60, num_relations)
    # Relation 4: valid positives only; relation 5: no valid example. Both use the global cut.
    valid[1][valid[2] == 4] = True
    valid[2][valid[2] == 5] = 0
    test = random_examples(rng, 80, num_relations)

    global_cut, _ = brute_force_threshold(valid[0], valid[1])
    cuts = np.full(num_relations, global_cut)
    for r in range(4):
        chosen = valid[2] == r
        cuts[r], _ = brute_force_threshold(valid[0][chosen], valid[1][chosen])

    out = tc.classify(valid, test, num_relations)
    assert out["num_relation_thresholds"] == 4 and out["num_relations"] == num_relations
    for name, (scores, labels, relations) in (("valid", valid), ("test", test)):
        predicted = scores > cuts[relations]
        tp = np.sum(predicted & labels)
        precision, recall = tp / predicted.sum(), tp / labels.sum()
        assert out[name]["accuracy"] == np.mean(predicted == labels)
        np.testing.assert_allclose(out[name]["f1"], 2 * precision * recall / (precision + recall))
        assert out[name]["num_positives"] == labels.sum()
        assert out[name]["num_negatives"] == (~labels).sum()


def test_score_triples_equals_score_hrt():
    model = kge.get("rotate", 30, 5, dim=8, gamma=6.0)
    params = model.init(jax.random.key(0))
    triples = np.random.default_rng(0).integers(0, [30, 5, 30], (37, 3))
    expected = model.score_hrt(params, *triples.T)
    np.testing.assert_allclose(score_triples(model, params, triples, 16), expected, atol=1e-5)


def write_folder(folder, splits):
    folder.mkdir()
    for name, lines in splits.items():
        (folder / name).write_text("".join(f"{line}\n" for line in lines))


SMALL = {
    "train.txt": ["a\tr\tb", "b\tr\tc", "c\ts\ta"],
    "valid.txt": ["a\tr\tc"],
    "test.txt": ["b\ts\ta"],
}


def test_negatives_are_read_beside_the_splits(tmp_path):
    write_folder(tmp_path / "none", SMALL)
    assert load_folder(tmp_path / "none").negatives == {}
    write_folder(
        tmp_path / "with",
        {
            **SMALL,
            "valid_negatives.txt": ["a\tr\ta", "", "c\ts\tb"],
            "test_negatives.txt": ["b\ts\tb"],
        },
    )
    dataset = load_folder(tmp_path / "with")
    ids = {name: dataset.entities.id(name) for name in "abc"}
    r, s = dataset.relations.id("r"), dataset.relations.id("s")
    np.testing.assert_array_equal(
        dataset.negatives["valid"], [[ids["a"], r, ids["a"]], [ids["c"], s, ids["b"]]]
    )
    np.testing.assert_array_equal(dataset.negatives["test"], [[ids["b"], s, ids["b"]]])
    assert "labelled negatives valid/test 2 / 1" in dataset.summary()


@pytest.mark.parametrize(
    ("negatives", "message"),
    [
        ({"valid_negatives.txt": ["a\tr\ta"]}, "test_negatives.txt: file not found"),
        (
            {"valid_negatives.txt": ["a\tr\ta", "", "a\tr"], "test_negatives.txt": ["a\tr\tb"]},
            "valid_negatives.txt:3: expected 3 tab-separated columns",
        ),
        (
            {"valid_negatives.txt": ["a\tr\ta"], "test_negatives.txt": ["a\tr\tb", "a\tr\tbb"]},
            "test_negatives.txt:2: unknown entity 'bb'",
        ),
        (
            {"valid_negatives.txt": ["a\tq\ta"], "test_negatives.txt": ["a\tr\tb"]},
            "valid_negatives.txt:1: unknown relation 'q'",
        ),
    ],
)
def test_bad_negatives_files_name_file_and_line(tmp_path, negatives, message):
    write_folder(tmp_path / "data", {**SMALL, **negatives})
    with pytest.raises(DataError, match=message):
        load_folder(tmp_path / "data")


def test_config():
    spec = importlib.util.spec_from_file_location("config", REPO / "configs" / "test.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config("rotate")


test_config.__test__ = False  # a helper, not a test


def umls_with_negatives(folder):
    """UMLS with each valid/test triple's tail corrupted into a false triple."""
    shutil.copytree(UMLS, folder, ignore=shutil.ignore_patterns("*.md"))
    rows = {s: [line.split("\t") for line in (UMLS / f"{s}.txt").read_text().splitlines()]
            for s in ("train", "valid", "test")}  # fmt: skip
    known = {tuple(row) for split in rows.values() for row in split}
    entities = sorted({row[i] for split in rows.values() for row in split for i in (0, 2)})
    rng = np.random.default_rng(0)
    for split, file in NEGATIVES_FILES.items():
        lines = []
        for h, r, _ in rows[split]:
            while (h, r, t := entities[rng.integers(len(entities))]) in known:
                pass
            lines.append(f"{h}\t{r}\t{t}\n")
        (folder / file).write_text("".join(lines))


def test_a_run_on_a_folder_with_negatives_reports_the_new_blocks(tmp_path):
    umls_with_negatives(tmp_path / "data")
    config = test_config()
    override(config, "data.path", str(tmp_path / "data"))
    override(config, "num_steps", 20)
    workdir = str(tmp_path / "run")
    results = train(config, workdir, progress=False)
    with open(os.path.join(workdir, "results.json")) as f:
        saved = json.load(f)

    block = saved["triple_classification"]
    assert block["valid"]["num_positives"] == block["valid"]["num_negatives"] == 652
    assert block["test"]["num_positives"] == block["test"]["num_negatives"] == 661
    assert block["num_relations"] == 46 and 0 < block["num_relation_thresholds"] <= 46
    # Random tails are easy to tell from true ones, even after 20 steps.
    assert 0.5 < block["test"]["accuracy"] <= 1 and 0 < block["test"]["f1"] <= 1
    assert list(saved["per_category"]) == list(CATEGORIES)
    assert sum(b["num_triples"] for b in saved["per_category"].values()) == 661
    assert sum(b["num_triples"] for b in saved["per_relation"].values()) == 661
    assert all(0 < b["mrr"] <= 1 for b in saved["per_relation"].values())

    stdout = io.StringIO()
    with redirect_stdout(stdout):
        assert cli.main(["kgjax", "evaluate", f"--workdir={workdir}"]) == 0
    printed = stdout.getvalue()
    assert "test by relation category" in printed and "triple classification (" in printed
    evaluated = json.loads(pathlib.Path(workdir, "eval_step_20.json").read_text())
    for key in ("test", "per_category", "per_relation", "triple_classification"):
        assert evaluated[key] == saved[key] == json.loads(json.dumps(results[key]))
