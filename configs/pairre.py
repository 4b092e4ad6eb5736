"""PairRE (Chao et al., ACL 2021) with its repository's FB15k-237 hyper-parameters.

Run (the argument after the colon picks the dataset, a row of configs/reference.py):
  kgjax train --config=configs/pairre.py:fb15k237 --workdir=runs/pairre_fb15k237
  kgjax train --config=configs/pairre.py:wn18rr --workdir=runs/pairre_wn18rr
  kgjax train --config=configs/pairre.py:umls --workdir=runs/pairre_umls   # 2 CPU cores
  kgjax train --config=configs/pairre.py:nations --workdir=runs/pairre_nations
  kgjax train --config=configs/pairre.py:kinships --workdir=runs/pairre_kinships

fb15k237 is the README's `run.sh train PairRE FB15k-237 0 0 1024 256 1500 6.0 1.0 0.00005 100000
16 -dr` (github.com/alipay/KnowledgeGraphEmbeddingsViaPairedRelationVectors_PairRE), without
regularisation. PairRE publishes no WN18RR setting: wn18rr is RotatE's best_config.sh line, a
starting point rather than the paper's. umls, nations and kinships are CPU-sized, tuned here
only lightly.
"""

import pathlib
import runpy

reference = runpy.run_path(str(pathlib.Path(__file__).with_name("reference.py")))


def get_config(dataset: str = "umls"):
    return reference["config"]("pairre", dataset)
