"""The linked FB15k-237 description corpus: its statistics and a checked sample of its links.

Run (from the repository root; about 15 s on one CPU core):
  KGJAX_DATA_DIR=../shared/data python bench/linked_corpus.py

Builds the corpus with `kgjax.data.linking.link_folder` ($KGJAX_DATA_DIR/fb15k-237: StAR's
descriptions, kg-bert names and Wikidata aliases, `train.txt` for adjacency) and writes
  --corpus (runs/linked_corpus/fb15k237.jsonl)  the whole corpus, JSON lines. FB15k-237's text
      is for non-commercial research use: it stays under runs/ (git-ignored), never committed.
  <out>.json, <out>.md  the corpus and alias-table statistics, the sample's precision.
  <out>_sample.md  a seeded random sample of --sample mentions (seed --seed) with about
      --context characters of context each side, the mention marked [[like this]], and the
      verdict on each link.
The verdicts are not made here: they are read from --verdicts (a TSV of described entity,
start, end, linked entity, verdict, note; verdict one of correct / wrong / unsure), written by
a person who read each context. A sample row gets a verdict only when the file has one for its
exact (described, start, end, linked) mention, so a rebuilt corpus whose links moved shows
blanks rather than stale verdicts.
"""

from __future__ import annotations

import argparse
import collections
import csv
import os
import sys

import numpy as np

from kgjax.data import descriptions, linking

from common import context, machine, write_results

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VERDICTS = ("correct", "wrong", "unsure")
DEFAULT_OUT = os.path.join("bench", "results", "linked_corpus_fb15k237")
WHO = (
    "The verdicts were made by reading each context together with the linked entity's name "
    "and description, by an assistant (an AI model), not a domain expert."
)


