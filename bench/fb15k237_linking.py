"""FB15k-237 as KnowBERT's second knowledge base: its alias table, candidate coverage of the
linked description corpus, the prior-only linking accuracy on held-out mentions, and a
seeded sample of alias matches to check by hand.

Run (from the repository root; about 20 CPU seconds, most of it linking the corpus; minutes
of wall time when other runs hold the cores):
  KGJAX_DATA_DIR=../shared/data python bench/fb15k237_linking.py

What it does ($KGJAX_DATA_DIR/fb15k-237):
  1. counts the alias table by source (`linking.read_alias_pairs`, each source normalised
     alone, then all together as `fb15k237_candidates.AliasIndex` uses them);
  2. links the description corpus (`linking.link_folder`, as bench/linked_corpus.py does),
     turns it into sentences of words with gold mentions of every rule
     (`fb15k237_candidates.linked_sentences`) and holds out --held_out of the described
     entities (seed --seed, `split_by_text`);
  3. runs `find_candidates` (--max_span_words, --max_candidates) on every sentence and
     counts, per rule that linked the gold mention: how many gold mentions are a candidate
     span, how often the gold entity is among the span's candidates, and, on the held-out
     sentences, how often the highest prior is the gold entity (the prior-only linker) and
     the mean prior of the gold, for the degree-weighted and the uniform prior; and the
     budgets KnowBERT pads to (spans per sentence, candidates per span);
  4. writes --out.{json,md} and a random sample of --sample candidate spans (seed --seed)
     with the entity of highest prior and about --context characters of context each side
     to --sample_out, for a person to judge. FB15k-237's text is for research use (Freebase
     descriptions, CC BY; the data's README); the sample quotes short excerpts with their
     source named.
With --kge_export (a `kgjax export` of a KGE run on FB15k-237) it also writes KnowBERT's entity
table to --table (`fb15k237_candidates.kge_entity_table`, one row per FB15k-237 entity).
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time

import numpy as np

from kgjax.data import descriptions, linking, triples
from kgjax.data import fb15k237_candidates as fc

from common import context, machine, write_results

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RULES = (fc.SELF, *linking.RULES)


def _parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", default=os.environ.get("KGJAX_DATA_DIR"))
    parser.add_argument("--out", default=os.path.join("bench", "results", "fb15k237_linking"))
    parser.add_argument(
        "--sample_out", default=os.path.join("bench", "results", "fb15k237_alias_sample.md")
    )
    parser.add_argument("--held_out", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max_span_words", type=int, default=fc.MAX_SPAN_WORDS)
    parser.add_argument("--max_candidates", type=int, default=fc.MAX_CANDIDATES)
    parser.add_argument("--sample", type=int, default=30)
    parser.add_argument("--context", type=int, default=60)
    parser.add_argument("--kge_export", default="")
    parser.add_argument("--table", default=os.path.join("runs", "fb15k237_entity_table.npz"))
    return parser.parse_args()


def alias_counts(folder: str, keys: list[str]) -> dict:
    """The alias table's counts, by source and merged."""
    pairs = linking.read_alias_pairs(folder, keys)

    def count(source_pairs):
        table = linking.AliasTable.build(source_pairs)
        by_key = [
            {e for entities in by_caps.values() for e in entities}
            for by_caps in table.folded.values()
        ] + [set(entities) for entities in table.exact.values()]
        return {
            "pairs": len(set(source_pairs)),
            "entities_with_a_pair": len({e for e, _ in source_pairs}),
            "aliases": len(table),
            "acronyms": len(table.exact),
            "entities_covered": len(set().union(*by_key)) if by_key else 0,
            "ambiguous_aliases": sum(len(entities) > 1 for entities in by_key),
            "max_entities_per_alias": max((len(entities) for entities in by_key), default=0),
            "dropped": dict(sorted(table.dropped.items())),
        }

    out = {source: count(pairs[source]) for source in linking.ALIAS_SOURCES}
    out["all"] = count([pair for source in linking.ALIAS_SOURCES for pair in pairs[source]])
    out["all"]["entities"] = len(keys)
    return out


