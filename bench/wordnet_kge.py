"""KnowBERT-W's structural entity table: KGE embeddings of the whole WordNet 3.0 graph.

KnowBERT's WordNet entities concatenate TuckER embeddings of the WordNet graph with gloss
embeddings (Peters et al., EMNLP 2019, section 4.1). This script makes the TuckER part:
  1. writes every WordNet pointer as a KGE folder (`kgjax.data.wordnet.write_graph_folder`:
     360,578 training triples over 116,650 synsets with a pointer; 2,000 synset pairs held
     out, both directions together, half valid, half test);
  2. trains `configs/tucker.py:<row>` on it (resumes a killed run from its workdir);
  3. writes the table KnowBERT reads through `--config.entities.extra_path`: an .npz with
     `vectors` [117,659, d] and `synsets` [117,659], one row per synset of WordNet; the 1,009
     synsets without a single pointer have no KGE embedding and get a row of zeros (nothing
     structural is known of them; their gloss part still tells them apart);
  4. reports the run's link prediction on the held-out pairs (a check that the embeddings
     learned the graph, not a benchmark: no published figure is on this split) to
     bench/results/wordnet_kge_<row>.{md,json}.

Run (2 CPU cores: the `wordnet_cpu` cut; `--row=wordnet` is the 500-epoch GPU run):
  python bench/wordnet_kge.py --row=wordnet_cpu
then
  kgjax train --config=configs/knowbert.py:wordnet \\
      --config.entities.extra_path=runs/wordnet_kge_wordnet_cpu.npz --workdir=...
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
from absl import app, flags

from kgjax import config as config_lib
from kgjax import runs
from kgjax.data.wordnet import load_wordnet, write_graph_folder
from kgjax.train.kge.trainer import train

from common import finished_results, machine, write_results

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_ROW = flags.DEFINE_string("row", "wordnet_cpu", "configs/tucker.py row: wordnet_cpu | wordnet.")
_GRAPH = flags.DEFINE_string("graph", "runs/wordnet_graph", "The graph folder (written if absent).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Default: runs/tucker_<row>.")
_TABLE = flags.DEFINE_string("table", None, "Default: runs/wordnet_kge_<row>.npz.")
_OUT = flags.DEFINE_string("out", None, "Default: bench/results/wordnet_kge_<row>.")
_OVERRIDES = flags.DEFINE_multi_string(
    "set", [], "A config override key=value (e.g. --set=num_steps=100), repeatable."
)


def full_table(names: np.ndarray, vectors: np.ndarray, synsets: list[str]) -> np.ndarray:
    """The KGE rows in `synsets`' order, zeros for a synset the graph run has no row for.

    Args:
      names: [V'] the run's entity names (synset ids); vectors: [V', d] their embeddings.
      synsets: [V] every synset of WordNet.

    Returns:
      float32 [V, d].
    """
    row_of = {str(name): i for i, name in enumerate(names)}
    table = np.zeros((len(synsets), vectors.shape[1]), np.float32)
    present = [i for i, s in enumerate(synsets) if s in row_of]
    table[present] = vectors[[row_of[synsets[i]] for i in present]]
    return table


def epoch_steps(graph: str, config) -> int:
    """Steps of an epoch: over the distinct (head, relation) queries with their inverses for
    KvsAll, over the training triples with their inverses for 1vsAll."""
    with open(os.path.join(graph, "train.txt")) as f:
        triples = [line.rstrip("\n").split("\t") for line in f]
    if config.training.regime == "KvsAll":
        queries = {(h, r) for h, r, _ in triples} | {(t, r + "^-1") for _, r, t in triples}
        count = len(queries)
    else:
        count = len(triples) * (2 if config.training.reciprocal else 1)
    return -(-count // config.batch_size)


def main(argv) -> None:
    del argv
    row = _ROW.value
    workdir = _WORKDIR.value or f"runs/tucker_{row}"
    table_path = _TABLE.value or f"runs/wordnet_kge_{row}.npz"
    out = _OUT.value or os.path.join(REPO, "bench", "results", f"wordnet_kge_{row}")
    wordnet = load_wordnet()
    if not os.path.isfile(os.path.join(_GRAPH.value, "test.txt")):
        print("graph:", write_graph_folder(wordnet, _GRAPH.value))
    config = config_lib.from_file(os.path.join(REPO, f"configs/tucker.py:{row}"))
    config_lib.override(config, "data.path", _GRAPH.value)
    for item in _OVERRIDES.value:
        key, _, value = item.partition("=")
        config_lib.override(config, key, config_lib.parse_value(value))
    start = time.time()
    results = finished_results(workdir) or train(config, workdir)
    wall = time.time() - start
    exported = f"{table_path}.export.npz"
    runs.export(workdir, exported)
    with np.load(exported) as arrays:
        names, vectors = arrays["entity_names"], arrays["entity_embeddings"]
    os.remove(exported)
    synsets = list(wordnet.synsets)
    table = full_table(names, np.asarray(vectors, np.float32), synsets)
    tmp = f"{table_path}.tmp.npz"
    np.savez(tmp, vectors=table, synsets=np.asarray(synsets))
    os.replace(tmp, table_path)

    test, valid = results["test"]["both"], results["valid"]["both"]
    payload = {
        "config": f"configs/tucker.py:{row}",
        "overrides": _OVERRIDES.value,
        "command": " ".join(
            [f"python bench/wordnet_kge.py --row={row}", *(f"--set={o}" for o in _OVERRIDES.value)]
        ),
        "graph": results["dataset"],
        "table": {
            "path": table_path,
            "rows": len(synsets),
            "width": int(table.shape[1]),
            "zero_rows": len(synsets) - len(names),
        },
        "valid": valid,
        "test": test,
        "steps": results["steps"],
        "train_seconds": results["train_seconds"],
        "steps_per_second": results["steps_per_second"],
        "wall_seconds_this_invocation": wall,
        "machine": machine(),
    }
    steps_per_epoch = epoch_steps(_GRAPH.value, config)
    markdown = (
        f"# TuckER on the WordNet 3.0 graph (KnowBERT-W's structural entity table)\n\n"
        f"`{payload['command']}` (config `{payload['config']}`, "
        f"{results['steps']:,} steps of {config.batch_size}: "
        f"{results['steps'] / steps_per_epoch:.2f} epochs of {steps_per_epoch:,} steps "
        f"({config.training.regime}); "
        f"{results['train_seconds'] / 60:.1f} min of training, "
        f"{results['steps_per_second'] or float('nan'):.2f} steps/s) on {payload['machine']['device']} "
        f"({payload['machine']['cpu_count']} cores), jax {payload['machine']['jax']}.\n\n"
        f"Held-out synset pairs (both directions held out together; filtered, both sides):\n\n"
        f"| split | triples | MRR | Hits@1 | Hits@10 |\n|---|---|---|---|---|\n"
        + "".join(
            f"| {name} | {payload['graph']['num_triples'][name]:,} | {m['mrr']:.3f} | "
            f"{m['hits@1']:.3f} | {m['hits@10']:.3f} |\n"
            for name, m in (("valid", valid), ("test", test))
        )
        + f"\nTable: {payload['table']['rows']:,} rows x {payload['table']['width']} "
        f"(`{table_path}`); {payload['table']['zero_rows']:,} synsets without a pointer are "
        "zero rows.\n"
    )
    write_results(out, payload, markdown)
    print(markdown)
    print(json.dumps(payload["table"]))


if __name__ == "__main__":
    app.run(main)
