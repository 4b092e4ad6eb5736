"""The masked-language-model head of BERT (Devlin et al., NAACL 2019), for encoders whose
checkpoint ships without one.

logits = LayerNorm(GELU(h W + b)) E^T + c, E the encoder's word embeddings (tied, as BERT
ties them), so only the transform (W, b, the LayerNorm) and the output bias c [V] are new.
all-MiniLM-L6-v2 is a sentence-transformers checkpoint without this head: here W starts
as the identity and b, c at zero, so that before any training the head scores each word by
LayerNorm(GELU(h)) . E_w, the tied embeddings' own similarity, rather than by a random
projection (BERT's N(0, 0.02) initialisation, `identity_init=False`, is the alternative).

Shapes: B batch, P predicted positions, D hidden, V vocabulary.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn


def _identity(key, shape, dtype=jnp.float32):
    del key
    return jnp.eye(*shape, dtype=dtype)


class MaskedTokenHead(nn.Module):
    """([B, P, D] hidden, [V, D] word embeddings) -> [B, P, V] logits.

    Attributes:
      layer_norm_eps: the encoder's LayerNorm epsilon.
      identity_init: start the transform as the identity (see the module docstring).
    """

    layer_norm_eps: float = 1e-12
    identity_init: bool = True

    @nn.compact
    def __call__(self, hidden: jax.Array, word_embeddings: jax.Array) -> jax.Array:
        init = _identity if self.identity_init else nn.initializers.normal(0.02)
        x = nn.Dense(hidden.shape[-1], kernel_init=init, name="transform")(hidden)
        # BERT's exact-erf GELU, as the encoder's own layers use.
        x = nn.LayerNorm(epsilon=self.layer_norm_eps, use_fast_variance=False, name="norm")(
            nn.gelu(x, approximate=False)
        )
        bias = self.param("bias", nn.initializers.zeros_init(), (word_embeddings.shape[0],))
        return x @ word_embeddings.T + bias


def gather_positions(hidden: jax.Array, positions: jax.Array) -> jax.Array:
    """The hidden states at the predicted positions: [B, L, D], int [B, P] -> [B, P, D]."""
    return jnp.take_along_axis(hidden, positions[..., None], axis=1)
