"""RotatE (Sun et al., ICLR 2019) with the RotatE repository's reference hyper-parameters.

Run (the argument after the colon picks the dataset, a row of configs/reference.py):
  kgjax train --config=configs/rotate.py:fb15k237 --workdir=runs/rotate_fb15k237
  kgjax train --config=configs/rotate.py:wn18rr --workdir=runs/rotate_wn18rr
  kgjax train --config=configs/rotate.py:countries_s1 --workdir=runs/rotate_countries_s1
  kgjax train --config=configs/rotate.py:umls --workdir=runs/rotate_umls   # 2 CPU cores
  kgjax train --config=configs/rotate.py:nations --workdir=runs/rotate_nations
  kgjax train --config=configs/rotate.py:kinships --workdir=runs/rotate_kinships

configs/text_rotate.py and configs/mmrns.py start from the same rows.
"""

import pathlib
import runpy

reference = runpy.run_path(str(pathlib.Path(__file__).with_name("reference.py")))


def get_config(dataset: str = "umls"):
    return reference["config"]("rotate", dataset)
