"""TuckER (Balazevic et al., EMNLP 2019): 1-N scoring, KvsAll, reciprocal relations.

Run (the argument after the colon picks the dataset, a row of configs/reference.py):
  kgjax train --config=configs/tucker.py:fb15k237 --workdir=runs/tucker_fb15k237
  kgjax train --config=configs/tucker.py:wn18rr --workdir=runs/tucker_wn18rr
  kgjax train --config=configs/tucker.py:umls --workdir=runs/tucker_umls   # 2 CPU cores

The fb15k237 and wn18rr rows have the paper's batch norms (model.batch_norm); the small
CPU rows leave them out unless --config.model.batch_norm=True.
"""

import pathlib
import runpy

reference = runpy.run_path(str(pathlib.Path(__file__).with_name("reference.py")))


def get_config(dataset: str = "umls"):
    return reference["one_to_n_config"]("tucker", dataset)
