"""JAKET's knowledge module (Yu et al., AAAI 2022) pre-trained on a graph alone: entity
category prediction and relation prediction from relational graph attention over E^(0), the
LM1 (MiniLM) vectors of the entities' descriptions.

Run (the argument after the colon picks a row of ROWS; descriptions and categories are read
from $KGJAX_DATA_DIR, laid out like ../shared/data):
  kgjax train --config=configs/jaket_km.py:wn18rr --workdir=runs/jaket_km_wn18rr
  kgjax train --config=configs/jaket_km.py:fb15k237 --workdir=runs/jaket_km_fb15k237
  kgjax train --config=configs/jaket_km.py:umls --workdir=runs/jaket_km_umls  # seconds, CPU
Unseen graph (JAKET's point): pre-train on FB15k-237, then fine-tune on WN18RR, whose entities
and relations it never saw, from 1% (or 10%) of the synsets' labels, and classify the rest:
  kgjax train --config=configs/jaket_km.py:wn18rr_1pct --workdir=runs/jaket_km_wn18rr_1pct \
      --config.model.init_from=runs/jaket_km_fb15k237
(without init_from: the same few-label run from scratch, its baseline).
Ablations (same data and budget): --config.memory.init=random (no text), --config.model.
num_layers=0 (no GAT), --config.model.aggregation=mean (GCN-style mean).

Link prediction with the knowledge module as encoder (CompGCN-style; the `_lp` rows train it
alone, the decoder a KGE interaction, `--config.model.decoder=transe|rotate|...`), from
scratch or from a pre-trained module of the same graph:
  kgjax train --config=configs/jaket_km.py:wn18rr_lp --workdir=runs/jaket_km_wn18rr_lp \
      --config.model.init_from=runs/jaket_km_wn18rr

WN18RR's categories are the 45 WordNet lexicographer files, FB15k-237's the coarse Freebase
domain of the entities typed in fb15ket-partial (kgjax.data.categories); a seeded 20% of the
labelled entities is held out of pre-training and classified at the end. UMLS has neither
descriptions nor categories: its row trains relation prediction from random E^(0), a check
that the trainer runs anywhere. JAKET's own settings are not published beyond the layer
equations (no code): 2 layers, 4 heads, fan-outs (10, 5) and Adam 1e-3 are chosen here.
"""

from kgjax.train.jaket.config import km_config

# name: (dataset, categories, steps, roots per step, labelled share held out of training)
# CPU-sized: 2,000 steps of 64 roots see about 1.5 epochs of WN18RR's pairs. The `_gpu` rows
# are the full-size runs for one accelerator (ten times the steps, four times the roots and
# pairs per step; the budgets grow with the roots): not run on this CPU.
ROWS = {
    "wn18rr": ("wn18rr", "dataset", 2000, 64, 0.2),
    "wn18rr_1pct": ("wn18rr", "dataset", 500, 64, 0.99),
    "wn18rr_10pct": ("wn18rr", "dataset", 500, 64, 0.9),
    "fb15k237": ("fb15k237", "dataset", 2000, 64, 0.2),
    "umls": ("umls", "none", 300, 32, 0.2),
    "wn18rr_lp": ("wn18rr", "none", 2000, 64, 0.2),
    "fb15k237_lp": ("fb15k237", "none", 2000, 64, 0.2),
    "wn18rr_gpu": ("wn18rr", "dataset", 20000, 256, 0.2),
    "fb15k237_gpu": ("fb15k237", "dataset", 20000, 256, 0.2),
    "wn18rr_lp_gpu": ("wn18rr", "none", 20000, 256, 0.2),
    "fb15k237_lp_gpu": ("fb15k237", "none", 20000, 256, 0.2),
}


def get_config(row: str = "umls"):
    if row not in ROWS:
        raise ValueError(f"configs/jaket_km.py: unknown row {row!r}; one of {list(ROWS)}")
    dataset, categories, num_steps, num_roots, held_out = ROWS[row]
    c = km_config(
        command=f"kgjax train --config=configs/jaket_km.py:{row} --workdir=runs/jaket_km_{row}",
        dataset=dataset,
        categories=categories,
        num_steps=num_steps,
        num_roots=num_roots,
    )
    c.categories.held_out_fraction = held_out
    if held_out > 0.5:  # few labels: walks start at the labelled synsets
        c.sampler.roots_from = "labelled"
    if row == "umls":
        c.memory.init = "random"
    if dataset == "fb15k237" and categories == "dataset":
        c.categories.min_count = 10  # 69 domains, 27 of them under 10 entities
    gpu = row.endswith("_gpu")
    if gpu:
        c.loss.num_pairs = 256
    if "_lp" in row:  # link prediction alone
        c.loss.relation_weight = 0.0
        c.loss.link_weight = 1.0
        c.loss.num_pairs = 512 if gpu else 128
    return c
