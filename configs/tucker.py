"""TuckER (Balazevic et al., EMNLP 2019): 1-N scoring, KvsAll, reciprocal relations.

Run (the argument after the colon picks the dataset, a row of configs/reference.py):
  kgjax train --config=configs/tucker.py:fb15k237 --workdir=runs/tucker_fb15k237
  kgjax train --config=configs/tucker.py:wn18rr --workdir=runs/tucker_wn18rr
  kgjax train --config=configs/tucker.py:umls --workdir=runs/tucker_umls   # 2 CPU cores

No batch norm (kgjax/models/kge/parametrized.py says why): expect less than the paper.
"""

import pathlib
import runpy

reference = runpy.run_path(str(pathlib.Path(__file__).with_name("reference.py")))


def get_config(dataset: str = "umls"):
    return reference["one_to_n_config"]("tucker", dataset)
