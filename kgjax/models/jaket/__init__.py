"""JAKET (Yu et al., AAAI 2022): the knowledge module's pre-training model (`knowledge.py`).

The language-module side (LM1/LM2 joined by E^KM at the mentions) is part 2.
"""

from kgjax.models.jaket.knowledge import KnowledgePretraining

__all__ = ["KnowledgePretraining"]
