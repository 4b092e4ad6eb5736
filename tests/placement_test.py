"""Path-based placement: rules on nested parameter paths, flax logical boxes, padding.

The parsing and matching checks run in this process (one device). The placement checks
need a mesh: this file, run as a script, lays parameters out on 8 fake CPU devices
(("data", 2), ("model", 4); JAX must see them before it starts) and writes what it saw;
the `report` fixture starts it in a subprocess and the tests assert on its report.

  python tests/placement_test.py OUT.json

Shapes: V = 10 entities (padded to 12 over model = 4), R = 3 relations, D = 6 width,
F = 8 an encoder's hidden width.
"""

import json
import os
import sys

import pytest
from subprocess_report import run_report

V, R, D, F = 10, 3, 6, 8
MESH = (("data", 2), ("model", 4))


# --- in this process (one device) ---------------------------------------------------------


def test_rules_match_nested_paths_first_match_wins():
    from kgjax.parallel.layout import KGE_RULES
    from kgjax.parallel.placement import logical_axes, named_params

    assert logical_axes("entity", None, KGE_RULES) == ("entity", "embed")
    assert logical_axes("memory/entity", None, KGE_RULES) == ("entity", "embed")
    assert logical_axes("student/relation", None, KGE_RULES) == ("relation", "embed")
    for other in ("entity_bias", "entity/kernel", "memory/entity/scale", "relations"):
        assert logical_axes(other, None, KGE_RULES) is None, other
    first = ((r"^memory/entity$", (None, None)), *KGE_RULES)
    assert logical_axes("memory/entity", None, first) == (None, None)
    assert logical_axes("entity", None, first) == ("entity", "embed")
    params = {"memory": {"entity": 1.0, "gate": {"w": 2.0}}, "relation": 3.0}
    assert [(n, a) for n, _, a in named_params(params, KGE_RULES)] == [
        ("memory/entity", ("entity", "embed")),
        ("memory/gate/w", None),
        ("relation", ("relation", "embed")),
    ]


def test_rules_from_a_config_are_checked_and_made_hashable():
    import jax

    from kgjax.parallel.layout import KGE_RULES, Layout
    from kgjax.parallel.placement import parse_rules

    rules = parse_rules([["memory/entity$", ["entity", None]]])
    assert rules == (("memory/entity$", ("entity", None)),)
    # From a config's lists to a hashable (jit-static) layout, the rules before the tables'.
    one = jax.devices()[:1]
    layout = Layout.create(V, R, devices=one, rules=[["memory/entity$", ["entity", None]]])
    assert layout.rules == (*rules, *KGE_RULES)
    assert hash(layout) == hash(Layout.create(V, R, devices=one, rules=rules))
    for bad in ("entity", [("(unclosed", ("entity",))], [("x", "entity")], [("x", (1,))]):
        with pytest.raises(ValueError):
            parse_rules(bad)


# --- 8 fake devices, in a subprocess ------------------------------------------------------


