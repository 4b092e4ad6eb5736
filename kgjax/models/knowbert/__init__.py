"""KnowBERT (Peters et al., EMNLP 2019): the knowledge attention and recontextualisation
layer between two layers of the encoder (`kar.py`) and its entity linker's loss.

kar = KnowledgeAttentionRecontextualisation(num_heads=4, mlp_size=1024)
inputs = (hidden, token_mask, spans, span_mask, ids, priors, candidate_mask, entity_table)
variables = kar.init(key, *inputs)
hidden, scores = kar.apply(variables, *inputs)  # [B, L, Dh], [B, S, C]
loss = linker_loss(scores, candidate_mask, gold)  # gold: int [B, S] position in C, -1 for none
"""

from kgjax.models.knowbert.kar import (
    MASKED_SCORE,
    AttentionBlock,
    KnowledgeAttentionRecontextualisation,
    SelfAttentiveSpanPooling,
    linker_loss,
    weighted_entity_embeddings,
)

__all__ = [
    "MASKED_SCORE",
    "AttentionBlock",
    "KnowledgeAttentionRecontextualisation",
    "SelfAttentiveSpanPooling",
    "linker_loss",
    "weighted_entity_embeddings",
]
