"""JAKET's pre-training step with the entity context memory against E^(0) computed on the fly.

Run (from the repository root; the CPU figure on one core, about 10 minutes):
  KGJAX_DATA_DIR=../shared/data taskset -c 1 python bench/jaket_memory.py \
      --out=bench/results/jaket_memory_cpu
  # GPU machine (bench/gpu.sh): the full-size row
  python bench/jaket_memory.py --config=configs/jaket.py:fb15k237_gpu \
      --out=bench/results/jaket_memory_gpu

Yu et al. (AAAI 2022) keep every entity's LM1 description vector in a memory, refreshed every
T(i) steps, instead of running LM1 over the descriptions of every node of every step's
subgraphs; they report pre-training about 15 times faster. Both variants here train the same
four tasks on the same batches of the config (`kgjax.train.jaket.pretraining.build`):
  memory      the trainer's step (`joint_step.make_train_chunk`): E^(0) rows read from the memory;
  on the fly  the same loss (`joint_step.joint_losses`) with E^(0) of every entity the step
              reads (the KM subgraph's nodes, the text subgraph's nodes, the masked-entity
              candidates) and every relation computed by LM1 from their descriptions inside
              the step, so LM1 also receives the KM tasks' gradients (JAKET without memory).
Timing: the median of --repeats device calls of one step after a compiling call (batches
built on the host beforehand, not timed). The memory's own cost is its refreshes: one full
refresh (LM1 over every description) is timed, and the amortised cost per step over the
config's run (refreshes x refresh time / steps) is added to the memory step for the ratio.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time

import jax
import numpy as np
import optax

from kgjax import config as config_lib
from kgjax.models.lm import encoder as encoder_lib
from kgjax.text import encode
from kgjax.train.jaket import joint_step, pretraining
from kgjax.train.jaket import pretraining_config as pt_config

from common import machine, write_results

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=f"{REPO}/configs/jaket.py:fb15k237")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=os.path.join("bench", "results", "jaket_memory_cpu"))
    parser.add_argument("--set", action="append", default=[], help="key=value config override")
    return parser.parse_args()


def local_batches(graph_batch, text_batch, num_rows: int):
    """The step's batches with entity ids replaced by rows of a local table of the entities
    they read, and that table's entity ids (padded with entity 0 to `num_rows`)."""
    read = [
        graph_batch.graph.entity_ids[graph_batch.graph.node_mask],
        text_batch.graph.entity_ids[text_batch.graph.node_mask],
        text_batch.candidates[text_batch.candidate_mask],
    ]
    entities = np.unique(np.concatenate(read))
    if len(entities) > num_rows:
        raise ValueError(f"{len(entities)} entities read, more than --rows {num_rows}")
    local = np.zeros(num_rows, np.int32)
    local[: len(entities)] = entities

    def rows(ids):
        return np.searchsorted(entities, ids).clip(0, len(entities) - 1).astype(np.int32)

    graph_batch = graph_batch._replace(
        graph=graph_batch.graph._replace(entity_ids=rows(graph_batch.graph.entity_ids))
    )
    text_batch = text_batch._replace(
        graph=text_batch.graph._replace(entity_ids=rows(text_batch.graph.entity_ids)),
        candidates=rows(text_batch.candidates),
    )
    return graph_batch, text_batch, local, len(entities)


def on_the_fly_step(setup, optimizer, weights):
    """A jitted step whose E^(0) rows come from LM1 over the descriptions, inside the step."""
    encoder_config, model = setup.lm.config, setup.model

    def loss(params, descriptions, graph_batch, text_batch):
        def pooled(t):
            hidden = encoder_lib.lower(
                params["encoder"], t["ids"], t["mask"], config=encoder_config
            )
            return encoder_lib.mention_pool(hidden, t["spans"])

        memory = {
            "entity": pooled(descriptions["entity"]),
            "relation": pooled(descriptions["relation"]),
        }
        return joint_step.joint_losses(
            params, {"memory": memory}, encoder_config, model, graph_batch, text_batch, weights
        )

    @functools.partial(jax.jit, donate_argnums=(0,))
    def step(state, descriptions, graph_batch, text_batch):
        (_, metrics), grads = jax.value_and_grad(loss, has_aux=True)(
            state.params, descriptions, graph_batch, text_batch
        )
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

    return step


def timed(call, repeats: int) -> tuple[float, list[float]]:
    """(compiling call's seconds, the steady calls' seconds)."""
    times = []
    for _ in range(repeats + 1):
        started = time.perf_counter()
        jax.block_until_ready(call())
        times.append(time.perf_counter() - started)
    return times[0], times[1:]


