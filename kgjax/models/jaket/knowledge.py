"""JAKET's knowledge module with its two KG-only pre-training heads.

Yu et al., AAAI 2022, "Knowledge Module" and "Pre-training": the module maps the entity
context memory's rows E^(0) (LM1 vectors of the entities' descriptions) through relational
GAT layers to E^KM, and two heads train it on the graph alone:
  - entity category prediction: a category per entity from E^KM_v, cross-entropy (L_c);
  - relation prediction: the relation between an entity pair from (E^KM_h, E^KM_t),
    cross-entropy over relations (L_r).
The paper names the tasks, not the heads: here the category head is one linear layer (a
probe, so the category knowledge has to be in E^KM), and the relation head GELU(W1 [E_h ;
E_t] + b1) W2 + b2, JAKET's transformation g with the pair concatenated (ordered: r and its
inverse are told apart).

Relations also come from text (their LM1 vectors R [R, D]). A graph with inverse edges
(relation ids r + R, `kgjax.data.subgraphs.Adjacency.build(inverse_edges=True)`) needs a
vector for each inverse relation r^-1 too: a learned linear map of R_r (`inverse`), one map
for all relations, so that a graph never seen in pre-training still gets inverse vectors
from its relations' text.

Shapes: N nodes of the padded subgraph, E edges, R relations, D width (the encoder's),
C categories, P relation-prediction pairs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from kgjax.models import graph


class KnowledgePretraining(nn.Module):
    """E^(0) rows of a subgraph -> (E^KM, category logits, relation logits).

    Parameters: `km` (the `graph.KnowledgeModule`), `inverse` (with inverse relations),
    `category` (a Dense to C), `relation_hidden` and `relation` (the pair head's two layers).

    Attributes:
      num_categories: C (0: no category head).
      num_relations: R, the classes of relation prediction and the rows of `relations`.
      num_layers, num_heads, composition, aggregation: the knowledge module's.
      inverse_relations: the edges may carry inverse relations r + R (their table rows are
        `inverse`(R_r)).
    """

    num_categories: int
    num_relations: int
    num_layers: int = 2
    num_heads: int = 4
    composition: str = "add"
    aggregation: str = "attention"
    inverse_relations: bool = True

    @nn.compact
    def __call__(
        self,
        nodes: jax.Array,
        relations: jax.Array,
        senders: jax.Array,
        receivers: jax.Array,
        edge_relations: jax.Array,
        edge_mask: jax.Array,
        pair_heads: jax.Array,
        pair_tails: jax.Array,
    ) -> tuple[jax.Array, jax.Array | None, jax.Array]:
        """Runs the knowledge module and both heads.

        Args:
          nodes: float [N, D] E^(0), the memory rows of the subgraph's entities.
          relations: float [R, D] the relations' text vectors.
          senders, receivers, edge_relations, edge_mask: the subgraph's edges [E] (an edge
            u -> v under r carries f(E_u, R_r) to v; `graph.gat`), relations in [0, R), or
            [0, 2R) with `inverse_relations`.
          pair_heads, pair_tails: int [P] local node ids of the pairs whose relation is
            predicted.

        Returns:
          (E^KM float [N, D], category logits [N, C] or None, relation logits [P, R]).
        """
        if self.inverse_relations:
            inverse = nn.Dense(relations.shape[-1], name="inverse")(relations)
            relations = jnp.concatenate([relations, inverse])  # [2R, D]
        module = graph.KnowledgeModule(
            self.num_layers, self.num_heads, self.composition, self.aggregation, name="km"
        )
        entities = module(nodes, relations, senders, receivers, edge_relations, edge_mask)
        categories = None
        if self.num_categories:
            categories = nn.Dense(self.num_categories, name="category")(entities)
        pairs = jnp.concatenate([entities[pair_heads], entities[pair_tails]], axis=-1)
        hidden = nn.gelu(nn.Dense(entities.shape[-1], name="relation_hidden")(pairs))
        return entities, categories, nn.Dense(self.num_relations, name="relation")(hidden)
