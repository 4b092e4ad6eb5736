"""The hyper-parameters of every KGE config in one table: configs/<model>.py read it.

Not a config itself: configs/ is a folder of files, not a package, so a config loads this one
by path (`runpy.run_path`) and calls `config(model, dataset)`.

fb15k237, wn18rr and countries_s* are the lines of best_config.sh
(github.com/DeepGraphLearning/KnowledgeGraphEmbedding); umls, nations and kinships are small
configs tuned here for fast CPU runs. TransE shares RotatE's lines; DistMult has twice
ComplEx's `dim` (a ComplEx dimension is two reals). `CPU` holds configs/text_rotate.py's
reduced settings. PairRE's fb15k237 line is its repository's README's (run.sh, the RotatE
code); RESCAL's fb15k237 and wn18rr are LibKGE's published best runs (github.com/uma-pi1/
kge-iclr20, config_files/iclr2020/*/rescal-*-bo-best), with `TRAINING` holding what
best_config.sh's columns cannot say.
"""

from kgjax import config as config_lib
from kgjax.train.kge.config import kge_config

# A row, in best_config.sh's order: -b -n -d -g -a -lr --max_steps --test_batch_size, then -r
# (regularizer and weight) where the model has one.
COLUMNS = ("batch_size", "num_negatives", "dim", "gamma", "adversarial_temperature", "lr",
           "num_steps", "eval_batch_size", "regularizer", "regularization")  # fmt: skip
COUNTRIES = ("countries_s1", "countries_s2", "countries_s3")
SMALL = ("umls", "nations", "kinships")

_ROTATE = {
    "fb15k237": (1024, 256, 1000, 9.0, 1.0, 5e-5, 100_000, 16),
    "wn18rr": (512, 1024, 500, 6.0, 0.5, 5e-5, 80_000, 8),
    **dict.fromkeys(COUNTRIES, (512, 64, 1000, 0.1, 1.0, 2e-6, 40_000, 8)),
    "umls": (256, 64, 100, 12.0, 1.0, 2e-3, 2_000, 64),
    "nations": (128, 13, 100, 6.0, 1.0, 2e-3, 2_000, 64),
    "kinships": (256, 64, 200, 12.0, 1.0, 2e-3, 4_000, 64),
}
_COMPLEX = {
    "fb15k237": (1024, 256, 1000, 200.0, 1.0, 1e-3, 100_000, 16, "l3", 1e-5),
    "wn18rr": (512, 1024, 500, 200.0, 1.0, 2e-3, 80_000, 8, "l3", 5e-6),
    **dict.fromkeys(COUNTRIES, (512, 64, 1000, 1.0, 1.0, 2e-6, 40_000, 8, "l3", 5e-4)),
    # gamma only sets the init range here, (gamma + 2) / dim: 200 suits dim 1000, not 100.
    **dict.fromkeys(SMALL, (256, 64, 100, 20.0, 1.0, 5e-3, 2_000, 64, "n3", 1e-2)),
}
# PairRE's README gives no WN18RR line (FB15k-237, FB15k, DB100k): wn18rr is RotatE's, not a
# PairRE setting. Small rows tuned lightly here on valid MRR (gamma 6 / 9 / 12, lr 2e-3 to 1e-2).
_PAIRRE = {
    "fb15k237": (1024, 256, 1500, 6.0, 1.0, 5e-5, 100_000, 16),
    "wn18rr": _ROTATE["wn18rr"],
    **dict.fromkeys(("umls", "nations"), (256, 64, 100, 6.0, 1.0, 5e-3, 2_000, 64)),
    "kinships": (256, 64, 200, 6.0, 1.0, 5e-3, 4_000, 64),
}
# RESCAL trains 1vsAll or KvsAll (`TRAINING`): no negatives are drawn (num_negatives 1 and the
# temperature are unused) and there is no margin (gamma 0 is unused). fb15k237: LibKGE's 400
# epochs, each triple once per direction, 2 x 532 steps of 512; wn18rr: 400 epochs of its
# 103,509 distinct (h, r) and (t, r^-1) queries, 809 steps of 128. Small rows: 1vsAll beat
# negative sampling on UMLS (valid MRR 0.656 against 0.630 with N3), tuned lightly.
_RESCAL = {
    "fb15k237": (512, 1, 128, 0.0, 1.0, 7.39e-4, 425_600, 256),
    "wn18rr": (128, 1, 128, 0.0, 1.0, 8.54e-4, 323_600, 256),
    **dict.fromkeys(SMALL, (256, 1, 100, 0.0, 1.0, 5e-3, 2_000, 64)),
}
SETTINGS = {
    "rotate": _ROTATE,
    "transe": {**_ROTATE, **dict.fromkeys(SMALL, _ROTATE["umls"])},
    "complex": _COMPLEX,
    "distmult": {name: (*row[:2], 2 * row[2], *row[3:]) for name, row in _COMPLEX.items()},
    "pairre": _PAIRRE,
    "rescal": _RESCAL,
}
# Config keys (dotted) set after `kge_config`, for rows trained otherwise than best_config.sh.
# LibKGE's RESCAL: 1vsAll (FB15k-237) and KvsAll with reciprocal relations and label smoothing
# 0.3 (WN18RR; LibKGE's loss there is cross-entropy against the normalised multi-hot targets,
# kgjax's KvsAll binary cross-entropy), dropout on the rows read, no regulariser (LibKGE's
# weights are below 1e-10), and a constant learning rate for its ReduceLROnPlateau (x0.95).
TRAINING = {
    "rescal": {
        "fb15k237": {
            "training.regime": "1vsAll",
            "training.entity_dropout": 0.427,
            "training.relation_dropout": 0.159,
            "optimizer.schedule": "constant",
        },
        "wn18rr": {
            "training.regime": "KvsAll",
            "training.reciprocal": True,
            "training.label_smoothing": 0.3,
            "training.relation_dropout": 0.238,
            "optimizer.schedule": "constant",
        },
        **dict.fromkeys(SMALL, {"training.regime": "1vsAll"}),
    },
}
# configs/text_rotate.py on a 2-core CPU: dim 100, batch 256, 64 negatives, 3,000 steps and a
# learning rate 20x best_config.sh's to match the short run.
CPU = {
    "fb15k237": (256, 64, 100, 9.0, 1.0, 1e-3, 3_000, 64),
    "wn18rr": (256, 64, 100, 6.0, 0.5, 1e-3, 3_000, 64),
    "umls": _ROTATE["umls"],
}


