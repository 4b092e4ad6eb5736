"""MMRNS: KCA shapes and masking, the schedule, the contrastive loss, the sampler, training."""

import importlib.util
import json
import math
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from kgjax.config import ConfigError
from kgjax.data.catalog import load_dataset
from kgjax.models import kge as models
from kgjax.models.kge.kca import KCA, ScaledLayerNorm
from kgjax.ops import similarity
from kgjax.text import features as text_features
from kgjax.train.kge import build, negatives
from kgjax.train.kge import mmrns as mmrns_sampler
from kgjax.train.kge import step as steps
from kgjax.train.kge.state import TrainData, TrainState
from kgjax.train.kge.trainer import train

REPO = pathlib.Path(__file__).parents[1]
DATA_DIR = pathlib.Path(os.environ.get("KGJAX_DATA_DIR", REPO / ".." / "shared" / "data"))


def mmrns_config(text="synthetic", visual="synthetic", **mmrns):
    spec = importlib.util.spec_from_file_location("config", REPO / "configs" / "test.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config("rotate")
    config.negatives.sampler = "mmrns"
    config.negatives.mmrns.text = text
    config.negatives.mmrns.visual = visual
    config.negatives.mmrns.num_regions = 5
    config.negatives.mmrns.visual_width = 12
    config.negatives.mmrns.text_width = 16
    config.negatives.mmrns.num_sentences = 3
    config.negatives.mmrns.pool_size = 100
    config.negatives.mmrns.chunk_size = 16
    for key, value in mmrns.items():
        config.negatives.mmrns[key] = value
    return config


def kca(visual: bool) -> KCA:
    return KCA(
        text_width=6,
        num_sentences=3,
        visual_width=7 if visual else 0,
        num_regions=4,
        entity_width=10,
        relation_width=5,
        attention_dim=8,
        output_dim=9,
        structure_hidden=11,
    )


def features(key, num_entities, length, width, lengths):
    mask = np.arange(length)[None, :] < np.asarray(lengths)[:, None]
    values = jax.random.normal(key, (num_entities, length, width))
    return jnp.where(mask[..., None], values, 0.0), jnp.asarray(mask)


@pytest.mark.parametrize(
    "visual",
    [
        pytest.param(
            True,
            marks=pytest.mark.skipif(
                not os.environ.get("KGJAX_LONG_TESTS"),
                reason="the image branch's compile, about 24 s on 2 cores, beyond CI's budget "
                "(the text-only case below is its CI slice); set KGJAX_LONG_TESTS=1",
            ),
        ),
        False,
    ],
)
def test_kca_shapes_and_relation_broadcasting(visual):
    net = kca(visual)
    keys = jax.random.split(jax.random.key(0), 5)
    params = net.init_params(keys[0])
    text, text_mask = features(keys[1], 6, 3, 6, [3, 1, 2, 3, 1, 2])
    image, image_mask = features(keys[2], 6, 4, 7, [4, 2, 1, 4, 3, 1]) if visual else (None, None)
    relations = jax.random.normal(keys[3], (2, 5))
    entities = jax.random.normal(keys[4], (6, 10))

    @jax.jit
    def run(params, text, image, relations, entities):
        bound = net.bind({"params": params})
        terms = bound.entity_terms(text, text_mask, image, image_mask)
        # Every (relation, entity) pair at once: [G, N, O].
        table = bound.represent(terms, relations)
        # Row by row: entity n under relation n % 2.
        paired = bound.represent_pairs(terms, relations[jnp.arange(6) % 2])
        structure = bound.structure(entities[None], relations[:, None, :])
        return (
            terms.cross,
            table,
            paired,
            structure,
            bound.structure(entities[0], relations[1]),
        )

    cross, table, paired, structure, single = run(params, text, image, relations, entities)
    assert cross.shape == (6, net.guide_length, 3)
    assert set(table) == set(net.modalities)
    for modality in net.modalities:
        assert table[modality].shape == (2, 6, 9)
    for modality in net.modalities:
        assert paired[modality].shape == (6, 9)
        np.testing.assert_allclose(
            paired[modality], table[modality][jnp.arange(6) % 2, jnp.arange(6)], rtol=1e-5
        )

    assert structure.shape == (2, 6, 10)
    np.testing.assert_allclose(single, structure[1, 0], rtol=1e-5)


@pytest.mark.parametrize("visual", [True, False])
def test_kca_ignores_padding(visual):
    net = kca(visual)
    keys = jax.random.split(jax.random.key(1), 6)
    bound = net.bind({"params": net.init_params(keys[0])})
    text, text_mask = features(keys[1], 4, 3, 6, [1, 2, 3, 2])
    image, image_mask = features(keys[2], 4, 4, 7, [2, 4, 1, 3]) if visual else (None, None)
    relation = jax.random.normal(keys[3], (4, 5))

    @jax.jit
    def represent(text, image):
        terms = bound.entity_terms(text, text_mask, image, image_mask)
        return bound.represent_pairs(terms, relation)

    before = represent(text, image)
    # Garbage in the padded rows changes nothing ...
    noise = 100.0 * jax.random.normal(keys[4], text.shape)
    padded_text = jnp.where(text_mask[..., None], text, noise)
    padded_image = (
        jnp.where(image_mask[..., None], image, 100.0 * jax.random.normal(keys[5], image.shape))
        if visual
        else None
    )
    after = represent(padded_text, padded_image)
    for modality in net.modalities:
        np.testing.assert_allclose(after[modality], before[modality], rtol=1e-5, atol=1e-5)
    # ... while a real sentence does.
    changed = represent(text.at[2, 0].add(1.0), image)
    assert not np.allclose(changed["text"][2], before["text"][2], atol=1e-4)


def test_kca_rejects_visual_without_text():
    with pytest.raises(ValueError, match="need textual features"):
        KCA(0, 4, 7, 4, 10, 5)


@pytest.mark.parametrize("visual", [True, False])
def test_kca_init_params_draws_each_kernel_from_its_key_in_the_reference_order(visual):
    net = kca(visual)
    key = jax.random.key(7)
    params = net.init_params(key)
    # The tree linen's own init makes.
    example = [
        jnp.zeros((2, 3, 6)),
        jnp.ones((2, 3), bool),
        jnp.zeros((2, 4, 7)) if visual else None,
        jnp.ones((2, 4), bool) if visual else None,
        jnp.zeros((2, 10)),
        jnp.zeros((2, 5)),
    ]
    shapes = jax.eval_shape(net.init, key, *example)["params"]
    assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, shapes)

    keys = jax.random.split(key, 8)

    def xavier(key, fan_in, fan_out):
        return np.sqrt(2.0 / (fan_in + fan_out)) * jax.random.normal(key, (fan_in, fan_out))

    # The structure's MLP on [e; r] is one (De + Dr) x H draw, under the names checkpoints of
    # the KCA before linen hold (so they restore).
    structure = params["structure"]
    assert set(structure) == {"hidden", "gate"} and set(structure["hidden"]) == {"kernel", "bias"}
    np.testing.assert_array_equal(structure["hidden"]["kernel"], xavier(keys[0], 10 + 5, 11))
    np.testing.assert_array_equal(structure["gate"]["kernel"], xavier(keys[1], 11, 10))
    guide_length = 4 if visual else 3
    layers = {
        "text_in": (6, 8),
        "text_guide": (5, guide_length * 3),
        "text_out": (guide_length * 8, 9),
    }
    if visual:
        layers.update(visual_in=(7, 8), visual_guide=(5, 4 * 3), visual_out=(3 * 8, 9))
    for index, (layer, (fan_in, fan_out)) in enumerate(layers.items(), start=2):
        np.testing.assert_array_equal(params[layer]["kernel"], xavier(keys[index], fan_in, fan_out))
    biases = [structure["hidden"]["bias"], structure["gate"]["bias"], params["norm"]["bias"]]
    assert all(not np.any(bias) for bias in biases + [params[layer]["bias"] for layer in layers])
    np.testing.assert_array_equal(params["norm"]["scale"], np.ones(8))


