"""The KGE speed suite: kgjax against PyKEEN, same hyper-parameters, same data, one run.

Run (GPU machine, the RotatE repository's FB15k-237 / WN18RR configs):
  python bench/suite.py --mode=gpu --out=bench/results/suite_gpu
  python bench/suite.py --mode=gpu --parts=kgjax_train,pykeen_train     # one part at a time
Run (CPU smoke mode, what CI runs: UMLS with small widths; checks the suite, not speed):
  python bench/suite.py --mode=cpu --out=/tmp/suite_cpu

Parts (all run by default; `--parts` picks some):
  kgjax_train    steps/s of `kgjax.train.kge.trainer.train` (steady state, after the first call)
  kgjax_train_shared  the same with chunk-shared negatives (`negatives.shared_chunk_size`:
                 each chunk of positives shares its K negatives, DGL-KE's default chunking)
  kgjax_eval     seconds of a full filtered test evaluation (both sides, realistic ranks)
  pykeen_train   steps/s of PyKEEN's sLCWA loop (RotatE, NSSA loss, same batch/negatives/lr;
                 PyKEEN's "basic" sampler draws unfiltered negatives, kgjax filters them)
  pykeen_eval    seconds of PyKEEN's filtered RankBasedEvaluator on the same test split
Each part records peak device memory where the backend reports it. The table pairs each
kgjax figure with PyKEEN's from the same invocation and gives the ratio.

PyKEEN and torch are optional: without them the PyKEEN parts are recorded as skipped.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import importlib.util
import json
import os
import platform
import tempfile
import time

import jax
import numpy as np

from kgjax import config as config_lib

from common import peak_memory_bytes, write_results

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARTS = ("kgjax_train", "kgjax_train_shared", "kgjax_eval", "pykeen_train", "pykeen_eval")


@dataclasses.dataclass(frozen=True)
class Case:
    """One benchmark configuration: a config file argument plus the measured lengths."""

    dataset: str
    config_arg: str
    train_steps: int  # steps timed (kgjax) / batches timed (PyKEEN)
    shared_chunk_size: int  # positives sharing negatives in kgjax_train_shared
    overrides: tuple[tuple[str, object], ...] = ()


CASES = {
    # The reference configs, as best_config.sh runs them.
    "gpu": (
        # DGL-KE's chunk: as many positives as negatives (its neg_chunk_size default).
        Case("fb15k237", "fb15k237", train_steps=2000, shared_chunk_size=256),
        Case("wn18rr", "wn18rr", train_steps=1000, shared_chunk_size=512),
    ),
    # Small and fast: exercises every code path on CPU in CI.
    "cpu": (
        Case(
            "umls",
            "umls",
            train_steps=40,
            shared_chunk_size=16,
            overrides=(("model.dim", 16), ("negatives.num_negatives", 8), ("batch_size", 64)),
        ),
    ),
}


def load_config(case: Case, num_steps: int):
    config = config_lib.from_file(
        os.path.join(REPO, f"configs/rotate.py:{case.config_arg}"), dict(case.overrides)
    )
    config.num_steps = num_steps
    config.steps_per_call = num_steps
    config.log_every_steps = config.eval_every_steps = config.checkpoint_every_steps = num_steps
    return config


def kgjax_train(case: Case, dataset, shared_chunk_size: int = 0) -> dict:
    from kgjax.train.kge.trainer import train

    # Two device calls of `train_steps` each: `train` times only the second (the first compiles).
    config = load_config(case, 2 * case.train_steps)
    config.steps_per_call = case.train_steps
    config.negatives.shared_chunk_size = shared_chunk_size
    with tempfile.TemporaryDirectory() as workdir:
        results = train(config, workdir, progress=False)
    return {
        "steps_per_second": results["steps_per_second"],
        "steps": results["steps"],
        "shared_chunk_size": shared_chunk_size,
        "peak_memory_bytes": peak_memory_bytes(),
    }


def kgjax_train_shared(case: Case, dataset) -> dict:
    return kgjax_train(case, dataset, case.shared_chunk_size)


def kgjax_eval(case: Case, dataset) -> dict:
    from kgjax.evaluation.link_prediction import Evaluator
    from kgjax.train.kge.build import make_model

    config = load_config(case, 1)
    model = make_model(config.model, dataset.num_entities, dataset.num_relations)
    params = model.init(jax.random.key(0))
    evaluator = Evaluator(model, dataset, config.evaluation.batch_size)
    started = time.perf_counter()
    evaluator(params, "test")  # compiles
    first = time.perf_counter() - started
    started = time.perf_counter()
    metrics = evaluator(params, "test")
    return {
        "seconds": time.perf_counter() - started,
        "first_call_seconds": first,
        "eval_batch_size": config.evaluation.batch_size,
        "num_triples": metrics["num_triples"],
        "peak_memory_bytes": peak_memory_bytes(),
    }


def _pykeen_setup(case: Case, dataset):
    import torch
    from pykeen.losses import NSSALoss
    from pykeen.models import RotatE
    from pykeen.triples import TriplesFactory

    config = load_config(case, 1)
    device = "cuda" if torch.cuda.is_available() else "cpu"

    def factory(split):
        return TriplesFactory(
            mapped_triples=torch.as_tensor(dataset.splits[split], dtype=torch.long),
            entity_to_id={name: i for i, name in enumerate(dataset.entities.names)},
            relation_to_id={name: i for i, name in enumerate(dataset.relations.names)},
        )

    loss = NSSALoss(
        margin=config.model.gamma,
        adversarial_temperature=config.negatives.adversarial_temperature,
    )
    model = RotatE(
        triples_factory=factory("train"),
        embedding_dim=config.model.dim,
        loss=loss,
        random_seed=config.seed,
    ).to(device)
    return config, model, factory, device


def pykeen_train(case: Case, dataset) -> dict:
    import torch
    from pykeen.training import SLCWATrainingLoop

    config, model, factory, device = _pykeen_setup(case, dataset)
    train_factory = factory("train")
    optimizer = torch.optim.Adam(model.get_grad_params(), lr=config.optimizer.lr)
    loop = SLCWATrainingLoop(
        model=model,
        triples_factory=train_factory,
        optimizer=optimizer,
        negative_sampler="basic",
        negative_sampler_kwargs={"num_negs_per_pos": config.negatives.num_negatives},
    )
    batches_per_epoch = len(dataset.train) // config.batch_size
    epochs = max(1, -(-case.train_steps // batches_per_epoch))

    def run(num_epochs):
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        loop.train(
            triples_factory=train_factory,
            num_epochs=num_epochs,
            batch_size=config.batch_size,
            drop_last=True,
            use_tqdm=False,
        )
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started

    run(1)  # warm-up: CUDA context, allocator, kernels
    seconds = run(epochs)
    peak = int(torch.cuda.max_memory_allocated()) if device == "cuda" else None
    return {
        "steps_per_second": epochs * batches_per_epoch / seconds,
        "steps": epochs * batches_per_epoch,
        "peak_memory_bytes": peak,
    }


def pykeen_eval(case: Case, dataset) -> dict:
    import torch
    from pykeen.evaluation import RankBasedEvaluator

    config, model, factory, device = _pykeen_setup(case, dataset)
    evaluator = RankBasedEvaluator(filtered=True)
    filters = [factory("train").mapped_triples, factory("valid").mapped_triples]

    def run():
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        evaluator.evaluate(
            model,
            factory("test").mapped_triples,
            additional_filter_triples=filters,
            batch_size=config.evaluation.batch_size,
            use_tqdm=False,
        )
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started

    first = run()
    return {
        "seconds": run(),
        "first_call_seconds": first,
        "eval_batch_size": config.evaluation.batch_size,
        "num_triples": len(dataset.test),
        "peak_memory_bytes": int(torch.cuda.max_memory_allocated()) if device == "cuda" else None,
    }


def versions() -> dict:
    out = {"python": platform.python_version(), "jax": jax.__version__}
    for name in ("flax", "optax", "orbax-checkpoint", "torch", "pykeen"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def markdown(report: dict) -> str:
    lines = [
        f"Device: {report['device']}; versions: "
        + ", ".join(f"{k} {v}" for k, v in report["versions"].items() if v),
        f"Command: `{report['command']}`",
        "",
        "| dataset | kgjax train steps/s | PyKEEN steps/s | ratio | kgjax shared-negative "
        "steps/s | ratio | kgjax eval s | PyKEEN eval s | ratio | kgjax peak MiB (train) "
        "| PyKEEN peak MiB (train) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def get(results, part, key):
        value = results.get(part, {})
        return value.get(key) if isinstance(value, dict) else None

    def fmt(value, digits=1):
        return "n/a" if value is None else f"{value:.{digits}f}"

    def ratio(a, b):
        return "n/a" if not a or not b else f"{a / b:.1f}x"

    def mib(value):
        return "n/a" if value is None else f"{value / 2**20:.0f}"

    for dataset, results in report["results"].items():
        kt, pt = (
            get(results, "kgjax_train", "steps_per_second"),
            get(results, "pykeen_train", "steps_per_second"),
        )
        ks = get(results, "kgjax_train_shared", "steps_per_second")
        ke, pe = get(results, "kgjax_eval", "seconds"), get(results, "pykeen_eval", "seconds")
        lines.append(
            f"| {dataset} | {fmt(kt)} | {fmt(pt)} | {ratio(kt, pt)} | {fmt(ks)} | {ratio(ks, pt)} "
            f"| {fmt(ke, 3)} | {fmt(pe, 3)} "
            f"| {ratio(pe, ke)} | {mib(get(results, 'kgjax_train', 'peak_memory_bytes'))} "
            f"| {mib(get(results, 'pykeen_train', 'peak_memory_bytes'))} |"
        )
    lines.append("")
    lines.append(
        "Ratios: kgjax / PyKEEN for steps/s, PyKEEN / kgjax for seconds (higher = kgjax faster)."
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=sorted(CASES), default="cpu")
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument(
        "--datasets", default="", help="comma-separated subset of the mode's datasets"
    )
    parser.add_argument("--out", default=os.path.join(REPO, "bench", "results", "suite"))
    args = parser.parse_args()
    parts = args.parts.split(",")
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; known: {', '.join(PARTS)}")

    from kgjax.data.catalog import load_dataset

    functions = {name: globals()[name] for name in PARTS}
    report = {
        "device": jax.devices()[0].device_kind,
        "versions": versions(),
        "command": f"python bench/suite.py --mode={args.mode} --parts={args.parts}",
        "results": {},
    }
    previous = f"{args.out}.json"
    if os.path.exists(previous):  # one part at a time: keep what earlier invocations measured
        with open(previous) as f:
            earlier = json.load(f)
        if earlier.get("device") == report["device"]:
            report["results"] = earlier["results"]
    selected = [
        c for c in CASES[args.mode] if not args.datasets or c.dataset in args.datasets.split(",")
    ]
    for case in selected:
        dataset = load_dataset(case.dataset)
        results = report["results"].setdefault(case.dataset, {})
        for part in parts:
            try:
                results[part] = functions[part](case, dataset)
            except ImportError as e:  # PyKEEN or torch absent
                results[part] = f"skipped: {e}"
            print(
                json.dumps({"dataset": case.dataset, "part": part, **{"result": results[part]}}),
                flush=True,
            )
    write_results(args.out, report, markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
