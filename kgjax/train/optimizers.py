"""Optimizers and learning-rate schedules from `config.optimizer`."""

from __future__ import annotations

import jax
import ml_collections
import optax


def learning_rate_schedule(config: ml_collections.ConfigDict, num_steps: int) -> optax.Schedule:
    """The schedule named by `config.schedule`, after an optional linear warm-up.

    step: lr, multiplied by `decay_factor` at `decay_steps` (the RotatE reference divides by
    10 half-way). exponential: lr * decay_factor^floor(step / decay_steps) (ConvE's 0.995
    per epoch with decay_steps an epoch). cosine: cosine decay to 0 over `num_steps`.
    constant: lr throughout.
    """
    lr = config.lr
    if config.schedule == "constant":
        schedule = optax.constant_schedule(lr)
    elif config.schedule == "step":
        schedule = optax.piecewise_constant_schedule(lr, {config.decay_steps: config.decay_factor})
    elif config.schedule == "exponential":
        schedule = optax.exponential_decay(
            lr, config.decay_steps, config.decay_factor, staircase=True
        )
    elif config.schedule == "cosine":
        schedule = optax.cosine_decay_schedule(lr, max(num_steps - config.warmup_steps, 1))
    else:
        raise ValueError(f"config.optimizer.schedule: unknown schedule {config.schedule!r}")
    if config.warmup_steps:
        warmup = optax.linear_schedule(0.0, lr, config.warmup_steps)
        schedule = optax.join_schedules([warmup, schedule], [config.warmup_steps])
    return schedule


def make_optimizer(config: ml_collections.ConfigDict, num_steps: int):
    """Adam (as the reference) or Adagrad, with the configured schedule.

    Returns:
      (optax.GradientTransformation, schedule).
    """
    schedule = learning_rate_schedule(config, num_steps)
    if config.name == "adam":
        return optax.adam(schedule), schedule
    if config.name == "adagrad":
        # optax starts the squared-gradient sums at 0.1 and adds eps 1e-7 inside the square
        # root; torch.optim.Adagrad (kbc) starts at 0 and adds 1e-10 outside it, so its first
        # steps are lr-sized even for the ~1e-9 gradients of N(0, 1e-3) tables, which optax's
        # defaults scale down by ~1e5.
        initial = config.get("adagrad_initial_accumulator", 0.1)
        eps = config.get("adagrad_epsilon", 1e-7)
        return optax.adagrad(schedule, initial_accumulator_value=initial, eps=eps), schedule
    raise ValueError(f"config.optimizer.name: unknown optimizer {config.name!r}")


def two_rate_optimizer(
    config: ml_collections.ConfigDict,
    encoder_parts: tuple[str, ...],
    labels: tuple[str, str],
) -> optax.GradientTransformation:
    """config.optimizer's optimizer and schedule at two learning rates: optimizer.encoder_lr
    for the parameters under the top-level keys `encoder_parts` (a pretrained language model
    and what it ties), optimizer.lr for every other part (the layers a run adds).

    Args:
      labels: the group names (new parts', encoder parts'); they name the groups in the saved
        optimizer state, so a trainer keeps its own for its checkpoints to restore.
    """
    new, _ = make_optimizer(config.optimizer, config.num_steps)
    section = ml_collections.ConfigDict(config.optimizer.to_dict())
    section.lr = config.optimizer.encoder_lr
    encoder, _ = make_optimizer(section, config.num_steps)
    new_label, encoder_label = labels

    def groups(params: dict) -> dict:  # a leaf's group is its top-level part's
        return jax.tree_util.tree_map_with_path(
            lambda path, _: encoder_label if path[0].key in encoder_parts else new_label, params
        )

    return optax.multi_transform({new_label: new, encoder_label: encoder}, groups)
