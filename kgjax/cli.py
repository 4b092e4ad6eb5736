"""The `kgjax` command: argument parsing and dispatch only; the work is in the library.

kgjax train    --config=configs/rotate.py:umls --workdir=runs/x [--config.optimizer.lr=1e-3]
kgjax evaluate --workdir=runs/x
kgjax predict  --workdir=runs/x --head=NAME --relation=NAME [--top_k=10]
kgjax predict  --workdir=runs/x --tail=NAME --relation=NAME
kgjax export   --workdir=runs/x --out=embeddings.npz
kgjax split    --dataset=fb15k237 --out=data/fb15k237_inductive [--fraction=0.1] [--seed=0]
"""

from __future__ import annotations

import importlib
import json
import sys

from absl import flags, logging
from ml_collections import config_flags

from kgjax import runs
from kgjax.config import ConfigError
from kgjax.data import catalog, inductive
from kgjax.data.triples import DataError, UnknownNameError
from kgjax.runs import RunError
from kgjax.train.host_loop import TrainingDiverged

USAGE = __doc__.split("\n\n", 1)[1]
# config.trainer -> the module whose `train(config, workdir, progress)` runs it; one per family.
TRAINERS = {
    "kge": "kgjax.train.kge.trainer",
    "jaket_km": "kgjax.train.jaket.trainer",
    "jaket": "kgjax.train.jaket.pretraining",
    "jaket_fewrel": "kgjax.train.jaket.fewrel",
    "knowbert": "kgjax.train.knowbert.trainer",
    "knowbert_tasks": "kgjax.train.knowbert_tasks.trainer",
}
COMMANDS = ("train", "evaluate", "predict", "export", "split")


def _define_flags(command: str, argv: list[str]) -> flags.FlagValues:
    fv = flags.FlagValues()
    if command == "split":
        flags.DEFINE_string("dataset", None, "Catalog name of a local dataset.", flag_values=fv)
        flags.DEFINE_string(
            "path", None, "Or a dataset folder (train/valid/test.txt).", flag_values=fv
        )
        flags.DEFINE_string("data_dir", None, "Folder of dataset folders.", flag_values=fv)
        flags.DEFINE_string("out", None, "The split's folder to write.", flag_values=fv)
        flags.DEFINE_float("fraction", 0.1, "Share of entities held out.", flag_values=fv)
        flags.DEFINE_integer("seed", 0, "Seed of the draw.", flag_values=fv)
        return fv
    flags.DEFINE_string("workdir", None, "The run's working directory.", flag_values=fv)
    if command == "train":
        config_flags.DEFINE_config_file(
            "config",
            None,
            "Config file and argument, e.g. configs/rotate.py:umls.",
            flag_values=fv,
            lock_config=True,
            sys_argv=argv,
        )
        flags.DEFINE_bool("progress", True, "Show a progress bar.", flag_values=fv)
    elif command == "predict":
        flags.DEFINE_string("head", None, "Head entity name: predict tails.", flag_values=fv)
        flags.DEFINE_string("tail", None, "Tail entity name: predict heads.", flag_values=fv)
        flags.DEFINE_string("relation", None, "Relation name.", flag_values=fv)
        flags.DEFINE_integer("top_k", 10, "How many predictions to print.", flag_values=fv)
    elif command == "export":
        flags.DEFINE_string(
            "out", None, "The .npz file to write (a JAKET run: its LM's model folder).",
            flag_values=fv,
        )  # fmt: skip
    return fv


def _required(fv: flags.FlagValues, *names: str) -> None:
    missing = [f"--{name}" for name in names if getattr(fv, name) is None]
    if missing:
        raise flags.Error(f"missing {', '.join(missing)}")


def _print_metrics(results: dict) -> None:
    # JAKET's knowledge module: "<task>/<part>" blocks of accuracies.
    for name, block in results.items():
        if isinstance(block, dict) and "linked_mentions" in block:  # FewRel: one set
            settings = [key for key, value in block.items() if isinstance(value, dict)]
            print(
                f"{name}: "
                + "  ".join(f"{key} {block[key]['accuracy']:.4f}" for key in settings)
                + f"  ({block['linked_mentions']} mentions with E^KM)"
            )
        if "/" in name and isinstance(block, dict) and "accuracy" in block:
            extra = "".join(
                f"  {key} {block[key]:.4f}" for key in ("mrr", "majority_accuracy") if key in block
            )
            print(f"{name}: accuracy {block['accuracy']:.4f}{extra}")
        if name.startswith("link_prediction/") and isinstance(block, dict):
            print(
                f"{name} (filtered, realistic ranks, both sides): MRR {block['mrr']:.4f}  "
                f"MR {block['mr']:.2f}  Hits@1 {block['hits@1']:.4f}  "
                f"Hits@10 {block['hits@10']:.4f}"
            )
    # KnowBERT: held-out linking (WSD scores) and masked-LM losses.
    for name, block in results.get("linking/held_out", {}).items():
        if isinstance(block, dict):
            print(
                f"linking/held_out {name}: P {block['precision']:.4f}  R {block['recall']:.4f}  "
                f"F1 {block['f1']:.4f}  ({block['attempted']} of {block['total']} answered)"
            )
    for name, block in results.get("language/held_out", {}).items():
        if name in ("with_kar", "without_kar"):
            print(
                f"language/held_out {name}: token loss {block['token_loss']:.4f}  "
                f"perplexity {block['token_perplexity']:.2f}  "
                f"accuracy {block['token_accuracy']:.4f}"
            )
    for split in ("valid", "test"):
        if split in results:
            both = results[split]["both"]
            print(
                f"{split:5s} (filtered, realistic ranks, both sides): MRR {both['mrr']:.4f}  "
                f"MR {both['mr']:.2f}  Hits@1 {both['hits@1']:.4f}  Hits@3 {both['hits@3']:.4f}  "
                f"Hits@10 {both['hits@10']:.4f}"
            )
    block = results.get("inductive", {})
    for variant, label in (("as_trained", "as trained"), ("from_text", "from text")):
        if variant in block:
            both = block[variant]["test_unseen"]["both"]
            print(
                f"test triples with an entity absent from train, its row {label}: "
                f"MRR {both['mrr']:.4f}  Hits@10 {both['hits@10']:.4f}"
            )
    if "per_category" in results:
        print("test by relation category (Bordes et al. 2013; head = predicting the head):")
        print("  category  relations  triples  MRR head  MRR tail  Hits@10 head  Hits@10 tail")
        for category, block in results["per_category"].items():
            row = f"  {category:8s}  {block['num_relations']:9d}  {block['num_triples']:7d}"
            if block["num_triples"]:
                head, tail = block["head"], block["tail"]
                row += (
                    f"  {head['mrr']:8.4f}  {tail['mrr']:8.4f}  {head['hits@10']:12.4f}  "
                    f"{tail['hits@10']:12.4f}"
                )
            else:
                row += "  (no test triples)"
            print(row)
    if "triple_classification" in results:
        block = results["triple_classification"]
        print(
            f"triple classification ({block['num_relation_thresholds']} of "
            f"{block['num_relations']} relations with a threshold of their own): "
            + "  ".join(
                f"{split} accuracy {block[split]['accuracy']:.4f} F1 {block[split]['f1']:.4f}"
                for split in ("valid", "test")
            )
        )


