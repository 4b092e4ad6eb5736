"""Teacher-to-student KGE distillation (issue 17, part 1): a ComplEx-N3 teacher, small students.

Run (the argument is `<dataset>_<cut>_<part>`; bench/distillation.py runs the whole grid):
  kgjax train --config=configs/distillation.py:fb15k237_cpu_teacher \
      --workdir=runs/distillation_fb15k237_cpu_teacher
  kgjax train --config=configs/distillation.py:fb15k237_cpu_complex32 \
      --workdir=runs/distillation_fb15k237_cpu_complex32            # the student alone
  kgjax train --config=configs/distillation.py:fb15k237_cpu_complex32_kd \
      --workdir=runs/distillation_fb15k237_cpu_complex32_kd         # distilled
  kgjax train --config=configs/distillation.py:wn18rr_gpu_rotate16_dualde \
      --workdir=runs/distillation_wn18rr_gpu_rotate16_dualde

Datasets: fb15k237, wn18rr, umls (a CPU smoke), and the cut `smoke` of umls (tests). Cuts:
`cpu` (sized for one core of this 2-core machine) and `gpu` (the full rows). Parts:
  teacher: ComplEx-N3 (reciprocal relations, 1vsAll, Adagrad, N3; configs/complex_n3.py's
    rows). cpu: rank 128, 4 epochs (FB15k-237) or 5 (WN18RR), each sized to about 15 minutes
    of training on one core of this machine; configs/complex_n3.py's 20- and 10-epoch cuts of
    the same rank reached test MRR 0.347 and 0.451 (bench/results/complex_n3_cpu.md). gpu: kbc's full rows (rank 1000 / 2000,
    100 epochs; published test MRR 0.37 / 0.48).
  complex<W>: the same family, rank W, the teacher's own row otherwise (same epochs).
  rotate<W>: another family and regime: RotatE of dimension W with self-adversarial negative
    sampling, the CPU row of configs/reference.py (`CPU`: 3,000 steps of 256) on the cpu cut
    and the RotatE reference row on the gpu cut.
  A suffix `_kd` distils from the teacher with one soft weight for every row, `_dualde` with
  DualDE-style per-row weights (kgjax/train/kge/distillation.py); none: the student alone, at
  the same steps. Widths: 16, 32 and 64 (any positive W parses).

The teacher is read from `runs/distillation_<dataset>_<cut>_teacher` (override with
--config.distillation.teacher_workdir=...). Distillation: weight 0.5 and temperature 1, the best
of 1, 2 and 4 for a rank-4 ComplEx student on the UMLS smoke (`umls_cpu`), not tuned here.
"""

import pathlib
import re
import runpy

from kgjax import config as config_lib
from kgjax.train.kge.config import kge_config

reference = runpy.run_path(str(pathlib.Path(__file__).with_name("reference.py")))
complex_n3_config = runpy.run_path(str(pathlib.Path(__file__).with_name("complex_n3.py")))

TRAIN_TRIPLES = complex_n3_config["TRAIN_TRIPLES"]
# (dataset, cut): the teacher's (rank, batch, N3 weight, epochs).
TEACHERS = {
    ("fb15k237", "cpu"): (128, 1000, 5e-2, 4),
    ("wn18rr", "cpu"): (128, 500, 1e-1, 5),
    ("fb15k237", "gpu"): (1000, 1000, 5e-2, 100),
    ("wn18rr", "gpu"): (2000, 100, 1e-1, 100),
    ("umls", "cpu"): (64, 256, 1e-2, 20),
    ("umls", "smoke"): (16, 256, 1e-2, 4),
}
# (dataset, cut): the RotatE student's reference row (configs/reference.py's columns).
ROTATE_ROWS = {
    ("fb15k237", "cpu"): reference["CPU"]["fb15k237"],
    ("wn18rr", "cpu"): reference["CPU"]["wn18rr"],
    ("fb15k237", "gpu"): reference["SETTINGS"]["rotate"]["fb15k237"],
    ("wn18rr", "gpu"): reference["SETTINGS"]["rotate"]["wn18rr"],
    ("umls", "cpu"): reference["SETTINGS"]["rotate"]["umls"][:6] + (400, 64),
    ("umls", "smoke"): reference["SETTINGS"]["rotate"]["umls"][:6] + (40, 64),
}
FAMILIES = ("complex", "rotate")
VARIANTS = {"": "alone", "_kd": "none", "_dualde": "dualde"}  # suffix: soft-label weighting
TEMPERATURE = 1.0
WEIGHT = 0.5
_PART = re.compile(r"^(teacher|(complex|rotate)(\d+)(_kd|_dualde)?)$")


