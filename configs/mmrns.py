"""MMRNS hard negatives (Xu et al., ACM MM 2022) for RotatE and TransE, text + structure.

Run (the argument after the colon is <model>_<dataset>; the sentence vectors of the entity
descriptions are encoded once with MiniLM and cached, the texts read from the dataset's local
folder, so KGJAX_DATA_DIR must point at a copy of ../shared/data):
  KGJAX_DATA_DIR=../shared/data kgjax train --config=configs/mmrns.py:rotate_fb15k237 --workdir=runs/mmrns_rotate_fb15k237
  KGJAX_DATA_DIR=../shared/data kgjax train --config=configs/mmrns.py:transe_fb15k237 --workdir=runs/mmrns_transe_fb15k237
  KGJAX_DATA_DIR=../shared/data kgjax train --config=configs/mmrns.py:rotate_umls --workdir=runs/mmrns_rotate_umls  # 2 CPU cores

The KGE hyper-parameters are those of configs/rotate.py and configs/transe.py (their rows of
configs/reference.py; FB15k-237: the RotatE repository's best_config.sh), so
`--config.negatives.sampler=uniform` or `self_adversarial` gives the baseline runs;
bench/mmrns.py runs the whole comparison. The MMRNS settings are the reference's
(github.com/quqxui/MMRNS README): a pool of 1,500 entities, epsilon_0 = 10, beta = 1/100, KCA
widths 50, structural hidden 100. FB15k-237's texts are StAR's "Name -- first sentence" (two
sentences kept), WN18RR's KG-BERT "lemma, definition" (one sentence), UMLS's the kg-bert
paragraphs (up to four); no visual features exist for these datasets.
"""

import pathlib
import runpy

reference = runpy.run_path(str(pathlib.Path(__file__).with_name("reference.py")))
MODELS = ("rotate", "transe")
DATASETS = ("fb15k237", "wn18rr", "umls")


def get_config(argument: str = "rotate_umls"):
    model, _, dataset = argument.partition("_")
    if model not in MODELS or dataset not in DATASETS:
        known = [f"{m}_{d}" for m in MODELS for d in DATASETS]
        raise ValueError(f"configs/mmrns.py: unknown argument {argument!r}; one of {known}")
    config = reference["config"](model, dataset)
    config.command = (
        f"KGJAX_DATA_DIR=../shared/data kgjax train --config=configs/mmrns.py:{argument} "
        f"--workdir=runs/mmrns_{argument}"
    )
    config.negatives.sampler = "mmrns"
    if dataset == "fb15k237":
        # StAR's texts are "Name -- first sentence": two sentences for 93% of the entities.
        config.negatives.mmrns.num_sentences = 2
    elif dataset == "wn18rr":
        # KG-BERT's texts are "lemma, definition": one sentence for all but 14 of the 40,943
        # synsets. With one sentence KCA's attention has a single row and LayerNorm cancels the
        # relation gate's scale, so the text side is a relation-free projection of the vector.
        config.negatives.mmrns.num_sentences = 1
    return config
