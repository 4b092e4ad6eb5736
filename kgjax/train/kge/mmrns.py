"""MMRNS: relation-enhanced multimodal hard negatives drawn by masked Gumbel top-k.

Xu et al., "Relation-enhanced Negative Sampling for Multimodal Knowledge Graph Completion",
ACM MM 2022 (reference code: github.com/quqxui/MMRNS, `run_gumbel.py`). At every step:

1. A pool of P entities is drawn uniformly without replacement, shared by the batch (the
   reference's `pre_sample_num`, 1,500), so the cost does not grow with V.
2. The corrupted side's true entity (the anchor) and every pool entity are represented per
   modality by `kgjax.models.kge.kca.KCA` under the triple's relation: text and visual features
   through knowledge-guided cross-modal attention, and the KGE model's own embeddings through
   the structural gate. sim_m[b, n] is the cosine of anchor b and pool entity n in modality m.
3. The sampling distribution is p = mean_m softmax(sim_m / epsilon), with the exploration
   schedule epsilon = epsilon_0 / (1 + log(step + 1)): near uniform early, sharper later.
4. Known positives in the pool (all true answers of the query in the training triples) are
   masked in log space, and K negatives are drawn without replacement by Gumbel top-k; the
   straight-through one-hot (`kgjax.ops.gumbel.straight_through_gather`) carries the KGE
   loss's gradient into p, hence into the sampler's parameters.
5. A contrastive loss per modality pulls the anchor towards the pool's positives and away from
   its negatives, each weighted by w: the self-adversarial weight softmax(alpha * score) of a
   drawn negative, 1/P for the rest; averaged over modalities and added to the KGE loss with
   weight beta (the reference: 1/loss_rate = 1/100).

Where this differs from the reference, and why:
- The contrastive loss is per triple, -log(sum_P w e^sim / sum_N w e^sim), as the paper's
  equation writes it, with the anchor itself counted among the positives (cosine 1, weight 1/P) so that a
  triple whose pool holds none of its positives still has a finite loss; the reference pools
  the sums over the whole batch. Drawn negatives weigh their self-adversarial weight, as the
  paper says; the reference multiplies it by 1/P.
- Cosines backpropagate through the norms (the reference detaches them).
- Padded sentences and regions are masked (see `kgjax.models.kge.kca`).
- Without visual features, the text guides itself (see `kgjax.models.kge.kca`).

Shapes: B batch, K negatives, P pool, V entities, Q modalities, L rows per entity (sentences
or regions), D feature width, De entity width.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from kgjax.config import ConfigError
from kgjax.models.kge.base import KGEModel, Params
from kgjax.models.kge.kca import KCA
from kgjax.ops import gumbel, sampling
from kgjax.ops.similarity import cosine, grouped_cosine, row_blocks
from kgjax.text.features import DESCRIPTIONS, NO_FEATURES, load_features


def exploration_epsilon(step: jax.Array, epsilon0: float) -> jax.Array:
    """epsilon_0 / (1 + log(step + 1)): epsilon_0 at step 0, then slowly decreasing.

    The reference counts steps from 1 (log(1) = 0), so the schedule is shifted by one here.
    """
    return epsilon0 / (1.0 + jnp.log1p(jnp.asarray(step, jnp.float32)))


def contrastive_loss(similarities: jax.Array, weights: jax.Array, positive: jax.Array) -> jax.Array:
    """The weighted contrastive loss of each anchor: -log(sum_pos w e^sim / sum_neg w e^sim).

    pos is the anchor itself (cosine 1, weight 1/P) plus the pool's known answers; neg is the
    rest of the pool. A row without pool negatives has loss 0.

    Args:
      similarities: float [Q, B, P] cosines between anchors and pool entities.
      weights: float [B, P] > 0 (self-adversarial for drawn negatives, 1/P otherwise).
      positive: bool [B, P], pool entities that are known answers.

    Returns:
      float [Q, B].
    """
    pool_size = similarities.shape[-1]
    logits = similarities + jnp.log(weights)

    def masked_logsumexp(where):
        # A finite stand-in for -inf: an empty set gives ~-1e30, and its gradient stays 0.
        return jax.nn.logsumexp(jnp.where(where, logits, -1e30), axis=-1)

    positives = jnp.logaddexp(1.0 - jnp.log(pool_size), masked_logsumexp(positive))
    has_negatives = jnp.any(~positive, axis=-1)
    return jnp.where(has_negatives, masked_logsumexp(~positive) - positives, 0.0)


@dataclasses.dataclass(frozen=True)
class MMRNSSampler:
    """The MMRNS negative sampler (module docstring); built by `from_config`.

    Attributes:
      num_negatives: K.
      pool_size: P, the pre-sample pool (capped at V).
      epsilon0: epsilon_0 of the exploration schedule (the reference: 10).
      beta: the contrastive loss's weight (the reference: 1 / 100).
      gumbel_temperature: tau of the straight-through relaxation (the reference: 1).
      adversarial_temperature: alpha of the self-adversarial weights in the contrastive loss.
      text_width, num_sentences, visual_width, num_regions: the feature shapes; width 0 for a
        modality without features.
      attention_dim, output_dim, structure_hidden: KCA's widths.
      chunk_size: batch rows per block where each row gathers (or recomputes) its relation's
        pool representations, holding [chunk, P, De] at a time instead of [B, P, De]; unused
        with few relations (`grouped_cosine`).
      text_source, visual_source: where the features come from (`kgjax.text.features`:
        "descriptions", "synthetic", "none" or a .npy/.npz file).
    """

    num_negatives: int
    pool_size: int = 1500
    epsilon0: float = 10.0
    beta: float = 0.01
    gumbel_temperature: float = 1.0
    adversarial_temperature: float = 1.0
    text_width: int = 384
    num_sentences: int = 4
    visual_width: int = 0
    num_regions: int = 24
    attention_dim: int = 50
    output_dim: int = 50
    structure_hidden: int = 100
    chunk_size: int = 64
    text_source: str = DESCRIPTIONS
    visual_source: str = NO_FEATURES

    def kca(self, model: KGEModel) -> KCA:
        """The representation network for `model`'s embedding widths."""
        return KCA(
            text_width=self.text_width,
            num_sentences=self.num_sentences,
            visual_width=self.visual_width,
            num_regions=self.num_regions,
            entity_width=model.entity_width,
            relation_width=model.relation_width,
            attention_dim=self.attention_dim,
            output_dim=self.output_dim,
            structure_hidden=self.structure_hidden,
        )

    def init(self, rng: jax.Array, model: KGEModel) -> Params:
        """KCA's parameters.

        Raises:
          ValueError: more negatives than pool entities.
        """
        pool_size = min(self.pool_size, model.num_entities)
        if self.num_negatives > pool_size:
            raise ValueError(
                f"mmrns: {self.num_negatives} negatives cannot be drawn without replacement "
                f"from a pool of {pool_size} entities"
            )
        return self.kca(model).init_params(rng)

    def features(
        self,
        num_entities: int,
        seed: int,
        sentences: Callable[[int], tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> dict[str, np.ndarray]:
        """The per-entity feature arrays of `text_source` and `visual_source`.

        Args:
          num_entities: V.
          seed: seeds synthetic features.
          sentences: fn(L) -> description sentence vectors and mask
            (`kgjax.text.features.sentence_features`), for the "descriptions" source.

        Returns:
          {"text": float32 [V, L_t, D_t], "text_mask": bool [V, L_t]} when text_width > 0, and
          {"visual", "visual_mask"} likewise when visual_width > 0.

        Raises:
          ConfigError: a source that cannot be read or does not match the configured shape.
        """
        out = {}
        if self.text_width:
            out["text"], out["text_mask"] = load_features(
                self.text_source,
                "config.negatives.mmrns.text",
                num_entities,
                (self.num_sentences, self.text_width),
                seed,
                sentences,
            )
        if self.visual_width:
            if self.visual_source == DESCRIPTIONS:
                raise ConfigError(
                    "config.negatives.mmrns.visual: descriptions are text; give a feature file"
                )
            out["visual"], out["visual_mask"] = load_features(
                self.visual_source,
                "config.negatives.mmrns.visual",
                num_entities,
                (self.num_regions, self.visual_width),
                seed,
            )
        return out

    def similarities(
        self,
        sampler_params: Params,
        params: Params,
        model: KGEModel,
        features: dict[str, jax.Array],
        pool: jax.Array,
        anchors: jax.Array,
        relations: jax.Array,
    ) -> jax.Array:
        """Cosine similarities between each anchor and every pool entity, per modality.

        Args:
          pool: int [P] pool entities.
          anchors: int [B] the true entity of the corrupted side.
          relations: int [B] the triples' relations.

        Returns:
          float [Q, B, P], modalities in the order of `KCA.modalities`, then the structure.
        """
        kca = self.kca(model)

        def apply(method, *args):
            return kca.apply({"params": sampler_params}, *args, method=method)

        # Tables are read by rows only, so that a mesh-split table (`kgjax.parallel.layout.TableView`)
        # works as well as an array.
        relation = params["relation"][relations]  # [B, Dr]
        num_relations = params["relation"].shape[0]
        # A pool entity's representation depends on the triple only through its relation:
        # with fewer relations than rows (every standard benchmark), represent the pool once
        # per relation ("group") and let each row read its relation's; else once per row.
        per_relation = num_relations <= relations.shape[0]
        if per_relation:
            relation_table = params["relation"][jnp.arange(num_relations)]  # [R, Dr]
            groups, row_group = relation_table, relations
        else:
            groups, row_group = relation, jnp.arange(relations.shape[0])
        sims = []
        if kca.modalities:

            def terms(ids):
                return apply(
                    KCA.entity_terms,
                    features["text"][ids],
                    features["text_mask"][ids],
                    features["visual"][ids] if kca.visual_width else None,
                    features["visual_mask"][ids] if kca.visual_width else None,
                )

            pool_reps = apply(KCA.represent, terms(pool), groups)  # [G, P, O]
            anchor_reps = apply(KCA.represent_pairs, terms(anchors), relation)  # [B, O]
            for modality in kca.modalities:
                sims.append(
                    grouped_cosine(
                        pool_reps[modality], row_group, anchor_reps[modality], self.chunk_size
                    )
                )

        entity = params["entity"]
        pool_entities = entity[pool]  # [P, De]
        anchor_structure = apply(KCA.structure, entity[anchors], relation)  # [B, De]
        if per_relation:
            pool_structure = apply(
                KCA.structure, pool_entities[None], relation_table[:, None, :]
            )  # [R, P, De]
            sims.append(
                grouped_cosine(pool_structure, row_group, anchor_structure, self.chunk_size)
            )
        else:
            # One group per row: each row gates the pool under its own relation.
            def structure_row(row):
                relation_vector, anchor = row
                return cosine(apply(KCA.structure, pool_entities, relation_vector), anchor)

            sims.append(row_blocks(structure_row, (relation, anchor_structure), self.chunk_size))
        return jnp.stack(sims)

    def __call__(self, sampler_params, params: Params, model: KGEModel, context):
        """Draws K hard negatives per triple and scores them (see the module docstring).

        Returns:
          (negative scores [B, K], beta * contrastive loss, metrics: contrastive_loss,
          exploration_epsilon, negatives_false_rate).
        """
        pool_key, gumbel_key = jax.random.split(context.key)
        num_entities = model.num_entities
        pool_size = min(self.pool_size, num_entities)
        if pool_size == num_entities:
            pool = jnp.arange(num_entities, dtype=jnp.int32)
        else:
            pool = jax.random.permutation(pool_key, num_entities)[:pool_size].astype(jnp.int32)

        heads, relations, tails = (context.positives[:, i] for i in range(3))
        head_batch = context.mode == sampling.HEAD_BATCH
        anchors = jnp.where(head_batch, heads, tails)
        index = context.data.index
        positive = sampling.known_corruptions(
            context.positives, context.mode, pool[None, :], index.tails, index.heads
        )  # [B, P]

        sims = self.similarities(
            sampler_params, params, model, context.data.features, pool, anchors, relations
        )
        epsilon = exploration_epsilon(context.step, self.epsilon0)
        num_modalities = sims.shape[0]
        log_p = jax.nn.logsumexp(jax.nn.log_softmax(sims / epsilon, axis=-1), axis=0) - jnp.log(
            num_modalities
        )
        logits = gumbel.masked_log_probs(log_p, positive)
        drawn, perturbed = gumbel.gumbel_top_k(gumbel_key, logits, self.num_negatives)
        candidates = gumbel.straight_through_gather(
            params["entity"][pool], perturbed, drawn, self.gumbel_temperature
        )  # [B, K, De]
        scores = model.match(context.query[:, None, :], candidates)

        adversarial = jax.lax.stop_gradient(
            jax.nn.softmax(self.adversarial_temperature * scores, axis=-1)
        )
        rows = jnp.arange(drawn.shape[0])[:, None]
        weights = jnp.full(positive.shape, 1.0 / pool_size).at[rows, drawn].set(adversarial)
        loss = jnp.mean(contrastive_loss(sims, weights, positive))
        false_rate = jnp.mean(jnp.take_along_axis(positive, drawn, axis=1).astype(jnp.float32))
        metrics = {
            "contrastive_loss": loss,
            "exploration_epsilon": epsilon,
            "negatives_false_rate": false_rate,
        }
        return scores, self.beta * loss, metrics


def from_config(negatives) -> MMRNSSampler:
    """The sampler a run's `negatives` section describes (`negatives.mmrns.*`)."""
    settings = negatives.mmrns
    return MMRNSSampler(
        num_negatives=negatives.num_negatives,
        adversarial_temperature=negatives.adversarial_temperature,
        text_width=0 if settings.text == NO_FEATURES else settings.text_width,
        visual_width=0 if settings.visual == NO_FEATURES else settings.visual_width,
        text_source=settings.text,
        visual_source=settings.visual,
        # The rest are `negatives.mmrns` keys under the sampler's own field names.
        **{key: settings[key] for key in _SAME_NAMED},
    )


_SAME_NAMED = (
    "pool_size", "epsilon0", "beta", "gumbel_temperature", "num_sentences", "num_regions",
    "attention_dim", "output_dim", "structure_hidden", "chunk_size",
)  # fmt: skip
