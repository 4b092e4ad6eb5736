"""RESCAL (Nickel et al., ICML 2011) with LibKGE's published hyper-parameters.

Run (the argument after the colon picks the dataset, a row of configs/reference.py):
  kgjax train --config=configs/rescal.py:fb15k237 --workdir=runs/rescal_fb15k237
  kgjax train --config=configs/rescal.py:wn18rr --workdir=runs/rescal_wn18rr
  kgjax train --config=configs/rescal.py:umls --workdir=runs/rescal_umls   # 2 CPU cores
  kgjax train --config=configs/rescal.py:nations --workdir=runs/rescal_nations
  kgjax train --config=configs/rescal.py:kinships --workdir=runs/rescal_kinships

fb15k237 and wn18rr follow LibKGE's best RESCAL runs (Ruffinelli et al., ICLR 2020;
github.com/uma-pi1/kge-iclr20): dim 128; FB15k-237 1vsAll, batch 512, Adam 7.39e-4, dropout
0.427 (entities) and 0.159 (relations); WN18RR KvsAll with reciprocal relations, label
smoothing 0.3, batch 128, Adam 8.54e-4, relation dropout 0.238; 400 epochs each. What differs
here: a constant learning rate where LibKGE reduces it on plateaus, binary cross-entropy for
KvsAll where LibKGE's run used cross-entropy, and the tables drawn as kgjax's RESCAL draws them
(Normal(0, D^(-1/3)); LibKGE's runs searched the initialisation). umls, nations and kinships
are CPU-sized 1vsAll runs, tuned here only lightly.
"""

import pathlib
import runpy

reference = runpy.run_path(str(pathlib.Path(__file__).with_name("reference.py")))


def get_config(dataset: str = "umls"):
    return reference["config"]("rescal", dataset)