def measure(sentences, found, indices) -> dict:
    """Per rule: gold mentions, with a candidate span, gold among its candidates, and the
    prior-only linker's hits and mean gold prior, over the sentences at `indices`.

    The uniform prior gives each of a span's k candidates 1 / k: every candidate ties, and
    the expected accuracy of a random tie-break is the gold's prior, 1 / k (the same
    candidates: the cut at C never binds on FB15k-237 at C >= 7)."""
    rows = {rule: collections.Counter() for rule in (*RULES, "gold (default rules)", "ambiguous")}
    for i in indices:
        by_span = {
            span: (entities, priors)
            for span, entities, priors in zip(
                found[i].spans, found[i].synsets, found[i].priors, strict=True
            )
        }
        for gold in sentences[i].gold:
            groups = [gold.rule]
            entities, priors = by_span.get(gold.span, ((), ()))
            if gold.rule in fc.GOLD_RULES:
                groups.append("gold (default rules)")
                if len(entities) > 1:
                    groups.append("ambiguous")
            for group in groups:
                row = rows[group]
                row["mentions"] += 1
                row["candidate_span"] += bool(entities)
                if gold.entity in entities:
                    k = entities.index(gold.entity)
                    row["gold_in_candidates"] += 1
                    row["prior_top1"] += k == 0
                    row["gold_prior"] += priors[k]
                    row["uniform_gold_prior"] += 1 / len(entities)
    out = {}
    for group, row in rows.items():
        n = row["mentions"]
        out[group] = {
            "mentions": n,
            "candidate_span": row["candidate_span"],
            "gold_in_candidates": row["gold_in_candidates"],
            "prior_accuracy": row["prior_top1"] / n if n else float("nan"),
            "mean_gold_prior": row["gold_prior"] / n if n else float("nan"),
            "uniform_expected_accuracy": row["uniform_gold_prior"] / n if n else float("nan"),
        }
    return out


def budgets(sentences, found) -> dict:
    spans = np.asarray([len(f.spans) for f in found])
    per_span = np.asarray([len(c) for f in found for c in f.synsets])
    words = np.asarray([len(s.words) for s in sentences])
    gold = np.asarray([sum(g.rule in fc.GOLD_RULES for g in s.gold) for s in sentences])
    gold_lengths = collections.Counter(
        min(b - a + 1, 8) for s in sentences for (a, b), _, rule in s.gold if rule != fc.SELF
    )
    return {
        "words_per_sentence": _summary(words),
        "spans_per_sentence": _summary(spans),
        "candidates_per_span": _summary(per_span),
        "gold_per_sentence": _summary(gold),
        "sentences_without_gold": int(np.sum(gold == 0)),
        "ambiguous_spans": int(np.sum(per_span > 1)),
        "spans": int(spans.sum()),
        "other_gold_mentions_by_words": {
            ("8+" if n == 8 else str(n)): gold_lengths[n] for n in sorted(gold_lengths)
        },
    }


def _summary(x: np.ndarray) -> dict:
    return {
        "mean": float(x.mean()),
        "median": float(np.median(x)),
        "p95": float(np.percentile(x, 95)),
        "max": int(x.max()),
    }