def test_scaled_layer_norm_matches_the_formula_and_rounds_in_its_order():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 8)).astype(np.float32)
    scale = rng.normal(size=8).astype(np.float32)
    bias = rng.normal(size=8).astype(np.float32)
    got = np.asarray(
        ScaledLayerNorm().apply({"params": {"scale": scale, "bias": bias}}, jnp.asarray(x))
    )
    x64 = x.astype(np.float64)
    mean = x64.mean(-1, keepdims=True)
    want = (x64 - mean) / np.sqrt(x64.var(-1, keepdims=True) + 1e-5) * scale + bias
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # Bit for bit ((x - mean) * rsqrt(var + eps)) * scale + bias, the rounding of the
    # parameters every KCA run so far trained.
    mean = jnp.mean(x, -1, keepdims=True)
    variance = jnp.mean(jnp.square(x - mean), -1, keepdims=True)
    np.testing.assert_array_equal(got, (x - mean) * jax.lax.rsqrt(variance + 1e-5) * scale + bias)


def test_exploration_schedule():
    epsilon = jax.jit(mmrns_sampler.exploration_epsilon, static_argnums=1)
    assert float(epsilon(0, 10.0)) == pytest.approx(10.0)
    # log(step + 1) = 1 halves it; the reference's step counts from 1.
    assert float(epsilon(math.e - 1, 10.0)) == pytest.approx(5.0)
    values = [float(epsilon(step, 2.0)) for step in (0, 1, 10, 100, 10_000, 100_000)]
    expected = [2.0 / (1 + math.log(step + 1)) for step in (0, 1, 10, 100, 10_000, 100_000)]
    np.testing.assert_allclose(values, expected, rtol=1e-6)
    assert all(a > b for a, b in zip(values, values[1:], strict=False))


