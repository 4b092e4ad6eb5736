"""How often a trained model answers a query with the query's own entity.

For (h, r, ?) the own entity is h, for (?, r, t) it is t. Under the standard filtered
protocol it is a candidate like any other (unless the self-loop is a known triple), so a model
whose relations collapsed towards the identity ranks it first and loses Hits@1 everywhere
while Hits@10 barely moves. This reads finished runs back and reports, on one split, both
sides, filtered against train + valid + test:

  mrr          realistic ranks (the mean of the optimistic and pessimistic rank), as
               `kgjax evaluate` computes them: a check that the run read back is the one trained
  own_top1     fraction of queries whose top filtered candidate is the own entity (and the
               own entity is not the answer)
  own_rank     median filtered rank of the own entity
  per relation MRR, for the relations with the most queries

Run (from the repository root, on any workdir of `kgjax train`):
  KGJAX_DATA_DIR=../shared/data python bench/self_prediction.py \
      --workdirs=runs/inductive/wn18rr_15000_text,runs/inductive/wn18rr_15000_uniform \
      --out=bench/results/self_prediction_wn18rr
Writes <out>.json and <out>.md.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform

import jax
import numpy as np

from kgjax import runs
from kgjax.evaluation.link_prediction import score_all

QUERY_BATCH = 256


def known_answers(dataset) -> tuple[dict, dict]:
    """{(h, r): tails} and {(r, t): heads} over every split."""
    tails, heads = collections.defaultdict(set), collections.defaultdict(set)
    for split in ("train", "valid", "test"):
        for h, r, t in dataset.splits[split].tolist():
            tails[(h, r)].add(t)
            heads[(r, t)].add(h)
    return tails, heads


def analyse(workdir: str, split: str, top_relations: int) -> dict:
    run = runs.restore(workdir)
    dataset = runs.load_dataset(run.config.data)
    triples = dataset.splits[split]
    tails, heads = known_answers(dataset)
    ranks, own_top1, own_ranks, relations = [], [], [], []
    for predict_tails in (True, False):
        anchor_column, answer_column = (0, 2) if predict_tails else (2, 0)
        for start in range(0, len(triples), QUERY_BATCH):
            batch = triples[start : start + QUERY_BATCH]
            scores = score_all(
                run.model,
                run.sharded_params,
                batch[:, anchor_column],
                batch[:, 1],
                predict_tails,
                run.layout,
            )
            for row, (h, r, t) in zip(scores, batch.tolist(), strict=True):
                own, answer = (h, t) if predict_tails else (t, h)
                true = tails[(h, r)] if predict_tails else heads[(r, t)]
                row = row.astype(np.float64)
                answer_score = row[answer]
                row[[e for e in true if e != answer]] = -np.inf
                greater = np.sum(row > answer_score)
                ties = np.sum(row == answer_score) - 1
                ranks.append(1 + greater + ties / 2)
                best = int(np.argmax(row))
                own_top1.append(best == own and own != answer)
                own_ranks.append(1 + np.sum(row > row[own]) if own not in true else np.nan)
                relations.append(r)
    ranks = np.asarray(ranks)
    per_relation = collections.defaultdict(list)
    for r, rank in zip(relations, ranks, strict=True):
        per_relation[dataset.relations.names[r]].append(1 / rank)
    busiest = sorted(per_relation.items(), key=lambda kv: -len(kv[1]))[:top_relations]
    return {
        "workdir": workdir,
        "step": run.step,
        "text_init": run.config.text.init,
        "self_negative": run.config.negatives.self_negative,
        "queries": len(ranks),
        "mrr": float(np.mean(1 / ranks)),
        "hits@1": float(np.mean(ranks <= 1)),
        "hits@10": float(np.mean(ranks <= 10)),
        "own_top1": float(np.mean(own_top1)),
        "own_rank_median": float(np.nanmedian(own_ranks)),
        "per_relation": {name: [len(v), float(np.mean(v))] for name, v in busiest},
    }


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        "| run | text init | self-negative | queries | MRR | Hits@1 | Hits@10 | own entity top-1 "
        "| own entity median rank |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| `{os.path.basename(row['workdir'])}` | {row['text_init']} | "
            f"{'yes' if row['self_negative'] else 'no'} | {row['queries']:,} | {row['mrr']:.3f} | "
            f"{row['hits@1']:.3f} | {row['hits@10']:.3f} | {row['own_top1']:.3f} | "
            f"{row['own_rank_median']:.0f} |"
        )
    names = list(rows[0]["per_relation"]) if rows else []
    lines += ["", "MRR per relation (queries):", ""]
    lines.append(
        "| relation | queries | "
        + " | ".join(f"`{os.path.basename(r['workdir'])}`" for r in rows)
        + " |"
    )
    lines.append("|---" * (2 + len(rows)) + "|")
    for name in names:
        cells = [f"{r['per_relation'].get(name, [0, float('nan')])[1]:.3f}" for r in rows]
        lines.append(f"| {name} | {rows[0]['per_relation'][name][0]} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"{meta['device']}, jax {meta['jax']}, Python {meta['python']}; `{meta['command']}`",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdirs", required=True, help="comma-separated run workdirs")
    parser.add_argument("--split", default="test")
    parser.add_argument("--top_relations", type=int, default=8)
    parser.add_argument("--out", required=True, help="writes <out>.json and <out>.md")
    args = parser.parse_args()
    rows = [analyse(w, args.split, args.top_relations) for w in args.workdirs.split(",")]
    meta = {
        "device": jax.devices()[0].device_kind,
        "jax": jax.__version__,
        "python": platform.python_version(),
        "split": args.split,
        "command": "python bench/self_prediction.py "
        f"--workdirs={args.workdirs} --split={args.split} --out={args.out}",
    }
    with open(f"{args.out}.json", "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=2)
    table = markdown(rows, meta)
    with open(f"{args.out}.md", "w") as f:
        f.write(table)
    print(table)


if __name__ == "__main__":
    main()
