"""Tests for the inductive split (kgjax.data.inductive), its CLI command, and the inductive
evaluation (kgjax.evaluation.inductive) on tiny graphs."""

import json

import jax
import numpy as np
import pytest

from kgjax import cli
from kgjax.data import inductive as split_lib
from kgjax.data.catalog import load_dataset
from kgjax.data.triples import DataError, build_dataset
from kgjax.evaluation import inductive
from kgjax.evaluation.link_prediction import Evaluator, evaluate
from kgjax.models import kge as models


def _raw(seed=0, num_entities=40, num_relations=3, num_triples=300):
    rng = np.random.default_rng(seed)
    rows = {
        (f"e{h:02d}", f"r{r}", f"e{t:02d}")
        for h, r, t in zip(
            rng.integers(num_entities, size=num_triples),
            rng.integers(num_relations, size=num_triples),
            rng.integers(num_entities, size=num_triples),
            strict=True,
        )
        if h != t
    }
    rows = sorted(rows)
    rng.shuffle(rows)
    n = len(rows)
    return {"train": rows[: n * 8 // 10], "valid": rows[n * 8 // 10 : n * 9 // 10],
            "test": rows[n * 9 // 10 :]}  # fmt: skip


@pytest.fixture
def source(tmp_path):
    folder = tmp_path / "tiny"
    (folder / "kg-bert").mkdir(parents=True)
    for split, rows in _raw().items():
        (folder / f"{split}.txt").write_text("".join(f"{h}\t{r}\t{t}\n" for h, r, t in rows))
    (folder / "kg-bert" / "entity2text.txt").write_text(
        "\n".join(f"e{i:02d}\tentity number {i}" for i in range(40))
    )
    return folder


def test_split_rules_and_conservation():
    raw = _raw()
    new, held, counts = split_lib.split_triples(raw, 0.2, seed=3)
    held = set(held)
    assert len(held) == counts["held_out_entities"] == 8
    train_entities = {e for h, _, t in new["train"] for e in (h, t)}
    train_relations = {r for _, r, _ in new["train"]}
    assert not held & train_entities and counts["seen_entities"] == len(train_entities)
    assert all(h not in held and t not in held for h, _, t in new["valid"])
    for h, r, t in new["test"]:
        assert (h in held) != (t in held)
        assert (t if h in held else h) in train_entities and r in train_relations
    assert set(new["train"]) <= set(raw["train"]) and set(new["valid"]) <= set(raw["valid"])
    # A source train triple among kept entities always stays in train.
    assert all(row in new["train"] for row in raw["train"] if not {row[0], row[2]} & held)
    # Every source triple is placed or counted as dropped.
    placed = sum(len(rows) for rows in new.values())
    dropped = sum(v for k, v in counts.items() if k.startswith("dropped_"))
    assert placed + dropped == sum(len(rows) for rows in raw.values())
    # Seeded: the same seed draws the same entities, another seed others.
    assert split_lib.split_triples(raw, 0.2, seed=3) == (new, sorted(held), counts)
    assert set(split_lib.split_triples(raw, 0.2, seed=4)[1]) != held


def test_split_fraction_errors():
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        split_lib.split_triples(_raw(), 1.0, 0)
    with pytest.raises(ValueError, match="holds out none"):
        split_lib.split_triples(_raw(), 0.001, 0)


def test_make_split_writes_a_dataset_folder(source, tmp_path):
    out = tmp_path / "tiny_inductive"
    manifest = split_lib.make_split(source, out, fraction=0.2, seed=1)
    assert (out / "kg-bert" / "entity2text.txt").read_text() == (
        source / "kg-bert" / "entity2text.txt"
    ).read_text()
    assert split_lib.read_manifest(out) == json.loads((out / "split.json").read_text())
    assert manifest["counts"]["test"] > 0 and len(manifest["held_out"]) == 8
    dataset = load_dataset(path=out)
    # Exactly the held-out entities that reach the test split are unseen there.
    test_entities = {dataset.entities.names[i] for i in np.unique(dataset.test[:, [0, 2]])}
    assert dataset.unseen_entities["test"] == len(test_entities & set(manifest["held_out"]))
    assert dataset.unseen_entities["valid"] == 0
    # Running again changes nothing; a different split into the same folder is refused.
    assert split_lib.make_split(source, out, fraction=0.2, seed=1) == manifest
    with pytest.raises(DataError, match="does not hold this split"):
        split_lib.make_split(source, out, fraction=0.2, seed=2)
    with pytest.raises(DataError, match="is .* an inductive split"):
        split_lib.read_manifest(source)


def test_cli_split(source, tmp_path, capsys):
    out = tmp_path / "via_cli"
    assert cli.main(["kgjax", "split", f"--path={source}", f"--out={out}", "--seed=2"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["test"] == split_lib.read_manifest(out)["counts"]["test"]
    assert cli.main(["kgjax", "split", f"--path={source}", f"--out={out}", "--fraction=2"]) == 2
    assert "--fraction must be in (0, 1)" in capsys.readouterr().err
    assert cli.main(["kgjax", "split", f"--out={out}"]) == 2


# --- the evaluation ---------------------------------------------------------------------------


def test_seen_and_touching_unseen():
    train = np.array([[0, 0, 1], [1, 0, 2]])
    seen = inductive.seen_entities(train, 5)
    np.testing.assert_array_equal(seen, [True, True, True, False, False])
    triples = np.array([[0, 0, 1], [3, 0, 1], [2, 0, 4], [3, 0, 4]])
    np.testing.assert_array_equal(inductive.touches_unseen(triples, seen), [0, 1, 1, 1])


def test_fit_unseen_recovers_linear_embeddings_with_and_without_prior():
    rng = np.random.default_rng(0)
    text = rng.normal(size=(80, 6))
    seen = np.arange(80) < 60
    unit = text / np.linalg.norm(text, axis=1, keepdims=True)
    z = (unit - unit[seen].mean(0)) / unit[seen].std(0)
    prior = rng.normal(size=(80, 4))
    trained = prior + z @ rng.normal(size=(6, 4))
    params = {"entity": jax.numpy.asarray(trained, jax.numpy.float32), "relation": None}
    params["entity"] = params["entity"].at[~seen].set(0.0)  # what training never touched
    # The change from the prior is linear in the text: with the prior the rows come back.
    mapped, fitted = inductive.fit_unseen(params, text, seen, l2=1e-6, prior=prior)
    np.testing.assert_allclose(np.asarray(mapped["entity"])[~seen], trained[~seen], atol=1e-3)
    np.testing.assert_array_equal(np.asarray(mapped["entity"])[seen], trained[seen].astype("f4"))
    assert fitted.num_fitted == 60
    # Without it the map cannot (the prior is not a function of the text here).
    plain, _ = inductive.fit_unseen(params, text, seen, l2=1e-6)
    assert np.abs(np.asarray(plain["entity"])[~seen] - trained[~seen]).max() > 0.5


def _tiny_dataset():
    raw = _raw(seed=5)
    new, _, _ = split_lib.split_triples(raw, 0.2, seed=0)
    # Valid/test also keep a few triples among seen entities, as a catalog dataset does.
    new["test"] = new["test"] + new["valid"][:5]
    return build_dataset("tiny", new)


def test_evaluate_block_reuses_and_replaces_rows():
    dataset = _tiny_dataset()
    model = models.get("rotate", dataset.num_entities, dataset.num_relations, dim=4, gamma=3.0)
    params = model.init(jax.random.key(0))
    text = np.random.default_rng(0).normal(size=(dataset.num_entities, 5))
    evaluator = Evaluator(model, dataset, 16)
    sentinel = {"both": {"mrr": -1.0}}
    block = inductive.evaluate(
        model, params, dataset, text, evaluator, evaluated={"test": sentinel}
    )
    seen = inductive.seen_entities(dataset.train, dataset.num_entities)
    mask = inductive.touches_unseen(dataset.test, seen)
    assert 0 < mask.sum() < len(mask)
    assert block["num_triples"] == {"test": len(mask), "test_unseen": int(mask.sum())}
    assert block["unseen_entities"]["all"] == int((~seen).sum())
    assert block["as_trained"]["test"] is sentinel  # the run's own test metrics, not redone
    index = evaluator.index("test")
    expected = evaluate(model, params, dataset.test[mask], index, 16)
    assert block["as_trained"]["test_unseen"] == expected
    mapped, _ = inductive.fit_unseen(params, text, seen)
    assert block["from_text"]["test"] == evaluate(model, mapped, dataset.test, index, 16)
    assert block["text_map"]["prior"] == "mean"


def test_evaluate_without_unseen_entities_reports_counts_only():
    raw = _raw(seed=7)
    trained = {e for h, _, t in raw["train"] for e in (h, t)}
    for split in ("valid", "test"):
        raw[split] = [(h, r, t) for h, r, t in raw[split] if {h, t} <= trained]
    dataset = build_dataset("tiny", raw)
    model = models.get("transe", dataset.num_entities, dataset.num_relations, dim=4)
    text = np.random.default_rng(0).normal(size=(dataset.num_entities, 5))
    block = inductive.evaluate(
        model, model.init(jax.random.key(0)), dataset, text, Evaluator(model, dataset, 16)
    )
    assert block["num_triples"]["test_unseen"] == 0
    assert "as_trained" not in block and "from_text" not in block
    with pytest.raises(ValueError, match="text vectors for"):
        inductive.evaluate(model, None, dataset, text[:3], Evaluator(model, dataset, 16))
