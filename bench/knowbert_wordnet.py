"""KnowBERT-W against the plain encoder on the same sentences and budget, 3 seeds.

For each seed, two runs of configs/knowbert.py (CPU cut: 1,000 steps of 16 gloss examples):
  - `wordnet`: LM1 -> KAR -> LM2, the linker's loss plus masked language modelling, the entity
    table MiniLM's gloss embeddings concatenated with TuckER embeddings of the WordNet graph
    (`--extra_path`, from bench/wordnet_kge.py);
  - `wordnet_mlm`: the same encoder trained on the same sentences with masked language
    modelling alone (no KAR).
Reported on each seed's held-out gloss examples (synsets never gold in its training):
linking F1 of the KAR linker and of the prior alone (the most frequent sense), and masked-LM
loss and perplexity: KAR runs with KAR and with KAR bypassed, the plain runs. Where
bench/knowbert_wsd.py has written `<workdir>/wsd.json`, its F1 on Senseval-2 and
SemEval-2007 joins the table.

Run (2 CPU cores, about 20 minutes a run; a killed run resumes from its workdir):
  python bench/wordnet_kge.py --row=wordnet_cpu
  python bench/knowbert_wordnet.py --seeds=0,1,2
  python bench/knowbert_wordnet.py --seeds=0,1,2 --report_only
"""

from __future__ import annotations

import json
import os

from absl import app, flags

from kgjax import config as config_lib
from kgjax.data.wordnet import load_wordnet
from kgjax.train.knowbert.trainer import train

from common import finished_results, machine, mean_sd, write_results

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = ("wordnet", "wordnet_mlm")

_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
_VARIANTS = flags.DEFINE_list("variants", list(VARIANTS), "configs/knowbert.py rows.")
_EXTRA = flags.DEFINE_string(
    "extra_path", "runs/wordnet_kge_wordnet_cpu.npz", "The TuckER table ('' for none)."
)
_RUNS = flags.DEFINE_string("runs", "runs", "Workdirs go to <runs>/knowbert_<row>_s<seed>.")
_OVERRIDES = flags.DEFINE_multi_string("set", [], "A config override key=value, repeatable.")
_REPORT_ONLY = flags.DEFINE_bool("report_only", False, "Only report finished runs.")
_OUT = flags.DEFINE_string(
    "out", os.path.join(REPO, "bench", "results", "knowbert_wordnet"), "Report path stem."
)


def workdir(row: str, seed: int) -> str:
    return os.path.join(_RUNS.value, f"knowbert_{row}_s{seed}")


def config_for(row: str, seed: int):
    config = config_lib.from_file(os.path.join(REPO, f"configs/knowbert.py:{row}"))
    config_lib.override(config, "seed", seed)
    config_lib.override(config, "entities.extra_path", _EXTRA.value)
    for item in _OVERRIDES.value:
        key, _, value = item.partition("=")
        config_lib.override(config, key, config_lib.parse_value(value))
    return config


def summarise(results: dict[tuple[str, int], dict], wsd: dict[tuple[str, int], dict]) -> dict:
    """Each figure's mean and sd over the seeds that finished, by row."""
    figures: dict[str, list[float]] = {}

    def add(name, value):
        figures.setdefault(name, []).append(float(value))

    for (row, _), r in sorted(results.items()):
        language = r["language/held_out"]
        if row == "wordnet":
            linking = r["linking/held_out"]
            add("linking_f1/kar", linking["kar"]["f1"])
            add("linking_f1/prior", linking["prior"]["f1"])
            add("perplexity/kar_with_kar", language["with_kar"]["token_perplexity"])
            add("perplexity/kar_bypassed", language["without_kar"]["token_perplexity"])
            add("token_accuracy/kar_with_kar", language["with_kar"]["token_accuracy"])
        else:
            add("perplexity/plain", language["without_kar"]["token_perplexity"])
            add("token_accuracy/plain", language["without_kar"]["token_accuracy"])
        add(f"minutes/{row}", r["train_seconds"] / 60)
    for _, w in sorted(wsd.items()):
        for name, block in w.get("sets", {}).items():
            for system, scores in block.items():
                if isinstance(scores, dict) and "f1" in scores:
                    add(f"wsd_f1/{name}/{system}", scores["f1"])
    return {name: mean_sd(values) for name, values in figures.items()}


