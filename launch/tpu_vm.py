"""Cloud TPU VMs and pod slices: check, create, install, run the same config on every worker.

Run (from the repository root; --dry_run prints the exact commands and runs none):
  python launch/tpu_vm.py all --name=kgjax-v5e --zone=us-west4-a \
      --accelerator_type=v5litepod-16 --config=configs/rotate.py:fb15k237 \
      --workdir=/mnt/runs/rotate_fb15k237 --mesh='[["data",1],["model",-1]]' --dry_run
  python launch/tpu_vm.py run --name=kgjax-v5e --zone=us-west4-a ...   # one step at a time

Steps (`all` runs them in this order):
  check    compile the training call ahead of time for the slice's device count, on this
           machine (`launch/aot_check.py`): a config that cannot fit or compile fails here,
           before anyone pays for a pod.
  create   `gcloud compute tpus tpu-vm create` (add --spot for spot capacity).
  install  copy this checkout (`git archive HEAD`) to every worker and `pip install` it with
           `jax[tpu]` into ~/kgjax/.venv.
  run      `gcloud compute tpus tpu-vm ssh --worker=all`: every worker starts the same
           `kgjax train` with KGJAX_DISTRIBUTED=1, so each calls `jax.distributed.initialize()`
           (the TPU runtime tells JAX the coordinator, process count and ids) and they form
           one mesh over all chips. Each process uploads only its devices' rows of the data.
  delete   `gcloud compute tpus tpu-vm delete`.

The workdir must be one folder every worker sees (process 0 writes the logs and results,
all of them write their shards of each checkpoint): e.g. a Cloud Storage bucket mounted
with gcsfuse at the same path on every worker (`--mount_bucket`), or a Filestore share.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys

from launcher import add_run_arguments, parse_with_overrides, train_command

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = ("check", "create", "install", "run", "delete")
ARCHIVE = "/tmp/kgjax.tar.gz"


# High-bandwidth memory of one JAX device (GB): a chip for v4 and later, a core for v2/v3
# (cloud.google.com/tpu/docs/system-architecture-tpu-vm).
DEVICE_MEMORY_GB = {"v2": 8, "v3": 16, "v4": 32, "v5litepod": 16, "v5e": 16, "v5p": 95, "v6e": 32}


def _generation_and_count(accelerator_type: str) -> tuple[str, int]:
    """ "v5litepod-16" -> ("v5litepod", 16).

    Raises:
      ValueError: an accelerator type not of the form <generation>-<count>.
    """
    match = re.fullmatch(r"(v\d+[a-z]*|v5litepod|v6e)-(\d+)", accelerator_type)
    if not match:
        raise ValueError(f"unknown accelerator type {accelerator_type!r} (e.g. v5litepod-16)")
    return match.group(1), int(match.group(2))


def num_devices(accelerator_type: str) -> int:
    """JAX devices of a slice: chips for v4/v5p (megacore) and v5e/v6e, cores for v2/v3."""
    generation, count = _generation_and_count(accelerator_type)
    if generation in ("v4", "v5p"):
        return count // 2  # the suffix counts TensorCores; JAX sees one device per chip
    return count


def device_memory_gb(accelerator_type: str) -> float:
    """HBM of one JAX device of the slice, in GB.

    Raises:
      ValueError: an unknown accelerator type or generation (then pass --device_memory_gb).
    """
    generation, _ = _generation_and_count(accelerator_type)
    if generation not in DEVICE_MEMORY_GB:
        raise ValueError(
            f"no memory size known for TPU {generation!r}; pass --device_memory_gb "
            f"(known: {', '.join(DEVICE_MEMORY_GB)})"
        )
    return float(DEVICE_MEMORY_GB[generation])


def _gcloud(args, *words: str) -> list[str]:
    command = ["gcloud", "compute", "tpus", "tpu-vm", *words, f"--zone={args.zone}"]
    if args.project:
        command.append(f"--project={args.project}")
    return command


def _ssh(args, remote: str) -> list[str]:
    return [*_gcloud(args, "ssh", args.name), "--worker=all", f"--command={remote}"]


def commands(step: str, args) -> list[list[str]]:
    """The commands of one step, each a list of arguments."""
    if step == "check":
        return [
            [
                sys.executable,
                os.path.join("launch", "aot_check.py"),
                f"--config={args.config}",
                f"--num_devices={args.num_devices or num_devices(args.accelerator_type)}",
                f"--mesh={args.mesh}",
                f"--device_memory_gb="
                f"{args.device_memory_gb or device_memory_gb(args.accelerator_type)}",
                *(
                    f"--{size}={getattr(args, size)}"
                    for size in ("num_entities", "num_relations", "num_triples")
                    if getattr(args, size)
                ),
            ]
        ]
    if step == "create":
        command = [
            *_gcloud(args, "create", args.name),
            f"--accelerator-type={args.accelerator_type}",
            f"--version={args.runtime_version}",
        ]
        return [command + (["--spot"] if args.spot else [])]
    if step == "install":
        setup = (
            "mkdir -p ~/kgjax && tar -xzf ~/kgjax.tar.gz -C ~/kgjax && cd ~/kgjax && "
            "python3 -m venv .venv && .venv/bin/pip install -q --upgrade pip && "
            ".venv/bin/pip install -q -e . 'jax[tpu]'"
        )
        if args.mount_bucket:
            setup += (
                f" && sudo mkdir -p {shlex.quote(args.mount_point)} && sudo chown $USER "
                f"{shlex.quote(args.mount_point)} && gcsfuse --implicit-dirs "
                f"{shlex.quote(args.mount_bucket)} {shlex.quote(args.mount_point)}"
            )
        return [
            ["git", "-C", REPO, "archive", "--format=tar.gz", f"--output={ARCHIVE}", "HEAD"],
            [*_gcloud(args, "scp", ARCHIVE, f"{args.name}:~/kgjax.tar.gz"), "--worker=all"],
            _ssh(args, setup),
        ]
    if step == "run":
        train = train_command(args, ".venv/bin/kgjax")
        remote = "cd ~/kgjax && KGJAX_DISTRIBUTED=1 " + shlex.join(train)
        return [_ssh(args, remote)]
    if step == "delete":
        return [[*_gcloud(args, "delete", args.name), "--quiet"]]
    raise ValueError(f"unknown step {step!r}; one of {STEPS} or all")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=(*STEPS, "all"))
    parser.add_argument("--name", default="kgjax")
    parser.add_argument("--zone", default="us-central2-b")
    parser.add_argument("--project", default="")
    parser.add_argument("--accelerator_type", default="v4-32")
    parser.add_argument("--runtime_version", default="tpu-ubuntu2204-base")
    parser.add_argument("--spot", action="store_true")
    add_run_arguments(parser, workdir="/mnt/kgjax_runs/run")
    parser.add_argument("--mount_bucket", default="", help="gs bucket mounted on every worker")
    parser.add_argument("--mount_point", default="/mnt/kgjax_runs")
    parser.add_argument("--num_devices", type=int, default=0, help="0: from the type")
    parser.add_argument(
        "--device_memory_gb", type=float, default=0.0, help="check: 0 = the type's HBM per device"
    )
    for size in ("num_entities", "num_relations", "num_triples"):
        parser.add_argument(f"--{size}", type=int, default=0, help="check: 0 = the dataset's")
    return parse_with_overrides(parser, argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    steps = STEPS[:-1] if args.step == "all" else (args.step,)
    for step in steps:
        for command in commands(step, args):
            print(shlex.join(command), flush=True)
            if not args.dry_run:
                subprocess.run(command, check=True, cwd=REPO)
    return 0


if __name__ == "__main__":
    sys.exit(main())