def _parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", default=os.environ.get("KGJAX_DATA_DIR"))
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--corpus", default=os.path.join("runs", "linked_corpus", "fb15k237.jsonl"))
    parser.add_argument("--verdicts", default=f"{DEFAULT_OUT}_verdicts.tsv")
    parser.add_argument("--sample", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--context", type=int, default=60)
    return parser.parse_args()


def read_verdicts(path: str) -> dict[tuple[str, int, int, str], tuple[str, str]]:
    """(described, start, end, linked) -> (verdict, note); empty when the file is absent."""
    if not os.path.isfile(path):
        return {}
    out = {}
    with open(path, encoding="utf-8", newline="") as f:
        for line_number, row in enumerate(csv.reader(f, delimiter="\t"), start=1):
            if not row or row[0].startswith("#") or row[0] == "described":
                continue
            described, start, end, linked, verdict, *note = row
            if verdict not in VERDICTS:
                raise ValueError(f"{path}:{line_number}: verdict {verdict!r} not in {VERDICTS}")
            out[(described, int(start), int(end), linked)] = (verdict, " ".join(note).strip())
    return out


def draw_sample(corpus, size: int, seed: int) -> list[tuple[linking.LinkedText, linking.Mention]]:
    """`size` mentions drawn uniformly without replacement, in corpus order."""
    mentions = [(text, m) for text in corpus for m in text.mentions]
    chosen = np.random.default_rng(seed).choice(len(mentions), size=size, replace=False)
    return [mentions[i] for i in sorted(chosen)]


def precision(verdicts: list[str]) -> dict:
    counts = collections.Counter(verdicts)
    judged = counts["correct"] + counts["wrong"]
    return {
        "checked": sum(counts[v] for v in VERDICTS),
        **{v: counts[v] for v in VERDICTS},
        "precision": counts["correct"] / judged if judged else float("nan"),
    }


def main():
    args = _parse_args()
    if not args.data_dir:
        sys.exit("set KGJAX_DATA_DIR (or --data_dir) to the folder holding fb15k-237/")
    folder = os.path.join(args.data_dir, "fb15k-237")
    corpus, aliases = linking.link_folder(folder)
    linking.write_jsonl(os.path.join(REPO, args.corpus), corpus)
    keys = [t.entity for t in corpus]
    names = dict(zip(keys, descriptions.entity_descriptions(folder, keys).mentions, strict=True))

    statistics = linking.corpus_statistics(corpus)
    alias_counts = {
        "aliases": len(aliases),
        "ambiguous_aliases": sum(
            len({e for entities in by_caps.values() for e in entities}) > 1
            for by_caps in aliases.folded.values()
        )
        + sum(len(entities) > 1 for entities in aliases.exact.values()),
        "acronyms": len(aliases.exact),
        "dropped": dict(sorted(aliases.dropped.items())),
    }
    rules = collections.Counter(m.rule for t in corpus for m in t.mentions)

    verdicts = read_verdicts(os.path.join(REPO, args.verdicts))
    rows = []
    for text, m in draw_sample(corpus, args.sample, args.seed):
        verdict, note = verdicts.get((text.entity, m.start, m.end, m.entity), ("", ""))
        rows.append((text, m, verdict, note))
    overall = precision([v for *_, v, _ in rows if v])
    by_rule = {
        rule: precision([v for _, m, v, _ in rows if v and m.rule == rule])
        for rule in linking.RULES
    }
    # What a consumer that keeps only unique and adjacency-resolved links gets.
    without_degree = precision([v for _, m, v, _ in rows if v and m.rule != "degree"])

    command = "python bench/linked_corpus.py " + " ".join(sys.argv[1:])
    meta = {**machine(), "command": command.strip(), "data": folder}
    payload = {
        "meta": meta,
        "statistics": statistics,
        "alias_table": alias_counts,
        "rules": dict(rules),
        "sample": {
            "size": args.sample,
            "seed": args.seed,
            "who": WHO,
            **overall,
            "by_rule": by_rule,
            "without_degree": without_degree,
        },
    }

    def p(x):
        return "n/a" if x != x else f"{x:.3f}"

    def rule_line(rule):
        r = by_rule[rule]
        return (
            f"| {rule} | {rules[rule]:,} | {r['checked']} | {r['correct']} | {r['wrong']} | "
            f"{r['unsure']} | {p(r['precision'])} |"
        )

    s = statistics
    markdown = "\n".join(
        [
            "## The linked FB15k-237 description corpus",
            "",
            "Each entity's StAR description (\"Name -- first sentence\", kgjax's default text for "
            "FB15k-237) linked to the other FB15k-237 entities it mentions "
            "(`kgjax.data.linking`: kg-bert names and Wikidata labels/aliases, greedy longest "
            "match on token boundaries, ambiguity resolved by adjacency in `train.txt`, else "
            "by training degree). Tokens are whitespace-separated words.",
            "",
            "| texts | tokens | mentions | distinct linked entities | texts with a mention | "
            "mentions per text (mean / median) | self-mentions |",
            "|---|---|---|---|---|---|---|",
            f"| {s['texts']:,} | {s['tokens']:,} | {s['mentions']:,} | "
            f"{s['distinct_entities']:,} | {s['texts_with_mentions']:,} | "
            f"{s['mentions_per_text']:.2f} / {s['mentions_per_text_median']:g} | "
            f"{s['self_mentions']:,} |",
            "",
            f"Ambiguous mentions (an alias of several entities): {s['ambiguous_mentions']:,}; "
            f"resolved by adjacency {s['resolved_by_adjacency']:,} "
            f"({s['adjacency_share']:.1%}), by training degree {s['resolved_by_degree']:,}.",
            f"Alias table: {alias_counts['aliases']:,} aliases ({alias_counts['acronyms']:,} "
            f"case-sensitive acronyms), {alias_counts['ambiguous_aliases']:,} of them ambiguous; "
            f"dropped (alias, entity) pairs: "
            + ", ".join(f"{k} {v:,}" for k, v in alias_counts["dropped"].items())
            + ".",
            "",
            f"### Precision on a random sample of {args.sample} mentions (seed {args.seed})",
            "",
            f"Checked {overall['checked']} of {args.sample}: {overall['correct']} correct, "
            f"{overall['wrong']} wrong, {overall['unsure']} unsure; precision "
            f"correct / (correct + wrong) = **{p(overall['precision'])}** (unsure left out). "
            f"{WHO} Rows: `{os.path.basename(args.out)}_sample.md`.",
            "",
            "| rule | mentions in corpus | checked | correct | wrong | unsure | precision |",
            "|---|---|---|---|---|---|---|",
            *[rule_line(rule) for rule in linking.RULES],
            "",
            f"Without the degree-resolved mentions: {without_degree['correct']} correct, "
            f"{without_degree['wrong']} wrong, {without_degree['unsure']} unsure, precision "
            f"{p(without_degree['precision'])} (the same sample's rows, not a new draw).",
            "",
            f"{meta['device']}, Python {meta['python']}; "
            f"`KGJAX_DATA_DIR=../shared/data {meta['command']}`",
            "",
        ]
    )
    write_results(os.path.join(REPO, args.out), payload, markdown)

    lines = [
        f"## Linked FB15k-237 corpus: {args.sample} random mentions (seed {args.seed})",
        "",
        f"Drawn uniformly from the corpus's {s['mentions']:,} mentions of other entities "
        f"(`np.random.default_rng({args.seed})`), in corpus order; context about "
        f"{args.context} characters each side, the mention marked [[like this]]; the rule is "
        "how the linked entity was chosen (unique alias, adjacency, degree). "
        f"{WHO} Precision correct / (correct + wrong): **{p(overall['precision'])}** "
        f"({overall['correct']} correct, {overall['wrong']} wrong, {overall['unsure']} "
        f"unsure, {args.sample - overall['checked']} not checked). FB15k-237 text, "
        "non-commercial research use only.",
        "",
        "| # | described entity | context | linked entity | rule | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for i, (text, m, verdict, note) in enumerate(rows, start=1):
        shown = f"{verdict}: {note}" if note else verdict
        lines.append(
            f"| {i} | {names[text.entity]} | {context(text.text, m.start, m.end, args.context)} "
            f"| {names[m.entity]} (`{m.entity}`) | {m.rule} | {shown.replace('|', '/')} |"
        )
    lines += ["", f"`KGJAX_DATA_DIR=../shared/data {meta['command']}`", ""]
    with open(os.path.join(REPO, f"{args.out}_sample.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    print(markdown)


if __name__ == "__main__":
    main()
