"""TransE (Bordes et al., NIPS 2013) with the RotatE repository's reference hyper-parameters.

Run (the argument after the colon picks the dataset, a row of configs/reference.py):
  kgjax train --config=configs/transe.py:fb15k237 --workdir=runs/transe_fb15k237
  kgjax train --config=configs/transe.py:wn18rr --workdir=runs/transe_wn18rr
  kgjax train --config=configs/transe.py:umls --workdir=runs/transe_umls   # 2 CPU cores

The rows are RotatE's, except that nations and kinships take the umls row.
"""

import pathlib
import runpy

reference = runpy.run_path(str(pathlib.Path(__file__).with_name("reference.py")))


def get_config(dataset: str = "umls"):
    return reference["config"]("transe", dataset)
