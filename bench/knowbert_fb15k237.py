"""KnowBERT over FB15k-237 against the plain encoder on the same texts and budget, 3 seeds.

For each seed, two runs of configs/knowbert.py (CPU cut: 600 steps of 16 linked descriptions):
  - `fb15k237`: LM1 -> KAR -> LM2, the linker's loss over every gold mention plus masked
    language modelling; the entity table MiniLM's "<name>: <Wikidata description>"
    concatenated with the RotatE table (`--extra_path`, a `kgjax export` of
    configs/rotate.py:fb15k237_cpu);
  - `fb15k237_mlm`: the same encoder trained on the same texts with masked language modelling
    alone (no KAR).
Reported on each seed's held-out descriptions (10% of the described entities): linking
accuracy (P, R, F1 over the gold mentions) of the KAR linker and of the prior alone, on every
gold mention and on the ambiguous ones (a span with more than one candidate, where the prior
can be wrong), and masked-LM perplexity: KAR runs with KAR and with KAR bypassed, the plain
runs.

Run (2 CPU cores, about 10 minutes a run; a killed run resumes from its workdir):
  kgjax train --config=configs/rotate.py:fb15k237_cpu --workdir=runs/rotate_fb15k237_cpu
  kgjax export --workdir=runs/rotate_fb15k237_cpu --out=runs/rotate_fb15k237_cpu/entities.npz
  python bench/knowbert_fb15k237.py --seeds=0,1,2
  python bench/knowbert_fb15k237.py --seeds=0,1,2 --report_only
"""

from __future__ import annotations

import os

from absl import app, flags

from kgjax import config as config_lib
from kgjax.train.knowbert.trainer import train

from common import finished_results, machine, mean_sd, write_results

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = ("fb15k237", "fb15k237_mlm")

_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
_VARIANTS = flags.DEFINE_list("variants", list(VARIANTS), "configs/knowbert.py rows.")
_EXTRA = flags.DEFINE_string(
    "extra_path", "runs/rotate_fb15k237_cpu/entities.npz", "The RotatE table ('' for none)."
)
_RUNS = flags.DEFINE_string("runs", "runs", "Workdirs go to <runs>/knowbert_<row>_s<seed>.")
_OVERRIDES = flags.DEFINE_multi_string("set", [], "A config override key=value, repeatable.")
_REPORT_ONLY = flags.DEFINE_bool("report_only", False, "Only report finished runs.")
_OUT = flags.DEFINE_string(
    "out", os.path.join(REPO, "bench", "results", "knowbert_fb15k237"), "Report path stem."
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


def summarise(results: dict[tuple[str, int], dict]) -> dict:
    """Each figure's mean and sd over the seeds that finished, by row."""
    figures: dict[str, list[float]] = {}

    def add(name, value):
        figures.setdefault(name, []).append(float(value))

    for (row, _), r in sorted(results.items()):
        language = r["language/held_out"]
        if "linking/held_out" in r:
            for part in ("held_out", "held_out_ambiguous"):
                block = r[f"linking/{part}"]
                for system in ("kar", "prior"):
                    add(f"{part}/f1/{system}", block[system]["f1"])
                    add(f"{part}/precision/{system}", block[system]["precision"])
                add(f"{part}/mentions", block.get("mentions", block.get("examples")))
            add("perplexity/kar_with_kar", language["with_kar"]["token_perplexity"])
            add("perplexity/kar_bypassed", language["without_kar"]["token_perplexity"])
            add("token_accuracy/kar_with_kar", language["with_kar"]["token_accuracy"])
        else:
            add("perplexity/plain", language["without_kar"]["token_perplexity"])
            add("token_accuracy/plain", language["without_kar"]["token_accuracy"])
        add(f"minutes/{row}", r["train_seconds"] / 60)
    return {name: mean_sd(values) for name, values in figures.items()}


def markdown(summary: dict, payload: dict) -> str:
    def cell(name, digits=3):
        if name not in summary:
            return "-"
        s = summary[name]
        return f"{s['mean']:.{digits}f} ± {s['sd']:.{digits}f} (n={s['n']})"

    def count(name):
        return f"{summary[name]['mean']:,.0f}" if name in summary else "-"

    lines = [
        "# KnowBERT over FB15k-237 against the plain encoder (CPU cut, mean ± sample sd over "
        "seeds)",
        "",
        f"`{payload['command']}`; {payload['machine']['device']} "
        f"({payload['machine']['cpu_count']} cores), jax {payload['machine']['jax']}. "
        f"Entity table: {payload.get('entities', '?')}.",
        "",
        "Held-out descriptions (10% of the described entities), linking over their gold "
        "mentions (precision: correct / answered; F1 with recall over every gold mention, a "
        "mention whose span is cut at L or S counting as unanswered):",
        "",
        "| mentions | count (mean) | KAR linker F1 | prior alone F1 | KAR precision | "
        "prior precision |",
        "|---|---|---|---|---|---|",
    ]
    for part, label in (("held_out", "every gold mention"), ("held_out_ambiguous", "ambiguous")):
        lines.append(
            f"| {label} | {count(f'{part}/mentions')} | {cell(f'{part}/f1/kar')} | "
            f"{cell(f'{part}/f1/prior')} | {cell(f'{part}/precision/kar')} | "
            f"{cell(f'{part}/precision/prior')} |"
        )
    lines += [
        "",
        "Masked-token perplexity and accuracy on the same held-out texts:",
        "",
        "| system | perplexity | token accuracy |",
        "|---|---|---|",
        f"| KnowBERT-FB15k-237 (KAR) | {cell('perplexity/kar_with_kar', 2)} | "
        f"{cell('token_accuracy/kar_with_kar')} |",
        f"| same parameters, KAR bypassed | {cell('perplexity/kar_bypassed', 2)} | - |",
        f"| plain encoder, MLM only (same texts, steps) | {cell('perplexity/plain', 2)} | "
        f"{cell('token_accuracy/plain')} |",
        "",
        f"Training minutes a run: KAR {cell('minutes/fb15k237', 1)}, "
        f"plain {cell('minutes/fb15k237_mlm', 1)}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv) -> None:
    del argv
    seeds = [int(s) for s in _SEEDS.value]
    results = {}
    for seed in seeds:
        for row in _VARIANTS.value:
            folder = workdir(row, seed)
            done = finished_results(folder)
            if done is None and not _REPORT_ONLY.value:
                print(f"training {folder}", flush=True)
                done = train(config_for(row, seed), folder, progress=True)
            if done is not None:
                results[(row, seed)] = done
    summary = summarise(results)
    entities = next((r["entities"] for (row, _), r in results.items() if row == "fb15k237"), None)
    payload = {
        "command": "python bench/knowbert_fb15k237.py --seeds=" + ",".join(map(str, seeds)),
        "overrides": _OVERRIDES.value,
        "extra_path": _EXTRA.value,
        "entities": entities,
        "runs": {f"{row}_s{seed}": workdir(row, seed) for (row, seed) in results},
        "summary": summary,
        "machine": machine(),
    }
    write_results(_OUT.value, payload, markdown(summary, payload))
    print(markdown(summary, payload))


if __name__ == "__main__":
    app.run(main)
