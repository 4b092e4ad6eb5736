"""KnowBERT's downstream tasks: plain MiniLM against MiniLM + KAR (WordNet; FB15k-237), 3 seeds.

For each task (WiC, SemEval-2010 Task 8) and seed, runs of configs/knowbert_tasks.py on the
same examples, steps and seed: `minilm` fine-tunes MiniLM from its package; `kar` fine-tunes
LM1 -> KAR -> LM2 with the entity table of `runs/knowbert_wordnet_s<seed>` (the same seed's
KnowBERT-W run, bench/knowbert_wordnet.py), its encoder and KAR as trained there; `mlm`, the
ablation, fine-tunes the encoder of `runs/knowbert_wordnet_mlm_s<seed>` (the same gloss
sentences and steps, masked-LM only) without KAR.
Reports WiC accuracy (dev, test) and SemEval-2010 Task 8's official macro-F1 (the task's own
perl scorer: 9 relations, direction-aware, Other excluded), mean ± sample sd.

Run (2 CPU cores, about 6 minutes a run, each resumable from its workdir):
  python bench/knowbert_tasks.py --seeds=0,1,2
  python bench/knowbert_tasks.py --seeds=0,1,2 --report_only
"""

from __future__ import annotations

import os

from absl import app, flags

from kgjax import config as config_lib
from kgjax.train.knowbert_tasks.trainer import train

from common import finished_results, machine, mean_sd, write_results

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASKS = ("wic", "semeval")
# system -> (config row suffix, the knowbert run it starts from: <runs>/<name>_s<seed>).
# `mlm` is the ablation of `kar`: MiniLM after the same continued training on the gloss
# examples without KAR (configs/knowbert.py:wordnet_mlm), fine-tuned without KAR.
# `kar_fb` and `mlm_fb` are the same over FB15k-237 (configs/knowbert.py:fb15k237 and
# fb15k237_mlm, bench/knowbert_fb15k237.py): KAR linking to FB15k-237's entities, and its
# ablation, MiniLM after the same continued training on the linked descriptions.
SYSTEMS = {
    "minilm": ("", None),
    "mlm": ("", "knowbert_wordnet_mlm"),
    "kar": ("_kar", "knowbert_wordnet"),
    "mlm_fb": ("", "knowbert_fb15k237_mlm"),
    "kar_fb": ("_kar", "knowbert_fb15k237"),
}
# task -> (figure key in results.json, how it is printed)
FIGURES = {"wic": ("accuracy", "accuracy"), "semeval": ("official_f1", "official macro-F1 (%)")}

_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
_TASKS = flags.DEFINE_list("tasks", list(TASKS), "Tasks.")
_SYSTEMS = flags.DEFINE_list("systems", list(SYSTEMS), "Systems (SYSTEMS).")
_RUNS = flags.DEFINE_string("runs", "runs", "Workdirs: <runs>/<task>_<system>_s<seed>.")
_REPORT_ONLY = flags.DEFINE_bool("report_only", False, "Only report finished runs.")
_OUT = flags.DEFINE_string(
    "out", os.path.join(REPO, "bench", "results", "knowbert_tasks"), "Report path stem."
)


def run(task: str, system: str, seed: int) -> dict | None:
    """A finished run's results, training it first unless --report_only."""
    workdir = os.path.join(_RUNS.value, f"{task}_{system}_s{seed}")
    done = finished_results(workdir)
    if done is not None or _REPORT_ONLY.value:
        return done
    suffix, knowbert = SYSTEMS[system]
    config = config_lib.from_file(os.path.join(REPO, f"configs/knowbert_tasks.py:{task}{suffix}"))
    config_lib.override(config, "seed", seed)
    if knowbert:
        config_lib.override(
            config, "knowbert_workdir", os.path.join(_RUNS.value, f"{knowbert}_s{seed}")
        )
    return train(config, workdir, progress=True)


def main(argv) -> None:
    del argv
    seeds = [int(s) for s in _SEEDS.value]
    summary, minutes = {}, {}
    for task in _TASKS.value:
        key, _ = FIGURES[task]
        for system in _SYSTEMS.value:
            found = [r for r in (run(task, system, s) for s in seeds) if r is not None]
            if not found:
                continue
            for split in ("dev", "test"):
                summary[f"{task}/{system}/{split}"] = mean_sd(
                    [float(r[f"{task}/{split}"][key]) for r in found]
                )
            minutes[f"{task}/{system}"] = mean_sd([r["train_seconds"] / 60 for r in found])
    info = machine()
    command = (
        f"python bench/knowbert_tasks.py --seeds={','.join(map(str, seeds))} "
        f"--tasks={','.join(_TASKS.value)} --systems={','.join(_SYSTEMS.value)}"
    )
    lines = [
        "# KnowBERT downstream: plain MiniLM against MiniLM + KAR (WordNet; FB15k-237), CPU cut",
        "",
        f"`{command}`; {info['device']} ({info['cpu_count']} cores), jax {info['jax']}. "
        "Each KAR run starts from the same seed's `runs/knowbert_wordnet_s<seed>` "
        "(bench/knowbert_wordnet.py) or `runs/knowbert_fb15k237_s<seed>` "
        "(bench/knowbert_fb15k237.py), each MLM ablation from the matching `_mlm` run. "
        "Mean ± sample sd over seeds.",
        "",
        "| task | figure | system | dev | test | train minutes |",
        "|---|---|---|---|---|---|",
    ]
    names = {
        "minilm": "MiniLM",
        "mlm": "MiniLM after MLM on the gloss examples (no KAR)",
        "kar": "MiniLM + KAR (WordNet)",
        "mlm_fb": "MiniLM after MLM on the FB15k-237 descriptions (no KAR)",
        "kar_fb": "MiniLM + KAR (FB15k-237)",
    }
    for task in _TASKS.value:
        for system in _SYSTEMS.value:
            if f"{task}/{system}/dev" not in summary:
                continue
            dev, test = summary[f"{task}/{system}/dev"], summary[f"{task}/{system}/test"]
            digits = 3 if task == "wic" else 2
            lines.append(
                f"| {task} | {FIGURES[task][1]} | {names[system]} | "
                f"{dev['mean']:.{digits}f} ± {dev['sd']:.{digits}f} | "
                f"{test['mean']:.{digits}f} ± {test['sd']:.{digits}f} (n={test['n']}) | "
                f"{minutes[f'{task}/{system}']['mean']:.1f} |"
            )
    markdown = "\n".join(lines) + "\n"
    write_results(
        _OUT.value,
        {"command": command, "summary": summary, "minutes": minutes, "machine": info},
        markdown,
    )
    print(markdown)


if __name__ == "__main__":
    app.run(main)
