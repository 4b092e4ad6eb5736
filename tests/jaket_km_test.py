"""JAKET's knowledge-module pre-training: batches, losses, frozen memory, resume, bad config."""

import json
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from kgjax import config as config_lib
from kgjax import runs
from kgjax.config import ConfigError
from kgjax.data import subgraphs
from kgjax.data.triples import TripleIndex
from kgjax.models import kge
from kgjax.models.jaket import KnowledgePretraining
from kgjax.train.jaket import batches as batches_lib
from kgjax.train.jaket.step import TrainState, forward, link_scores, make_train_chunk
from kgjax.train.jaket.trainer import train

REPO = pathlib.Path(__file__).parents[1]
NUM_ENTITIES, NUM_RELATIONS = 30, 3


def tiny_triples(seed=0, count=150):
    """Distinct (h, r, t) with h != t over 30 entities: r = h mod 3, the head's category in
    `tiny_folder`, so that a few steps learn both tasks from the same signal."""
    rng = np.random.default_rng(seed)
    triples = set()
    while len(triples) < count:
        h, t = rng.choice(NUM_ENTITIES, 2, replace=False)
        triples.add((int(h), int(h % NUM_RELATIONS), int(t)))
    return np.array(sorted(triples), np.int32)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """A dataset folder (train/valid/test.txt) and a categories file (3 categories)."""
    folder = tmp_path_factory.mktemp("tiny")
    triples = tiny_triples()
    splits = {"train": triples[:130], "valid": triples[130:140], "test": triples[140:]}
    for name, rows in splits.items():
        lines = [f"e{h}\tr{r}\te{t}\n" for h, r, t in rows]
        (folder / f"{name}.txt").write_text("".join(lines))
    (folder / "categories.tsv").write_text(
        "".join(f"e{i}\tc{i % 3}\n" for i in range(NUM_ENTITIES))
    )
    return folder


def tiny_config(folder, **overrides):
    config = config_lib.from_file(f"{REPO}/configs/jaket_km.py:umls")
    values = {
        "data.path": str(folder),
        "categories.source": "file",
        "categories.path": str(folder / "categories.tsv"),
        "memory.width": 16,
        "model.num_heads": 2,
        "sampler.num_roots": 8,
        "sampler.fanouts": (3, 2),
        "sampler.budget_draws": 16,
        "loss.num_pairs": 8,
        "optimizer.lr": 3e-2,
        "num_steps": 60,
        "steps_per_call": 10,
        "log_every_steps": 10,
        "eval_every_steps": 60,
        "checkpoint_every_steps": 20,
        **overrides,
    }
    for key, value in values.items():
        config_lib.override(config, key, value)
    return config


def test_batches_hide_target_pairs_and_label_roots_only():
    triples = tiny_triples()
    known = {tuple(t) for t in triples}
    adjacency = subgraphs.Adjacency.build(triples, NUM_ENTITIES, NUM_RELATIONS, True)
    sampler = subgraphs.SubgraphSampler(adjacency, num_roots=6, fanouts=(4, 3), seed=1)
    sampler = subgraphs.SubgraphSampler(
        adjacency, num_roots=6, fanouts=(4, 3), budgets=sampler.propose_budgets(16), seed=1
    )
    labels = np.arange(NUM_ENTITIES, dtype=np.int32) % 3
    labels[::5] = -1  # not in the pre-training part
    batch = batches_lib.chunk(sampler, [3, 4], labels, num_pairs=5, num_relations=NUM_RELATIONS)
    again = batches_lib.chunk(sampler, [3, 4], labels, num_pairs=5, num_relations=NUM_RELATIONS)
    jax.tree.map(np.testing.assert_array_equal, batch, again)
    raw = sampler.sample_many([3, 4])
    for s in range(2):
        ids = batch.graph.entity_ids[s]
        pairs = set()
        for i in np.flatnonzero(batch.pair_mask[s]):
            h, t = batch.pair_heads[s, i], batch.pair_tails[s, i]
            r = batch.pair_relations[s, i]
            assert r < NUM_RELATIONS and (ids[h], r, ids[t]) in known
            pairs.add(frozenset((int(h), int(t))))
        assert pairs
        for e in range(len(raw.edge_mask[s])):
            between = frozenset((int(raw.senders[s, e]), int(raw.receivers[s, e]))) in pairs
            # Edges joining a target pair are hidden; every other edge keeps its mask.
            assert batch.graph.edge_mask[s, e] == (raw.edge_mask[s, e] and not between)
        roots = batch.graph.root_mask[s]
        np.testing.assert_array_equal(batch.labels[s][~roots], -1)
        np.testing.assert_array_equal(batch.labels[s][roots], labels[ids[roots]])


