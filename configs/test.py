"""A tiny, fast config for tests: RotatE on the embedded UMLS for a few dozen steps.

Run:
  kgjax train --config=configs/test.py --workdir=/tmp/kgjax_test
  kgjax train --config=configs/test.py:distmult --workdir=/tmp/kgjax_test_distmult
"""

from kgjax.train.kge.config import kge_config


def get_config(model: str = "rotate"):
    config = kge_config(
        command=f"kgjax train --config=configs/test.py:{model} --workdir=/tmp/kgjax_test",
        model=model,
        dataset="umls",
        dim=16,
        gamma=6.0,
        batch_size=64,
        num_negatives=16,
        adversarial_temperature=1.0,
        lr=1e-2,
        num_steps=40,
        eval_batch_size=128,
        regularizer="n3" if model in ("distmult", "complex") else "none",
        regularization=1e-4 if model in ("distmult", "complex") else 0.0,
    )
    config.steps_per_call = 10
    config.log_every_steps = 10
    config.eval_every_steps = 20
    config.checkpoint_every_steps = 20
    return config
