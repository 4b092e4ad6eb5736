"""BERT's masking (host) and the tied masked-token head, against their definitions."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special

from kgjax.models.lm.heads import MaskedTokenHead, gather_positions
from kgjax.text.masking import mask_tokens


def test_masking_picks_15_percent_of_maskable_tokens_with_80_10_10_replacements():
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, 2000, (400, 64))
    maskable = np.ones_like(ids, bool)
    maskable[:, 0] = maskable[:, -1] = False  # [CLS], [SEP]
    maskable[::4, 40:] = False  # padding
    out = mask_tokens(ids, maskable, np.random.default_rng(1), mask_id=103, vocab_size=999)
    again = mask_tokens(ids, maskable, np.random.default_rng(1), mask_id=103, vocab_size=999)
    for a, b in zip(out, again, strict=True):
        np.testing.assert_array_equal(a, b)
    counts = out.weights.sum(axis=1)
    expected = np.minimum(20, np.floor(maskable.sum(axis=1) * 0.15 + 0.5))
    np.testing.assert_array_equal(counts, expected)
    rows, slots = np.nonzero(out.weights)
    positions = out.positions[rows, slots]
    assert maskable[rows, positions].all()  # specials and padding never chosen
    np.testing.assert_array_equal(out.targets[rows, slots], ids[rows, positions])
    new = out.ids[rows, positions]
    as_mask, kept = np.mean(new == 103), np.mean(new == ids[rows, positions])
    random = np.mean((new != 103) & (new != ids[rows, positions]))
    assert abs(as_mask - 0.8) < 0.03 and abs(kept - 0.1) < 0.02 and abs(random - 0.1) < 0.02
    untouched = np.ones_like(maskable)
    untouched[rows, positions] = False
    np.testing.assert_array_equal(out.ids[untouched], ids[untouched])


def test_masked_token_head_matches_its_formula():
    rng = np.random.default_rng(2)
    hidden = rng.standard_normal((2, 7, 8)).astype(np.float32)
    words = rng.standard_normal((11, 8)).astype(np.float32)
    positions = np.array([[0, 3, 6], [2, 2, 5]], np.int32)
    picked = gather_positions(jnp.asarray(hidden), jnp.asarray(positions))
    np.testing.assert_array_equal(np.asarray(picked), hidden[np.arange(2)[:, None], positions])
    for identity in (True, False):
        head = MaskedTokenHead(identity_init=identity)
        params = head.init(jax.random.key(0), picked, words)["params"]
        if identity:
            np.testing.assert_array_equal(np.asarray(params["transform"]["kernel"]), np.eye(8))
        params = jax.tree.map(lambda x: x + 0.1 * rng.standard_normal(x.shape), params)
        logits = np.asarray(head.apply({"params": params}, picked, words))
        x = np.asarray(picked) @ np.asarray(params["transform"]["kernel"])
        x = x + np.asarray(params["transform"]["bias"])
        x = 0.5 * x * (1 + special.erf(x / np.sqrt(2)))
        x = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-12)
        x = x * np.asarray(params["norm"]["scale"]) + np.asarray(params["norm"]["bias"])
        expected = x @ words.T + np.asarray(params["bias"])
        np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