def test_gradients_reach_the_memory_only_when_it_is_trainable():
    triples = tiny_triples()
    adjacency = subgraphs.Adjacency.build(triples, NUM_ENTITIES, NUM_RELATIONS, True)
    sampler = subgraphs.SubgraphSampler(
        adjacency, num_roots=6, fanouts=(4,), budgets=((64, 256),), seed=0
    )
    labels = np.arange(NUM_ENTITIES, dtype=np.int32) % 3
    batch = batches_lib.chunk(sampler, [0, 1], labels, num_pairs=4, num_relations=NUM_RELATIONS)
    model = KnowledgePretraining(num_categories=3, num_relations=NUM_RELATIONS, num_heads=2)
    rng = np.random.default_rng(0)
    memory = {
        "entity": jnp.asarray(rng.standard_normal((NUM_ENTITIES, 8)), jnp.float32),
        "relation": jnp.asarray(rng.standard_normal((NUM_RELATIONS, 8)), jnp.float32),
    }
    first = jax.tree.map(lambda x: x[0], batch)
    graph = first.graph
    model_params = model.init(
        jax.random.key(0),
        memory["entity"][graph.entity_ids],
        memory["relation"],
        graph.senders,
        graph.receivers,
        graph.relations,
        graph.edge_mask,
        first.pair_heads,
        first.pair_tails,
    )["params"]
    optimizer = optax.sgd(0.5)
    run = make_train_chunk(model, optimizer, (1.0, 1.0, 0.0))
    for trainable in (False, True):
        params = {"model": model_params, **({"memory": memory} if trainable else {})}
        frozen = {} if trainable else {"memory": memory}
        state = TrainState(jnp.int32(0), params, frozen, optimizer.init(params))
        state, metrics = run(jax.tree.map(jnp.array, state), batch)
        assert metrics["loss"].shape == (2,) and int(state.step) == 2
        after = state.params["memory"] if trainable else state.frozen["memory"]
        moved = np.abs(np.asarray(after["entity"]) - np.asarray(memory["entity"])).max()
        assert (moved > 0) == trainable
        # The rows of entities the batches never touched stay put even when trainable.
        touched = np.unique(batch.graph.entity_ids[batch.graph.node_mask])
        untouched = np.setdiff1d(np.arange(NUM_ENTITIES), touched)
        np.testing.assert_array_equal(
            np.asarray(after["entity"])[untouched], np.asarray(memory["entity"])[untouched]
        )


def link_batch(seed=2):
    """Two steps' batches with link filters, and the training triples they were built from."""
    triples = tiny_triples()
    adjacency = subgraphs.Adjacency.build(triples, NUM_ENTITIES, NUM_RELATIONS, True)
    sampler = subgraphs.SubgraphSampler(
        adjacency, num_roots=6, fanouts=(4, 3), budgets=((32, 256),), seed=seed
    )
    labels = np.full(NUM_ENTITIES, -1, np.int32)
    index = TripleIndex.build(triples, NUM_ENTITIES)
    batch = batches_lib.chunk(sampler, [0, 1], labels, 6, NUM_RELATIONS, index)
    return batch, triples


def test_link_filter_marks_the_other_known_answers_of_each_query():
    batch, triples = link_batch()
    known = {tuple(t) for t in triples}
    num_pairs = batch.pair_heads.shape[1]
    for s in range(2):
        ids, real = batch.graph.entity_ids[s], batch.graph.node_mask[s]
        for i in np.flatnonzero(batch.pair_mask[s]):
            h, r, t = batch.pair_heads[s, i], batch.pair_relations[s, i], batch.pair_tails[s, i]
            tails = {n for n in range(len(ids)) if real[n] and (ids[h], r, ids[n]) in known}
            heads = {n for n in range(len(ids)) if real[n] and (ids[n], r, ids[t]) in known}
            assert set(np.flatnonzero(batch.link_filter[s, i])) == tails - {t}
            assert set(np.flatnonzero(batch.link_filter[s, num_pairs + i])) == heads - {h}
        assert not batch.link_filter[s, num_pairs:][~batch.pair_mask[s]].any()
    # Filtering has something to do here: some query has another known answer.
    assert batch.link_filter.any()


