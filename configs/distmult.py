"""DistMult (Yang et al., ICLR 2015) with the RotatE repository's reference hyper-parameters.

Run (the argument after the colon picks the dataset, a row of configs/reference.py):
  kgjax train --config=configs/distmult.py:fb15k237 --workdir=runs/distmult_fb15k237
  kgjax train --config=configs/distmult.py:wn18rr --workdir=runs/distmult_wn18rr
  kgjax train --config=configs/distmult.py:umls --workdir=runs/distmult_umls   # 2 CPU cores

ComplEx's rows at twice the width, so both models have as many real parameters per entity.
"""

import pathlib
import runpy

reference = runpy.run_path(str(pathlib.Path(__file__).with_name("reference.py")))


def get_config(dataset: str = "umls"):
    return reference["config"]("distmult", dataset)