def test_contrastive_loss_matches_the_formula():
    rng = np.random.default_rng(0)
    sims = rng.uniform(-1, 1, (2, 3, 6)).astype(np.float32)
    weights = rng.uniform(0.01, 1, (3, 6)).astype(np.float32)
    positive = np.array(
        [[1, 0, 0, 1, 0, 0], [0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1]], bool
    )  # some, none, only positives
    loss = np.asarray(mmrns_sampler.contrastive_loss(sims, weights, positive))
    anchor = math.e / 6  # the anchor itself: cosine 1, weight 1/N
    for m in range(2):
        for b in range(2):
            e = weights[b] * np.exp(sims[m, b])
            expected = -np.log((anchor + e[positive[b]].sum()) / e[~positive[b]].sum())
            assert loss[m, b] == pytest.approx(expected, rel=1e-5)
        assert loss[m, 2] == 0.0  # no negatives in the pool
    grad = jax.grad(lambda s: mmrns_sampler.contrastive_loss(s, weights, positive).sum())(sims)
    assert np.all(np.isfinite(grad))


@pytest.fixture(scope="module")
def umls():
    return load_dataset("umls")


@pytest.fixture(scope="module")
def setup(umls):
    """RotatE on UMLS with synthetic text and visual features; the pool is every entity.

    beta = 0: without the contrastive loss, the sampler's parameters can only get a gradient
    through the negatives' straight-through one-hot in the KGE loss.
    """
    config = mmrns_config(pool_size=1000, beta=0.0)
    model = models.get("rotate", umls.num_entities, umls.num_relations, dim=8, gamma=6.0)
    sampler = negatives.from_config(config.negatives)
    data = TrainData.from_dataset(umls, True, sampler.features(umls.num_entities, config.seed))
    return config, model, sampler, data


def test_train_step_gradients_reach_the_sampler_and_negatives_are_filtered(setup):
    config, model, sampler, data = setup
    optimizer = optax.sgd(1.0)
    state = TrainState.create(model, sampler, optimizer, jax.random.key(0))

    @jax.jit
    def step(state):
        # train_step's own loss, differentiated by one SGD step of rate 1.
        new_state, metrics = steps.train_step(
            state,
            data,
            jax.random.key(1),
            model=model,
            sampler=sampler,
            optimizer=optimizer,
            schedule=optax.constant_schedule(1.0),
            settings=build.step_settings(config),
        )
        grads = jax.tree.map(jnp.subtract, state.sampler_params, new_state.sampler_params)
        return new_state, grads, metrics

    # Step 0 corrupts heads, step 1 tails.
    state, grads, head_metrics = step(state)
    _, _, tail_metrics = step(state)
    for metrics, step_number in ((head_metrics, 0), (tail_metrics, 1)):
        # The pool is the whole vocabulary, so every row has enough true negatives.
        assert float(metrics["negatives_false_rate"]) == 0.0
        assert np.isfinite(float(metrics["contrastive_loss"]))
        assert float(metrics["exploration_epsilon"]) == pytest.approx(
            10.0 / (1 + math.log(step_number + 1))
        )
    leaves = jax.tree_util.tree_leaves_with_path(grads)
    assert {jax.tree_util.keystr(p) for p, _ in leaves} >= {
        "['text_in']['kernel']",
        "['visual_in']['kernel']",
        "['text_guide']['kernel']",
        "['visual_guide']['kernel']",
        "['structure']['gate']['kernel']",
    }
    for path, grad in leaves:
        assert np.all(np.isfinite(grad)), path
        assert np.abs(np.asarray(grad)).max() > 0, (
            f"no gradient reached {jax.tree_util.keystr(path)}"
        )