def hyperparameters(table: dict, dataset: str) -> dict:
    """`kge_config`'s hyper-parameter keywords from the row `table[dataset]`."""
    row = table[dataset]
    return dict(zip(COLUMNS[: len(row)], row, strict=True))


def config(model: str, dataset: str):
    """configs/<model>.py:<dataset>: the reference row and its `TRAINING` keys, with the
    command that runs it.

    Raises:
      ValueError: SETTINGS[model] has no row for `dataset`.
    """
    if dataset not in SETTINGS[model]:
        raise ValueError(
            f"configs/{model}.py: unknown dataset {dataset!r}; one of {list(SETTINGS[model])}"
        )
    c = kge_config(
        command=f"kgjax train --config=configs/{model}.py:{dataset} --workdir=runs/{model}_{dataset}",
        model=model,
        dataset=dataset,
        **hyperparameters(SETTINGS[model], dataset),
    )
    for key, value in TRAINING.get(model, {}).get(dataset, {}).items():
        config_lib.override(c, key, value)
    return c


# TuckER (github.com/ibalazevic/TuckER, the README's commands) and ConvE (github.com/TimDettmers/
# ConvE, main.py's defaults): 1-N scoring, KvsAll with reciprocal relations, Adam, batch 128,
# label smoothing 0.1. num_steps is the papers' epochs (TuckER 500, ConvE 1000) times the
# steps per epoch: distinct training queries with the inverses / 128 (FB15k-237 149,689 ->
# 1,170; WN18RR 103,509 -> 809). A constant learning rate for TuckER (its decay 1.0); ConvE's
# decays by 0.995 per epoch on FB15k-237 and WN18RR. The small rows (umls's, reused for
# nations and kinships) are CPU runs, untuned, at a constant rate, without the papers' batch
# norm (model.batch_norm=False: as bench/results/small_datasets_regimes.md measured them over
# 3 seeds, 2,000 steps; bench/results/small_datasets_batch_norm.md sets it). The fb15k237 and
# wn18rr rows have the papers' batch norms.
# A row: dim, relation_dim (TuckER) or height (ConvE), lr, num_steps, then the dropouts.
_TUCKER = {
    "fb15k237": (200, 200, 5e-4, 585_000, 0.3, 0.4, 0.5),
    "wn18rr": (200, 30, 3e-3, 404_500, 0.2, 0.2, 0.3),
    **dict.fromkeys(SMALL, (100, 30, 3e-3, 2_000, 0.2, 0.2, 0.3)),
    # KnowBERT-W's entity table: every WordNet 3.0 pointer (`kgjax.data.wordnet.
    # write_graph_folder`, 360,578 training triples, 444,062 queries with the inverses: 3,470
    # steps an epoch). WN18RR's settings; `wordnet` runs 500 epochs on an accelerator,
    # `wordnet_cpu` is the cut this CPU trains in about a quarter of an hour (see WORDNET).
    "wordnet": (200, 30, 3e-3, 1_735_000, 0.2, 0.2, 0.3),
    "wordnet_cpu": (100, 30, 3e-3, 4_000, 0.2, 0.2, 0.3),
}
# The folder `python bench/wordnet_kge.py` writes the WordNet graph to (relative to the
# directory the run starts in), read by the tucker wordnet rows through data.path.
WORDNET_GRAPH = "runs/wordnet_graph"
_CONVE = {
    "fb15k237": (200, 20, 3e-3, 1_170_000, 0.2, 0.2, 0.3),
    "wn18rr": (200, 20, 3e-3, 809_000, 0.2, 0.2, 0.3),
    **dict.fromkeys(SMALL, (100, 10, 3e-3, 2_000, 0.2, 0.2, 0.3)),
}
ONE_TO_N = {"tucker": _TUCKER, "conve": _CONVE}
_ONE_TO_N_KEYS = {
    "tucker": ("relation_dim", "input_dropout", "hidden_dropout1", "hidden_dropout2"),
    "conve": ("height", "input_dropout", "feature_dropout", "hidden_dropout"),
}