def main():
    args = _parse_args()
    config = config_lib.from_file(args.config)
    for item in args.set:
        key, value = item.split("=", 1)
        config_lib.override(config, key, value)
    setup = pretraining.build(config, progress=False)
    optimizer = pretraining.language_optimizer(config)
    loss = config.loss
    weights = joint_step.JointWeights(
        loss.category_weight, loss.relation_weight, loss.token_weight, loss.entity_weight
    )
    steps = list(range(args.repeats + 1))
    graph_batches = [setup.graph_batches([s]) for s in steps]
    text_batches = [setup.batcher.chunk([s]) for s in steps]

    # The memory: the trainer's own chunk function, one step per call.
    run_chunk = joint_step.make_train_chunk(setup.lm.config, setup.model, optimizer, weights)
    state = [setup.initial_state(optimizer)]
    calls = iter(steps)

    def memory_call():
        s = next(calls)
        state[0], metrics = run_chunk(state[0], graph_batches[s], text_batches[s])
        return metrics["loss"]

    memory_compile, memory_times = timed(memory_call, args.repeats)
    print(f"memory step: {statistics.median(memory_times):.3f} s", file=sys.stderr)

    # On the fly: the entities each step reads, encoded inside the step.
    unstacked = [
        (jax.tree.map(lambda x: x[0], g), jax.tree.map(lambda x: x[0], t))
        for g, t in zip(graph_batches, text_batches, strict=True)
    ]
    counts = [local_batches(g, t, 10**9)[3] for g, t in unstacked]
    num_rows = -(-max(counts) // 256) * 256  # one padded size for every step: one compile
    entity_rows, relation_rows = setup.tokenised["entity"], setup.tokenised["relation"]
    inputs = []
    for g, t in unstacked:
        g, t, local, _ = local_batches(g, t, num_rows)
        descriptions = {
            "entity": {
                "ids": entity_rows.ids[local],
                "mask": entity_rows.mask[local],
                "spans": entity_rows.spans[local],
            },
            "relation": {
                "ids": relation_rows.ids,
                "mask": relation_rows.mask,
                "spans": relation_rows.spans,
            },
        }
        inputs.append((descriptions, g, t))
    step = on_the_fly_step(setup, optimizer, weights)
    fly_state = [setup.initial_state(optimizer)]
    calls = iter(steps)

    def fly_call():
        descriptions, g, t = inputs[next(calls)]
        fly_state[0], metrics = step(fly_state[0], descriptions, g, t)
        return metrics["loss"]

    fly_compile, fly_times = timed(fly_call, args.repeats)
    print(f"on-the-fly step: {statistics.median(fly_times):.3f} s", file=sys.stderr)

    # The memory's refresh: LM1 over every description, timed once after a compiling call.
    params = state[0].params["encoder"]
    small = encode.TokenisedTexts(
        entity_rows.ids[: config.memory.batch_size],
        entity_rows.mask[: config.memory.batch_size],
        entity_rows.spans[: config.memory.batch_size],
    )
    encode.pool(params, setup.lm.config, small, "mention", config.memory.batch_size)
    started = time.perf_counter()
    for rows in (entity_rows, relation_rows):
        encode.pool(params, setup.lm.config, rows, "mention", config.memory.batch_size)
    refresh_seconds = time.perf_counter() - started
    refreshes = len(pt_config.schedule(config).steps(config.num_steps))
    amortised = refresh_seconds * refreshes / config.num_steps

    memory_step = statistics.median(memory_times)
    fly_step = statistics.median(fly_times)
    payload = {
        "config": args.config,
        "overrides": args.set,
        "machine": machine(),
        "texts_per_step": config.corpus.batch_size,
        "km_roots_per_step": config.sampler.num_roots,
        "entities_read_per_step": counts,
        "padded_rows": num_rows,
        "memory_step_seconds": memory_times,
        "memory_compile_seconds": memory_compile,
        "on_the_fly_step_seconds": fly_times,
        "on_the_fly_compile_seconds": fly_compile,
        "refresh_seconds": refresh_seconds,
        "refreshes_in_run": refreshes,
        "num_steps": config.num_steps,
        "memory_step_with_refresh_seconds": memory_step + amortised,
        "speedup_step": fly_step / memory_step,
        "speedup_with_refresh": fly_step / (memory_step + amortised),
    }
    markdown = f"""# JAKET pre-training step: entity context memory vs E^(0) on the fly

`python bench/jaket_memory.py --config={os.path.relpath(args.config, REPO)}` on
{payload["machine"]["device"]} (jax {payload["machine"]["jax"]}), {args.repeats} timed steps
each after a compiling one. Per step: {config.corpus.batch_size} texts, a KM subgraph of
{config.sampler.num_roots} roots; the on-the-fly step encodes the {min(counts)}-{max(counts)}
entities it reads (padded to {num_rows}) and all {len(relation_rows)} relations.

| variant | seconds / step (median) |
|---|---|
| memory (E^(0) rows read) | {memory_step:.3f} |
| memory + its refreshes amortised ({refreshes} refreshes of {refresh_seconds:.1f} s over {config.num_steps} steps) | {memory_step + amortised:.3f} |
| E^(0) on the fly through LM1 | {fly_step:.3f} |

Speed-up of the memory: {fly_step / memory_step:.1f}x per step, {fly_step / (memory_step + amortised):.1f}x with its refreshes (JAKET reports about 15x).
"""
    write_results(args.out, payload, markdown)
    print(markdown)


if __name__ == "__main__":
    main()
