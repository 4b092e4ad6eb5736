"""JAKET's masked entity prediction head (Yu et al., AAAI 2022, "Pre-training").

15% of a text's mentions are dropped from the knowledge merge; for each dropped mention
m = (e, s, o) (entity, first and last token) the language module predicts e from

    q = g((Z_s + Z_o) / 2),   g(x) = GELU(x W1) W2,

Z the LM2 output, by the inner product of q with each candidate's row of the entity context
memory: the true entity, its graph neighbours and random entities
(`kgjax.train.jaket.masked_entities`), cross-entropy over the candidates (L_e).

Shapes: M mentions, H the language model's width, D the memory's width, K candidates.
"""

from __future__ import annotations

import jax
from flax import linen as nn


class MaskedEntityHead(nn.Module):
    """(Z_s, Z_o) [M, H] -> q [M, D] = GELU(((Z_s + Z_o) / 2) W1) W2.

    Attributes:
      width: D, the entity context memory's width (q is matched against its rows).
      hidden: the width of W1's output; default H (JAKET does not say).
    """

    width: int
    hidden: int | None = None

    @nn.compact
    def __call__(self, start_states: jax.Array, end_states: jax.Array) -> jax.Array:
        x = (start_states + end_states) / 2
        x = nn.gelu(nn.Dense(self.hidden or x.shape[-1], name="w1")(x))
        return nn.Dense(self.width, name="w2")(x)
