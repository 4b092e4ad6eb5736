"""A BERT-family transformer encoder split into LM1 and LM2 around a merge hook.

The encoder is BERT (Devlin et al., "BERT: Pre-training of Deep Bidirectional Transformers for
Language Understanding", NAACL 2019) or RoBERTa (Liu et al., "RoBERTa: A Robustly Optimized
BERT Pretraining Approach", 2019): embeddings (word + token type + position, then LayerNorm),
then post-LN transformer layers (multi-head self-attention over the unpadded tokens, exact-erf
GELU MLP), matching the Hugging Face checkpoints that `kgjax.models.lm.pretrained` loads.

The layers are split at `config.split_layer = k` as in JAKET (Yu et al., "JAKET: Joint
Pre-training of Knowledge Graph and Language Understanding", AAAI 2022): LM1 = layers 1..k,
LM2 = layers k+1..n. Between them `merge` adds vectors at chosen token positions and applies a
LayerNorm with its own parameters at those positions: JAKET's merge step (entity vectors added
at their mention tokens, then LayerNorm) and the residual output of KnowBERT's KAR (Peters et
al., EMNLP 2019) both fit it. JAKET normalises every position; here only the positions that
received something are normalised, so that an empty hook is the identity and the split forward
equals the unsplit forward bit for bit (LM2 then sees exactly what the pretrained model saw).

Everything is a linen module plus pure wrappers `lower`, `merge`, `upper`, `forward` and
`forward_split` taking the parameter pytree; the static `config` is bound with
`functools.partial` before `jax.jit`.

Parameters name their logical axes ("vocab", "embed", "heads", "mlp"; `logical_axes`), so
a mesh can split the attention heads and the MLP over its model axis (tensor parallelism)
through the same placement rules as the KGE tables (`kgjax.parallel`).

Shapes: B batch, L tokens, D hidden, H heads, S mention spans per sequence.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

VARIANTS = ("bert", "roberta")


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    """Architecture of the encoder; hashable, so it can be a static jit argument.

    Attributes:
      vocab_size: number of word-piece ids.
      hidden_size: D.
      num_layers: n, the number of transformer layers.
      num_heads: H; must divide D.
      intermediate_size: width of the MLP inside each layer.
      split_layer: k; LM1 = layers 1..k, LM2 = layers k+1..n (0 <= k <= n).
      max_position_embeddings: rows of the position table.
      type_vocab_size: rows of the token-type table (RoBERTa checkpoints have 1).
      layer_norm_eps: epsilon of every LayerNorm.
      pad_token_id: padding id; RoBERTa's position ids start after it.
      variant: "bert" (positions 0..L-1) or "roberta" (real tokens numbered from
        pad_token_id + 1, padding at pad_token_id).
    """

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    split_layer: int
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    variant: str = "bert"

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}"
            )
        if not 0 <= self.split_layer <= self.num_layers:
            raise ValueError(
                f"split_layer must be in [0, {self.num_layers}], got {self.split_layer}"
            )


def _axes(init, *names: str | None):
    """`init` whose parameters carry their logical axis names (MaxText-style): placement rules
    (`kgjax.parallel`) split "mlp" and "heads" over the model axis when a mesh asks for it.
    The values drawn are `init`'s own."""
    return nn.with_logical_partitioning(init, names)


def _dense(features: int, axes: tuple[str | None, str | None], name: str) -> nn.Dense:
    """A Dense layer whose kernel is [in, out] along `axes` and whose bias follows `out`."""
    return nn.Dense(
        features,
        kernel_init=_axes(nn.initializers.lecun_normal(), *axes),
        bias_init=_axes(nn.initializers.zeros_init(), axes[1]),
        name=name,
    )


def _embed(num: int, features: int, rows: str | None, name: str) -> nn.Embed:
    init = nn.initializers.variance_scaling(1.0, "fan_in", "normal", out_axis=0)
    return nn.Embed(num, features, embedding_init=_axes(init, rows, "embed"), name=name)


def _layer_norm(config: EncoderConfig, name: str | None) -> nn.LayerNorm:
    # Two-pass variance, as PyTorch computes it; flax's default one-pass E[x^2] - E[x]^2
    # cancels digits when a residual sum has a large mean relative to its spread.
    return nn.LayerNorm(
        epsilon=config.layer_norm_eps,
        use_fast_variance=False,
        scale_init=_axes(nn.initializers.ones_init(), "embed"),
        bias_init=_axes(nn.initializers.zeros_init(), "embed"),
        name=name,
    )