def one_to_n_config(model: str, dataset: str):
    """configs/{tucker,conve}.py:<dataset>: KvsAll, reciprocal relations, the row's model.

    Raises:
      ValueError: ONE_TO_N[model] has no row for `dataset`.
    """
    if dataset not in ONE_TO_N[model]:
        raise ValueError(
            f"configs/{model}.py: unknown dataset {dataset!r}; one of {list(ONE_TO_N[model])}"
        )
    dim, second, lr, num_steps, *dropouts = ONE_TO_N[model][dataset]
    c = kge_config(
        command=f"kgjax train --config=configs/{model}.py:{dataset} --workdir=runs/{model}_{dataset}",
        model=model,
        dataset=dataset,
        dim=dim,
        gamma=0.0,  # no margin in a 1-N scorer
        batch_size=128,
        num_negatives=1,  # unused: KvsAll scores every entity
        adversarial_temperature=1.0,
        lr=lr,
        num_steps=num_steps,
        eval_batch_size=16 if dataset != "umls" else 64,
    )
    c.optimizer.schedule = "constant"
    if model == "conve" and dataset in ("fb15k237", "wn18rr"):
        # ConvE's main.py: the learning rate times 0.995 after every epoch (of 1,000).
        c.optimizer.schedule = "exponential"
        c.optimizer.decay_steps = num_steps // 1000
        c.optimizer.decay_factor = 0.995
    c.training.regime = "KvsAll"
    c.training.reciprocal = True
    c.training.label_smoothing = 0.1
    c.loss.subsampling = False
    with c.unlocked():
        for key, value in zip(_ONE_TO_N_KEYS[model], (second, *dropouts), strict=True):
            c.model[key] = value
        c.model.batch_norm = dataset in ("fb15k237", "wn18rr", "wordnet", "wordnet_cpu")
    if dataset.startswith("wordnet"):
        c.data.name = "wordnet"
        c.data.path = WORDNET_GRAPH
    if dataset == "wordnet_cpu":
        # KvsAll over 116,650 entities learns too slowly for a CPU cut: measured on this
        # graph, 1.2 steps/s and a valid MRR of 0.0002 after 600 steps, against 1vsAll's
        # 5.1 steps/s and 0.013 after 300 (2 cores shared with an encoding job).
        c.training.regime = "1vsAll"
    return c
