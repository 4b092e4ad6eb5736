"""The KGE speed suite: kgjax against PyKEEN, same hyper-parameters, same data, one run.

Run (GPU machine, the RotatE repository's FB15k-237 / WN18RR configs):
  python bench/suite.py --mode=gpu --out=bench/results/suite_gpu
  python bench/suite.py --mode=gpu --parts=kgjax_train,pykeen_train     # one part at a time
Run (CPU at real shapes: FB15k-237 and WN18RR from $KGJAX_DATA_DIR at reduced widths, RotatE
dim 200, batch 512, 128 negatives; sized for about 20 minutes on 2 cores; speed figures only from
an otherwise idle machine):
  KGJAX_DATA_DIR=../shared/data python bench/suite.py --mode=cpu_real \
      --out=bench/results/suite_cpu_real
  (or `--datasets=fb15k237`, then `--datasets=wn18rr`, same `--out`: the results merge)
Run (CPU smoke mode, what CI runs: UMLS with small widths; checks the suite, not speed):
  python bench/suite.py --mode=cpu --out=/tmp/suite_cpu
`--train_steps=N` and `--set=key=value` (repeatable) override the mode's timed steps and config
for a quick check of a mode (e.g. `--mode=cpu_real --train_steps=2 --set=model.dim=8`).

Modes and their datasets (`--datasets` picks some):
  gpu       fb15k237, wn18rr: the reference configs (configs/rotate.py), 2000 / 1000 steps
  cpu_real  fb15k237, wn18rr: the reference configs at dim 200, batch 512, 128 negatives,
            evaluation batch 32 / 16; 100 timed steps; 1024 / 512 test triples evaluated
  cpu       umls: dim 16, batch 64, 8 negatives; 40 timed steps

Parts (all run by default; `--parts` picks some):
  kgjax_train    steps/s of the training call `kgjax.train.kge.trainer.train` runs (the jitted
                 chunk of `kgjax.train.kge.build`, one device): a first call of `train_steps`
                 steps compiles, a second one is timed. The trainer itself is not called: its
                 final valid + test evaluations would add two unbounded full evaluations.
  kgjax_train_shared  the same with chunk-shared negatives (`negatives.shared_chunk_size`:
                 each chunk of positives shares its K negatives, DGL-KE's default chunking)
  kgjax_eval     seconds of a filtered test evaluation (both sides, realistic ranks, filtered
                 by every known triple), timed on the second call (the first compiles). The
                 whole test split, except in cpu_real: a fixed random sample of `eval_triples`
                 test triples, the same for both tools (PyKEEN's RotatE scores a [B, V, D]
                 complex tensor per batch; on 2 cores its whole FB15k-237 split alone would
                 outlast the mode's budget). The table says how many triples were ranked.
  pykeen_train   steps/s of PyKEEN's sLCWA loop (RotatE, NSSA loss, same batch/negatives/lr;
                 PyKEEN's "basic" sampler draws unfiltered negatives, kgjax filters them)
  pykeen_eval    seconds of PyKEEN's filtered RankBasedEvaluator on the same test triples
  kgjax_train_1vsall  steps/s of kgjax's 1vsAll step (DistMult, reciprocal relations: each step
                 scores `one_to_all_batch` tail queries against all V entities, softmax
                 cross-entropy), timed as kgjax_train
  pykeen_train_lcwa  steps/s of PyKEEN's LCWA loop on the same DistMult, width and batch
                 (each batch: that many (h, r) queries against all V tails, cross-entropy over
                 the normalised multi-hot targets), timed as pykeen_train on an epoch of
                 `train_steps_1vsall * one_to_all_batch` distinct training (h, r) queries
Each part records peak device memory where the backend reports it, and `part_seconds`, its wall
time. The table pairs each kgjax figure with PyKEEN's from the same invocation and gives the
ratio.

How PyKEEN's training is timed. `TrainingLoop.train(num_epochs=n)` trains epochs
`loop._epoch + 1 .. n` and, unless `continue_training=True`, re-initialises the weights first:
one loop object is warmed up (`WARMUP_BATCHES` batches: CUDA context, allocator, kernels), then
continued with `continue_training=True` to `num_epochs=2` (or more), so the timed call trains
real batches on warm weights. PyKEEN's API stops only at epoch ends, so a fixed number of
batches is an epoch of a sub-sampled triples factory: `train_steps * batch_size` training
triples drawn at random (same entity and relation ids, so the same tables, negatives drawn from
all V entities, and the same per-batch work as a full epoch), rather than a callback raising out
of the loop mid-epoch. Where `train_steps` exceeds an epoch, whole epochs of the full training
split are timed. A callback counts the batches actually trained: steps/s = counted batches /
seconds of the timed call, which includes PyKEEN's per-epoch work (a new data loader and a
`gc.collect()`, which walks this process's objects, JAX's among them) once per timed epoch. PyKEEN's evaluation has nothing to compile: its warm-up is two
evaluation batches, and the timed call ranks the same test triples as kgjax_eval.

PyKEEN and torch are optional: without them the PyKEEN parts are recorded as skipped.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import os
import platform
import time

import jax
import numpy as np

from kgjax import config as config_lib

from common import peak_memory_bytes, single_device_chunk, write_results

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARTS = (
    "kgjax_train",
    "kgjax_train_shared",
    "kgjax_eval",
    "pykeen_train",
    "pykeen_eval",
    "kgjax_train_1vsall",
    "pykeen_train_lcwa",
)
WARMUP_BATCHES = 3  # PyKEEN batches before the timed call
WARMUP_EVAL_BATCHES = 2  # PyKEEN evaluation batches before the timed full split


@dataclasses.dataclass(frozen=True)
class Case:
    """One benchmark configuration: a config file argument plus the measured lengths."""

    dataset: str
    config_arg: str
    train_steps: int  # steps timed (kgjax) / batches timed (PyKEEN)
    shared_chunk_size: int  # positives sharing negatives in kgjax_train_shared
    overrides: tuple[tuple[str, object], ...] = ()
    eval_triples: int = 0  # test triples ranked (a fixed random sample); 0: the whole split
    # The 1vsAll parts: queries per step and steps timed. Every step scores a [B, V] matrix,
    # and PyKEEN's DistMult broadcasts a [B, V, D] product first, so B is smaller than the
    # negative-sampling batch on CPU.
    one_to_all_batch: int = 0  # 0: batch_size
    train_steps_1vsall: int = 0  # 0: train_steps


# The CPU widths of the real-shape mode: the reference configs' data and losses, narrower.
_CPU_REAL = (("model.dim", 200), ("batch_size", 512), ("negatives.num_negatives", 128))


def _cpu_real(dataset: str, eval_batch_size: int, eval_triples: int) -> Case:
    """A `cpu_real` case: 100 training steps, chunks of 128, a fixed sample of the test split."""
    return Case(
        dataset,
        dataset,
        train_steps=100,
        shared_chunk_size=128,
        overrides=(*_CPU_REAL, ("evaluation.batch_size", eval_batch_size)),
        eval_triples=eval_triples,
        one_to_all_batch=128,
        train_steps_1vsall=20,
    )


CASES = {
    # The reference configs, as best_config.sh runs them.
    "gpu": (
        # DGL-KE's chunk: as many positives as negatives (its neg_chunk_size default).
        # 1vsAll: DistMult at its reference widths (D 2000 / 1000), 128 queries a step:
        # PyKEEN's broadcast [B, V, D] product is then 15 GB (FB15k-237) / 21 GB (WN18RR).
        Case(
            "fb15k237",
            "fb15k237",
            train_steps=2000,
            shared_chunk_size=256,
            one_to_all_batch=128,
            train_steps_1vsall=200,
        ),
        Case(
            "wn18rr",
            "wn18rr",
            train_steps=1000,
            shared_chunk_size=512,
            one_to_all_batch=128,
            train_steps_1vsall=100,
        ),
    ),
    # Real data and vocabularies on 2 CPU cores: every part bounded (see the docstring).
    "cpu_real": (
        _cpu_real("fb15k237", eval_batch_size=32, eval_triples=1024),
        # 2.8x FB15k-237's entities: a smaller evaluation batch for the same [B, V] scores.
        _cpu_real("wn18rr", eval_batch_size=16, eval_triples=512),
    ),
    # Small and fast: exercises every code path on CPU in CI.
    "cpu": (
        Case(
            "umls",
            "umls",
            train_steps=40,
            shared_chunk_size=16,
            overrides=(("model.dim", 16), ("negatives.num_negatives", 8), ("batch_size", 64)),
            train_steps_1vsall=20,
        ),
    ),
}


def load_config(case: Case, num_steps: int, model: str = "rotate"):
    config = config_lib.from_file(
        os.path.join(REPO, f"configs/{model}.py:{case.config_arg}"), dict(case.overrides)
    )
    config.num_steps = num_steps
    config.steps_per_call = num_steps
    config.log_every_steps = config.eval_every_steps = config.checkpoint_every_steps = num_steps
    return config


def eval_triples(case: Case, dataset) -> np.ndarray:
    """int [n, 3]: the test triples both tools rank, the whole split or a fixed sample."""
    if not case.eval_triples or case.eval_triples >= len(dataset.test):
        return dataset.test
    chosen = np.random.default_rng(0).choice(len(dataset.test), case.eval_triples, replace=False)
    return dataset.test[np.sort(chosen)]


def one_to_all_config(case: Case, num_steps: int):
    """The 1vsAll parts' config: the case's DistMult with reciprocal relations, no regulariser,
    `one_to_all_batch` queries per step."""
    config = load_config(case, num_steps, model="distmult")
    config.batch_size = case.one_to_all_batch or config.batch_size
    config.training.regime = "1vsAll"
    config.training.reciprocal = True
    config.loss.regularizer = "none"
    config.loss.subsampling = False
    return config


def _time_chunk(config, dataset, steps: int) -> tuple[float, float]:
    """Seconds of the first (compiling) and second call of a `steps`-step training chunk."""
    chunk, state, data = single_device_chunk(config, dataset, steps)
    key = jax.random.key(config.seed)
    times = []
    for _ in range(2):
        started = time.perf_counter()
        state, metrics = chunk(state, data, key)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - started)
    return times[0], times[1]


def kgjax_train(case: Case, dataset, shared_chunk_size: int = 0) -> dict:
    # Two device calls of `train_steps` each, as the trainer makes them: the first compiles.
    config = load_config(case, 2 * case.train_steps)
    config.negatives.shared_chunk_size = shared_chunk_size
    compile_seconds, seconds = _time_chunk(config, dataset, case.train_steps)
    return {
        "steps_per_second": case.train_steps / seconds,
        "steps": case.train_steps,
        "first_call_seconds": compile_seconds,
        "shared_chunk_size": shared_chunk_size,
        "peak_memory_bytes": peak_memory_bytes(),
    }


def kgjax_train_shared(case: Case, dataset) -> dict:
    return kgjax_train(case, dataset, case.shared_chunk_size)


def kgjax_train_1vsall(case: Case, dataset) -> dict:
    steps = case.train_steps_1vsall or case.train_steps
    config = one_to_all_config(case, 2 * steps)
    compile_seconds, seconds = _time_chunk(config, dataset, steps)
    return {
        "steps_per_second": steps / seconds,
        "steps": steps,
        "batch_size": config.batch_size,
        "dim": config.model.dim,
        "first_call_seconds": compile_seconds,
        "peak_memory_bytes": peak_memory_bytes(),
    }


def kgjax_eval(case: Case, dataset) -> dict:
    from kgjax.evaluation.link_prediction import Evaluator, evaluate
    from kgjax.train.kge.build import make_model

    config = load_config(case, 1)
    model = make_model(config.model, dataset.num_entities, dataset.num_relations)
    params = model.init(jax.random.key(0))
    batch_size = config.evaluation.batch_size
    index = Evaluator(model, dataset, batch_size).index("test")  # every known triple
    triples = eval_triples(case, dataset)
    started = time.perf_counter()
    evaluate(model, params, triples, index, batch_size)  # compiles
    first = time.perf_counter() - started
    started = time.perf_counter()
    metrics = evaluate(model, params, triples, index, batch_size)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "seconds_per_triple": seconds / len(triples),
        "first_call_seconds": first,
        "eval_batch_size": batch_size,
        "num_triples": metrics["num_triples"],
        "split_triples": len(dataset.test),
        "peak_memory_bytes": peak_memory_bytes(),
    }


def _pykeen_factory(dataset):
    """A maker of PyKEEN triples factories over `dataset`'s ids: triples int [n, 3] ->
    TriplesFactory (same entity and relation ids, so the same tables)."""
    import torch
    from pykeen.triples import TriplesFactory

    entity_to_id = {name: i for i, name in enumerate(dataset.entities.names)}
    relation_to_id = {name: i for i, name in enumerate(dataset.relations.names)}

    def factory(triples):
        return TriplesFactory(
            mapped_triples=torch.as_tensor(np.asarray(triples), dtype=torch.long),
            entity_to_id=entity_to_id,
            relation_to_id=relation_to_id,
        )

    return factory


def _pykeen_setup(case: Case, dataset):
    """PyKEEN's RotatE on `dataset`'s ids, and a maker of triples factories over them.

    Returns:
      (config, model, factory(triples int [n, 3]) -> TriplesFactory, torch device name).
    """
    import torch
    from pykeen.losses import NSSALoss
    from pykeen.models import RotatE

    config = load_config(case, 1)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    factory = _pykeen_factory(dataset)
    loss = NSSALoss(
        margin=config.model.gamma,
        adversarial_temperature=config.negatives.adversarial_temperature,
    )
    model = RotatE(
        triples_factory=factory(dataset.train),
        embedding_dim=config.model.dim,
        loss=loss,
        random_seed=config.seed,
    ).to(device)
    return config, model, factory, device


def _synchronize(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _pykeen_timed(loop, factory, device, batch_size, warmup_triples, timed_triples, epochs):
    """Warms `loop` up on `warmup_triples` (one epoch), then times `epochs` epochs of
    `timed_triples` continuing from there (see the module docstring).

    Returns:
      (seconds of the timed call, batches it trained, batches the warm-up trained).

    Raises:
      RuntimeError: the timed call trained no batch.
    """
    from pykeen.training.callbacks import TrainingCallback

    class BatchCounter(TrainingCallback):
        """Counts the batches the loop trains (one `post_batch` per optimizer step)."""

        def __init__(self):
            super().__init__()
            self.batches = 0

        def post_batch(self, epoch, batch, **kwargs):
            self.batches += 1

    def run(triples, num_epochs, continue_training):
        counter = BatchCounter()
        _synchronize(device)
        started = time.perf_counter()
        loop.train(
            triples_factory=factory(triples),
            num_epochs=num_epochs,  # the epoch to reach, counting those already trained
            batch_size=batch_size,
            drop_last=True,
            use_tqdm=False,
            continue_training=continue_training,
            callbacks=counter,
        )
        _synchronize(device)
        return time.perf_counter() - started, counter.batches

    # Warm-up: CUDA context, allocator, kernels; initialises the weights and Adam's state.
    _, warmup_batches = run(warmup_triples, 1, continue_training=False)
    seconds, batches = run(timed_triples, 1 + epochs, continue_training=True)
    if batches == 0:
        raise RuntimeError("PyKEEN's timed call trained no batch")
    return seconds, batches, warmup_batches


def pykeen_train(case: Case, dataset) -> dict:
    import torch
    from pykeen.training import SLCWATrainingLoop

    config, model, factory, device = _pykeen_setup(case, dataset)
    batch_size = config.batch_size
    batches_per_epoch = len(dataset.train) // batch_size
    # A fixed number of batches is one epoch of a random sub-sample (see the module docstring);
    # beyond an epoch, whole epochs of the full split.
    timed_per_epoch = min(case.train_steps, batches_per_epoch)
    epochs = -(-case.train_steps // timed_per_epoch)
    order = np.random.default_rng(config.seed).permutation(len(dataset.train))
    warmup_triples = dataset.train[order[: min(WARMUP_BATCHES, batches_per_epoch) * batch_size]]
    timed_triples = (
        dataset.train[order[: timed_per_epoch * batch_size]]
        if timed_per_epoch < batches_per_epoch
        else dataset.train
    )
    optimizer = torch.optim.Adam(model.get_grad_params(), lr=config.optimizer.lr)
    loop = SLCWATrainingLoop(
        model=model,
        triples_factory=factory(dataset.train),
        optimizer=optimizer,
        negative_sampler="basic",
        negative_sampler_kwargs={"num_negs_per_pos": config.negatives.num_negatives},
    )
    seconds, batches, warmup_batches = _pykeen_timed(
        loop, factory, device, batch_size, warmup_triples, timed_triples, epochs
    )
    peak = int(torch.cuda.max_memory_allocated()) if device == "cuda" else None
    return {
        "steps_per_second": batches / seconds,
        "steps": batches,
        "warmup_steps": warmup_batches,
        "timed_epochs": epochs,
        "timed_triples": len(timed_triples),
        "peak_memory_bytes": peak,
    }


def queries_subsample(train: np.ndarray, num_queries: int, seed: int) -> np.ndarray:
    """The training triples of `num_queries` distinct (h, r) pairs drawn at random (all of a
    pair's tails), so that PyKEEN's LCWA epoch over them is exactly `num_queries` queries.

    Args:
      train: int [n, 3].

    Returns:
      int [m, 3], every triple of the chosen pairs; all of `train` if it has no more pairs.
    """
    pairs, pair_of_triple = np.unique(train[:, :2], axis=0, return_inverse=True)
    if num_queries >= len(pairs):
        return train
    chosen = np.zeros(len(pairs), bool)
    chosen[np.random.default_rng(seed).choice(len(pairs), num_queries, replace=False)] = True
    return train[chosen[pair_of_triple.reshape(-1)]]


def pykeen_train_lcwa(case: Case, dataset) -> dict:
    import torch
    from pykeen.losses import CrossEntropyLoss
    from pykeen.models import DistMult
    from pykeen.training import LCWATrainingLoop

    config = one_to_all_config(case, 1)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    factory = _pykeen_factory(dataset)
    model = DistMult(
        triples_factory=factory(dataset.train),
        embedding_dim=config.model.dim,
        loss=CrossEntropyLoss(),
        random_seed=config.seed,
    ).to(device)
    batch_size = config.batch_size
    steps = case.train_steps_1vsall or case.train_steps
    warmup_triples = queries_subsample(dataset.train, WARMUP_BATCHES * batch_size, config.seed)
    timed_triples = queries_subsample(dataset.train, steps * batch_size, config.seed + 1)
    optimizer = torch.optim.Adam(model.get_grad_params(), lr=config.optimizer.lr)
    loop = LCWATrainingLoop(
        model=model, triples_factory=factory(dataset.train), optimizer=optimizer
    )
    seconds, batches, warmup_batches = _pykeen_timed(
        loop, factory, device, batch_size, warmup_triples, timed_triples, epochs=1
    )
    peak = int(torch.cuda.max_memory_allocated()) if device == "cuda" else None
    return {
        "steps_per_second": batches / seconds,
        "steps": batches,
        "batch_size": batch_size,
        "dim": config.model.dim,
        "warmup_steps": warmup_batches,
        "timed_triples": len(timed_triples),
        "peak_memory_bytes": peak,
    }


def pykeen_eval(case: Case, dataset) -> dict:
    import torch
    from pykeen.evaluation import RankBasedEvaluator

    config, model, factory, device = _pykeen_setup(case, dataset)
    evaluator = RankBasedEvaluator(filtered=True)
    filters = [factory(t).mapped_triples for t in (dataset.train, dataset.valid, dataset.test)]
    batch_size = config.evaluation.batch_size
    triples = eval_triples(case, dataset)

    def run(triples):
        _synchronize(device)
        started = time.perf_counter()
        evaluator.evaluate(
            model,
            factory(triples).mapped_triples,
            additional_filter_triples=filters,
            batch_size=batch_size,
            use_tqdm=False,
        )
        _synchronize(device)
        return time.perf_counter() - started

    # Nothing to compile: the warm-up is a few batches (CUDA context and kernels).
    first = run(triples[: WARMUP_EVAL_BATCHES * batch_size])
    seconds = run(triples)
    return {
        "seconds": seconds,
        "seconds_per_triple": seconds / len(triples),
        "warmup_seconds": first,
        "eval_batch_size": batch_size,
        "num_triples": len(triples),
        "split_triples": len(dataset.test),
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
        *(f"Earlier command: `{command}`" for command in report.get("earlier_commands", [])),
        f"Command: `{report['command']}`",
        "",
        "| dataset | kgjax train steps/s | PyKEEN steps/s | ratio | kgjax shared-negative "
        "steps/s | ratio | kgjax eval s | PyKEEN eval s | ratio | test triples ranked "
        "| kgjax peak MiB (train) | PyKEEN peak MiB (train) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def get(results, part, key):
        value = results.get(part, {})
        return value.get(key) if isinstance(value, dict) else None

    def fmt(value, digits=1):
        if value is None:
            return "n/a"
        return f"{value:.{digits}f}" if value >= 1 else f"{value:.3g}"  # 0.132, not 0.1

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
        ranked = next(
            (
                f"{get(results, part, 'num_triples')} of {get(results, part, 'split_triples')}"
                for part in ("kgjax_eval", "pykeen_eval")
                if get(results, part, "split_triples")
            ),
            "n/a",
        )
        lines.append(
            f"| {dataset} | {fmt(kt)} | {fmt(pt)} | {ratio(kt, pt)} | {fmt(ks)} | {ratio(ks, pt)} "
            f"| {fmt(ke, 3)} | {fmt(pe, 3)} | {ratio(pe, ke)} | {ranked} "
            f"| {mib(get(results, 'kgjax_train', 'peak_memory_bytes'))} "
            f"| {mib(get(results, 'pykeen_train', 'peak_memory_bytes'))} |"
        )
    lines += [
        "",
        "1vsAll (DistMult; kgjax: reciprocal relations, softmax cross-entropy; PyKEEN: LCWA, "
        "cross-entropy):",
        "",
        "| dataset | batch | dim | kgjax 1vsAll steps/s | PyKEEN LCWA steps/s | ratio "
        "| kgjax peak MiB | PyKEEN peak MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for dataset, results in report["results"].items():
        k1, pl = (
            get(results, "kgjax_train_1vsall", "steps_per_second"),
            get(results, "pykeen_train_lcwa", "steps_per_second"),
        )
        if k1 is None and pl is None:
            continue
        part = "kgjax_train_1vsall" if k1 is not None else "pykeen_train_lcwa"
        lines.append(
            f"| {dataset} | {get(results, part, 'batch_size')} | {get(results, part, 'dim')} "
            f"| {fmt(k1)} | {fmt(pl)} | {ratio(k1, pl)} "
            f"| {mib(get(results, 'kgjax_train_1vsall', 'peak_memory_bytes'))} "
            f"| {mib(get(results, 'pykeen_train_lcwa', 'peak_memory_bytes'))} |"
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
    parser.add_argument(
        "--train_steps", type=int, default=0, help="steps (batches) timed; 0: the mode's"
    )
    parser.add_argument(
        "--set", action="append", default=[], help="key=value over the mode's config overrides"
    )
    parser.add_argument("--out", default=os.path.join(REPO, "bench", "results", "suite"))
    args = parser.parse_args()
    parts = args.parts.split(",")
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; known: {', '.join(PARTS)}")

    from kgjax.train.kge.build import load_dataset

    functions = {name: globals()[name] for name in PARTS}
    command = f"python bench/suite.py --mode={args.mode} --parts={args.parts}" + "".join(
        f" --{flag}={value}"
        for flag, value in (("datasets", args.datasets), ("train_steps", args.train_steps))
        if value
    )
    report = {
        "device": jax.devices()[0].device_kind,
        "versions": versions(),
        "command": command + "".join(f" --set={text}" for text in args.set),
        "results": {},
    }
    previous = f"{args.out}.json"
    if os.path.exists(previous):  # one part at a time: keep what earlier invocations measured
        with open(previous) as f:
            earlier = json.load(f)
        if earlier.get("device") == report["device"]:
            report["results"] = earlier["results"]
            report["earlier_commands"] = [*earlier.get("earlier_commands", []), earlier["command"]]
    selected = [
        c for c in CASES[args.mode] if not args.datasets or c.dataset in args.datasets.split(",")
    ]
    overrides = config_lib.parse_overrides(args.set)
    for case in selected:
        case = dataclasses.replace(
            case,
            train_steps=args.train_steps or case.train_steps,
            overrides=tuple({**dict(case.overrides), **overrides}.items()),
        )
        dataset = load_dataset(load_config(case, 1).data)
        results = report["results"].setdefault(case.dataset, {})
        for part in parts:
            started = time.perf_counter()
            try:
                results[part] = functions[part](case, dataset)
                results[part]["part_seconds"] = time.perf_counter() - started
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
