#!/usr/bin/env bash
# Every GPU check in one go (at most about 8 minutes on one H100/H200): the suite's CUDA tests, engine timings
# at 512 x 512 in batches of 16 (fp32 and bf16), training throughput and MFU, and a `medshift simulate`,
# `train --precision bf16` and `translate` smoke run on the GPU. Each step is time-bounded and the run goes
# on past a failing one; every step's stdout/stderr and the summary gpu_readiness.md land in OUT_DIR.
#
#   bash scripts/gpu_readiness.sh [--allow-cpu] [OUT_DIR]      (default OUT_DIR: gpu_readiness_out)
#   PYTHON=/path/to/python bash scripts/gpu_readiness.sh "$OUT"
#
# PYTHON defaults to .venv/bin/python when the checkout has one, else python3; it needs torch and the
# test extras (pytest). Without a CUDA GPU the script says so and exits 2, unless --allow-cpu: then it runs
# the same steps on the CPU at tiny sizes (a check of the script itself, a couple of minutes).
# Exit status: 0 every step passed, 1 a step failed, 2 no CUDA GPU (or a usage error).
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ALLOW_CPU=0
OUT=""
for arg in "$@"; do
    case "$arg" in
        --allow-cpu) ALLOW_CPU=1 ;;
        -h|--help) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "gpu_readiness: unknown option $arg (usage: gpu_readiness.sh [--allow-cpu] [OUT_DIR])" >&2; exit 2 ;;
        *) if [ -n "$OUT" ]; then echo "gpu_readiness: one OUT_DIR only" >&2; exit 2; fi; OUT=$arg ;;
    esac
done
OUT=${OUT:-gpu_readiness_out}
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
export PYTHONPATH="$ROOT/MedShift${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1  # a step stopped by its time limit still leaves the lines it printed

"$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 3)' 2>/dev/null
case $? in
    0) MODE=cuda ;;
    3) if [ "$ALLOW_CPU" = 1 ]; then MODE=cpu; else
           echo "gpu_readiness: no CUDA GPU visible to $PYTHON; nothing run (--allow-cpu runs the steps on the CPU)" >&2
           exit 2
       fi ;;
    *) echo "gpu_readiness: $PYTHON cannot import torch; set PYTHON to a python with the project installed" >&2
       exit 2 ;;
esac

mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd) || exit 2
rm -f "$OUT/steps.tsv"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_readiness.XXXXXX") || exit 2
trap 'rm -rf "$WORK"' EXIT
cd "$ROOT" || exit 2

# Sizes and time limits (seconds) per mode. On a GPU the limits add up to under 8 minutes.
if [ "$MODE" = cuda ]; then
    ENGINE=(--device cuda --sizes 512 --batch 16)
    TRAINING=(--device cuda --resolutions 256 512 --batch-size 16 --steps 5 --warmup 2)
    SMOKE_SIZE=128; SMOKE_PRECISION=bf16
    LIMIT_TESTS=50; LIMIT_ENGINE=60; LIMIT_TRAINING=60; LIMIT_COMPILE=130; LIMIT_SMOKE=30
else
    ENGINE=(--device cpu --sizes 64 --batch 2 --quick)
    TRAINING=(--device cpu --resolutions 64 --batch-size 4 --steps 2 --warmup 1)
    SMOKE_SIZE=64; SMOKE_PRECISION=fp32  # bf16 training needs CUDA
    LIMIT_TESTS=90; LIMIT_ENGINE=90; LIMIT_TRAINING=90; LIMIT_SMOKE=60
fi
SMOKE_IMAGE="$WORK/data/sim-low/s0000_v00.png"

