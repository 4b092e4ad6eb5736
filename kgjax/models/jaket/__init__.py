"""JAKET (Yu et al., AAAI 2022): the knowledge module's pre-training model (`knowledge.py`)
and the language side's masked entity prediction head (`entity_prediction.py`).

The joint model (LM1/LM2 joined by E^KM at the mentions) is part 2, being built.
"""

from kgjax.models.jaket.entity_prediction import MaskedEntityHead
from kgjax.models.jaket.knowledge import KnowledgePretraining

__all__ = ["KnowledgePretraining", "MaskedEntityHead"]
