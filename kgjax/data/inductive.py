"""Inductive link-prediction splits: a random share of the entities held out of training.

`make_split(source_dir, out_dir, fraction=0.1, seed=0)` reads a dataset folder
(`train.txt`, `valid.txt`, `test.txt`) and writes a new one:

1. Held out: every entity of the source's three splits, sorted by name, then
   `round(fraction * count)` of them drawn without replacement by
   `numpy.random.default_rng(seed).permutation`. The rest are kept.
2. `train.txt`: the source's training triples whose head and tail are both kept. "Seen"
   entities are those occurring in this new train.
3. `valid.txt`: the source's validation triples whose head and tail are both kept and whose
   relation occurs in the new train: a transductive validation set, so training-time
   evaluation and model selection never look at a held-out entity.
4. `test.txt`: every distinct triple of the source's train, valid and test (in that order)
   with exactly one end held out, the other end seen, and a relation of the new train: each
   test triple links one entity that has no training triple to one that has.
5. Dropped (counted in `split.json`): triples with both ends held out (nothing anchors them),
   with a held-out end whose other end is not seen, with a relation absent from the new
   train (its embedding would never be trained), and the source's test triples among kept
   entities (the test split measures the inductive case only).

The description folders of the source (`kg-bert/`, `star/`, `wikidata/`, see
`kgjax.data.descriptions`) are copied, so the new folder is a complete dataset folder:
`--config.data.path=<out_dir>` trains on it and text-initialised runs find its texts.
`split.json` records the source, fraction, seed, the held-out entities, every count and the
SHA-256 of the written files. Running `make_split` again with the same arguments finds the
same files and changes nothing.

Host side only: plain Python and NumPy.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import tempfile

import numpy as np

from kgjax.data import builders, descriptions
from kgjax.data.triples import SPLITS, DataError, read_triples_file

MANIFEST = "split.json"
_FORMAT = 1
_TEXT_FOLDERS = sorted({p.split("/")[0] for p in descriptions.ENTITY_SOURCES.values()})
# What each file holds, written into split.json so the folder explains itself.
RULES = {
    "held_out": "round(fraction * entities) of the sorted entity names, drawn by "
    "numpy.random.default_rng(seed).permutation",
    "train.txt": "source train triples with both ends kept",
    "valid.txt": "source valid triples with both ends kept and a relation of the new train",
    "test.txt": "distinct triples of source train+valid+test with exactly one end held out, "
    "the other end in the new train, and a relation of the new train",
    "dropped": "both ends held out; a held-out end whose other end is not in the new train; "
    "a relation not in the new train; source test triples among kept entities",
}


def _write_triples(path: pathlib.Path, rows) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(f"{h}\t{r}\t{t}\n" for h, r, t in rows)


def split_triples(
    raw: dict[str, list[tuple[str, str, str]]], fraction: float, seed: int
) -> tuple[dict[str, list[tuple[str, str, str]]], list[str], dict[str, int]]:
    """The split itself, on string triples (see the module docstring for the rules).

    Args:
      raw: split name -> (head, relation, tail) names of the source.
      fraction: the share of entities to hold out, in (0, 1).
      seed: seeds the draw.

    Returns:
      (new splits, sorted held-out entity names, counts of kept and dropped triples).

    Raises:
      ValueError: a fraction outside (0, 1) or one that holds out no entity.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    entities = sorted({e for rows in raw.values() for h, _, t in rows for e in (h, t)})
    count = round(fraction * len(entities))
    if count == 0:
        raise ValueError(f"fraction {fraction} of {len(entities)} entities holds out none")
    order = np.random.default_rng(seed).permutation(len(entities))
    held = {entities[i] for i in order[:count].tolist()}

    unique = {split: list(dict.fromkeys(rows)) for split, rows in raw.items()}
    train = [(h, r, t) for h, r, t in unique["train"] if h not in held and t not in held]
    seen = {e for h, _, t in train for e in (h, t)}
    relations = {r for _, r, _ in train}
    valid = [
        (h, r, t)
        for h, r, t in unique["valid"]
        if h not in held and t not in held and r in relations
    ]
    counts = {
        "entities": len(entities),
        "held_out_entities": count,
        "seen_entities": len(seen),
        "train": len(train),
        "valid": len(valid),
        "dropped_valid_relation_not_in_train": sum(
            h not in held and t not in held and r not in relations for h, r, t in unique["valid"]
        ),
        "dropped_test_transductive": 0,
        "dropped_both_held_out": 0,
        "dropped_other_end_unseen": 0,
        "dropped_relation_not_in_train": 0,
    }
    source_test = set(unique["test"])
    test = []
    for h, r, t in dict.fromkeys(row for split in SPLITS for row in unique[split]):
        h_held, t_held = h in held, t in held
        if not (h_held or t_held):
            counts["dropped_test_transductive"] += (h, r, t) in source_test
        elif h_held and t_held:
            counts["dropped_both_held_out"] += 1
        elif (t if h_held else h) not in seen:
            counts["dropped_other_end_unseen"] += 1
        elif r not in relations:
            counts["dropped_relation_not_in_train"] += 1
        else:
            test.append((h, r, t))
    counts["test"] = len(test)
    counts["test_entities_held_out"] = len({h if h in held else t for h, _, t in test})
    return {"train": train, "valid": valid, "test": test}, sorted(held), counts


