"""ComplEx-N3 (Lacroix, Usunier, Obozinski, ICML 2018): reciprocal relations, 1vsAll, N3.

Run (the argument after the colon picks a row of ROWS):
  kgjax train --config=configs/complex_n3.py:fb15k237 --workdir=runs/complex_n3_fb15k237
  kgjax train --config=configs/complex_n3.py:wn18rr --workdir=runs/complex_n3_wn18rr
  kgjax train --config=configs/complex_n3.py:fb15k237_cpu --workdir=runs/cn3_fb_cpu  # 2 cores

The full rows are kbc's (github.com/facebookresearch/kbc): rank 1000 (FB15k-237) and 2000
(WN18RR), Adagrad lr 0.1 from zero squared-gradient sums, tables N(0, 1) x 1e-3, N3 weight
5e-2 / 1e-1 on the batch's rows, 100 epochs. Batch 1000 on FB15k-237 (the kbc-based CQD
repository's line for rank 1000; kbc's README uses 100) and 100 on WN18RR. Published test
MRR: 0.37 (FB15k-237), 0.48 (WN18RR). A kbc epoch is every training triple once in each
direction: floor(2 |train| / batch) steps (kgjax drops the last partial batch).

The `_cpu` rows are cuts sized to under an hour each on one CPU core: rank 128, batch 1000
and 20 epochs (FB15k-237), batch 500 (twice the updates per epoch for the same work) and 10
epochs (WN18RR); bench/results/complex_n3_cpu.md says what they reach. A GPU runs the full
rows.
"""

from kgjax.train.kge.config import kge_config

TRAIN_TRIPLES = {"fb15k237": 272_115, "wn18rr": 86_835, "umls": 5_216}
# name: (dataset, rank, batch, N3 weight, epochs, evaluations during training)
ROWS = {
    "fb15k237": ("fb15k237", 1000, 1000, 5e-2, 100, 20),
    "wn18rr": ("wn18rr", 2000, 100, 1e-1, 100, 20),
    "fb15k237_cpu": ("fb15k237", 128, 1000, 5e-2, 20, 4),
    "wn18rr_cpu": ("wn18rr", 128, 500, 1e-1, 10, 2),
    "umls": ("umls", 100, 256, 1e-2, 100, 4),
}


def recipe(dataset: str, rank: int, batch: int, weight: float, epochs: int, command: str):
    """kbc's ComplEx-N3 recipe on `dataset` at `rank` for `epochs` (cadences left to the caller):
    1vsAll with reciprocal relations, Adagrad at 0.1, N3 weight `weight`, init std 1e-3."""
    steps_per_epoch = 2 * TRAIN_TRIPLES[dataset] // batch  # the last partial batch is dropped
    c = kge_config(
        command=command,
        model="complex",
        dataset=dataset,
        batch_size=batch,
        num_negatives=1,  # unused: 1vsAll scores every entity
        dim=rank,
        gamma=0.0,  # no margin
        adversarial_temperature=1.0,
        lr=0.1,
        num_steps=epochs * steps_per_epoch,
        eval_batch_size=64,
        regularizer="n3",
        regularization=weight,
    )
    c.training.regime = "1vsAll"
    c.training.reciprocal = True
    c.loss.subsampling = False
    c.optimizer.name = "adagrad"
    c.optimizer.schedule = "constant"
    c.optimizer.adagrad_initial_accumulator = 0.0
    c.optimizer.adagrad_epsilon = 1e-20  # ~ torch's 1e-10 outside the square root
    with c.unlocked():
        c.model.init_std = 1e-3
    return c


def get_config(row: str = "umls"):
    if row not in ROWS:
        raise ValueError(f"configs/complex_n3.py: unknown row {row!r}; one of {list(ROWS)}")
    dataset, rank, batch, weight, epochs, evaluations = ROWS[row]
    steps_per_epoch = 2 * TRAIN_TRIPLES[dataset] // batch
    c = recipe(
        dataset, rank, batch, weight, epochs,
        command=f"kgjax train --config=configs/complex_n3.py:{row} --workdir=runs/complex_n3_{row}",
    )  # fmt: skip
    # One device call, log line and checkpoint per epoch (evaluations fall on epoch ends).
    c.steps_per_call = c.log_every_steps = c.checkpoint_every_steps = steps_per_epoch
    c.eval_every_steps = steps_per_epoch * max(epochs // evaluations, 1)
    return c
