"""KnowBERT's Knowledge Attention and Recontextualization component (KAR) and its linker loss.

Peters, Neumann, Logan, Schwartz, Joshi, Singh, Smith, "Knowledge Enhanced Contextual Word
Representations", EMNLP 2019, section 3; reference implementation allenai/kb (`SolderedKG`,
`EntityDisambiguator`, `DotAttentionWithPrior`, `SpanAttentionLayer` in kb/knowbert.py and
kb/span_attention_layer.py). KAR sits between two layers of the encoder: with
`EncoderConfig.split_layer = k`, `lower` (layers 1..k) gives h, KAR gives h', and `upper`
continues from h' (allenai/kb's WordNet model solders it after layer 10 of BERT-base, its
`soldered_layers = {"wordnet": 9}` counting from 0). `Encoder.merge` is not used: KAR ends in
its own residual and LayerNorm. With h the hidden states (the paper's H_i) and, per mention
span m, candidate entities e_mk with priors p_mk (from `kgjax.data.wordnet_candidates` for
WordNet):

  (1) h^proj = h W1 + b1                                            [B, L, De]
  (2) s_m    = sum_{i in m} softmax_{i in m}(h^proj_i w) h^proj_i     self-attentive pooling
  (3) S^e    = TransformerBlock(S)          self-attention among a sentence's spans
      psi_mk = MLP(p_mk, s^e_m . e_mk / sqrt(De))      (a 2-input ReLU MLP, `DotAttentionWithPrior`)
  (4) psi~_mk = exp(psi_mk) / sum_{k': psi_mk' >= delta} exp(psi_mk') if psi_mk >= delta, else 0
      s'^e_m = s^e_m + sum_k psi~_mk e_mk
  (5) h'^proj = MLP(MultiHeadAttn(h^proj, S'^e, S'^e))   (residuals and LayerNorms as a BERT
                                                          layer, allenai/kb's SpanAttentionLayer)
      h'      = LayerNorm(h'^proj W2 + b2 + h)

The paper writes (5) without the final LayerNorm; allenai/kb has it (`output_layer_norm`), and
so has this module, since h' feeds a pretrained layer that expects normalised input.

Choices, each where the paper leaves room:
  - W2 starts as the pseudo-inverse of W1 (allenai/kb's `_init_kg_to_bert_projection`), so
    that at initialisation W1 W2 is the orthogonal projection onto the subspace W1 reads: the
    recontextualised part re-enters h in the directions it came from. Both biases start at
    zero, so (b2 = -b1 W2) this is the exact left inverse of the projection as initialised.
  - The entity table [V, De] is an argument, not a parameter, and passes through
    `jax.lax.stop_gradient`: KnowBERT keeps the entity embeddings frozen, and here no gradient
    can reach them whatever the optimiser is given.
  - delta is `threshold`; None keeps every valid candidate. allenai/kb applies its threshold
    only with its margin loss, whose hinges at 0 give psi an absolute scale; under the
    softmax loss (`linker_loss`, allenai/kb's choice for WordNet) psi is defined up to a
    shift per span, so a fixed delta has no meaning there and allenai/kb uses none.
  - A span with no candidate left after (4) gets no entity addition (s'^e_m = s^e_m);
    allenai/kb substitutes a learned null embedding instead.
  - A sentence without any candidate span has nothing to attend to in (5): h' = h there,
    exactly (see `KnowledgeAttentionRecontextualisation`).
  - No dropout; allenai/kb's LayerNorms on the pooled spans, on the entity embeddings and on
    s'^e are not in the paper and not here.

Shapes: B batch, L tokens, S mention spans per sentence, C candidates per span, V entities
(rows of the entity table), De entity width, Dh the encoder's hidden width, H attention heads.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import linen as nn

# psi at masked candidates: large and finite, so that a softmax over a fully masked row (a
# padded span) stays finite, and far below any score an MLP on priors and dot products gives.
MASKED_SCORE = -1e9


def _layer_norm(epsilon: float, name: str) -> nn.LayerNorm:
    # Two-pass variance, as the encoder's own LayerNorms (kgjax.models.lm.encoder).
    return nn.LayerNorm(epsilon=epsilon, use_fast_variance=False, name=name)


class SelfAttentiveSpanPooling(nn.Module):
    """Step (2): each span's tokens weighted by a softmax over the span of a learned score.

    allenai's `SelfAttentiveSpanExtractor`: one scalar score per token (x w, a Dense to 1), a
    softmax over the tokens from first to last inclusive (padding tokens excluded), the weighted
    sum. The score has no bias: a softmax is blind to a shift, so a bias would be a parameter
    without gradient. Tokens outside a span take no weight in it, so they cannot change its
    vector; a padded span (or one covering only padding) pools to zeros.
    """

    @nn.compact
    def __call__(
        self, x: jax.Array, token_mask: jax.Array, spans: jax.Array, span_mask: jax.Array
    ) -> jax.Array:
        """Pools spans.

        Args:
          x: [B, L, F] token vectors.
          token_mask: [B, L], true at real tokens.
          spans: int [B, S, 2] first and last token of each span, inclusive.
          span_mask: [B, S], false at padded spans (their positions are ignored).

        Returns:
          [B, S, F] pooled vectors, zeros at padded spans.
        """
        scores = nn.Dense(1, use_bias=False, name="score")(x)[..., 0]  # [B, L]
        positions = jnp.arange(x.shape[1])
        inside = (
            (positions >= spans[..., :1])
            & (positions <= spans[..., 1:])
            & token_mask.astype(bool)[:, None, :]
            & span_mask.astype(bool)[..., None]
        )  # [B, S, L]
        weights = jax.nn.softmax(
            jnp.broadcast_to(scores[:, None, :], inside.shape), axis=-1, where=inside
        )
        return jnp.einsum("bsl,blf->bsf", weights, x)


class AttentionBlock(nn.Module):
    """A post-LN transformer block whose queries attend to a separate set of keys.

    x = LN(q + MultiHeadAttn(q, kv, kv)), then LN(x + MLP(x)) with BERT's exact-erf GELU: the
    span encoder of (3) (q = kv = the spans) and the recontextualisation of (5) (q = the
    tokens, kv = the enhanced spans), as BERT layers in allenai/kb.

    Attributes:
      num_heads: H; must divide the width of q.
      mlp_size: the MLP's hidden width.
      layer_norm_eps: epsilon of both LayerNorms.
    """

    num_heads: int
    mlp_size: int
    layer_norm_eps: float

    @nn.compact
    def __call__(self, queries: jax.Array, keys: jax.Array, key_mask: jax.Array) -> jax.Array:
        """[B, Q, F] queries, [B, K, F] keys and values, [B, K] key mask -> [B, Q, F].

        A query row with no unmasked key attends uniformly to the masked ones (flax's
        attention); callers discard such rows.
        """
        width = queries.shape[-1]
        attended = nn.MultiHeadDotProductAttention(num_heads=self.num_heads, name="attention")(
            queries, keys, mask=key_mask.astype(bool)[:, None, None, :]
        )
        x = _layer_norm(self.layer_norm_eps, "attention_norm")(queries + attended)
        y = nn.gelu(nn.Dense(self.mlp_size, name="intermediate")(x), approximate=False)
        return _layer_norm(self.layer_norm_eps, "output_norm")(
            x + nn.Dense(width, name="output")(y)
        )


def weighted_entity_embeddings(
    scores: jax.Array, candidate_mask: jax.Array, entities: jax.Array, threshold: float | None
) -> jax.Array:
    """Step (4)'s e~_m = sum_k psi~_mk e_mk: the candidates above the threshold, softmax-weighted.

    Args:
      scores: [..., C] linker scores psi.
      candidate_mask: [..., C], false at padded candidates (never kept).
      entities: [..., C, De] the candidates' embeddings.
      threshold: delta; a candidate is kept where psi >= delta. None keeps every valid one.

    Returns:
      [..., De]; zeros for a span with no kept candidate.
    """
    kept = candidate_mask.astype(bool)
    if threshold is not None:
        kept = kept & (scores >= threshold)
    weights = jax.nn.softmax(scores, axis=-1, where=kept)
    return jnp.einsum("...c,...cd->...d", weights, entities)


class KnowledgeAttentionRecontextualisation(nn.Module):
    """KAR: (h, candidate spans and entities, entity table) -> (h', linker scores psi).

    Steps (1)-(5) of the module docstring. Parameters: `project` (W1), `span_pooling`,
    `span_encoder`, `linker_hidden` and `linker_output` (the psi MLP), `recontextualise`,
    `back_project` (W2, starting as pinv(W1)) and `output_norm`.

    Where a sentence has no candidate span, no token has a key to attend to in (5) and the
    attention would average the padded spans' vectors: h' would be h plus noise from padding.
    The residual is therefore skipped per token with `jnp.where` wherever the sentence has no
    unmasked span (and at padding tokens), so such a sentence leaves KAR bit for bit as it
    entered, and the layers above see exactly what the pretrained encoder would give them.

    Attributes:
      num_heads: H of both attention blocks; must divide De.
      mlp_size: hidden width of both blocks' MLPs (allenai/kb's WordNet model: 1024).
      linker_hidden_size: hidden width of the psi MLP (allenai/kb: 100).
      threshold: delta of step (4); None keeps every valid candidate.
      layer_norm_eps: epsilon of KAR's LayerNorms (allenai/kb's BertLayerNorm(eps=1e-5)).
    """

    num_heads: int = 4
    mlp_size: int = 1024
    linker_hidden_size: int = 100
    threshold: float | None = None
    layer_norm_eps: float = 1e-5

    @nn.compact
    def __call__(
        self,
        hidden: jax.Array,
        token_mask: jax.Array,
        spans: jax.Array,
        span_mask: jax.Array,
        candidate_ids: jax.Array,
        candidate_priors: jax.Array,
        candidate_mask: jax.Array,
        entity_table: jax.Array,
    ) -> tuple[jax.Array, jax.Array]:
        """Links the candidate spans and recontextualises the tokens with their entities.

        Args:
          hidden: [B, L, Dh] h, the output of the layer below.
          token_mask: [B, L], true at real tokens.
          spans: int [B, S, 2] first and last token of each candidate span, inclusive.
          span_mask: [B, S], false at padded spans.
          candidate_ids: int [B, S, C] rows of `entity_table`; any value where masked.
          candidate_priors: [B, S, C] p_mk, e.g. summing to 1 over a span's candidates.
          candidate_mask: [B, S, C], false at padded candidates.
          entity_table: [V, De] the frozen entity embeddings (no gradient reaches them).

        Returns:
          hidden: [B, L, Dh] h'; equal to `hidden` at padding tokens and in every sentence
            without a candidate span.
          scores: [B, S, C] psi, `MASKED_SCORE` at masked candidates and padded spans.
        """
        table = jax.lax.stop_gradient(entity_table)
        entity_width = table.shape[-1]
        span_mask = span_mask.astype(bool)
        valid = candidate_mask.astype(bool) & span_mask[..., None]  # [B, S, C]

        project = nn.Dense(entity_width, name="project")
        projected = project(hidden)  # (1) [B, L, De]
        pooled = SelfAttentiveSpanPooling(name="span_pooling")(
            projected, token_mask, spans, span_mask
        )  # (2) [B, S, De]
        block = dict(
            num_heads=self.num_heads, mlp_size=self.mlp_size, layer_norm_eps=self.layer_norm_eps
        )
        linked = AttentionBlock(**block, name="span_encoder")(pooled, pooled, span_mask)  # (3)

        entities = table[candidate_ids]  # [B, S, C, De]
        dots = jnp.einsum("bsd,bscd->bsc", linked, entities) / math.sqrt(entity_width)
        features = jnp.stack([candidate_priors.astype(dots.dtype), dots], axis=-1)  # [B, S, C, 2]
        # The output bias shifts every psi alike: it matters against a threshold, and is a
        # parameter without gradient under a softmax alone (`linker_loss`, step (4)).
        scores = nn.Dense(1, use_bias=self.threshold is not None, name="linker_output")(
            nn.relu(nn.Dense(self.linker_hidden_size, name="linker_hidden")(features))
        )[..., 0]
        scores = jnp.where(valid, scores, MASKED_SCORE)

        enhanced = linked + weighted_entity_embeddings(scores, valid, entities, self.threshold)
        attended = AttentionBlock(**block, name="recontextualise")(
            projected, enhanced, span_mask
        )  # (5) [B, L, De]

        # Only called at init: W2 = pinv(W1), computed from W1 as just drawn.
        def pseudo_inverse(key, shape, dtype=jnp.float32):
            del key
            return jnp.linalg.pinv(project.variables["params"]["kernel"]).astype(dtype)

        back = nn.Dense(hidden.shape[-1], kernel_init=pseudo_inverse, name="back_project")
        out = _layer_norm(self.layer_norm_eps, "output_norm")(hidden + back(attended))
        attends = token_mask.astype(bool) & span_mask.any(axis=-1, keepdims=True)  # [B, L]
        return jnp.where(attends[..., None], out, hidden), scores


def linker_loss(scores: jax.Array, candidate_mask: jax.Array, gold: jax.Array) -> jax.Array:
    """The entity linker's loss: cross-entropy of the gold candidate among a span's candidates.

    The paper offers a log-likelihood and a max-margin form; this is the log-likelihood,
    L_EL = -sum_m log(exp(psi_mg) / sum_k exp(psi_mk)), as allenai/kb trains its WordNet linker
    (`loss_type: "softmax"`): every WordNet candidate span of its training data has a gold
    sense (SemCor), so there are no null links for a margin to push below zero. The mean is
    over spans with a gold candidate.

    Args:
      scores: [B, S, C] psi (`KnowledgeAttentionRecontextualisation`'s second output).
      candidate_mask: [B, S, C], false at padded candidates (excluded from the softmax).
      gold: int [B, S], the gold candidate's position in C; negative where a span has no gold
        entity among its candidates (or is padding). A gold position at a masked candidate
        also counts as no gold.

    Returns:
      Scalar: the mean over spans with gold of -log softmax(psi)_gold; 0 when there are none.
    """
    candidate_mask = candidate_mask.astype(bool)
    index = jnp.maximum(gold, 0)[..., None]
    has_gold = (gold >= 0) & jnp.take_along_axis(candidate_mask, index, axis=-1)[..., 0]
    log_probs = jax.nn.log_softmax(jnp.where(candidate_mask, scores, MASKED_SCORE), axis=-1)
    nll = -jnp.take_along_axis(log_probs, index, axis=-1)[..., 0]  # [B, S]
    count = has_gold.sum()
    return jnp.where(has_gold, nll, 0.0).sum() / jnp.maximum(count, 1)
