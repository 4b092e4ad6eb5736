"""Downstream tasks of KnowBERT-W (Peters et al., EMNLP 2019, section 4): WiC and SemEval-2010
Task 8, fine-tuning plain MiniLM against MiniLM + KAR (WordNet) from a `knowbert` run.

  wic        WiC (Pilehvar and Camacho-Collados, NAACL 2019): [CLS] s1 [SEP] s2 [SEP], a
             linear classifier on [z_CLS; mean z of the target in s1; in s2] (Peters et al.
             read [CLS] alone: --config.model.pooling=cls); accuracy on dev and test.
  semeval    SemEval-2010 Task 8: "$" around e1 and "#" around e2, a linear classifier on
             the two opening markers' vectors (Baldini Soares et al.'s entity start); the
             official scorer's macro-F1 (9 relations, direction-aware, Other excluded) on a
             seeded 800-sentence dev split of TRAIN_FILE and on TEST_FILE_FULL.
The `_kar` rows put KAR and its entity table from a knowbert run between MiniLM's layers 4
and 5 (the run's encoder too); the plain rows fine-tune MiniLM from its package.

Run (data from $KGJAX_DATA_DIR/wic and /semeval2010_task8; perl for the official scorer):
  kgjax train --config=configs/knowbert_tasks.py:wic --workdir=runs/wic_minilm_s0 \
      --config.seed=0
  kgjax train --config=configs/knowbert_tasks.py:wic_kar --workdir=runs/wic_kar_s0 \
      --config.knowbert_workdir=runs/knowbert_wordnet_s0 --config.seed=0
  kgjax train --config=configs/knowbert_tasks.py:semeval --workdir=runs/semeval_minilm_s0 \
      --config.seed=0
  kgjax train --config=configs/knowbert_tasks.py:semeval_kar --workdir=runs/semeval_kar_s0 \
      --config.knowbert_workdir=runs/knowbert_wordnet_s0 --config.seed=0

Rows. The CPU rows are cuts for 2 cores: L 64 (WiC pairs: 99.97% fit; SemEval: 99.5%),
batches of 16 cut to length buckets 32/48/64; WiC 340 steps (one epoch), SemEval 300 (0.67
epoch), the same for the plain and the `_kar` rows (the runs in bench/results/
knowbert_tasks.md). Steady rates measured on the 2 idle cores (MiniLM, one seed): WiC 2.7
steps/s plain, about 2 with KAR; SemEval 2.3 plain, 1.9 with KAR; a run adds start-up (a
knowbert run's restore and candidate spans: about a minute), one compile per bucket and the
dev/test evaluation (15-40 s). Longer cuts: --config.num_steps (600 still fits 8 minutes
with KAR on idle cores). `_gpu` rows are the full sizes for one accelerator, not run here:
L 128, batches of 32, 4 epochs (KnowBERT's fine-tuning: 2-4 epochs at BERT's rates).
"""

from kgjax.train.knowbert_tasks.config import tasks_config

# name: (task, KAR, steps, examples per step, L)
ROWS = {
    "wic": ("wic", False, 340, 16, 64),
    "wic_kar": ("wic", True, 340, 16, 64),
    "semeval": ("semeval", False, 300, 16, 64),
    "semeval_kar": ("semeval", True, 300, 16, 64),
    # 4 epochs of 32: WiC 5,428 pairs (170 steps each), SemEval 7,200 sentences (225).
    "wic_gpu": ("wic", False, 680, 32, 128),
    "wic_kar_gpu": ("wic", True, 680, 32, 128),
    "semeval_gpu": ("semeval", False, 900, 32, 128),
    "semeval_kar_gpu": ("semeval", True, 900, 32, 128),
}


def get_config(row: str = "wic"):
    if row not in ROWS:
        raise ValueError(f"configs/knowbert_tasks.py: unknown row {row!r}; one of {list(ROWS)}")
    task, kar, num_steps, batch_size, max_length = ROWS[row]
    c = tasks_config(
        task=task,
        command=f"kgjax train --config=configs/knowbert_tasks.py:{row} --workdir=runs/{row}",
        num_steps=num_steps,
        batch_size=batch_size,
    )
    c.kar = kar
    c.data.max_length = max_length
    if "_gpu" in row:
        c.data.length_buckets = (32, 64)
    c.eval_every_steps = num_steps // 2 if "_gpu" not in row else num_steps // 4
    c.checkpoint_every_steps = num_steps // 4
    return c