def make_split(
    source_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    fraction: float = 0.1,
    seed: int = 0,
) -> dict:
    """Writes an inductive split of the dataset folder `source_dir` to `out_dir`.

    Args:
      source_dir: a folder with train.txt, valid.txt, test.txt (and description folders).
      out_dir: the folder to create; if it exists it must hold this same split.
      fraction: the share of entities to hold out.
      seed: seeds the draw.

    Returns:
      The manifest (also written to `<out_dir>/split.json`).

    Raises:
      DataError: a missing or malformed source file, or an `out_dir` holding something else.
      ValueError: a bad fraction.
    """
    source = pathlib.Path(source_dir)
    out = pathlib.Path(out_dir)
    files = {split: source / f"{split}.txt" for split in SPLITS}
    source_sha256 = {split: builders.sha256_file(str(file)) for split, file in files.items()}
    settings = {
        "format": _FORMAT,
        "fraction": fraction,
        "seed": seed,
        "source_sha256": source_sha256,
    }
    if out.exists():
        existing = read_manifest(out) if (out / MANIFEST).is_file() else None
        if existing is None or any(existing.get(k) != v for k, v in settings.items()):
            raise DataError(
                f"{out}: exists and does not hold this split (fraction {fraction}, seed {seed}, "
                f"source {source}); remove it or choose another folder"
            )
        return existing

    raw = {split: read_triples_file(file) for split, file in files.items()}
    new, held, counts = split_triples(raw, fraction, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed: a killed run never leaves half a split.
    tmp = pathlib.Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        for split, rows in new.items():
            _write_triples(tmp / f"{split}.txt", rows)
        for folder in _TEXT_FOLDERS:
            if (source / folder).is_dir():
                # Contents only: a read-only source (a shared data folder) must not make the
                # copy read-only too.
                (tmp / folder).mkdir()
                for file in (source / folder).iterdir():
                    if file.is_file():
                        shutil.copyfile(file, tmp / folder / file.name)
        manifest = {
            **settings,
            "source": str(source.resolve()),
            "rules": RULES,
            "counts": counts,
            "sha256": {s: builders.sha256_file(str(tmp / f"{s}.txt")) for s in SPLITS},
            "held_out": held,
        }
        with open(tmp / MANIFEST, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2)
            f.write("\n")
        tmp.chmod(0o755)  # mkdtemp's 0700 would hide the split from other users
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def read_manifest(folder: str | os.PathLike) -> dict:
    """Reads `<folder>/split.json`.

    Raises:
      DataError: the file is missing or not valid JSON.
    """
    path = pathlib.Path(folder) / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; is {folder} an inductive split?") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from e


def seen_entities(train: np.ndarray, num_entities: int) -> np.ndarray:
    """bool [V]: whether each entity occurs (as head or tail) in the int [n, 3] `train`."""
    seen = np.zeros(num_entities, bool)
    seen[np.asarray(train)[:, [0, 2]].ravel()] = True
    return seen