def teacher_workdir(dataset: str, cut: str) -> str:
    """Where the teacher of (dataset, cut) is trained and read from."""
    return f"runs/distillation_{dataset}_{cut}_teacher"


def parse(argument: str) -> tuple[str, str, str, int | None, str]:
    """ "fb15k237_cpu_complex32_kd" -> ("fb15k237", "cpu", "complex", 32, "_kd"); the teacher's
    family is "teacher" and its width None.

    Raises:
      ValueError: not `<dataset>_<cut>_<part>` with a known dataset, cut and part.
    """
    dataset, _, rest = argument.partition("_")
    cut, _, part = rest.partition("_")
    match = _PART.match(part)
    if (dataset, cut) not in TEACHERS or match is None or match.group(3) == "0":
        raise ValueError(
            f"configs/distillation.py: unknown row {argument!r}; <dataset>_<cut>_<part> with "
            f"(dataset, cut) in {list(TEACHERS)} and part teacher or <complex|rotate><width>"
            "[_kd|_dualde]"
        )
    if match.group(1) == "teacher":
        return dataset, cut, "teacher", None, ""
    return dataset, cut, match.group(2), int(match.group(3)), match.group(4) or ""


def complex_n3(dataset: str, cut: str, rank: int, command: str):
    """The ComplEx-N3 row of (dataset, cut) at `rank` (configs/complex_n3.py's recipe)."""
    _, batch, weight, epochs = TEACHERS[dataset, cut]
    steps_per_epoch = 2 * TRAIN_TRIPLES[dataset] // batch
    c = complex_n3_config["recipe"](dataset, rank, batch, weight, epochs, command)
    c.steps_per_call = c.log_every_steps = min(steps_per_epoch, 100)
    c.checkpoint_every_steps = max(steps_per_epoch, c.num_steps // 4)
    c.eval_every_steps = c.num_steps  # one validation at the end: the budget is training
    return c


def rotate(dataset: str, cut: str, dim: int, command: str):
    """The RotatE row of (dataset, cut) at dimension `dim`."""
    row = dict(zip(reference["COLUMNS"], ROTATE_ROWS[dataset, cut], strict=False))
    c = kge_config(command=command, model="rotate", dataset=dataset, **{**row, "dim": dim})
    c.eval_every_steps = c.num_steps
    return c


def get_config(argument: str = "umls_cpu_teacher"):
    dataset, cut, family, width, suffix = parse(argument)
    command = (
        f"kgjax train --config=configs/distillation.py:{argument} "
        f"--workdir=runs/distillation_{argument}"
    )
    if family == "teacher":
        return complex_n3(dataset, cut, TEACHERS[dataset, cut][0], command)
    c = (complex_n3 if family == "complex" else rotate)(dataset, cut, width, command)
    if suffix:
        overrides = {
            "distillation.teacher_workdir": teacher_workdir(dataset, cut),
            "distillation.temperature": TEMPERATURE,
            "distillation.weight": WEIGHT,
            "distillation.soft_label_weighting": VARIANTS[suffix],
        }
        for key, value in overrides.items():
            config_lib.override(c, key, value)
    return c
