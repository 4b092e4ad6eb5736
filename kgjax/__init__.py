"""kgjax: knowledge-graph embedding and knowledge-enhanced language models in JAX/Flax."""

__version__ = "0.1.0"