class Embeddings(nn.Module):
    """Word + token-type + position embeddings, then LayerNorm."""

    config: EncoderConfig

    @nn.compact
    def __call__(self, ids: jax.Array, mask: jax.Array, token_types: jax.Array) -> jax.Array:
        """[B, L] ids, mask, token types -> [B, L, D]."""
        c = self.config
        if c.variant == "roberta":
            # RoBERTa numbers the real tokens pad_token_id + 1, + 2, ... and gives padding the
            # pad_token_id row (fairseq's make_positions); the mask marks the real tokens.
            real = mask.astype(jnp.int32)
            positions = jnp.cumsum(real, axis=1) * real + c.pad_token_id
        else:
            positions = jnp.broadcast_to(jnp.arange(ids.shape[1]), ids.shape)
        x = _embed(c.vocab_size, c.hidden_size, "vocab", "word_embeddings")(ids)
        # Same summation order as the reference implementation (word + type, then + position),
        # so float32 rounding matches it.
        x = x + _embed(c.type_vocab_size, c.hidden_size, None, "token_type_embeddings")(token_types)
        x = x + _embed(c.max_position_embeddings, c.hidden_size, None, "position_embeddings")(
            positions
        )
        return _layer_norm(c, "LayerNorm")(x)


class SelfAttention(nn.Module):
    """Multi-head self-attention over the unpadded tokens, with its output projection."""

    config: EncoderConfig

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        """[B, L, D] hidden, [B, L] mask -> [B, L, D] (before the residual)."""
        c = self.config
        batch, length, _ = x.shape
        head_dim = c.hidden_size // c.num_heads

        def heads(name):
            return _dense(c.hidden_size, ("embed", "heads"), name)(x).reshape(
                batch, length, c.num_heads, head_dim
            )

        # Keys at padding are excluded; a row with no real token (a padded batch row) gets a
        # uniform softmax instead of NaN, and its output is never used.
        out = jax.nn.dot_product_attention(
            heads("query"), heads("key"), heads("value"), mask=mask.astype(bool)[:, None, None, :]
        )
        out = out.reshape(batch, length, c.hidden_size)
        return _dense(c.hidden_size, ("heads", "embed"), "output")(out)


class Layer(nn.Module):
    """One post-LN transformer layer: LN(x + attn(x)), then LN(x + MLP(x))."""

    config: EncoderConfig

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        """[B, L, D] hidden, [B, L] mask -> [B, L, D]."""
        c = self.config
        x = _layer_norm(c, "attention_norm")(x + SelfAttention(c, name="attention")(x, mask))
        h = _dense(c.intermediate_size, ("embed", "mlp"), "intermediate")(x)
        # BERT's "gelu" is the exact erf form, not the tanh approximation (flax's default).
        h = _dense(c.hidden_size, ("mlp", "embed"), "output")(nn.gelu(h, approximate=False))
        return _layer_norm(c, "output_norm")(x + h)


class Encoder(nn.Module):
    """The encoder with LM1 (`lower`), the merge hook (`merge`) and LM2 (`upper`)."""

    config: EncoderConfig

    def setup(self):
        c = self.config
        self.embeddings = Embeddings(c)
        self.layers = [Layer(c) for _ in range(c.num_layers)]
        self.merge_norm = _layer_norm(c, None)

    def lower(
        self, ids: jax.Array, mask: jax.Array, token_types: jax.Array | None = None
    ) -> jax.Array:
        """LM1: [B, L] ids, mask (1 real, 0 padding), token types -> [B, L, D] hidden."""
        if token_types is None:
            token_types = jnp.zeros_like(ids)
        x = self.embeddings(ids, mask, token_types)
        for layer in self.layers[: self.config.split_layer]:
            x = layer(x, mask)
        return x

    def merge(self, hidden: jax.Array, additions: jax.Array, injected: jax.Array) -> jax.Array:
        """The hook: LN(hidden + additions) where injected, hidden (untouched) elsewhere.

        Args:
          hidden: [B, L, D] LM1 output.
          additions: [B, L, D] vectors to add; ignored where `injected` is False.
          injected: [B, L] bool, the positions that receive something.

        Returns:
          [B, L, D], equal to `hidden` bit for bit wherever `injected` is False.
        """
        merged = self.merge_norm(hidden + additions)
        return jnp.where(injected[..., None], merged, hidden)

    def upper(self, hidden: jax.Array, mask: jax.Array) -> jax.Array:
        """LM2: [B, L, D] hidden, [B, L] mask -> [B, L, D] final hidden states."""
        for layer in self.layers[self.config.split_layer :]:
            hidden = layer(hidden, mask)
        return hidden

    def __call__(
        self, ids: jax.Array, mask: jax.Array, token_types: jax.Array | None = None
    ) -> jax.Array:
        """The unsplit forward: [B, L] ids, mask -> [B, L, D]."""
        return self.upper(self.lower(ids, mask, token_types), mask)

    def split(
        self,
        ids: jax.Array,
        mask: jax.Array,
        additions: jax.Array,
        injected: jax.Array,
        token_types: jax.Array | None = None,
    ) -> jax.Array:
        """LM1, merge, LM2 in one call: [B, L] ids, mask, [B, L, D], [B, L] -> [B, L, D]."""
        return self.upper(self.merge(self.lower(ids, mask, token_types), additions, injected), mask)


