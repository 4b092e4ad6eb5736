"""Tests for kgjax.text.init: where descriptions are found, the text-initialised state, and a
text-initialised training run with inductive evaluation on a UMLS inductive split.

Needs the UMLS descriptions (`$KGJAX_DATA_DIR/umls/kg-bert`, default ../shared/data) and the
MiniLM package; skips and says so otherwise. Encodings go to a per-session cache.
"""

import importlib.util
import os
import pathlib

import jax
import numpy as np
import pytest

from kgjax import config as config_lib
from kgjax import runs
from kgjax.data import inductive as split_lib
from kgjax.data.catalog import load_dataset
from kgjax.data.triples import DataError
from kgjax.evaluation import inductive
from kgjax.models.lm import pretrained
from kgjax.text import init as text_init
from kgjax.text import projection as text_projection
from kgjax.train.kge import build
from kgjax.train.kge import config as kge_config_lib
from kgjax.train.kge.trainer import train

REPO = pathlib.Path(__file__).parents[1]
DATA_DIR = pathlib.Path(os.environ.get("KGJAX_DATA_DIR", REPO / ".." / "shared" / "data"))


def _config(**text):
    spec = importlib.util.spec_from_file_location("config", REPO / "configs" / "test.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config("rotate")
    for key, value in text.items():
        config.text[key] = value
    return config


@pytest.fixture(scope="module")
def umls_dir():
    folder = DATA_DIR / "umls"
    if not (folder / "kg-bert" / "entity2textlong.txt").is_file():
        pytest.skip(f"{folder}/kg-bert not found; set KGJAX_DATA_DIR to the shared data folder")
    try:
        pretrained.default_model_path()
    except pretrained.CheckpointError as e:
        pytest.skip(f"needs the MiniLM package: {e}")
    return folder


@pytest.fixture(autouse=True)
def session_cache(tmp_path_factory, monkeypatch):
    # One encoding of UMLS per test session, never in the user's cache.
    monkeypatch.setenv("KGJAX_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "kgjax_cache"))


def test_descriptions_folder_resolution(tmp_path, monkeypatch):
    config = _config(descriptions_dir=str(tmp_path))
    assert text_init.descriptions_folder(config.text, config.data) == tmp_path
    config = _config()
    config.data.path = str(tmp_path / "split")
    assert text_init.descriptions_folder(config.text, config.data) == tmp_path / "split"
    # The embedded UMLS copy has triples only: the error says how to point at texts.
    monkeypatch.delenv("KGJAX_DATA_DIR", raising=False)
    with pytest.raises(DataError, match="KGJAX_DATA_DIR"):
        plain = _config()
        text_init.descriptions_folder(plain.text, plain.data)


def test_config_validates_text_keys():
    for key, value, message in (
        ("init", "bert", "text.init"),
        ("projection", "svd", "text.projection"),
        ("pooling", "cls", "text.pooling"),
        ("source", "wiki", "text.source"),
        ("max_length", 2, "text.max_length"),
        ("ridge_l2", -1.0, "text.ridge_l2"),
    ):
        with pytest.raises(config_lib.ConfigError, match=message):
            kge_config_lib.validate(_config(**{key: value}))


def test_initialise_replaces_the_entity_table_only(umls_dir):
    config = _config(init="text", descriptions_dir=str(umls_dir))
    dataset = load_dataset("umls")
    parts = build.build(config, dataset.num_entities, dataset.num_relations)
    model = parts.model
    state = parts.initial_state(jax.random.key(0))
    plain = _config()
    assert text_init.initialise(plain.text, plain.data, 0, dataset, model, state, False) is state
    text, used = text_init.entity_text_vectors(config.text, config.data, dataset, progress=False)
    assert text.shape == (dataset.num_entities, 384) and not used.fallback
    new = text_init.initialise(config.text, config.data, 0, dataset, model, state, False)
    table = np.asarray(new.params["entity"])
    np.testing.assert_array_equal(
        table, text_init.initial_entities(config.text.projection, 0, dataset, model, text)
    )
    np.testing.assert_array_equal(new.params["relation"], state.params["relation"])
    assert jax.tree.structure(new) == jax.tree.structure(state)
    # Scaled like the uniform init it replaces.
    bound = model.embedding_range
    np.testing.assert_allclose(
        np.sqrt(np.mean(table.astype(np.float64) ** 2)), bound / 3**0.5, rtol=1e-4
    )
    # The table keeps the texts' geometry: its distances follow the standardised vectors'.
    z = text_projection.Standardiser.fit(text)(text)
    upper = np.triu_indices(len(z), 1)
    pairwise = lambda x: np.linalg.norm(x[:, None] - x[None], axis=-1)[upper]
    assert np.corrcoef(pairwise(table), pairwise(z))[0, 1] > 0.95


def test_text_initialised_run_on_an_inductive_split(umls_dir, tmp_path):
    split = tmp_path / "umls_inductive"
    split_lib.make_split(umls_dir, split, fraction=0.1, seed=0)
    config = _config(init="text", inductive=True, source="kg-bert-long")
    config.data.path = str(split)
    results = train(config, str(tmp_path / "run"), progress=False)
    block = results["inductive"]
    assert block["unseen_entities"]["all"] == 14
    assert block["num_triples"]["test_unseen"] == block["num_triples"]["test"] > 0
    # The whole test split touches unseen entities: the run's own test metrics are reused.
    assert block["as_trained"]["test"] == results["test"]
    assert block["from_text"]["test"]["num_triples"] == block["num_triples"]["test"]
    assert block["text_map"]["prior"] == "initial table" and block["text"]["init"] == "text"
    # Embedding texts afresh (as for a brand-new entity) gives the rows the evaluation used.
    run = runs.restore(str(tmp_path / "run"))
    dataset = load_dataset(path=split)
    text_config, seed = run.config.text, run.config.seed
    text, _ = text_init.entity_text_vectors(text_config, run.config.data, dataset, progress=False)
    seen = inductive.seen_entities(dataset.train, dataset.num_entities)
    prior = text_init.initial_entities(text_config.projection, seed, dataset, run.model, text)
    mapped, _ = inductive.fit_unseen(run.params, text, seen, prior=prior)
    embed = inductive.text_embedder(text_config, seed, dataset, run.model, run.params, text)
    np.testing.assert_allclose(
        embed(text[~seen]), np.asarray(mapped["entity"])[~seen], rtol=1e-5, atol=1e-6
    )