def _eight_devices(out_path: str) -> None:
    """Lays nested tables and a flax MLP out on the 8-device MESH; writes what it saw."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from kgjax.parallel.layout import Layout
    from kgjax.parallel.tables import TableView

    class Mlp(nn.Module):
        """An encoder block whose kernels declare their logical axes (flax lm1b's MlpBlock)."""

        @nn.compact
        def __call__(self, x):
            init = nn.initializers.lecun_normal()
            x = nn.Dense(F, kernel_init=nn.with_logical_partitioning(init, ("embed", "mlp")))(x)
            return nn.Dense(D, kernel_init=nn.with_logical_partitioning(init, ("mlp", "embed")))(
                jax.nn.relu(x)
            )

    def spec(sharding) -> list:
        return [list(e) if isinstance(e, tuple) else e for e in sharding.spec]

    layout = Layout.create(V, R, MESH, jax.devices())
    rng = np.random.default_rng(0)
    params = {
        "memory": {
            "entity": rng.normal(size=(V, D)).astype(np.float32),
            "gate": rng.normal(size=(D, D)).astype(np.float32),
        },
        "relation": rng.normal(size=(R, D)).astype(np.float32),
    }
    padded = layout.pad_params(params)
    shardings = layout.param_shardings(params)
    placed = layout.place_params(params)
    entity = placed["memory"]["entity"]
    view = layout.tables(placed)["memory"]["entity"]
    ids = np.array([0, 9, 3, 9, 5, 1, 2, 7], np.int32)
    read = jax.jit(lambda p, i: layout.tables(p)["memory"]["entity"][i])(placed, ids)
    back = layout.unpad_params(jax.tree.map(layout.fetch, placed))

    # The first matching rule wins: the user's rule keeps the nested table whole.
    kept = Layout.create(V, R, MESH, jax.devices(), rules=((r"^memory/entity$", (None, None)),))

    # Flax boxes: the MLP's kernels are split by their own logical axes ("mlp" -> "model"),
    # and an embedding table whose rows are "entity" is padded like any table.
    mlp = Mlp()
    x = jnp.asarray(rng.normal(size=(4, D)), jnp.float32)
    boxed = mlp.init(jax.random.key(0), x)["params"]
    boxed_shardings = layout.param_shardings(boxed)
    init = jax.jit(mlp.init, out_shardings={"params": boxed_shardings})
    placed_mlp = init(jax.random.key(0), x)["params"]
    embed_init = nn.with_logical_partitioning(nn.initializers.normal(), ("entity", "embed"))
    embed = nn.Embed(V, D, embedding_init=embed_init)
    table = embed.init(jax.random.key(1), jnp.zeros((1,), jnp.int32))["params"]
    padded_table = layout.pad_params(table)

    # Optimizer state follows the parameters, boxed or not.
    trainable = {"kge": params, "encoder": boxed}
    optimizer = optax.adam(1e-3)
    opt_state = jax.eval_shape(optimizer.init, trainable)
    trainable_shardings = {"kge": shardings, "encoder": boxed_shardings}
    opt_shardings = layout.opt_state_shardings(optimizer, opt_state, trainable_shardings)
    adam = opt_shardings[0]

    # The encoder (LM1/LM2): its parameters name their axes; on the mesh the MLP and the
    # attention heads split over "model" (tensor parallelism), and the output is unchanged.
    from kgjax.models.lm import encoder

    lm = encoder.EncoderConfig(
        vocab_size=50, hidden_size=8, num_layers=2, num_heads=2, intermediate_size=16,
        split_layer=1, max_position_embeddings=16,
    )  # fmt: skip
    lm_params = encoder.init_params(lm, jax.random.key(2))
    lm_placed = layout.place_params(encoder.with_logical_axes(lm_params, lm))
    tokens = jnp.asarray(rng.integers(0, 50, (4, 6)), jnp.int32)
    token_mask = jnp.ones((4, 6), jnp.int32).at[1, 4:].set(0)
    forward = jax.jit(lambda p, i, m: encoder.forward(p, i, m, config=lm))
    lm_layer = lm_placed["layers_0"]

    report = {
        "encoder": {
            "intermediate": spec(lm_layer["intermediate"]["kernel"].value.sharding),
            "query": spec(lm_layer["attention"]["query"]["kernel"].value.sharding),
            "attention_output": spec(lm_layer["attention"]["output"]["kernel"].value.sharding),
            "word_embeddings": spec(
                lm_placed["embeddings"]["word_embeddings"]["embedding"].value.sharding
            ),
            "max_abs_difference": float(
                np.abs(
                    np.asarray(forward(lm_placed, tokens, token_mask))
                    - np.asarray(forward(lm_params, tokens, token_mask))
                ).max()
            ),
        },
        "num_devices": jax.device_count(),
        "table_paths": layout.table_paths(params),
        "viewed": list(layout.viewed(params)),
        "padded_shapes": {
            "memory/entity": list(padded["memory"]["entity"].shape),
            "memory/gate": list(padded["memory"]["gate"].shape),
            "relation": list(padded["relation"].shape),
        },
        "padding_max_abs": float(np.abs(np.asarray(padded["memory"]["entity"])[V:]).max()),
        "specs": {
            "memory/entity": spec(shardings["memory"]["entity"]),
            "memory/gate": spec(shardings["memory"]["gate"]),
            "relation": spec(shardings["relation"]),
        },
        "placed_entity": {
            "shape": list(entity.shape),
            "shard_rows": entity.addressable_shards[0].data.shape[0],
            "gate_replicated": placed["memory"]["gate"].sharding.is_fully_replicated,
        },
        "view": {
            "is_view": isinstance(view, TableView),
            "shape": list(view.shape),
            "read_matches": bool(np.array_equal(np.asarray(read), params["memory"]["entity"][ids])),
        },
        "round_trip": all(
            np.array_equal(a, b)
            for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(params), strict=True)
        )
        and jax.tree.structure(back) == jax.tree.structure(params),
        "rule_kept_whole": {
            "spec": spec(kept.param_shardings(params)["memory"]["entity"]),
            "rows": list(kept.pad_params(params)["memory"]["entity"].shape),
            "tables": kept.table_paths(params),
        },
        "mlp": {
            "specs": {
                name: spec(boxed_shardings[name]["kernel"].value) for name in ("Dense_0", "Dense_1")
            },
            "bias": spec(boxed_shardings["Dense_0"]["bias"]),
            "placed": {
                name: spec(placed_mlp[name]["kernel"].value.sharding)
                for name in ("Dense_0", "Dense_1")
            },
            "kernel_shard": list(
                placed_mlp["Dense_0"]["kernel"].value.addressable_shards[0].data.shape
            ),
            "same_output": bool(
                np.allclose(mlp.apply({"params": placed_mlp}, x), mlp.apply({"params": boxed}, x))
            ),
        },
        "boxed_table": {
            "shape": list(padded_table["embedding"].value.shape),
            "names": list(padded_table["embedding"].names),
            "spec": spec(layout.param_shardings(table)["embedding"].value),
        },
        "adam": {
            "mu/kge/memory/entity": spec(adam.mu["kge"]["memory"]["entity"]),
            "nu/kge/memory/gate": spec(adam.nu["kge"]["memory"]["gate"]),
            "mu/encoder/Dense_0/kernel": spec(adam.mu["encoder"]["Dense_0"]["kernel"].value),
            "count": spec(adam.count),
        },
    }
    with open(out_path, "w") as f:
        json.dump(report, f, indent=1)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("placement") / "report.json"
    return run_report(os.path.abspath(__file__), out)