def test_link_scores_and_loss_match_numpy_distmult():
    batch, _ = link_batch()
    step = jax.tree.map(lambda x: x[0], batch)
    rng = np.random.default_rng(3)
    nodes = rng.standard_normal((len(step.graph.entity_ids), 8)).astype(np.float32)
    table = rng.standard_normal((2 * NUM_RELATIONS, 8)).astype(np.float32)
    decoder = kge.get("distmult", NUM_ENTITIES, 2 * NUM_RELATIONS, dim=8)
    scores, targets = link_scores(decoder, {"relation": jnp.asarray(table)}, nodes, step)
    h, t, r = step.pair_heads, step.pair_tails, step.pair_relations
    # DistMult: score(h, r, t) = sum_i h_i r_i t_i; the inverse query uses row r + R.
    expected = np.concatenate(
        [(nodes[h] * table[r]) @ nodes.T, (nodes[t] * table[r + NUM_RELATIONS]) @ nodes.T]
    )
    excluded = step.link_filter | ~step.graph.node_mask[None]
    expected[excluded] = -np.inf
    np.testing.assert_allclose(np.asarray(scores), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(targets), np.concatenate([t, h]))
    assert np.isfinite(expected[np.arange(len(targets)), np.asarray(targets)]).all()


def test_link_scores_of_weighted_decoders_match_numpy():
    # TuckER: score = sum_ijk W_ijk h_i r_j t_k. ConvE: its own query network (checked against
    # its formula in the KGE tests) matched with [t | b_t], b the per-entity bias.
    batch, _ = link_batch()
    step = jax.tree.map(lambda x: x[0], batch)
    rng = np.random.default_rng(4)
    nodes = rng.standard_normal((len(step.graph.entity_ids), 8)).astype(np.float32)
    h, t, r = step.pair_heads, step.pair_tails, step.pair_relations
    real = ~(step.link_filter | ~step.graph.node_mask[None])

    tucker = kge.get("tucker", 1, 2 * NUM_RELATIONS, dim=8, relation_dim=4)
    link = {k: v for k, v in tucker.init(jax.random.key(1)).items() if k != "entity"}
    scores, _ = link_scores(tucker, link, jnp.asarray(nodes), step)
    core, table = np.asarray(link["interaction"]["core"]), np.asarray(link["relation"])
    anchors, rels = np.concatenate([h, t]), np.concatenate([r, r + NUM_RELATIONS])
    expected = np.einsum("qi,qj,ijk,nk->qn", nodes[anchors], table[rels], core, nodes)
    np.testing.assert_allclose(np.asarray(scores)[real], expected[real], rtol=1e-4, atol=1e-4)

    conve = kge.get("conve", 1, 2 * NUM_RELATIONS, dim=8, height=2, kernel_size=2)
    link = {k: v for k, v in conve.init(jax.random.key(2)).items() if k != "entity"}
    link["entity_bias"] = jnp.asarray(rng.standard_normal(NUM_ENTITIES), jnp.float32)
    scores, _ = link_scores(conve, link, jnp.asarray(nodes), step)
    bound = conve.bind(link)
    bias = np.asarray(link["entity_bias"])[step.graph.entity_ids]
    queries = np.asarray(bound.tail_query(jnp.asarray(nodes[anchors]), link["relation"][rels]))
    expected = queries[:, :8] @ nodes.T + bias[None, :]  # the query's last column is 1
    np.testing.assert_allclose(np.asarray(scores)[real], expected[real], rtol=1e-4, atol=1e-4)


