"""JAKET downstream: few-shot relation classification on FewRel 1.0's public validation sets
(val_wiki, and val_nyt, val_pubmed out of domain), prototypes over [Z_h; Z_t], nothing trained.

Run (FewRel from $KGJAX_DATA_DIR/fewrel; the same seeded episodes for every system):
  kgjax train --config=configs/jaket_fewrel.py --workdir=runs/fewrel_minilm       # plain MiniLM
  kgjax train --config=configs/jaket_fewrel.py --workdir=runs/fewrel_km \
      --config.model.km_from=runs/jaket_km_fb15k237       # + a KG-only knowledge module
  kgjax train --config=configs/jaket_fewrel.py --workdir=runs/fewrel_jaket \
      --config.model.init_from=runs/jaket_fb15k237        # jointly pre-trained JAKET
Add --config.model.merge=False to evaluate a run's language model without its KM.
The argument after the colon, if any, is the number of episodes per setting (default 1000).
"""

from kgjax.train.jaket.fewrel import fewrel_config


def get_config(num_episodes: str = "1000"):
    c = fewrel_config("kgjax train --config=configs/jaket_fewrel.py --workdir=runs/fewrel")
    c.episodes.num_episodes = int(num_episodes)
    return c