@pytest.mark.parametrize(
    "batch,matmul_max_groups",
    [(64, 32), (64, 0), (8, 32)],
    ids=["per_relation_matmul", "per_relation_gather", "per_row"],
)
def test_similarities_match_each_pair_computed_alone(setup, monkeypatch, batch, matmul_max_groups):
    # UMLS has 46 relations: 64 rows take the per-relation path (the grouped matmul, or the
    # blocked gather with the threshold at 0), 8 rows the per-row one.
    config, model, sampler, data = setup
    monkeypatch.setattr(similarity, "MATMUL_MAX_GROUPS", matmul_max_groups)
    keys = jax.random.split(jax.random.key(3), 4)
    params = model.init(keys[0])
    sampler_params = sampler.init(keys[1], model)
    pool = jax.random.permutation(keys[2], model.num_entities)[:50].astype(jnp.int32)
    anchors = jax.random.randint(keys[3], (batch,), 0, model.num_entities)
    relations = (jnp.arange(batch) * 7) % model.num_relations
    sims = jax.jit(sampler.similarities, static_argnums=2)(
        sampler_params, params, model, data.features, pool, anchors, relations
    )
    assert sims.shape == (3, batch, 50)  # text, visual, structure

    kca = sampler.kca(model).bind({"params": sampler_params})
    features = data.features

    def alone(ids):
        return kca.entity_terms(
            features["text"][ids],
            features["text_mask"][ids],
            features["visual"][ids],
            features["visual_mask"][ids],
        )

    def one_row(anchor_id, relation_id):
        relation = params["relation"][relation_id]
        anchor = kca.represent_pairs(alone(anchor_id[None]), relation[None])
        pool_reps = kca.represent(alone(pool), relation[None])
        row = [
            similarity.cosine(pool_reps[modality][0], anchor[modality])
            for modality in kca.modalities
        ]
        gated_anchor = kca.structure(params["entity"][anchor_id], relation)
        gated_pool = kca.structure(params["entity"][pool], relation[None])
        return jnp.stack([*row, similarity.cosine(gated_pool, gated_anchor)])

    expected = np.swapaxes(jax.jit(jax.vmap(one_row))(anchors, relations), 0, 1)
    np.testing.assert_allclose(np.asarray(sims), expected, atol=2e-5)


def test_feature_files_and_config_errors(umls, tmp_path):
    config = mmrns_config(visual="none")

    def load():
        sampler = negatives.from_config(config.negatives)
        return sampler.features(umls.num_entities, config.seed)

    good = np.zeros((umls.num_entities, 3, 16), np.float32)
    np.savez(tmp_path / "text.npz", features=good, mask=np.ones(good.shape[:2], bool))
    config.negatives.mmrns.text = str(tmp_path / "text.npz")
    loaded = load()
    assert set(loaded) == {"text", "text_mask"}
    np.save(tmp_path / "wide.npy", np.zeros((umls.num_entities, 3, 17), np.float32))
    config.negatives.mmrns.text = str(tmp_path / "wide.npy")
    with pytest.raises(ConfigError, match=r"expected \(135, 3, 16\)"):
        load()
    config.negatives.mmrns.text = "nonsense"
    with pytest.raises(ConfigError, match="negatives.mmrns.text"):
        load()


def test_split_sentences():
    text = "Virus -- A small agent. It replicates inside cells! Does it? Yes.\nMore."
    assert text_features.split_sentences(text, 4) == [
        "Virus",
        "A small agent.",
        "It replicates inside cells!",
        "Does it?",
    ]
    text = "J.J. Abrams is a director. He was born in N.Y. City. He is No. 1 at Mt. Fuji. Yes."
    assert text_features.split_sentences(text, 3) == [
        "J.J. Abrams is a director.",
        "He was born in N.Y. City.",
        "He is No. 1 at Mt. Fuji.",
    ]
    assert text_features.split_sentences("", 4) == ["-"]


@pytest.mark.skipif(
    not os.environ.get("KGJAX_LONG_TESTS"),
    reason="an end-to-end MMRNS run with description features, about 27 s, beyond CI's budget (the MMRNS golden run covers training end to end); set KGJAX_LONG_TESTS=1",
)
def test_train_end_to_end_with_description_features(tmp_path, monkeypatch):
    folder = DATA_DIR / "umls"
    if not (folder / "kg-bert").is_dir():
        pytest.skip(f"{folder} not found; set KGJAX_DATA_DIR to the shared data folder to run")
    monkeypatch.setenv("KGJAX_CACHE_DIR", str(tmp_path / "cache"))
    # Embedded UMLS triples; sentence vectors of its kg-bert-long descriptions from MiniLM.
    config = mmrns_config(text="descriptions", visual="none", text_width=384, num_sentences=2)
    config.text.descriptions_dir = str(folder)
    config.text.max_length = 32
    config.num_steps = config.eval_every_steps = config.checkpoint_every_steps = 20
    results = train(config, str(tmp_path / "run"), progress=False)
    assert results["steps"] == config.num_steps
    assert 0 < results["test"]["both"]["mrr"] <= 1
    with open(tmp_path / "run" / "metrics.jsonl") as f:
        logged = [json.loads(line) for line in f if '"train"' in line]
    assert all(np.isfinite(event["train/contrastive_loss"]) for event in logged)
    assert logged[-1]["train/loss"] < logged[0]["train/loss"]