def main():
    args = _parse_args()
    if not args.data_dir:
        sys.exit("set KGJAX_DATA_DIR (or --data_dir) to the folder holding fb15k-237/")
    folder = os.path.join(args.data_dir, "fb15k-237")
    start_time, start_cpu = time.time(), time.process_time()
    keys = list(triples.load_folder(folder).entities.names)
    names = dict(zip(keys, descriptions.entity_descriptions(folder, keys).mentions, strict=True))
    aliases = alias_counts(folder, keys)
    index = fc.AliasIndex.from_folder(folder)

    corpus, _ = linking.link_folder(folder)
    sentences = fc.linked_sentences(corpus, RULES)
    train, held_out = fc.split_by_text(sentences, args.held_out, args.seed)
    held_out_entities = {s.entity for s in held_out}
    held_out_indices = [i for i, s in enumerate(sentences) if s.entity in held_out_entities]

    limits = dict(max_span_words=args.max_span_words, max_candidates=args.max_candidates)
    # CPU time: the machine's cores are shared with other runs, so wall time says little.
    tic = time.process_time()
    found = [fc.find_candidates(s.words, index, **limits) for s in sentences]
    seconds = time.process_time() - tic
    everything = measure(sentences, found, range(len(sentences)))
    held = measure(sentences, found, held_out_indices)
    budget = budgets(sentences, found)
    num_words = sum(len(s.words) for s in sentences)
    train_gold = {g.entity for s in train for g in s.gold if g.rule in fc.GOLD_RULES}
    unseen = sum(
        g.entity not in train_gold for s in held_out for g in s.gold if g.rule in fc.GOLD_RULES
    )

    command = "python bench/fb15k237_linking.py " + " ".join(sys.argv[1:])
    meta = {**machine(), "command": command.strip(), "data": folder}
    payload = {
        "meta": meta,
        "settings": {**limits, "held_out": args.held_out, "seed": args.seed},
        "alias_table": aliases,
        "sentences": {
            "all": len(sentences),
            "train": len(train),
            "held_out": len(held_out),
            "words": num_words,
            "held_out_gold_entities_never_gold_in_train": unseen,
        },
        "all_sentences": everything,
        "held_out_sentences": held,
        "budgets": budget,
        "find_candidates": {
            "cpu_seconds": seconds,
            "sentences_per_second": len(sentences) / seconds,
            "words_per_second": num_words / seconds,
        },
        "wall_seconds": time.time() - start_time,
        "cpu_seconds": time.process_time() - start_cpu,
    }
    if args.kge_export:
        table = fc.kge_entity_table(args.kge_export, keys)
        fc.write_entity_table(os.path.join(REPO, args.table), table)
        payload["entity_table"] = {
            "export": args.kge_export,
            "path": args.table,
            "rows": len(table.entities),
            "width": int(table.vectors.shape[1]),
        }

    def pct(part, whole):
        return f"{part:,} ({part / whole:.1%})" if whole else "0"

    def f3(x):
        return "n/a" if x != x else f"{x:.3f}"

    def coverage_line(group, row):
        return (
            f"| {group} | {row['mentions']:,} | {pct(row['candidate_span'], row['mentions'])} "
            f"| {pct(row['gold_in_candidates'], row['mentions'])} | {f3(row['prior_accuracy'])} "
            f"| {f3(row['mean_gold_prior'])} | {f3(row['uniform_expected_accuracy'])} |"
        )

    header = [
        "| gold mentions linked by | mentions | with a candidate span | gold among candidates "
        "| prior accuracy (degree) | mean gold prior (degree) | uniform prior (expected "
        "accuracy) |",
        "|---|---|---|---|---|---|---|",
    ]
    groups = (*RULES, "gold (default rules)", "ambiguous")
    a = aliases["all"]
    b = budget
    source_rows = [
        f"| {source} | {c['pairs']:,} | {c['entities_with_a_pair']:,} | {c['aliases']:,} | "
        f"{c['acronyms']:,} | {c['entities_covered']:,} | {c['ambiguous_aliases']:,} | "
        f"{c['max_entities_per_alias']} | "
        + ", ".join(f"{k} {v:,}" for k, v in c["dropped"].items())
        + " |"
        for source, c in aliases.items()
    ]
    markdown = "\n".join(
        [
            "## FB15k-237 as a KnowBERT knowledge base: aliases, candidates, prior-only linking",
            "",
            "`kgjax.data.fb15k237_candidates`: every span of up to "
            f"{args.max_span_words} words whose normalised tokens are an alias "
            "(`kgjax.data.linking`'s table and case rules), up to "
            f"{args.max_candidates} candidates, prior p(e|m) = (deg(e) + 1) / sum (deg + 1) "
            "over the alias's entities (training degree).",
            "",
            "### Alias table",
            "",
            "Each source normalised alone, then all together (the table the candidates come "
            "from). Pairs are distinct (entity, alias string); an alias is a distinct "
            "normalised key.",
            "",
            "| source | pairs | entities with a pair | aliases | acronyms | entities covered "
            "| ambiguous aliases | most entities per alias | dropped pairs |",
            "|---|---|---|---|---|---|---|---|---|",
            *source_rows,
            "",
            f"{a['entities_covered']:,} of the {a['entities']:,} FB15k-237 entities have at "
            f"least one alias.",
            "",
            "### The linked description corpus as linker supervision",
            "",
            f"{len(sentences):,} descriptions (StAR, one per entity) as sentences of "
            f"`linking` tokens ({num_words:,} words); held out: {len(held_out):,} of them "
            f"(the texts of {args.held_out:.0%} of the described entities, seed {args.seed}). "
            "Gold mentions are the corpus's links with the rule that made them: `self` "
            "(the described entity's own name), `unique` (an alias of one entity), "
            "`adjacency` (the ambiguous alias's entity adjacent to the described one in "
            "train.txt), `degree` (no neighbour: the highest training degree; not in the "
            "default supervision `GOLD_RULES`). `ambiguous`: default gold mentions whose "
            "span has more than one candidate. Held-out default gold mentions whose entity is "
            f"never a default gold in the training sentences: {unseen:,}.",
            "",
            f"#### Held-out sentences ({len(held_out):,})",
            "",
            *header,
            *[coverage_line(g, held[g]) for g in groups],
            "",
            f"#### All sentences ({len(sentences):,})",
            "",
            *header,
            *[coverage_line(g, everything[g]) for g in groups],
            "",
            "Read with care: the gold mentions were found with the same alias table, so a "
            "gold mention lacks a candidate span only when it is longer than "
            f"{args.max_span_words} words, and its entity is missing from the candidates only "
            "when the cut at C drops it. `unique` mentions are right by construction "
            "(one candidate), `degree` mentions are what the degree prior predicts by "
            "construction; the informative rows are `adjacency` (gold from the graph, "
            "which the prior does not see), `self` and `ambiguous`.",
            "",
            "### Budgets",
            "",
            "| per sentence / span | mean | median | p95 | max |",
            "|---|---|---|---|---|",
            *[
                f"| {name} | {b[key]['mean']:.2f} | {b[key]['median']:g} | "
                f"{b[key]['p95']:g} | {b[key]['max']} |"
                for name, key in (
                    ("words per sentence", "words_per_sentence"),
                    ("candidate spans per sentence (S)", "spans_per_sentence"),
                    ("candidates per span (C)", "candidates_per_span"),
                    ("default gold mentions per sentence", "gold_per_sentence"),
                )
            ],
            "",
            f"{b['spans']:,} candidate spans, {b['ambiguous_spans']:,} of them with more than "
            f"one candidate; sentences without a default gold mention: "
            f"{b['sentences_without_gold']:,}. Gold mentions of other entities by length in words: "
            + ", ".join(f"{k}: {v:,}" for k, v in b["other_gold_mentions_by_words"].items())
            + ".",
            "",
            f"`find_candidates` over all {len(sentences):,} sentences: {seconds:.1f} CPU s "
            f"({num_words / seconds:,.0f} words/s on one core). Whole script: "
            f"{payload['cpu_seconds']:.0f} CPU s, {payload['wall_seconds']:.0f} s wall on "
            "cores shared with other runs.",
            "",
            f"{meta['device']}, {meta['cpu_count']} cores, Python {meta['python']}; "
            f"`KGJAX_DATA_DIR=../shared/data {meta['command']}`",
            "",
        ]
    )
    write_results(os.path.join(REPO, args.out), payload, markdown)

    rng = np.random.default_rng(args.seed)
    every_span = [(i, k) for i, f in enumerate(found) for k in range(len(f.spans))]
    chosen = sorted(rng.choice(len(every_span), size=args.sample, replace=False))
    gold_of = [{g.span: g for g in s.gold} for s in sentences]
    lines = [
        f"## FB15k-237 alias matches: {args.sample} random candidate spans (seed {args.seed})",
        "",
        f"Drawn uniformly from the {len(every_span):,} candidate spans that `find_candidates` "
        f"(up to {args.max_span_words} words, degree-weighted prior) finds in the "
        f"{len(sentences):,} StAR descriptions (`np.random.default_rng({args.seed})`), in "
        "corpus order. Each row: the span marked [[like this]] with about "
        f"{args.context} characters of context, the entity of highest prior (the prior-only "
        "link), its prior and the number of candidates, and the linked corpus's gold at that "
        "span if any (rule). To be judged by a person: is the span a mention of the "
        "prior's entity?",
        "",
        "Text: the FB15k entity descriptions of Xie et al. (DKRL, AAAI 2016) as StAR "
        "redistributes them (Wang et al., WWW 2021; wangbo9719/StAR_KGC), Freebase data "
        "(CC BY 2.5); entity names from KG-BERT (Yao et al., 2019; Freebase). Quoted in short "
        "excerpts for research; FB15k-237 itself is under Microsoft's non-commercial research "
        "licence.",
        "",
        "| # | described entity | context | prior's entity | prior | candidates | corpus gold "
        "| verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n, j in enumerate(chosen, start=1):
        i, k = every_span[j]
        (first, last), entities, priors = (
            found[i].spans[k],
            found[i].synsets[k],
            found[i].priors[k],
        )
        offsets = linking.token_spans(corpus[i].text)
        gold = gold_of[i].get((first, last))
        gold_cell = f"{names[gold.entity]} ({gold.rule})" if gold else "none"
        span_context = context(corpus[i].text, offsets[first][0], offsets[last][1], args.context)
        lines.append(
            f"| {n} | {names[sentences[i].entity]} | {span_context} | "
            f"{names[entities[0]]} (`{entities[0]}`) | {priors[0]:.3f} | {len(entities)} | "
            f"{gold_cell} |  |"
        )
    lines += ["", f"`KGJAX_DATA_DIR=../shared/data {meta['command']}`", ""]
    with open(os.path.join(REPO, args.sample_out), "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    print(markdown)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
