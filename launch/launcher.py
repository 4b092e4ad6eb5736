"""What the launchers share: the flags of a run and the `kgjax train` command it starts.

launch/gpu.py and launch/tpu_vm.py start the same training in every process; they differ only
in how they reach the machines. They run as `python launch/<name>.py`, which puts this folder
on the path: `from launcher import ...`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def add_run_arguments(parser: argparse.ArgumentParser, workdir: str) -> None:
    """--config, --workdir (default `workdir`), --mesh and --dry_run."""
    parser.add_argument("--config", default="configs/rotate.py:fb15k237")
    parser.add_argument("--workdir", default=workdir)
    parser.add_argument("--mesh", default='[["data",1],["model",-1]]', help="config.mesh.axes")
    parser.add_argument("--dry_run", action="store_true", help="print the commands only")


def parse_with_overrides(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """The flags, with the unknown ones (`--config.*` overrides) kept in `args.overrides`."""
    args, overrides = parser.parse_known_args(argv)
    args.overrides = overrides  # passed on to `kgjax train`
    return args


def train_command(args, kgjax: str, extra: Sequence[str] = ()) -> list[str]:
    """`kgjax train` of the run's config into its workdir on its mesh, without a progress bar,
    with `extra` flags and then the `--config.*` overrides."""
    return [
        kgjax,
        "train",
        f"--config={args.config}",
        f"--workdir={args.workdir}",
        f"--config.mesh.axes={args.mesh}",
        "--progress=false",
        *extra,
        *args.overrides,
    ]