def markdown(summary: dict, payload: dict) -> str:
    def cell(name, digits=3):
        if name not in summary:
            return "-"
        s = summary[name]
        return f"{s['mean']:.{digits}f} ± {s['sd']:.{digits}f} (n={s['n']})"

    lines = [
        "# KnowBERT-W against the plain encoder (CPU cut, mean ± sample sd over seeds)",
        "",
        f"`{payload['command']}`; {payload['machine']['device']} "
        f"({payload['machine']['cpu_count']} cores), jax {payload['machine']['jax']}. "
        f"Entity table: {payload.get('entities', '?')}.",
        "",
        "Held-out gloss examples (synsets never gold in training), linking F1:",
        "",
        "| KAR linker | prior alone (most frequent sense) |",
        "|---|---|",
        f"| {cell('linking_f1/kar')} | {cell('linking_f1/prior')} |",
        "",
        "Masked-token perplexity and accuracy on the same held-out sentences:",
        "",
        "| system | perplexity | token accuracy |",
        "|---|---|---|",
        f"| KnowBERT-W (KAR) | {cell('perplexity/kar_with_kar', 2)} | "
        f"{cell('token_accuracy/kar_with_kar')} |",
        f"| same parameters, KAR bypassed | {cell('perplexity/kar_bypassed', 2)} | - |",
        f"| plain encoder, MLM only (same sentences, steps) | {cell('perplexity/plain', 2)} | "
        f"{cell('token_accuracy/plain')} |",
        "",
    ]
    wsd_rows = sorted(name for name in summary if name.startswith("wsd_f1/"))
    if wsd_rows:
        lines += ["WSD F1 (bench/knowbert_wsd.py, each seed's KAR run):", ""]
        lines += ["| set / system | F1 |", "|---|---|"]
        lines += [f"| {name[len('wsd_f1/') :]} | {cell(name)} |" for name in wsd_rows]
        lines.append("")
    lines.append(
        f"Training minutes a run: KAR {cell('minutes/wordnet', 1)}, "
        f"plain {cell('minutes/wordnet_mlm', 1)}."
    )
    return "\n".join(lines) + "\n"


def main(argv) -> None:
    del argv
    seeds = [int(s) for s in _SEEDS.value]
    wordnet = None
    results, wsd = {}, {}
    for seed in seeds:
        for row in _VARIANTS.value:
            folder = workdir(row, seed)
            done = finished_results(folder)
            if done is None and not _REPORT_ONLY.value:
                wordnet = wordnet or load_wordnet()
                print(f"training {folder}", flush=True)
                done = train(config_for(row, seed), folder, progress=True, wordnet=wordnet)
            if done is not None:
                results[(row, seed)] = done
            wsd_path = os.path.join(folder, "wsd.json")
            if os.path.isfile(wsd_path):
                with open(wsd_path) as f:
                    wsd[(row, seed)] = json.load(f)
    summary = summarise(results, wsd)
    entities = next((r["entities"] for (row, _), r in results.items() if row == "wordnet"), None)
    payload = {
        "command": "python bench/knowbert_wordnet.py --seeds=" + ",".join(map(str, seeds)),
        "overrides": _OVERRIDES.value,
        "extra_path": _EXTRA.value,
        "entities": entities,
        "runs": {f"{row}_s{seed}": folder_of for (row, seed), folder_of in results.items()},
        "summary": summary,
        "machine": machine(),
    }
    write_results(_OUT.value, payload, markdown(summary, payload))
    print(markdown(summary, payload))


if __name__ == "__main__":
    app.run(main)
