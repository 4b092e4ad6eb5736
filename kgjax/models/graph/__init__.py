"""Knowledge-graph encoders: JAKET's relational graph attention (`gat.py`).

module = KnowledgeModule(num_layers=2, num_heads=4)
edges = (senders, receivers, edge_relations, edge_mask)  # each [E]
variables = module.init(key, nodes, relations, *edges)  # nodes [N, D], relations [R, D]
entities = module.apply(variables, nodes, relations, *edges)  # [N, D]
"""

from kgjax.models.graph.gat import (
    AGGREGATIONS,
    COMPOSITIONS,
    Composition,
    KnowledgeModule,
    RelationalGATLayer,
    circular_correlation,
    with_inverse_edges,
)

__all__ = [
    "AGGREGATIONS",
    "COMPOSITIONS",
    "Composition",
    "KnowledgeModule",
    "RelationalGATLayer",
    "circular_correlation",
    "with_inverse_edges",
]
