"""RotatE (Sun et al., ICLR 2019) with the RotatE repository's reference hyper-parameters.

Run (the argument after the colon picks the dataset, a row of configs/reference.py):
  kgjax train --config=configs/rotate.py:fb15k237 --workdir=runs/rotate_fb15k237
  kgjax train --config=configs/rotate.py:wn18rr --workdir=runs/rotate_wn18rr
  kgjax train --config=configs/rotate.py:countries_s1 --workdir=runs/rotate_countries_s1
  kgjax train --config=configs/rotate.py:umls --workdir=runs/rotate_umls   # 2 CPU cores
  kgjax train --config=configs/rotate.py:nations --workdir=runs/rotate_nations
  kgjax train --config=configs/rotate.py:kinships --workdir=runs/rotate_kinships

`<dataset>_cpu` (fb15k237_cpu, wn18rr_cpu) is configs/reference.py's CPU line (dim 100, batch
256, 64 negatives, a learning rate 20x best_config.sh's) at 10,000 steps: about 5 minutes on
2 CPU cores for FB15k-237. KnowBERT's FB15k-237 entity table is its export
(`python bench/fb15k237_kge.py`).

configs/text_rotate.py and configs/mmrns.py start from the same rows.
"""

import pathlib
import runpy

reference = runpy.run_path(str(pathlib.Path(__file__).with_name("reference.py")))


CPU_STEPS = 10_000


def get_config(dataset: str = "umls"):
    if dataset.endswith("_cpu") and dataset.removesuffix("_cpu") in reference["CPU"]:
        base = dataset.removesuffix("_cpu")
        c = reference["kge_config"](
            command=f"kgjax train --config=configs/rotate.py:{dataset} --workdir=runs/rotate_{dataset}",
            model="rotate",
            dataset=base,
            **{**reference["hyperparameters"](reference["CPU"], base), "num_steps": CPU_STEPS},
        )
        c.eval_every_steps = CPU_STEPS // 2
        return c
    return reference["config"]("rotate", dataset)