def read_train_metrics(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [e for e in map(json.loads, f) if e["event"] == "train"]


def checkpoint_state(workdir):
    folder = os.path.join(workdir, "checkpoints")
    step = max(int(name) for name in os.listdir(folder) if name.isdigit())
    with ocp.StandardCheckpointer() as checkpointer:
        return checkpointer.restore(os.path.join(folder, str(step), "default"))


def checkpoint_params(workdir):
    return checkpoint_state(workdir)["params"]


@pytest.fixture(scope="module")
def full_run(tiny_folder, tmp_path_factory):
    """60 steps of the tiny config with all three tasks, uninterrupted: (workdir, results)."""
    workdir = str(tmp_path_factory.mktemp("full"))
    return workdir, train(tiny_config(tiny_folder, **LINK), workdir, progress=False)


LINK = {"loss.link_weight": 1.0, "model.decoder": "distmult"}


def test_the_three_losses_decrease_on_a_tiny_graph(full_run):
    workdir, results = full_run
    logged = read_train_metrics(workdir)
    # The tiny graph's tails are random: link prediction can only memorise the training
    # triples, so its loss falls less in 60 steps than the other two.
    for name, factor in (("category_loss", 0.8), ("relation_loss", 0.8), ("link_loss", 0.9)):
        first, last = logged[0][f"train/{name}"], logged[-1][f"train/{name}"]
        assert last < factor * first, (name, first, last)
    assert results["steps"] == 60 and results["num_categories"] == 3
    held_out = results["category/held_out"]
    assert held_out["num_entities"] == 6  # 20% of 30 labelled entities
    assert 0 <= held_out["accuracy"] <= 1
    assert results["relation_prediction/test"]["num_pairs"] == 10
    assert results["link_prediction/test"]["num_triples"] == 10
    # The KGE readers (kgjax evaluate / predict / export) name the run's family instead.
    with pytest.raises(runs.RunError, match="a 'jaket_km' run"):
        runs.restore(workdir)


def test_link_evaluation_equals_numpy_filtered_ranking(tiny_folder, full_run):
    # The run's test MRR recomputed from its final state: E^KM over the whole training graph,
    # DistMult scores in NumPy, every other known triple filtered, ties split (realistic).
    from kgjax.data import catalog

    workdir, results = full_run
    config = tiny_config(tiny_folder, **LINK)
    dataset = catalog.load_section(config.data)
    state = checkpoint_state(workdir)
    adjacency = subgraphs.Adjacency.build(dataset.train, NUM_ENTITIES, NUM_RELATIONS, True)
    full = subgraphs.full_graph(adjacency)
    model = KnowledgePretraining(num_categories=3, num_relations=NUM_RELATIONS, num_heads=2)
    test = dataset.test
    entities, _, _ = forward(
        model, state["params"]["model"], state["frozen"]["memory"], full, test[:, 0], test[:, 2]
    )
    entities, table = np.asarray(entities), np.asarray(state["params"]["link"]["relation"])
    known = {tuple(t) for t in np.concatenate([dataset.train, dataset.valid, test])}
    reciprocal_ranks = []
    for h, r, t in test:
        for anchor, rel, answer, is_tail in ((h, r, t, True), (t, r + NUM_RELATIONS, h, False)):
            scores = (entities[anchor] * table[rel]) @ entities.T
            true = scores[answer]
            others = [
                e
                for e in range(NUM_ENTITIES)
                if e != answer and ((h, r, e) if is_tail else (e, r, t)) not in known
            ]
            above = np.sum(scores[others] > true)
            ties = np.sum(scores[others] == true)
            reciprocal_ranks.append(1.0 / (1 + above + ties / 2))
    mrr = results["link_prediction/test"]["mrr"]
    np.testing.assert_allclose(mrr, np.mean(reciprocal_ranks), rtol=1e-4)


def test_whole_graph_propagation_trains_on_the_full_graph(tiny_folder, tmp_path):
    overrides = {"sampler.whole_graph": True, "num_steps": 30, "eval_every_steps": 30}
    workdir = str(tmp_path / "whole")
    results = train(tiny_config(tiny_folder, **overrides), workdir, progress=False)
    # One budget: every entity a node, every training edge (and its inverse) an edge.
    assert results["budgets"] == [[NUM_ENTITIES, 2 * 130]]
    logged = read_train_metrics(workdir)
    for name in ("category_loss", "relation_loss"):
        first, last = logged[0][f"train/{name}"], logged[-1][f"train/{name}"]
        assert last < 0.8 * first, (name, first, last)


@pytest.mark.skipif(
    not os.environ.get("KGJAX_LONG_TESTS"),
    reason="two more training runs (~20 s of CPU); set KGJAX_LONG_TESTS=1",
)
def test_resume_matches_the_uninterrupted_run(tiny_folder, full_run, tmp_path):
    full, results = full_run
    split = str(tmp_path / "split")
    train(tiny_config(tiny_folder, num_steps=20, **LINK), split, progress=False)
    resumed = train(tiny_config(tiny_folder, **LINK), split, progress=False)
    jax.tree.map(np.testing.assert_array_equal, checkpoint_params(full), checkpoint_params(split))
    assert resumed["relation_prediction/test"] == results["relation_prediction/test"]
    assert resumed["link_prediction/test"] == results["link_prediction/test"]


@pytest.mark.skipif(
    not os.environ.get("KGJAX_LONG_TESTS"),
    reason="one more training run (~10 s of CPU); set KGJAX_LONG_TESTS=1",
)
def test_a_pretrained_module_starts_a_run_on_another_graph(full_run, tmp_path):
    # Another graph: 4 relations, 2 categories. Its run starts from the pre-trained layers
    # and inverse map (barely moved at lr 1e-9) with heads of its own sizes.
    other = tmp_path / "other"
    other.mkdir()
    rng = np.random.default_rng(5)
    rows = {
        (int(h), int(rng.integers(4)), int(t)) for h, t in rng.integers(0, 20, (90, 2)) if h != t
    }
    lines = [f"x{h}\tq{r}\tx{t}\n" for h, r, t in sorted(rows)]
    for name, part in (("train", lines[:-10]), ("valid", lines[-10:-5]), ("test", lines[-5:])):
        (other / f"{name}.txt").write_text("".join(part))
    (other / "categories.tsv").write_text("".join(f"x{i}\tk{i % 2}\n" for i in range(20)))
    pretrained, _ = full_run
    config = tiny_config(other, **{"model.init_from": pretrained, "optimizer.lr": 1e-9})
    config_lib.override(config, "categories.path", str(other / "categories.tsv"))
    for key in ("num_steps", "eval_every_steps", "checkpoint_every_steps"):
        config_lib.override(config, key, 10)
    workdir = str(tmp_path / "fine_tuned")
    results = train(config, workdir, progress=False)
    assert results["num_categories"] == 2
    before, after = checkpoint_params(pretrained)["model"], checkpoint_params(workdir)["model"]
    for name in ("km", "inverse"):
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), before[name], after[name]
        )
    assert after["relation"]["kernel"].shape[-1] == 4 and after["category"]["bias"].shape == (2,)
    # A module of another shape is refused before anything is written.
    config_lib.override(config, "model.num_layers", 1)
    with pytest.raises(ConfigError, match="does not fit"):
        train(config, str(tmp_path / "misfit"), progress=False)
    assert not (tmp_path / "misfit").exists()


