"""Encoder throughput: kgjax's Flax MiniLM against sentence-transformers (PyTorch), same device.

Run (from the repository root):
  KGJAX_DATA_DIR=../shared/data python bench/encode.py                  # all 14,541 texts
  KGJAX_DATA_DIR=../shared/data python bench/encode.py --num_texts=2048 --repeats=1

Encodes FB15k-237's entity descriptions (StAR "name -- first sentence", the default source,
`kgjax.data.descriptions`) with all-MiniLM-L6-v2 at `--max_length` tokens:

  kgjax mean      `kgjax.text.encode.encode_texts(pooling="mean", cache=False)`: all 6 layers and
                  masked mean pooling, the sentence-transformers computation.
  kgjax mention   the same with pooling="mention": LM1 only (layers 1..3), JAKET's entity
                  vector, what text-initialised KGE uses.
  torch           `SentenceTransformer.encode` on the same texts, device and batch size, with
                  `max_seq_length = --max_length`, float32, under torch.inference_mode (its
                  pipeline also L2-normalises, a negligible cost).

Every figure is end to end (tokenisation, device work, copy back to NumPy) and excludes one
warm-up pass (jit compilation; torch's first-call setup); the best of `--repeats` passes is
kept, the runs interleaved so that a busy machine slows both alike. Note that
sentence-transformers sorts texts by length and pads each batch to its longest text, while
kgjax pads every text to `--max_length` so that the jitted encoder compiles once; the mean
number of real tokens per text is printed beside the figures. A parity line checks that the
two mean-pooled outputs agree on the first 256 texts.

Writes bench/results/encode_<device>.json and prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import time

import jax
import numpy as np

from kgjax.data import descriptions
from kgjax.data.catalog import load_dataset, local_folder
from kgjax.models.lm import pretrained
from kgjax.text import encode

REPO = pathlib.Path(__file__).resolve().parents[1]


def _texts(num_texts: int):
    """The descriptions of FB15k-237's entities, in the vocabulary order a training run uses."""
    folder = local_folder("fb15k237")
    if folder is None:
        raise SystemExit("FB15k-237 not found: set KGJAX_DATA_DIR to a folder like ../shared/data")
    keys = load_dataset("fb15k237").entities.names
    found = descriptions.entity_descriptions(folder, keys)
    n = len(keys) if num_texts <= 0 else min(num_texts, len(keys))
    return list(found.texts[:n]), list(found.mentions[:n])


def _seconds(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num_texts", type=int, default=0, help="0: all 14,541")
    parser.add_argument("--max_length", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=str(REPO / "bench" / "results"))
    args = parser.parse_args()

    texts, mentions = _texts(args.num_texts)
    model = pretrained.load_pretrained()
    common = dict(max_length=args.max_length, batch_size=args.batch_size, cache=False)

    def kgjax_run(pooling, subset=None):
        chosen = texts if subset is None else texts[:subset]
        return encode.encode_texts(
            chosen,
            model,
            pooling=pooling,
            mentions=mentions[: len(chosen)],
            progress=False,
            **common,
        )

    try:
        import sentence_transformers
        import torch
    except ImportError:
        torch = None
    runs = {
        "kgjax mean": lambda: kgjax_run("mean"),
        "kgjax mention": lambda: kgjax_run("mention"),
    }
    if torch is not None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
        reference = sentence_transformers.SentenceTransformer(str(model.path), device=device)
        reference.max_seq_length = args.max_length

        def torch_run(subset=None):
            chosen = texts if subset is None else texts[:subset]
            with torch.inference_mode():
                return reference.encode(chosen, batch_size=args.batch_size, convert_to_numpy=True)

        runs["torch (sentence-transformers)"] = torch_run
        # The model folder's pipeline ends in a Normalize module: compare unit vectors.
        ours = kgjax_run("mean", 256)
        ours = ours / np.linalg.norm(ours, axis=-1, keepdims=True)
        difference = float(np.abs(ours - torch_run(256)).max())
    # Warm-up: compile every batch shape (one, since batches are padded) and set up torch.
    kgjax_run("mean", args.batch_size)
    kgjax_run("mention", args.batch_size)
    if torch is not None:
        torch_run(args.batch_size)

    seconds = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            seconds[name].append(_seconds(fn))
    tokenizer = pretrained.fixed_length_tokenizer(
        model.tokenizer, args.max_length, model.config.pad_token_id
    )
    real_tokens = float(np.mean([sum(e.attention_mask) for e in tokenizer.encode_batch(texts)]))

    rows = []
    for name, values in seconds.items():
        best = min(values)
        rows.append({"encoder": name, "seconds": round(best, 2),
                     "texts_per_second": round(len(texts) / best, 1)})  # fmt: skip
    torch_row = rows[-1] if torch is not None else None
    for row in rows:
        row["vs_torch"] = round(torch_row["seconds"] / row["seconds"], 2) if torch_row else None
    meta = {
        "device": jax.devices()[0].device_kind,
        "jax_backend": jax.default_backend(),
        "torch_device": (device if torch is not None else None),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "torch": torch.__version__ if torch is not None else None,
        "sentence_transformers": sentence_transformers.__version__ if torch is not None else None,
        "python": platform.python_version(),
        "num_texts": len(texts),
        "max_length": args.max_length,
        "batch_size": args.batch_size,
        "mean_real_tokens": round(real_tokens, 1),
        "repeats": args.repeats,
        "max_abs_diff_mean_pooled_vs_torch": difference if torch is not None else None,
        "command": f"python bench/encode.py --num_texts={args.num_texts} "
        f"--max_length={args.max_length} --batch_size={args.batch_size} --repeats={args.repeats}",
    }
    os.makedirs(args.out, exist_ok=True)
    out = pathlib.Path(args.out) / f"encode_{jax.default_backend()}.json"
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(json.dumps(meta, indent=2))
    print("| encoder | seconds | texts/s | speed vs torch |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row['encoder']} | {row['seconds']} | {row['texts_per_second']} | "
              f"{row['vs_torch'] if row['vs_torch'] is not None else '-'}x |")  # fmt: skip
    print(f"written to {out}")


if __name__ == "__main__":
    main()
