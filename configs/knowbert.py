"""KnowBERT (Peters et al., EMNLP 2019): KAR inside MiniLM over WordNet (KnowBERT-W, trained on
WordNet's gloss examples) or over FB15k-237 (trained on its linked description corpus), with
the entity linker's loss and masked language modelling.

MiniLM's LM1 (layers 1..4) -> KAR over every candidate span (WordNet lemmas through morphy,
up to 3 words, the 30 most tagged synsets with smoothed priors) -> LM2 (layers 5..6) -> a
tied masked-token head. Entity table: MiniLM's mean-pooled embeddings of each synset's
"lemmas: definition", frozen (or --config.entities.path; KGE embeddings of the WordNet graph
concatenated later through --config.entities.extra_path). Evaluated on the held-out gloss
examples (5% of synsets, seeded): linking F1 against the prior alone, and masked-LM loss
with and without KAR.

Run (WordNet from $KGJAX_DATA_DIR/wordnet-3.0; gloss embeddings cached in $KGJAX_CACHE_DIR or
~/.cache/kgjax):
  kgjax train --config=configs/knowbert.py:wordnet --workdir=runs/knowbert_wordnet
The plain encoder on the same sentences and budget (masked-token loss only, no KAR):
  kgjax train --config=configs/knowbert.py:wordnet_mlm --workdir=runs/knowbert_wordnet_mlm

Rows. `wordnet` is a CPU-sized cut (2 cores): 8,000 training sentences of the 45,000, 1,000
held-out ones, 500 steps of 16 sentences (1 epoch), a table row for every WordNet synset
(117,659 glosses at 32 word pieces, encoded once and cached: about 10 minutes on the 2 cores;
every row is needed to link new text, e.g. the WSD sets). `wordnet_gpu` is the full-size run
for one accelerator: every gloss example, glosses at 64 word pieces, 20,000 steps of 64
sentences; not run here. The `_mlm` rows are their plain-encoder baselines.

The structural half of KnowBERT's entity table, TuckER embeddings of the whole WordNet graph,
is made by `python bench/wordnet_kge.py --row=wordnet_cpu` (GPU: `--row=wordnet`) and
concatenated with --config.entities.extra_path=runs/wordnet_kge_wordnet_cpu.npz
(bench/knowbert_wordnet.py runs the seeds with it).

FB15k-237 (the KnowBERT-Wiki recipe on a small graph; `kgjax.train.knowbert.knowledge_bases`):
the linked description corpus is the linker's gold (every mention linked by rule self, unique
or adjacency; about 5 a sentence), candidates come from the alias table (KG-BERT names,
Wikidata labels and aliases) with degree priors, 10% of the described entities are held out,
and the entity table is MiniLM's "<name>: <Wikidata description>" concatenated with RotatE
embeddings of the graph ([real, imaginary] parts). Make the RotatE table once, then train:
  kgjax train --config=configs/rotate.py:fb15k237_cpu --workdir=runs/rotate_fb15k237_cpu
  kgjax export --workdir=runs/rotate_fb15k237_cpu --out=runs/rotate_fb15k237_cpu/entities.npz
  kgjax train --config=configs/knowbert.py:fb15k237 --workdir=runs/knowbert_fb15k237
`fb15k237` is the CPU cut: 600 steps of 16 descriptions at 64 word pieces (9,600 draws from
the 13,086 training texts, under one epoch; about 8 minutes on 2 idle cores), every
held-out text, RotatE at dim 100 (configs/rotate.py's fb15k237_cpu, 10,000 steps, test MRR
0.282). `fb15k237_gpu` is the full size: 10,000 steps of 64 at 128
pieces (49 epochs), RotatE at best_config.sh's dim 1000 (`configs/rotate.py:fb15k237`,
exported to runs/rotate_fb15k237/entities.npz); not run here. The `_mlm` rows are the plain
encoder on the same texts and budget.
"""

from kgjax.train.knowbert.config import knowbert_config

# name: (steps, sentences per step, training sentences (0: all), held-out (0: all), table rows)
ROWS = {
    "wordnet": (500, 16, 8000, 1000, "all"),
    "wordnet_mlm": (500, 16, 8000, 1000, "all"),
    "wordnet_gpu": (20000, 64, 0, 0, "all"),
    "wordnet_gpu_mlm": (20000, 64, 0, 0, "all"),
    "fb15k237": (600, 16, 0, 0, "all"),
    "fb15k237_mlm": (600, 16, 0, 0, "all"),
    "fb15k237_gpu": (10000, 64, 0, 0, "all"),
    "fb15k237_gpu_mlm": (10000, 64, 0, 0, "all"),
}
# The RotatE tables of the FB15k-237 rows (`kgjax export` of configs/rotate.py's runs).
FB15K237_KGE = {"cpu": "runs/rotate_fb15k237_cpu/entities.npz",
                "gpu": "runs/rotate_fb15k237/entities.npz"}  # fmt: skip


def get_config(row: str = "wordnet"):
    if row not in ROWS:
        raise ValueError(f"configs/knowbert.py: unknown row {row!r}; one of {list(ROWS)}")
    num_steps, batch_size, num_train, num_held_out, rows = ROWS[row]
    c = knowbert_config(
        command=f"kgjax train --config=configs/knowbert.py:{row} --workdir=runs/knowbert_{row}",
        num_steps=num_steps,
        batch_size=batch_size,
    )
    c.data.num_train_sentences = num_train
    c.data.num_held_out_sentences = num_held_out
    c.entities.rows = rows
    if row.startswith("fb15k237"):
        gpu = "_gpu" in row
        c.data.kb = "fb15k237"
        c.data.held_out_fraction = 0.1  # 1,454 held-out descriptions
        c.data.max_length = 128 if gpu else 64  # whole texts: 95% at 64, 99.8% at 128
        c.data.max_span_words = 5  # allenai/kb's Wiki span width
        c.data.max_candidates = 8  # no FB15k-237 alias denotes more than 7 entities
        c.entities.max_length = 32  # "<name>: <Wikidata description>" is short
        c.entities.extra_path = FB15K237_KGE["gpu" if gpu else "cpu"]
    elif "_gpu" not in row:
        c.data.max_length = 32  # 99.9% of the gloss examples fit (48: 99.996%)
        c.entities.max_length = 32  # 89% of the glosses fit (48: 98%); encoding time halves
    else:
        c.entities.max_length = 64  # 99.7% of the glosses fit
    if row.endswith("_mlm"):  # the plain encoder: no KAR, the masked-token loss alone
        c.encoder.kar = False
        c.loss.linker_weight = 0.0
    c.optimizer.warmup_steps = num_steps // 20
    c.eval_every_steps = num_steps // 4
    c.checkpoint_every_steps = num_steps // 10
    return c