def test_bad_config_is_named_before_anything_is_written(tiny_folder, tmp_path):
    workdir = tmp_path / "run"
    with pytest.raises(ConfigError, match="categories.path"):
        train(tiny_config(tiny_folder, **{"categories.path": ""}), str(workdir), progress=False)
    with pytest.raises(ConfigError, match="model.num_heads"):
        train(tiny_config(tiny_folder, **{"model.num_heads": 3}), str(workdir), progress=False)
    with pytest.raises(ConfigError, match="model.init_from"):
        train(
            tiny_config(tiny_folder, **{"model.init_from": str(tmp_path / "nothing")}),
            str(workdir),
            progress=False,
        )
    with pytest.raises(ConfigError, match="sampler.roots_from"):
        overrides = {"categories.source": "none", "sampler.roots_from": "labelled"}
        train(tiny_config(tiny_folder, **overrides), str(workdir), progress=False)
    with pytest.raises(ConfigError, match="model.aggregation"):
        train(
            tiny_config(tiny_folder, **{"model.aggregation": "max"}), str(workdir), progress=False
        )
    with pytest.raises(ConfigError, match="model.decoder"):
        overrides = {**LINK, "model.decoder": "mystery"}
        train(tiny_config(tiny_folder, **overrides), str(workdir), progress=False)
    with pytest.raises(ConfigError, match="model.decoder_height"):
        overrides = {**LINK, "model.decoder": "conve", "model.decoder_height": 5}  # 16 = 5 x ?
        train(tiny_config(tiny_folder, **overrides), str(workdir), progress=False)
    assert not workdir.exists()