def run(command: str, fv: flags.FlagValues) -> int:
    if command == "split":
        _required(fv, "out")
        if (fv.dataset is None) == (fv.path is None):
            raise flags.Error("give exactly one of --dataset (a catalog name) or --path")
        if not 0 < fv.fraction < 1:
            raise flags.Error(f"--fraction must be in (0, 1), got {fv.fraction}")
        source = fv.path or catalog.local_folder(fv.dataset, fv.data_dir)
        if source is None:
            raise DataError(f"{fv.dataset}: no local copy; set KGJAX_DATA_DIR or --data_dir")
        manifest = inductive.make_split(source, fv.out, fv.fraction, fv.seed)
        print(json.dumps({"out": fv.out, **manifest["counts"]}))
        return 0
    _required(fv, "workdir")
    if command == "train":
        if fv.config is None:
            raise flags.Error("missing --config (e.g. --config=configs/rotate.py:umls)")
        family = fv.config.get("trainer", "kge")
        if family not in TRAINERS:
            raise ConfigError(f"config.trainer: {family!r} is not one of {sorted(TRAINERS)}")
        trainer = importlib.import_module(TRAINERS[family])
        results = trainer.train(fv.config, fv.workdir, progress=fv.progress)
        _print_metrics(results)
        if "steps_per_second" not in results:  # an evaluation-only run (FewRel) trains nothing
            print(f"results in {fv.workdir}/results.json")
            return 0
        rate = results["steps_per_second"]
        # Only calls after the first (which compiles) are timed: one call leaves no rate.
        rate = f"{rate:.1f}" if rate else "n/a (one device call, which compiled)"
        print(f"steps/s {rate}; results in {fv.workdir}/results.json")
    elif command == "evaluate":
        results = runs.evaluate_run(fv.workdir)
        print(f"checkpoint at step {results['step']}")
        _print_metrics(results)
    elif command == "predict":
        _required(fv, "relation")
        if (fv.head is None) == (fv.tail is None):
            raise flags.Error("give exactly one of --head (predict tails) or --tail (heads)")
        ranked = runs.predict(fv.workdir, fv.relation, fv.head, fv.tail, fv.top_k)
        asked = f"({fv.head}, {fv.relation}, ?)" if fv.head else f"(?, {fv.relation}, {fv.tail})"
        print(f"top {len(ranked)} for {asked}:")
        for rank, (name, score) in enumerate(ranked, start=1):
            print(f"{rank:4d}  {score:12.4f}  {name}")
    elif command == "export":
        _required(fv, "out")
        written = runs.export(fv.workdir, fv.out)
        print(json.dumps({"out": fv.out, "arrays": {k: list(v) for k, v in written.items()}}))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if len(argv) >= 2 else 2
    command = argv[1]
    if command not in COMMANDS:
        print(f"kgjax: unknown command {command!r}; one of {', '.join(COMMANDS)}\n\n{USAGE}",
              file=sys.stderr)  # fmt: skip
        return 2
    flag_argv = [f"kgjax {command}", *argv[2:]]
    # Orbax and JAX log every checkpoint step at INFO; the progress bar says what matters.
    logging.set_verbosity(logging.WARNING)
    try:
        fv = _define_flags(command, flag_argv)
        try:
            fv(flag_argv)
        except (AttributeError, KeyError) as e:
            # A misspelt --config.* override; ml_collections suggests the closest key.
            detail = str(e).strip("'\"").replace("\\n", " ").replace("\\'", "'")
            raise flags.Error(f"unknown config key in the overrides: {detail}") from None
        return run(command, fv)
    except flags.Error as e:
        print(f"kgjax {command}: error: {e}", file=sys.stderr)
        return 2
    except (ConfigError, DataError, UnknownNameError) as e:
        print(f"kgjax {command}: error: {e}", file=sys.stderr)
        return 2
    except (TrainingDiverged, RunError) as e:
        print(f"kgjax {command}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