def test_a_nested_table_is_split_by_rows_and_padded(report):
    assert report["num_devices"] == 8
    assert report["table_paths"] == {"memory/entity": "entity", "relation": "relation"}
    assert report["padded_shapes"] == {
        "memory/entity": [12, D],  # V = 10 rounded up to the 4 model shards
        "memory/gate": [D, D],
        "relation": [R, D],  # relations replicated (shard_relations off): not padded
    }
    assert report["padding_max_abs"] == 0.0
    assert report["specs"]["memory/entity"] == ["model", None]
    assert report["placed_entity"] == {"shape": [12, D], "shard_rows": 3, "gate_replicated": True}


def test_a_nested_unmatched_parameter_is_replicated(report):
    assert report["specs"]["memory/gate"] == []
    assert report["specs"]["relation"] == [None, None]


def test_a_nested_table_is_read_through_a_view(report):
    assert report["viewed"] == ["memory/entity"]
    assert report["view"] == {"is_view": True, "shape": [V, D], "read_matches": True}


def test_pad_unpad_round_trip(report):
    assert report["round_trip"]


def test_an_earlier_rule_wins(report):
    assert report["rule_kept_whole"] == {
        "spec": [None, None],
        "rows": [V, D],
        "tables": {"relation": "relation"},
    }


def test_linen_parameters_are_placed_by_their_logical_axes(report):
    mlp = report["mlp"]
    assert mlp["specs"] == {"Dense_0": [None, "model"], "Dense_1": ["model", None]}
    assert mlp["placed"] == mlp["specs"]
    assert mlp["kernel_shard"] == [D, F // 4]
    assert mlp["bias"] == []  # no logical axes: replicated
    assert mlp["same_output"]
    assert report["boxed_table"] == {
        "shape": [12, D],
        "names": ["entity", "embed"],
        "spec": ["model", None],
    }


def test_the_encoder_splits_its_mlp_and_heads_over_the_model_axis(report):
    encoder = report["encoder"]
    assert encoder["intermediate"] == [None, "model"]
    assert encoder["query"] == [None, "model"]
    assert encoder["attention_output"] == ["model", None]
    assert encoder["word_embeddings"] == [None, None]  # "vocab" and "embed" are never split
    assert encoder["max_abs_difference"] < 1e-5


def test_optimizer_state_follows_the_parameters(report):
    assert report["adam"] == {
        "mu/kge/memory/entity": ["model", None],
        "nu/kge/memory/gate": [],
        "mu/encoder/Dense_0/kernel": [None, "model"],
        "count": [],
    }


if __name__ == "__main__":
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    ).strip()
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    _eight_devices(sys.argv[1])
