"""RotatE with entity embeddings initialised from their descriptions, evaluated inductively.

The entity table starts as the entities' MiniLM description vectors (JAKET mention pooling),
projected to the entity width by a Gaussian random projection and scaled to RotatE's uniform
init range; after training, entities absent from the training split get rows from their text
through a ridge map fitted on the trained entities, and results.json gains an "inductive"
block (`kgjax.text.init`, `kgjax.evaluation.inductive`). The plain baseline is the same config
with `--config.text.init=uniform` (same budget; the same text map is fitted for its inductive
numbers, and its "as_trained" numbers are the random rows a plain model has).

Run (from the repository root; the data folder laid out like ../shared/data):
  export KGJAX_DATA_DIR=../shared/data
  kgjax train --config=configs/text_rotate.py:fb15k237 --workdir=runs/text_rotate_fb15k237
  kgjax train --config=configs/text_rotate.py:fb15k237 --workdir=runs/rotate_fb15k237_cpu \
      --config.text.init=uniform
  kgjax train --config=configs/text_rotate.py:wn18rr --workdir=runs/text_rotate_wn18rr
  kgjax split --dataset=fb15k237 --out=data/fb15k237_inductive      # once: the 10% split
  kgjax train --config=configs/text_rotate.py:fb15k237_inductive \
      --workdir=runs/text_rotate_fb15k237_inductive
  kgjax train --config=configs/text_rotate.py:fb15k237_inductive \
      --workdir=runs/rotate_fb15k237_inductive --config.text.init=uniform
  kgjax split --dataset=umls --out=data/umls_inductive               # seconds, on CPU
  kgjax train --config=configs/text_rotate.py:umls_inductive --workdir=runs/text_rotate_umls_ind

fb15k237, wn18rr and fb15k237_inductive are reduced configs for a 2-core CPU (dim 100, batch
256, 64 negatives, 3,000 steps, a learning rate 20x best_config.sh's to match the short run):
the README's figures come from them and from `:<dataset>,15000` (the same with 15,000 steps;
the learning-rate decay and the cadences follow the length), both run by bench/inductive.py
with the plain baseline beside each. `:<dataset>,full` keeps the text settings but takes
configs/rotate.py's reference hyper-parameters, for the GPU machine (both tables are
configs/reference.py's).

On WN18RR add `--config.negatives.self_negative=True`: without it the text-initialised
relations collapse towards the identity and the query's own entity is ranked first (README,
"Language module"). It stays off here so that the README's tables reproduce as they were run.
"""

import pathlib
import runpy

from kgjax.train.kge.config import kge_config

reference = runpy.run_path(str(pathlib.Path(__file__).with_name("reference.py")))
# Inductive splits written by `kgjax split` (see kgjax.data.inductive) under the git-ignored
# data/ folder; their texts come from the source dataset's description folders, copied there.
INDUCTIVE = {"fb15k237_inductive": ("fb15k237", "star"), "umls_inductive": ("umls", "kg-bert-long")}


def get_config(arg: str = "umls"):
    """`<dataset>[,full][,<num_steps>]`, e.g. `fb15k237_inductive,15000`."""
    name, *options = arg.split(",")
    dataset, source = INDUCTIVE.get(name, (name, ""))
    full = "full" in options
    steps = [int(o) for o in options if o.isdigit()]
    if dataset not in reference["CPU"] or len(options) != full + len(steps) or len(steps) > 1:
        raise ValueError(
            f"configs/text_rotate.py: unknown argument {arg!r}; one of "
            f"{[*reference['CPU'], *INDUCTIVE]}, optionally followed by ',full' and/or "
            "',<num_steps>'"
        )
    table = reference["SETTINGS"]["rotate"] if full else reference["CPU"]
    settings = reference["hyperparameters"](table, dataset)
    if steps:
        # Through kge_config, so the learning-rate decay and the cadences follow the length.
        settings["num_steps"] = steps[0]
    config = kge_config(
        command=f"kgjax train --config=configs/text_rotate.py:{arg} "
        f"--workdir=runs/text_rotate_{arg.replace(',', '_')}",
        model="rotate",
        dataset=dataset,
        **settings,
    )
    if name in INDUCTIVE:
        config.data.path = f"data/{name}"
    config.text.init = "text"
    config.text.projection = "random"
    config.text.inductive = True
    config.text.source = source
    # One evaluation at the end: on a CPU, ranking FB15k-237's valid split costs minutes.
    config.eval_every_steps = config.num_steps
    return config