def _boxed_init(config: EncoderConfig, key: jax.Array) -> dict:
    ids = jnp.zeros((1, 2), jnp.int32)
    hidden = jnp.zeros((1, 2, config.hidden_size), jnp.float32)
    injected = jnp.zeros((1, 2), bool)
    variables = Encoder(config).init(
        key, ids, jnp.ones_like(ids), hidden, injected, method=Encoder.split
    )
    return variables["params"]


def init_params(config: EncoderConfig, key: jax.Array) -> dict:
    """Random parameters (flax default initialisers), including the merge LayerNorm.

    Args:
      config: the architecture.
      key: PRNG key.

    Returns:
      The parameter pytree `{"embeddings": ..., "layers_0": ..., ..., "merge_norm": ...}` of
      plain arrays (`with_logical_axes` names their axes for placement on a mesh).
    """
    return nn.meta.unbox(_boxed_init(config, key))


def logical_axes(config: EncoderConfig) -> dict:
    """Each parameter's logical axis names, e.g. ("embed", "mlp") for a layer's
    intermediate kernel: the pytree of `init_params` with tuples for leaves."""
    boxed = jax.eval_shape(lambda: _boxed_init(config, jax.random.key(0)))
    return jax.tree.map(lambda box: tuple(box.names), boxed, is_leaf=_is_box)


def with_logical_axes(params: dict, config: EncoderConfig) -> dict:
    """`params` (random or pretrained) boxed with their logical axis names (`nn.Partitioned`),
    for `kgjax.parallel.Layout` to place: "mlp" and "heads" split over the model axis."""
    return jax.tree.map(
        lambda names, value: nn.Partitioned(value, names=names),
        logical_axes(config),
        params,
        is_leaf=lambda x: isinstance(x, tuple),
    )


def _is_box(x) -> bool:
    return isinstance(x, nn.Partitioned)


def _pure(method, name: str):
    """`Encoder.<method>` as a pure function `name(params, *inputs, config=...)`.

    The inputs are the method's, positionally; the static `config` is keyword-only, so that
    `functools.partial(fn, config=...)` binds it before `jax.jit`.
    """

    def fn(params: dict, *inputs: jax.Array | None, config: EncoderConfig) -> jax.Array:
        return Encoder(config).apply({"params": params}, *inputs, method=method)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = method.__doc__
    return fn


# LM1: (ids, mask, token_types=None) -> [B, L, D] hidden.
lower = _pure(Encoder.lower, "lower")
# The hook between LM1 and LM2: (hidden, additions, injected) -> [B, L, D].
merge = _pure(Encoder.merge, "merge")
# LM2: (hidden, mask) -> [B, L, D] hidden.
upper = _pure(Encoder.upper, "upper")
# The whole encoder without the hook: (ids, mask, token_types=None) -> [B, L, D].
forward = _pure(Encoder.__call__, "forward")
# `upper(merge(lower(ids)))`: (ids, mask, additions, injected, token_types=None) -> [B, L, D].
forward_split = _pure(Encoder.split, "forward_split")


def span_additions(
    vectors: jax.Array, spans: jax.Array, span_mask: jax.Array, length: int
) -> tuple[jax.Array, jax.Array]:
    """Spreads one vector per mention span over the span's tokens, for `merge`.

    JAKET adds the entity's vector at every token of its mention. Spans are assumed disjoint
    (as in JAKET); overlapping spans would add both vectors at the shared tokens.

    Args:
      vectors: [B, S, D] one vector per mention.
      spans: [B, S, 2] int (start, end) token positions, end inclusive.
      span_mask: [B, S] bool, False for padded mention slots (their vectors are ignored).
      length: L, the sequence length.

    Returns:
      additions: [B, L, D] the sum of the vectors whose span covers each token.
      injected: [B, L] bool, the tokens covered by at least one real span.
    """
    positions = jnp.arange(length)
    # [B, S, L]: which tokens each real span covers; static-shaped, no scatter.
    covers = (positions >= spans[..., :1]) & (positions <= spans[..., 1:]) & span_mask[..., None]
    additions = jnp.einsum("bml,bmd->bld", covers.astype(vectors.dtype), vectors)
    return additions, covers.any(axis=1)


def mean_pool(hidden: jax.Array, mask: jax.Array) -> jax.Array:
    """Masked mean over tokens (sentence-transformers' mean pooling).

    Args:
      hidden: [B, L, D].
      mask: [B, L], 1 for real tokens.

    Returns:
      [B, D]; an all-padding row gives zeros (the count is clamped at 1e-9 as in
      sentence-transformers).
    """
    mask = mask.astype(hidden.dtype)[..., None]
    return (hidden * mask).sum(axis=1) / jnp.maximum(mask.sum(axis=1), 1e-9)


def mention_pool(hidden: jax.Array, spans: jax.Array) -> jax.Array:
    """JAKET's entity vector: the mean of the hidden states at a span's start and end tokens.

    Args:
      hidden: [B, L, D].
      spans: [B, 2] int (start, end) token positions, end inclusive.

    Returns:
      [B, D].
    """
    ends = jnp.take_along_axis(hidden, spans[:, :, None], axis=1)  # [B, 2, D]
    return (ends[:, 0] + ends[:, 1]) / 2
