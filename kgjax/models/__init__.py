"""Models: knowledge-graph embeddings (kge/), language models (lm/), graph models to come."""
