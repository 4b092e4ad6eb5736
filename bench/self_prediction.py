"""How often a trained model answers a query with the query's own entity.

For (h, r, ?) the own entity is h, for (?, r, t) it is t (`kgjax.evaluation.diagnostics`
says why it matters and computes the figures). This reads finished runs back and reports,
on one split, both sides, filtered against train + valid + test:

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
import os

import numpy as np

from kgjax import runs
from kgjax.evaluation import diagnostics
from kgjax.evaluation.link_prediction import score_all
from kgjax.ops.ranking import filtered_ranks
from kgjax.ops.triple_index import DeviceTripleIndex
from kgjax.train.kge.build import load_dataset

from common import machine, write_results

QUERY_BATCH = 256


def analyse(workdir: str, split: str, top_relations: int) -> dict:
    """One row of the table: the run's ranks and own-entity answers on `split`, both sides."""
    run = runs.restore(workdir)
    dataset = load_dataset(run.config.data)
    triples = dataset.splits[split]
    index = DeviceTripleIndex.from_host(dataset.triple_index(("train", "valid", "test")))
    ranks, top1, own_rank, relations = [], [], [], []
    for predict_tails in (True, False):
        anchor_column, answer_column = (0, 2) if predict_tails else (2, 0)
        side = index.tails if predict_tails else index.heads
        for start in range(0, len(triples), QUERY_BATCH):
            batch = triples[start : start + QUERY_BATCH]
            anchors, answers = batch[:, anchor_column], batch[:, answer_column]
            scores = score_all(
                run.model, run.sharded_params, anchors, batch[:, 1], predict_tails, run.layout
            )
            filter_ids, filter_mask = (np.asarray(x) for x in side.answers(anchors, batch[:, 1]))
            optimistic, pessimistic = filtered_ranks(scores, answers, filter_ids, filter_mask)
            ranks.append((np.asarray(optimistic) + np.asarray(pessimistic)) / 2)
            own = diagnostics.own_entity(scores, answers, anchors, filter_ids, filter_mask)
            top1.append(own[0])
            own_rank.append(own[1])
            relations.append(batch[:, 1])
    ranks, relations = np.concatenate(ranks), np.concatenate(relations)
    count, mrr = diagnostics.per_relation_mrr(ranks, relations, dataset.num_relations)
    busiest = [r for r in np.argsort(-count, kind="stable")[:top_relations] if count[r]]
    return {
        "workdir": workdir,
        "step": run.step,
        "text_init": run.config.text.init,
        "self_negative": run.config.negatives.self_negative,
        **diagnostics.self_prediction_metrics(
            ranks, np.concatenate(top1), np.concatenate(own_rank)
        ),
        "per_relation": {
            dataset.relations.names[r]: [int(count[r]), float(mrr[r])] for r in busiest
        },
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
        **machine(),
        "split": args.split,
        "command": "python bench/self_prediction.py "
        f"--workdirs={args.workdirs} --split={args.split} --out={args.out}",
    }
    table = markdown(rows, meta)
    write_results(args.out, {"meta": meta, "rows": rows}, table)
    print(table)


if __name__ == "__main__":
    main()
