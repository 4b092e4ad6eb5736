"""JAKET (Yu et al., AAAI 2022) joint pre-training: the knowledge module inside MiniLM.

Four tasks per step (weights in `loss`): on a subgraph around random-walk roots, the knowledge
module's entity category and relation prediction; on linked FB15k-237 descriptions (entity
mentions found by `kgjax.data.linking`), masked token prediction and masked entity prediction
from LM2's output after E^KM has been merged into LM1's output at each kept mention. The
entity context memory (LM1 over the descriptions) is refreshed on JAKET's schedule.

Run (descriptions, aliases and categories from $KGJAX_DATA_DIR, laid out like
../shared/data; the corpus is linked at start, about 15 s, or read from --config.corpus.path):
  kgjax train --config=configs/jaket.py:fb15k237 --workdir=runs/jaket_fb15k237
Ablations on the same data and budget: --config.memory.refresh=False (E^(0) never refreshed),
--config.loss.token_weight=0 / entity_weight=0 (one language task),
--config.loss.category_weight=0 --config.loss.relation_weight=0 (no KM tasks).
MiniLM's continued masked-LM pre-training on the same texts and budget (the "more text"
baseline of the downstream tables): the `fb15k237_mlm` row, or the flags
--config.corpus.merge=False --config.loss.entity_weight=0 --config.loss.category_weight=0
--config.loss.relation_weight=0.

Rows. `fb15k237` is a CPU-sized cut (2 cores: 1,000 steps of 8 texts and 32 roots, the
memory refreshed at steps 100, 300, 700); `fb15k237_gpu` is the full-size run for one
accelerator (JAKET's refresh schedule I_init=10, a=2, r=3, I_max=500 and momentum 0.8; 20,000
steps of 64 texts, 256 roots), not run here. JAKET's own batch sizes and step counts are not
published for this setting (its corpus is Wikipedia with Wikidata5M, far larger).
"""

from kgjax.train.jaket.pretraining_config import pretraining_config

# name: (steps, texts per step, KM roots per step, fan-outs, refresh I_init, a, r, I_max)
ROWS = {
    "fb15k237": (1000, 8, 32, (5, 3), 100, 2, 1, 400),
    "fb15k237_gpu": (20000, 64, 256, (10, 5), 10, 2, 3, 500),
    "fb15k237_mlm": (1000, 8, 32, (5, 3), 100, 2, 1, 400),
    # The seen part of an inductive split (link prediction on its held-out entities later):
    # half the CPU row's steps, refreshed at 100 and 300. Needs --config.data.path (the seen
    # graph) and --config.categories.path (entity<TAB>domain lines), as bench/jaket_unseen.py
    # writes them.
    "fb15k237_seen": (500, 8, 32, (5, 3), 100, 2, 1, 400),
    "fb15k237_seen_mlm": (500, 8, 32, (5, 3), 100, 2, 1, 400),
}


def get_config(row: str = "fb15k237"):
    if row not in ROWS:
        raise ValueError(f"configs/jaket.py: unknown row {row!r}; one of {list(ROWS)}")
    num_steps, texts, roots, fanouts, initial, growth, repeats, maximum = ROWS[row]
    c = pretraining_config(
        command=f"kgjax train --config=configs/jaket.py:{row} --workdir=runs/jaket_{row}",
        dataset="fb15k237",
        categories="dataset",
        num_steps=num_steps,
        num_roots=roots,
        fanouts=fanouts,
    )
    c.categories.min_count = 10  # as configs/jaket_km.py: 69 domains, 27 under 10 entities
    if "_seen" in row:  # a folder of its own: no catalog name to find its categories by
        c.categories.source = "file"
    c.corpus.batch_size = texts
    c.memory.refresh_initial = initial
    c.memory.refresh_growth = growth
    c.memory.refresh_repeats = repeats
    c.memory.refresh_maximum = maximum
    if row.endswith("_mlm"):  # the language model alone: masked tokens, nothing merged
        c.corpus.merge = False
        c.loss.entity_weight = c.loss.category_weight = c.loss.relation_weight = 0.0
        c.memory.refresh = False  # nothing reads the memory
    c.eval_every_steps = num_steps // 4
    c.checkpoint_every_steps = num_steps // 10
    return c
