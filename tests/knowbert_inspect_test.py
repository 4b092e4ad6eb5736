"""kgjax.train.knowbert.inspect on a tiny KnowBERT-W run (knowbert_trainer_test's random
2-layer encoder and random entity table, real WordNet): the token vectors before and after KAR
are the ones the model's own held-out evaluation feeds LM2 with KAR bypassed and with it; a
sentence without candidate spans is unchanged; the pieces and spans line up with the
words."""

import dataclasses
import os

import jax
import numpy as np
import optax
import pytest
from knowbert_trainer_test import folder, setup  # noqa: F401  (pytest fixtures, by name)

from kgjax.data.wordnet_examples import tokenise
from kgjax.train.knowbert import step
from kgjax.train.knowbert.inspect import token_vectors

pytestmark = pytest.mark.skipif(
    not os.environ.get("KGJAX_LONG_TESTS"),
    reason="builds a tiny KnowBERT run and compiles LM1, KAR, LM2 and the evaluation, about "
    "30 s of CPU, beyond CI's budget (KAR itself is CI-tested in knowbert_test); set "
    "KGJAX_LONG_TESTS=1",
)

NO_CANDIDATES = ("Zxq", "qvv", ".")  # no word is a WordNet lemma


@pytest.fixture(scope="module")
def params(setup):  # noqa: F811
    # At initialisation KAR already changes every token of a sentence with a candidate span.
    return setup.initial_state(optax.sgd(1.0)).params


def test_vectors_are_what_the_evaluation_feeds_lm2(setup, params):  # noqa: F811
    # 17 sentences: two evaluation batches of 12, the second padded.
    sentences = [e.words for e in setup.held_out_examples] + [NO_CANDIDATES]
    got = token_vectors(setup, params, sentences)
    assert len(got) == len(sentences) == 17

    # The model's own held-out evaluation, every real piece predicted: its "plain" losses come
    # from LM2 over LM1's output, its "kar" losses from LM2 over KAR's.
    prepared = setup.prepare(sentences)
    length = prepared.ids.shape[1]
    rows = np.full(24, -1)
    rows[: len(sentences)] = np.arange(len(sentences))
    batches = [prepared.take(r) for r in rows.reshape(2, 12)]
    batches = [
        b._replace(
            token_positions=np.broadcast_to(np.arange(length, dtype=np.int32), b.ids.shape),
            token_targets=b.ids,
            token_weights=b.mask.astype(bool),
        )
        for b in batches
    ]
    stacked = jax.tree.map(lambda *parts: np.stack(parts), *batches)
    table = np.asarray(setup.table.vectors)
    out = jax.tree.map(np.asarray, step.make_evaluate(setup.model)(params, table, stacked, stacked))

    @jax.jit
    def predictions(hidden, batch):
        z = setup.model.upper(params, hidden, batch.mask)
        return setup.model.token_predictions(params, z, batch)[0]

    width = setup.lm.config.hidden_size
    for g, batch in enumerate(batches):
        for which, name in (("before", "plain_nll"), ("after", "kar_nll")):
            hidden = np.zeros((12, length, width), np.float32)
            for b, j in enumerate(rows.reshape(2, 12)[g]):
                if j >= 0:
                    hidden[b, batch.mask[b].astype(bool)] = getattr(got[j], which)
            real = batch.mask.astype(bool)
            np.testing.assert_allclose(
                np.asarray(predictions(hidden, batch))[real], out[name][g][real], rtol=2e-5,
                atol=2e-5, err_msg=which,
            )  # fmt: skip

    for j, vectors in enumerate(got):
        count = int(prepared.mask[j].sum())
        assert len(vectors.pieces) == count == len(vectors.before) == len(vectors.cosine)
        assert (vectors.pieces[0], vectors.pieces[-1]) == ("[CLS]", "[SEP]")
        # The law of cosines ties the two measures of change together.
        h = np.linalg.norm(vectors.before.astype(np.float64), axis=-1)
        h_new = np.linalg.norm(vectors.after.astype(np.float64), axis=-1)
        np.testing.assert_allclose(
            vectors.change**2, h**2 + h_new**2 - 2 * h * h_new * vectors.cosine, rtol=1e-6,
            atol=1e-6,
        )  # fmt: skip
        # Each span's pieces spell the words `link` reports for it, in the same order.
        words = prepared.word_spans[j, prepared.span_mask[j]]
        assert len(vectors.spans) == len(words)
        for (first, last), (w0, w1) in zip(vectors.spans, words, strict=True):
            spelled = "".join(p.removeprefix("##") for p in vectors.pieces[first : last + 1])
            assert spelled == "".join(sentences[j][w0 : w1 + 1]).lower()
        if len(vectors.spans):
            assert (vectors.change > 0).all() and (vectors.cosine < 1).all()

    # No candidate span: KAR hands LM1's output on bit for bit.
    plain = got[-1]
    assert not len(plain.spans)
    np.testing.assert_array_equal(plain.after, plain.before)
    np.testing.assert_array_equal(plain.change, 0.0)
    np.testing.assert_allclose(plain.cosine, 1.0, rtol=1e-12)
    assert sum(len(v.spans) > 0 for v in got) >= 12


def test_a_run_without_kar_has_no_token_vectors(setup, params):  # noqa: F811
    plain = dataclasses.replace(setup, model=dataclasses.replace(setup.model, use_kar=False))
    with pytest.raises(ValueError, match="without KAR"):
        token_vectors(plain, params, [tokenise("The bank was closed.")])
