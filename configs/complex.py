"""ComplEx (Trouillon et al., ICML 2016) with the RotatE repository's reference hyper-parameters.

Run (the argument after the colon picks the dataset):
  kgjax train --config=configs/complex.py:fb15k237 --workdir=runs/complex_fb15k237
  kgjax train --config=configs/complex.py:wn18rr --workdir=runs/complex_wn18rr
  kgjax train --config=configs/complex.py:umls --workdir=runs/complex_umls   # 2 CPU cores

fb15k237, wn18rr and countries_s* are the lines of best_config.sh
(github.com/DeepGraphLearning/KnowledgeGraphEmbedding); umls, nations and kinships are
small configs for fast CPU runs.
"""

from kgjax.train.kge.config import kge_config

# best_config.sh: batch, negatives, dim, gamma, temperature (-a), lr, max_steps, test batch, -r.
SETTINGS = {
    "fb15k237": dict(batch_size=1024, num_negatives=256, dim=1000, gamma=200.0,
                     adversarial_temperature=1.0, lr=1e-3, num_steps=100_000, eval_batch_size=16,
                     regularizer="l3", regularization=1e-5),
    "wn18rr": dict(batch_size=512, num_negatives=1024, dim=500, gamma=200.0,
                   adversarial_temperature=1.0, lr=2e-3, num_steps=80_000, eval_batch_size=8,
                   regularizer="l3", regularization=5e-6),
    **{
        f"countries_s{i}": dict(batch_size=512, num_negatives=64, dim=1000, gamma=1.0,
                                adversarial_temperature=1.0, lr=2e-6, num_steps=40_000,
                                eval_batch_size=8, regularizer="l3", regularization=5e-4)
        for i in (1, 2, 3)
    },
    **{
        # gamma only sets the init range here, (gamma + 2) / dim: 200 suits dim 1000, not 100.
        name: dict(batch_size=256, num_negatives=64, dim=100, gamma=20.0,
                   adversarial_temperature=1.0, lr=5e-3, num_steps=2_000, eval_batch_size=64,
                   regularizer="n3", regularization=1e-2)
        for name in ("umls", "nations", "kinships")
    },
}  # fmt: skip


def get_config(dataset: str = "umls"):
    if dataset not in SETTINGS:
        raise ValueError(
            f"configs/complex.py: unknown dataset {dataset!r}; one of {list(SETTINGS)}"
        )
    return kge_config(
        command=f"kgjax train --config=configs/complex.py:{dataset} --workdir=runs/complex_{dataset}",
        model="complex",
        dataset=dataset,
        **SETTINGS[dataset],
    )
