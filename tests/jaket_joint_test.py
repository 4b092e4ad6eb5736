"""JAKET part 2: the knowledge module inside the language model (LM1, merge of E^KM at the
kept mentions, LM2) and its two language losses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kgjax.data import subgraphs
from kgjax.models.jaket import KnowledgePretraining, MaskedEntityHead
from kgjax.models.lm import encoder as encoder_lib
from kgjax.models.lm.heads import MaskedTokenHead
from kgjax.text.masking import mask_tokens
from kgjax.train.jaket import masked_entities
from kgjax.train.jaket.joint_step import TextBatch, language_losses, merged_hidden
from kgjax.train.jaket.step import forward

CONFIG = encoder_lib.EncoderConfig(
    vocab_size=40, hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32, split_layer=1
)
NUM_ENTITIES, NUM_RELATIONS = 12, 3


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(0)
    triples = np.array([[0, 0, 1], [1, 1, 2], [2, 2, 3], [3, 0, 4], [5, 1, 0], [6, 2, 7]])
    adjacency = subgraphs.Adjacency.build(triples, NUM_ENTITIES, NUM_RELATIONS, True)
    graph = subgraphs.full_graph(adjacency)  # node i is entity i
    memory = {
        "entity": jnp.asarray(rng.standard_normal((NUM_ENTITIES, 16)), jnp.float32),
        "relation": jnp.asarray(rng.standard_normal((NUM_RELATIONS, 16)), jnp.float32),
    }
    ids = rng.integers(5, 40, (2, 10))
    mask = np.ones((2, 10), np.int32)
    mask[1, 8:] = 0
    maskable = mask.astype(bool)
    maskable[:, 0] = False
    tokens = mask_tokens(ids, maskable, rng, mask_id=4, vocab_size=40, max_predictions=3)
    dropped_entities = np.array([1, 7])
    candidates, candidate_mask = masked_entities.candidates(
        adjacency, dropped_entities, 4, 2, rng, NUM_ENTITIES
    )
    batch = TextBatch(
        ids=tokens.ids,
        mask=mask,
        token_positions=tokens.positions,
        token_targets=tokens.targets,
        token_weights=tokens.weights,
        spans=np.array([[[2, 3], [6, 6]], [[1, 2], [0, 0]]], np.int32),
        span_nodes=np.array([[0, 3], [2, 0]], np.int32),
        span_mask=np.array([[True, True], [True, False]]),
        dropped_spans=np.array([[[8, 8]], [[4, 5]]], np.int32),
        candidates=candidates.reshape(2, 1, 4),
        candidate_mask=candidate_mask.reshape(2, 1, 4),
        dropped_mask=np.array([[True], [True]]),
        graph=graph,
    )
    km = KnowledgePretraining(num_categories=0, num_relations=NUM_RELATIONS, num_heads=2)
    pair = jnp.zeros(1, jnp.int32)
    # Initialisers jitted: op by op, each would compile on its own.
    km_params = jax.jit(km.init)(
        jax.random.key(1),
        memory["entity"][graph.entity_ids],
        memory["relation"],
        graph.senders,
        graph.receivers,
        graph.relations,
        graph.edge_mask,
        pair,
        pair,
    )["params"]
    encoder_params = jax.jit(encoder_lib.init_params, static_argnums=0)(CONFIG, jax.random.key(2))
    words = encoder_params["embeddings"]["word_embeddings"]["embedding"]
    params = {
        "encoder": encoder_params,
        "model": km_params,
        "token_head": jax.jit(MaskedTokenHead().init)(
            jax.random.key(3), jnp.zeros((2, 3, 16)), words
        )["params"],
        "entity_head": jax.jit(MaskedEntityHead(16).init)(
            jax.random.key(4), jnp.zeros((2, 1, 16)), jnp.zeros((2, 1, 16))
        )["params"],
    }
    return km, params, memory, batch


def test_without_kept_mentions_the_joint_model_is_the_plain_encoder(setup):
    km, params, memory, batch = setup
    empty = batch._replace(span_mask=np.zeros_like(batch.span_mask))
    z = merged_hidden(params["encoder"], CONFIG, km, params["model"], memory, empty)
    plain = encoder_lib.forward(params["encoder"], batch.ids, batch.mask, config=CONFIG)
    np.testing.assert_array_equal(np.asarray(z), np.asarray(plain))


def test_the_merge_adds_each_mentions_e_km_at_its_tokens(setup):
    km, params, memory, batch = setup
    pair = jnp.zeros(1, jnp.int32)
    e_km, _, _ = forward(km, params["model"], memory, batch.graph, pair, pair)
    additions = np.zeros((2, 10, 16), np.float32)
    injected = np.zeros((2, 10), bool)
    for b in range(2):
        for s in range(2):
            if batch.span_mask[b, s]:
                first, last = batch.spans[b, s]
                additions[b, first : last + 1] += np.asarray(e_km)[batch.span_nodes[b, s]]
                injected[b, first : last + 1] = True
    lm1 = encoder_lib.lower(params["encoder"], batch.ids, batch.mask, config=CONFIG)
    merged = encoder_lib.merge(params["encoder"], lm1, additions, injected, config=CONFIG)
    expected = encoder_lib.upper(params["encoder"], merged, batch.mask, config=CONFIG)
    z = merged_hidden(params["encoder"], CONFIG, km, params["model"], memory, batch)
    np.testing.assert_allclose(np.asarray(z), np.asarray(expected), rtol=1e-5, atol=1e-5)


def test_the_language_losses_teach_the_knowledge_module(setup):
    km, params, memory, batch = setup

    def total(params, batch):
        losses = language_losses(params, CONFIG, km, memory, batch)
        return losses["token_loss"] + losses["entity_loss"], losses

    # One compile for both batches (same shapes): eager op-by-op would take far longer.
    value_and_grad = jax.jit(jax.value_and_grad(total, has_aux=True))
    (value, losses), grads = value_and_grad(params, batch)
    assert np.isfinite(float(value))
    assert 0 <= float(losses["token_accuracy"]) <= 1
    km_norm = sum(float(jnp.sum(g**2)) for g in jax.tree.leaves(grads["model"]))
    assert km_norm > 0  # through the merge
    empty = batch._replace(span_mask=np.zeros_like(batch.span_mask))
    _, grads = value_and_grad(params, empty)
    assert all(float(jnp.abs(g).max()) == 0 for g in jax.tree.leaves(grads["model"]))
