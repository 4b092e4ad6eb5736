"""The hyper-parameters of every KGE config in one table: configs/<model>.py read it.

Not a config itself: configs/ is a folder of files, not a package, so a config loads this one
by path (`runpy.run_path`) and calls `config(model, dataset)`.

fb15k237, wn18rr and countries_s* are the lines of best_config.sh
(github.com/DeepGraphLearning/KnowledgeGraphEmbedding); umls, nations and kinships are small
configs tuned here for fast CPU runs. TransE shares RotatE's lines; DistMult has twice
ComplEx's `dim` (a ComplEx dimension is two reals). `CPU` holds configs/text_rotate.py's
reduced settings.
"""

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
SETTINGS = {
    "rotate": _ROTATE,
    "transe": {**_ROTATE, **dict.fromkeys(SMALL, _ROTATE["umls"])},
    "complex": _COMPLEX,
    "distmult": {name: (*row[:2], 2 * row[2], *row[3:]) for name, row in _COMPLEX.items()},
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
    """configs/<model>.py:<dataset>: the reference row, with the command that runs it.

    Raises:
      ValueError: SETTINGS[model] has no row for `dataset`.
    """
    if dataset not in SETTINGS[model]:
        raise ValueError(
            f"configs/{model}.py: unknown dataset {dataset!r}; one of {list(SETTINGS[model])}"
        )
    return kge_config(
        command=f"kgjax train --config=configs/{model}.py:{dataset} --workdir=runs/{model}_{dataset}",
        model=model,
        dataset=dataset,
        **hyperparameters(SETTINGS[model], dataset),
    )
