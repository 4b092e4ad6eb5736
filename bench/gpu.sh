#!/usr/bin/env bash
# The GPU benchmarks in one device call: install the carried wheels, run the named parts,
# each under its own time limit, and leave every result (JSON + Markdown) under $OUT.
#
# Prepare here, once (git-ignored folders; see CONTRIBUTING.md):
#   ../shared/tools/gpu-wheels.sh          # into .whl/: ml-collections, tensorflow-datasets...
#   mkdir -p data && cp -r ../shared/data/{fb15k-237,wn18rr} data/
# PyKEEN (the suite's peer) installs there with --no-deps too, so its whole closure must travel:
#   ../shared/tools/gpu-wheels.sh pykeen==1.11.1 class-resolver click click-default-group \
#       dataclasses-json marshmallow typing-inspect mypy-extensions docdata more-click \
#       more-itertools optuna alembic colorlog sqlalchemy mako greenlet pystow backports-zstd \
#       tabulate torch-max-mem torch-ppr pyyaml
#   plus pandas, python-dateutil, pytz, tzdata, scipy, scikit-learn, joblib, threadpoolctl,
#   requests where the machine lacks them (check with `pip list` there first: with scipy the
#   wheels alone near the 64 MiB a call may carry). Without PyKEEN its parts are recorded as
#   skipped and the kgjax parts still run.
# Then one call (the device tool's `run`), parts in the order they should run:
#   run(command="bench/gpu.sh suite profile", carry=[".whl", "data"], timeout_s=600)
#
# Parts and their limits (seconds; together they fit one 10-minute call):
#   suite     bench/suite.py --mode=gpu: kgjax and PyKEEN steps/s, eval seconds, memory (300)
#   profile   bench/step_profile.py --mode=gpu --models=rotate: where the step's time goes (200)
#   encode    bench/encode.py: MiniLM encoding, kgjax vs sentence-transformers (150)
#   scale     bench/scale.py at 1M-16M entities on the one GPU (240)
#   gat       bench/gat.py: JAKET's GAT layer, edge list vs dense, FB15k-237 size (150)
# A part that runs out of time is cut and named in $OUT/gpu_log.txt; the others still run.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/kgjax_gpu}
mkdir -p "$OUT"
log="$OUT/gpu_log.txt"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl >>"$log" 2>&1 || echo "wheel install failed (see above)" >>"$log"
export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export KGJAX_DATA_DIR="${KGJAX_DATA_DIR:-$PWD/data}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >>"$log" 2>&1

run_part() {  # name, seconds, command...
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit}s): $*" >>"$log"
  local started=$SECONDS
  timeout "$limit" "$@" >>"$log" 2>&1
  local status=$?
  echo "== $name: exit $status after $((SECONDS - started))s" >>"$log"
}

for part in "$@"; do
  case $part in
    suite) run_part suite 300 python3 bench/suite.py --mode=gpu --out="$OUT/suite_gpu" ;;
    profile)
      run_part profile 200 python3 bench/step_profile.py --mode=gpu --models=rotate \
        --out="$OUT/step_profile_gpu" ;;
    encode) run_part encode 150 python3 bench/encode.py --repeats=2 --out="$OUT" ;;
    gat) run_part gat 150 python3 bench/gat.py --sizes=subgraph,fb15k237_dense --out="$OUT/gat_gpu" ;;
    scale)
      run_part scale 240 python3 bench/scale.py --entities=1000000,4000000,16000000 --dim=200 \
        --batch_size=1024 --num_negatives=256 --out="$OUT" ;;
    *) echo "unknown part $part (suite, profile, encode, scale, gat)" >>"$log" ;;
  esac
done
tail -n 40 "$log"