# [EXPECT=FILE] run_step NAME LIMIT WHAT COMMAND...: run COMMAND under `timeout`, output to NAME.out/.err, a
# line in steps.tsv; with EXPECT, a run that exits 0 without writing FILE fails (exit status 1).
run_step() {
    local name=$1 limit=$2 what=$3 started ended rc
    shift 3
    printf '%-17s (limit %3ss) %s\n' "$name" "$limit" "$what"
    started=$(date +%s%N)
    timeout --kill-after=5 "$limit" "$@" >"$OUT/$name.out" 2>"$OUT/$name.err"
    rc=$?
    ended=$(date +%s%N)
    if [ "$rc" = 0 ] && [ -n "${EXPECT:-}" ] && [ ! -s "$EXPECT" ]; then
        echo "gpu_readiness: exit status 0 but $EXPECT was not written" >>"$OUT/$name.err"
        rc=1
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$rc" "$(( (ended - started) / 1000000 ))e-3" "$limit" "$what" \
        "$(printf '%s' "$*" | tr '\t\n' '  ')" >>"$OUT/steps.tsv"
}

run_step environment 20 "torch, CUDA and the GPU" "$PYTHON" scripts/gpu_readiness_summary.py --environment
# only the files with CUDA tests, so collecting them imports nothing the GPU machine may lack (slicer-core)
mapfile -t CUDA_TEST_FILES < <(grep -l "pytest.mark.cuda" Testing/test_*.py)
run_step cuda-tests "$LIMIT_TESTS" "pytest -m cuda (every test marked cuda)" \
    "$PYTHON" -m pytest "${CUDA_TEST_FILES[@]}" -m cuda -p no:cacheprovider -rs --junitxml="$OUT/cuda-tests.xml"
run_step engine-fp32 "$LIMIT_ENGINE" "engine timings, fp32 (IEEE)" "$PYTHON" benchmarks/benchmark_engine.py "${ENGINE[@]}"
run_step engine-bf16 "$LIMIT_ENGINE" "engine timings, bf16 autocast" \
    "$PYTHON" benchmarks/benchmark_engine.py "${ENGINE[@]}" --bf16
run_step training "$LIMIT_TRAINING" "training images/s and MFU (GPU: fp32, bf16)" \
    "$PYTHON" benchmarks/benchmark_training.py "${TRAINING[@]}" --gpu-rows fp32 bf16
if [ "$MODE" = cuda ]; then
    run_step training-compile "$LIMIT_COMPILE" "training images/s and MFU, bf16 + torch.compile" \
        "$PYTHON" benchmarks/benchmark_training.py "${TRAINING[@]}" --gpu-rows bf16-compile
fi
run_step smoke-simulate "$LIMIT_SMOKE" "medshift simulate (projector on $MODE)" \
    "$PYTHON" -m MedShiftLib.cli simulate "$WORK/data" --subjects 4 --views-per-subject 2 --size "$SMOKE_SIZE" \
    --device "$MODE" --quiet
EXPECT="$WORK/run/best.safetensors" run_step smoke-train "$LIMIT_SMOKE" \
    "medshift train --device $MODE --precision $SMOKE_PRECISION, 10 steps" \
    "$PYTHON" -m MedShiftLib.cli train "$WORK/data" --out "$WORK/run" --device "$MODE" --precision "$SMOKE_PRECISION" \
    --preset tiny --resolution "$SMOKE_SIZE" --batch-size 4 --steps 10 --checkpoint-every 5 --sample-every 0 \
    --workers 0 --quiet
EXPECT="$WORK/translated/s0000_v00.png" run_step smoke-translate "$LIMIT_SMOKE" \
    "medshift translate --device $MODE, one image, bundled model" \
    "$PYTHON" -m MedShiftLib.cli translate "$SMOKE_IMAGE" --out "$WORK/translated" --source sim-low \
    --target clinical-normal --device "$MODE"
cp "$WORK/run/log.jsonl" "$OUT/smoke-train.log.jsonl" 2>/dev/null
cp "$WORK/translated/s0000_v00.png" "$OUT/smoke-translated.png" 2>/dev/null

echo
"$PYTHON" scripts/gpu_readiness_summary.py "$OUT" --mode "$MODE"
