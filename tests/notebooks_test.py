"""The Colab notebooks run top to bottom (with short training) in a fresh kernel."""

import importlib.util
import os
import pathlib

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = pathlib.Path(
    os.environ.get("KGJAX_DATA_DIR", pathlib.Path(REPO) / ".." / "shared" / "data")
)


@pytest.mark.parametrize(
    "name",
    [
        "quickstart.ipynb",
        "language_module.ipynb",
        "mmrns.ipynb",
        "jaket_graph.ipynb",
        "jaket.ipynb",
        "knowbert.ipynb",
    ],
)
def test_notebook_runs(name, tmp_path, monkeypatch):
    if name in ("language_module.ipynb", "mmrns.ipynb") and not os.environ.get("KGJAX_LONG_TESTS"):
        # CI's 7-minute budget: the quickstart runs there; these two with KGJAX_LONG_TESTS=1.
        pytest.skip("about 30 s each on 2 cores; set KGJAX_LONG_TESTS=1")
    if name == "jaket_graph.ipynb":
        if not os.environ.get("KGJAX_LONG_TESTS"):
            pytest.skip("WN18RR's whole graph, about a minute of CPU; set KGJAX_LONG_TESTS=1")
        if not (DATA_DIR / "wn18rr" / "kg-bert" / "entity2text.txt").is_file():
            pytest.skip(f"{DATA_DIR}/wn18rr not found; set KGJAX_DATA_DIR to run it")
        monkeypatch.setenv("KGJAX_DATA_DIR", str(DATA_DIR.resolve()))
    if name == "jaket.ipynb":
        if not os.environ.get("KGJAX_LONG_TESTS"):
            pytest.skip(
                "MiniLM over FB15k-237's descriptions twice, minutes of CPU; set KGJAX_LONG_TESTS=1"
            )
        if not (DATA_DIR / "fb15k-237" / "wikidata" / "entity2wikidata.json").is_file():
            pytest.skip(f"{DATA_DIR}/fb15k-237 not found; set KGJAX_DATA_DIR to run it")
        monkeypatch.setenv("KGJAX_DATA_DIR", str(DATA_DIR.resolve()))
    if name == "knowbert.ipynb":
        if not os.environ.get("KGJAX_LONG_TESTS"):
            pytest.skip(
                "20 steps of KnowBERT-W (MiniLM over WordNet), about 2 minutes of CPU; set "
                "KGJAX_LONG_TESTS=1"
            )
        if not (DATA_DIR / "wordnet-3.0" / "data.noun").is_file():
            pytest.skip(f"{DATA_DIR}/wordnet-3.0 not found; set KGJAX_DATA_DIR to run it")
        monkeypatch.setenv("KGJAX_DATA_DIR", str(DATA_DIR.resolve()))
        # Trained here, whatever runs/ holds, with a random entity table (a row for every
        # synset): MiniLM encoding the glosses would take most of the test's time.
        monkeypatch.setenv("KGJAX_NOTEBOOK_RUN", str(tmp_path / "no_run"))
        from kgjax.data import wordnet

        synsets = np.array(list(wordnet.load_wordnet(DATA_DIR).synsets))
        vectors = np.random.default_rng(0).standard_normal((len(synsets), 16), np.float32)
        np.savez(tmp_path / "entities.npz", vectors=vectors, synsets=synsets)
        monkeypatch.setenv("KGJAX_NOTEBOOK_ENTITIES", str(tmp_path / "entities.npz"))
    if name == "mmrns.ipynb":
        if importlib.util.find_spec("matplotlib") is None:
            pytest.skip("colab/mmrns.ipynb plots with matplotlib; runs once it is installed")
        # The structural branch alone: the text path (MiniLM over the UMLS sentences) is
        # mmrns_test's end-to-end test, and encoding here would double the notebook's time.
        monkeypatch.delenv("KGJAX_DATA_DIR", raising=False)
    if name == "language_module.ipynb":
        if not (DATA_DIR / "umls" / "kg-bert" / "entity2textlong.txt").is_file():
            pytest.skip(f"{DATA_DIR}/umls/kg-bert not found; set KGJAX_DATA_DIR to run it")
        monkeypatch.setenv("KGJAX_DATA_DIR", str(DATA_DIR.resolve()))
    # Enough steps for the curves and metrics to exist; MMRNS trains three models.
    steps = {"mmrns.ipynb": "60", "jaket.ipynb": "20", "knowbert.ipynb": "20"}.get(name, "200")
    monkeypatch.setenv("KGJAX_NOTEBOOK_STEPS", steps)
    monkeypatch.setenv("KGJAX_TFDS_DIR", str(tmp_path / "tfds"))
    monkeypatch.setenv("KGJAX_CACHE_DIR", str(tmp_path / "cache"))
    notebook = nbformat.read(os.path.join(REPO, "colab", name), as_version=4)
    NotebookClient(
        notebook,
        # jaket: a cell encodes 14,541 descriptions; knowbert: a cell builds, trains and restores.
        timeout=1800 if name in ("jaket.ipynb", "knowbert.ipynb") else 300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    outputs = "".join(
        output.get("text", "") + str(output.get("data", {}).get("text/plain", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )
    assert "Error" not in outputs
    if name == "jaket.ipynb":  # pre-trained, refreshed, compared on FewRel, neighbours listed
        assert "refreshed at [20]" in outputs and "5-way 5-shot" in outputs
        assert "head mention:" in outputs
    elif name == "knowbert.ipynb":  # trained here, restored, linked, and the tokens' change listed
        assert "trained 20 steps" in outputs and "linking F1" in outputs
        assert "chosen" in outputs and "cos(H, H')" in outputs
    elif name == "jaket_graph.ipynb":  # trained, classified, and attention listed
        assert "category/held_out" in outputs and "predicted" in outputs
        assert "edges into" in outputs
    else:
        assert "test MRR" in outputs
