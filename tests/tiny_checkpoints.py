"""Tiny random BERT/RoBERTa checkpoints (config.json + model.safetensors) for tests that
need a model folder without MiniLM's cost."""

import json

import numpy as np
import safetensors.numpy


def write_checkpoint(folder, variant="bert", prefix="", extra=None, drop=(), **overrides):
    """Writes config.json + model.safetensors of a random 2-layer model; returns the weights."""
    roberta = variant == "roberta"
    config = {
        "model_type": variant,
        "vocab_size": 40,
        "hidden_size": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 32,
        "max_position_embeddings": 24,
        "type_vocab_size": 1 if roberta else 2,
        "layer_norm_eps": 1e-5 if roberta else 1e-12,
        "pad_token_id": 1 if roberta else 0,
        "hidden_act": "gelu",
    } | overrides
    rng = np.random.default_rng(0)
    d, inner = config["hidden_size"], config["intermediate_size"]
    shapes = {
        "embeddings.word_embeddings.weight": (config["vocab_size"], d),
        "embeddings.position_embeddings.weight": (config["max_position_embeddings"], d),
        "embeddings.token_type_embeddings.weight": (config["type_vocab_size"], d),
        "embeddings.LayerNorm.weight": (d,),
        "embeddings.LayerNorm.bias": (d,),
    }
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}"
        for name, out, inp in [
            ("attention.self.query", d, d),
            ("attention.self.key", d, d),
            ("attention.self.value", d, d),
            ("attention.output.dense", d, d),
            ("intermediate.dense", inner, d),
            ("output.dense", d, inner),
        ]:
            shapes[f"{p}.{name}.weight"] = (out, inp)
            shapes[f"{p}.{name}.bias"] = (out,)
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[f"{p}.{name}.weight"] = (d,)
            shapes[f"{p}.{name}.bias"] = (d,)
    weights = {}
    for key, shape in shapes.items():
        scale = 0.1 if "LayerNorm" in key else 0.5
        base = 1.0 if key.endswith("LayerNorm.weight") else 0.0
        weights[key] = (base + scale * rng.standard_normal(shape)).astype(np.float32)
    stored = {prefix + k: v for k, v in weights.items() if k not in drop} | (extra or {})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    safetensors.numpy.save_file(stored, folder / "model.safetensors")
    return weights
