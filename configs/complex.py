"""ComplEx (Trouillon et al., ICML 2016) with the RotatE repository's reference hyper-parameters.

Run (the argument after the colon picks the dataset, a row of configs/reference.py):
  kgjax train --config=configs/complex.py:fb15k237 --workdir=runs/complex_fb15k237
  kgjax train --config=configs/complex.py:wn18rr --workdir=runs/complex_wn18rr
  kgjax train --config=configs/complex.py:umls --workdir=runs/complex_umls   # 2 CPU cores

Regularised as best_config.sh's -r (L3 over the whole tables); the small CPU rows use N3 over
the batch instead.
"""

import pathlib
import runpy

reference = runpy.run_path(str(pathlib.Path(__file__).with_name("reference.py")))


def get_config(dataset: str = "umls"):
    return reference["config"]("complex", dataset)
