"""RotatE (Sun et al., ICLR 2019) with the RotatE repository's reference hyper-parameters.

Run (the argument after the colon picks the dataset):
  kgjax train --config=configs/rotate.py:fb15k237 --workdir=runs/rotate_fb15k237
  kgjax train --config=configs/rotate.py:wn18rr --workdir=runs/rotate_wn18rr
  kgjax train --config=configs/rotate.py:umls --workdir=runs/rotate_umls   # 2 CPU cores

fb15k237, wn18rr and countries_s* are the lines of best_config.sh
(github.com/DeepGraphLearning/KnowledgeGraphEmbedding); umls, nations and kinships are
small configs tuned here for fast CPU runs.
"""

from kgjax.train.kge.config import kge_config

# best_config.sh: batch, negatives, dim, gamma, temperature (-a), lr, max_steps, test batch.
SETTINGS = {
    "fb15k237": dict(batch_size=1024, num_negatives=256, dim=1000, gamma=9.0,
                     adversarial_temperature=1.0, lr=5e-5, num_steps=100_000, eval_batch_size=16),
    "wn18rr": dict(batch_size=512, num_negatives=1024, dim=500, gamma=6.0,
                   adversarial_temperature=0.5, lr=5e-5, num_steps=80_000, eval_batch_size=8),
    **{
        f"countries_s{i}": dict(batch_size=512, num_negatives=64, dim=1000, gamma=0.1,
                                adversarial_temperature=1.0, lr=2e-6, num_steps=40_000,
                                eval_batch_size=8)
        for i in (1, 2, 3)
    },
    "umls": dict(batch_size=256, num_negatives=64, dim=100, gamma=12.0,
                 adversarial_temperature=1.0, lr=2e-3, num_steps=2_000, eval_batch_size=64),
    "nations": dict(batch_size=128, num_negatives=13, dim=100, gamma=6.0,
                    adversarial_temperature=1.0, lr=2e-3, num_steps=2_000, eval_batch_size=64),
    "kinships": dict(batch_size=256, num_negatives=64, dim=200, gamma=12.0,
                     adversarial_temperature=1.0, lr=2e-3, num_steps=4_000, eval_batch_size=64),
}  # fmt: skip


def get_config(dataset: str = "umls"):
    if dataset not in SETTINGS:
        raise ValueError(f"configs/rotate.py: unknown dataset {dataset!r}; one of {list(SETTINGS)}")
    return kge_config(
        command=f"kgjax train --config=configs/rotate.py:{dataset} --workdir=runs/rotate_{dataset}",
        model="rotate",
        dataset=dataset,
        **SETTINGS[dataset],
    )
