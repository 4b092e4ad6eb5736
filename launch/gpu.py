"""Multi-GPU runs: all GPUs of one machine, several machines over ssh, or a SLURM job.

Run (from the repository root; --dry_run prints the exact commands and runs none):
  python launch/gpu.py --config=configs/rotate.py:fb15k237 --workdir=runs/fb_8gpu \
      --mesh='[["data",1],["model",8]]' --dry_run                  # one machine, 8 GPUs
  python launch/gpu.py --hosts=gpu0,gpu1 --coordinator=gpu0:8476 --repo_dir=~/kgjax \
      --config=... --workdir=/shared/runs/fb_16gpu --dry_run          # two machines, ssh
  python launch/gpu.py --slurm --nodes=2 --gpus_per_node=8 --config=... --dry_run

One machine: one process drives every local GPU; the mesh spans them all.
Several machines: one process per machine, each started with KGJAX_DISTRIBUTED=1 and its
`--config.mesh.process_id`, so each calls `jax.distributed.initialize(coordinator, N, i)`;
together they form one mesh, and each uploads only its devices' rows of the data. Under
SLURM, JAX reads the job's layout itself (`srun` starts one task per node).

The workdir must be one folder all machines see (a shared filesystem): process 0 writes
the logs and results, every process writes its shards of each checkpoint. Before a long
run, `python launch/aot_check.py --num_devices=<all GPUs> ...` compiles the training call
for that many devices on any machine.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys

from launcher import add_run_arguments, parse_with_overrides, train_command


def commands(args) -> list[tuple[list[str], str | None]]:
    """The commands to run at once: (arguments, standard input or None) each."""
    if args.slurm:
        train = train_command(args, args.kgjax)
        script = "\n".join(
            [
                "#!/bin/bash",
                f"#SBATCH --nodes={args.nodes}",
                "#SBATCH --ntasks-per-node=1",
                f"#SBATCH --gpus-per-node={args.gpus_per_node}",
                "#SBATCH --job-name=kgjax",
                f"cd {args.repo_dir}",
                "export KGJAX_DISTRIBUTED=1",
                "srun " + shlex.join(train),
                "",
            ]
        )
        return [(["sbatch"], script)]
    if not args.hosts:
        return [(train_command(args, args.kgjax), None)]
    hosts = args.hosts.split(",")
    out = []
    for process_id, host in enumerate(hosts):
        train = train_command(
            args,
            args.kgjax,
            [
                f"--config.mesh.coordinator_address={args.coordinator or hosts[0] + ':8476'}",
                f"--config.mesh.num_processes={len(hosts)}",
                f"--config.mesh.process_id={process_id}",
            ],
        )
        remote = f"cd {args.repo_dir} && KGJAX_DISTRIBUTED=1 " + shlex.join(train)
        out.append((["ssh", host, remote], None))
    return out


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_arguments(parser, workdir="runs/kgjax_gpu")
    parser.add_argument("--kgjax", default=".venv/bin/kgjax", help="the kgjax command")
    parser.add_argument("--hosts", default="", help="comma-separated machines, one process each")
    parser.add_argument("--coordinator", default="", help="host:port of process 0")
    parser.add_argument("--repo_dir", default="~/kgjax", help="the checkout on every machine")
    parser.add_argument("--slurm", action="store_true")
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--gpus_per_node", type=int, default=8)
    return parse_with_overrides(parser, argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    todo = commands(args)
    for command, stdin in todo:
        heredoc = f" <<'EOF'\n{stdin}EOF" if stdin else ""
        print(shlex.join(command) + heredoc, flush=True)
    if args.dry_run:
        return 0
    processes = []
    for command, stdin in todo:
        process = subprocess.Popen(command, stdin=subprocess.PIPE if stdin else None, text=True)
        if stdin:
            process.stdin.write(stdin)
            process.stdin.close()
        processes.append(process)
    return max(process.wait() for process in processes)


if __name__ == "__main__":
    sys.exit(main())
