"""Knowledge-graph embedding models: stateless interactions over entity and relation tables.

model = kgjax.models.kge.get("rotate", num_entities, num_relations, dim=500, gamma=6.0)
params = model.init(jax.random.key(0))
model.score_t(params, h, r)  # [B, V]
model.interaction.match(model.interaction.tail_query(h_vectors, r_vectors), t_vectors)  # [B]
"""

from __future__ import annotations

import dataclasses

from kgjax.models.kge.base import EmbeddingTables, Interaction, KGEModel, Params
from kgjax.models.kge.bilinear import (
    RESCAL,
    ComplEx,
    ComplExInteraction,
    DistMult,
    DistMultInteraction,
    RESCALInteraction,
)
from kgjax.models.kge.parametrized import (
    BoundModel,
    ConvE,
    ConvEInteraction,
    TuckER,
    TuckERInteraction,
)
from kgjax.models.kge.translational import (
    PairRE,
    PairREInteraction,
    RotatE,
    RotatEInteraction,
    TransE,
    TransEInteraction,
)

MODELS: dict[str, type[KGEModel]] = {
    cls.name: cls for cls in (TransE, DistMult, ComplEx, RotatE, RESCAL, PairRE, TuckER, ConvE)
}


def get(name: str, num_entities: int, num_relations: int, **hparams) -> KGEModel:
    """Builds a KGE model by name (case-insensitive): transe, distmult, complex, rotate,
    rescal, pairre, tucker, conve.

    Args:
      name: the model's name.
      num_entities: V.
      num_relations: R.
      **hparams: the model's other fields (`KGEModel`: dim, gamma, entity_chunk_size; TuckER
        and ConvE add their own: relation_dim, dropouts, height, channels, ...).

    Raises:
      ValueError: an unknown model name or hyper-parameter.
    """
    cls = MODELS.get(name.lower())
    if cls is None:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
    known = {f.name for f in dataclasses.fields(cls)} - {"num_entities", "num_relations"}
    unknown = set(hparams) - known
    if unknown:
        raise ValueError(
            f"unknown hyper-parameter(s) for {name}: {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(known))}"
        )
    return cls(num_entities=num_entities, num_relations=num_relations, **hparams)


__all__ = [
    "MODELS",
    "RESCAL",
    "BoundModel",
    "ComplEx",
    "ComplExInteraction",
    "ConvE",
    "ConvEInteraction",
    "DistMult",
    "DistMultInteraction",
    "EmbeddingTables",
    "Interaction",
    "KGEModel",
    "PairRE",
    "PairREInteraction",
    "Params",
    "RESCALInteraction",
    "RotatE",
    "RotatEInteraction",
    "TransE",
    "TransEInteraction",
    "TuckER",
    "TuckERInteraction",
    "get",
]
