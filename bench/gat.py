"""Throughput of JAKET's relational GAT layer: segment ops over an edge list against a dense
masked-attention reference (the original GAT's [N, N] form), forward and backward.

Run:
  python bench/gat.py --out=bench/results/gat_cpu                  # CPU sizes
  python bench/gat.py --sizes=fb15k237,subgraph --out=bench/results/gat_gpu   # GPU machine

Sizes (nodes N, edges E, both directions of every triple, width D = MiniLM's 384, 4 heads):
  fb15k237  the whole FB15k-237 training graph: N 14,541, E 544,230 (the edge-list layer only:
            the dense reference's [H, N, N] scores alone are 3.4 GB, its backward several
            such tensors, beyond this 24 GB CPU machine)
  fb15k237_dense  the same with the dense reference beside it (the GPU part, bench/gpu.sh gat)
  subgraph  a padded JAKET mini-batch budget: N 4,096, E 32,768 (both implementations)
  tiny      N 512, E 4,096 (both; the CI smoke size)
Random graphs with those sizes (the layer's cost depends on N, E, D and H, not on which
edges). The dense reference builds the [N, N] attention logits of every head, masks
non-edges, softmaxes rows and multiplies by the projected nodes; it computes the same
function as the layer when no two edges join the same (u, v) under different relations
(checked on each size it runs). Timing: the median of `--repeats` calls after one compiling
call; forward = the layer's output, backward = gradients with respect to parameters and
node features. Also reports the bytes of the padded graph arrays a budget holds.
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from kgjax.models.graph import RelationalGATLayer

from common import machine, write_results

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZES = {
    "fb15k237": (14_541, 544_230, 474, False),  # N, E, R (with inverses), dense reference?
    "fb15k237_dense": (14_541, 544_230, 474, True),  # GPU: [H, N, N] is 3.4 GB a tensor
    "subgraph": (4_096, 32_768, 474, True),
    "tiny": (512, 4_096, 16, True),
}
WIDTH, HEADS = 384, 4


def random_graph(num_nodes, num_edges, num_relations, seed=0):
    """Distinct (sender, receiver) pairs, so that the dense form is the same function."""
    rng = np.random.default_rng(seed)
    keys = np.unique(rng.integers(0, num_nodes * num_nodes, int(num_edges * 1.1)))
    keys = rng.permutation(keys)[:num_edges]
    senders, receivers = (keys // num_nodes).astype(np.int32), (keys % num_nodes).astype(np.int32)
    relations = rng.integers(0, num_relations, len(keys)).astype(np.int32)
    return senders, receivers, relations, np.ones(len(keys), bool)


def dense_layer(params, nodes, relations, senders, receivers, edge_relations, num_nodes):
    """GAT's dense form of the same layer ("add" composition): [H, N, N] masked attention.

    With f(x, y) = x + y the message W(E_u + R_r) splits into W E_u (per sender node) and
    W R_r (per edge); the relation part enters as an [N, N, H, Dh] tensor only through a
    dense [N, N] map of relation ids, too big at scale: here each edge's W R_r is added by a
    segment sum over receivers of alpha * W R_r, the node part by a dense matmul.
    """
    kernel = params["project"]["kernel"]  # [D, H, Dh]
    attention = params["attention"]  # [H, 2 Dh]
    heads, head_width = attention.shape[0], attention.shape[1] // 2
    projected = jnp.einsum("nd,dhk->nhk", nodes, kernel)  # [N, H, Dh]
    projected_relations = jnp.einsum("rd,dhk->rhk", relations, kernel)  # [R, H, Dh]
    relation_of = jnp.full((num_nodes, num_nodes), -1, jnp.int32)
    relation_of = relation_of.at[receivers, senders].set(edge_relations)  # [N(v), N(u)]
    adjacent = relation_of >= 0
    safe = jnp.maximum(relation_of, 0)
    receiver_scores = jnp.einsum("nhk,hk->hn", projected, attention[:, :head_width])
    sender_scores = jnp.einsum("nhk,hk->hn", projected, attention[:, head_width:])
    relation_scores = jnp.einsum("rhk,hk->hr", projected_relations, attention[:, head_width:])
    scores = receiver_scores[:, :, None] + sender_scores[:, None, :]  # [H, v, u]
    scores = scores + relation_scores[:, safe]
    scores = nn.leaky_relu(scores, 0.2)
    scores = jnp.where(adjacent[None], scores, -jnp.inf)
    row_max = jnp.max(scores, axis=-1, keepdims=True)
    weights = jnp.exp(scores - jnp.where(jnp.isfinite(row_max), row_max, 0.0))
    weights = jnp.where(adjacent[None], weights, 0.0)
    weights = weights / jnp.maximum(jnp.sum(weights, axis=-1, keepdims=True), 1e-30)
    node_part = jnp.einsum("hvu,uhk->vhk", weights, projected)
    edge_weights = weights[:, receivers, senders].T  # [E, H]
    relation_part = jax.ops.segment_sum(
        edge_weights[..., None] * projected_relations[edge_relations], receivers, num_nodes
    )
    out = nn.elu(node_part + relation_part).reshape(num_nodes, heads * head_width)
    return nn.LayerNorm(epsilon=1e-5, use_fast_variance=False).apply(
        {"params": params["norm"]}, out + nodes
    )


def timed(fn, args, repeats):
    jax.block_until_ready(fn(*args))  # compiles
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def measure(name: str, repeats: int) -> dict:
    num_nodes, num_edges, num_relations, with_dense = SIZES[name]
    senders, receivers, edge_relations, mask = random_graph(num_nodes, num_edges, num_relations)
    num_edges = len(senders)
    rng = np.random.default_rng(1)
    nodes = jnp.asarray(rng.standard_normal((num_nodes, WIDTH)), jnp.float32)
    relations = jnp.asarray(rng.standard_normal((num_relations, WIDTH)), jnp.float32)
    graph = tuple(map(jnp.asarray, (senders, receivers, edge_relations, mask)))
    layer = RelationalGATLayer(HEADS)
    params = layer.init(jax.random.key(0), nodes, relations, *graph)["params"]

    def segment_forward(p, x):
        return layer.apply({"params": p}, x, relations, *graph)

    def dense_forward(p, x):
        return dense_layer(p, x, relations, graph[0], graph[1], graph[2], num_nodes)

    def backward(forward):
        return jax.jit(jax.grad(lambda p, x: jnp.sum(forward(p, x) ** 2), argnums=(0, 1)))

    row = {"size": name, "nodes": num_nodes, "edges": num_edges, "width": WIDTH, "heads": HEADS}
    # The padded graph a budget holds: four [E] edge arrays, node ids and masks.
    row["graph_bytes"] = int(num_edges * (3 * 4 + 1) + num_nodes * (4 + 2))
    implementations = {"segment": segment_forward}
    if with_dense:
        implementations["dense"] = dense_forward
        difference = jnp.max(
            jnp.abs(jax.jit(segment_forward)(params, nodes) - jax.jit(dense_forward)(params, nodes))
        )
        row["max_abs_difference"] = float(difference)
    for label, forward in implementations.items():
        seconds = timed(jax.jit(forward), (params, nodes), repeats)
        row[f"{label}_forward_seconds"] = seconds
        row[f"{label}_forward_edges_per_second"] = num_edges / seconds
        seconds = timed(backward(forward), (params, nodes), repeats)
        row[f"{label}_backward_seconds"] = seconds
        row[f"{label}_backward_edges_per_second"] = num_edges / seconds
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="subgraph,fb15k237")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=os.path.join(REPO, "bench", "results", "gat_cpu"))
    args = parser.parse_args()
    rows = []
    for name in args.sizes.split(","):
        rows.append(measure(name, args.repeats))
        print(rows[-1], flush=True)
    meta = {
        **machine(),
        "command": f"python bench/gat.py --sizes={args.sizes} --repeats={args.repeats}",
    }
    lines = [
        "| size | N | E | segment fwd edges/s | segment fwd+bwd edges/s | dense fwd edges/s "
        "| dense fwd+bwd edges/s | max abs diff | graph arrays MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def rate(row, key):
        return f"{row[key] / 1e6:.2f}M" if key in row else "n/a"

    for row in rows:
        diff = f"{row['max_abs_difference']:.1e}" if "max_abs_difference" in row else "n/a"
        lines.append(
            f"| {row['size']} | {row['nodes']} | {row['edges']} "
            f"| {rate(row, 'segment_forward_edges_per_second')} "
            f"| {rate(row, 'segment_backward_edges_per_second')} "
            f"| {rate(row, 'dense_forward_edges_per_second')} "
            f"| {rate(row, 'dense_backward_edges_per_second')} | {diff} "
            f"| {row['graph_bytes'] / 2**20:.1f} |"
        )
    lines += [
        "",
        f"D {WIDTH}, {HEADS} heads, composition add; medians of {args.repeats} calls after a "
        f"compiling one. {meta['device']} ({meta['cpu_count']} cores), jax {meta['jax']}; "
        f"`{meta['command']}`",
    ]
    write_results(args.out, {"meta": meta, "rows": rows}, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
