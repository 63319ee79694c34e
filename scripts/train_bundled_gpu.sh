#!/usr/bin/env bash
# Train the bundled model in one short GPU call, on images rendered on the fly (docs/bundled_model.md).
#
#   scripts/train_bundled_gpu.sh prepare      # here (needs SimpleITK): the head CT(s) -> runs/training_cts/*.hu.npz
#   scripts/train_bundled_gpu.sh gpu          # on the GPU machine (carry runs/training_cts): train, package, evaluate
#   scripts/train_bundled_gpu.sh cpu [SECS]   # CPU fallback: resume the same run for SECS seconds (default 3000)
#   scripts/train_bundled_gpu.sh package      # package + quick evaluation of the run as it stands
#
# gpu: `medshift train --simulate` (bf16 autocast, channels-last, batch 256, lr 5e-4 sqrt-scaled to 2e-3,
# minibatch-OT coupling solved on the GPU) for STEPS x BATCH = 6,000 x 256 = 1.54 million images of
# phantoms and the real head CT(s), mixed C-arm/PA/AP/lateral views at 0.6/0.9/1.25 mm, five domains,
# 14 processes rendering view pools; the train command is stopped by `timeout` after TRAIN_SECONDS
# (a slower GPU ends early at its last checkpoint, which `cpu` resumes). Then the EMA weights are
# written in float16 (scripts/package_bundled_model.py) to $OUT/bundled/ and checked on held-out views
# (scripts/quick_bundled_evaluation.py). Nothing is copied into MedShift/Resources/Models/: do that by hand.
# Every size can be set from the environment (Testing/test_train_bundled_recipe.py runs a toy version).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python}
OUT=${OUT:-runs/bundled_gpu}
CTS=${CTS:-runs/training_cts}
CT_SOURCES=${CT_SOURCES:-MedShift/Resources/ThirdParty/Cranium/cranium_head_ct.nrrd}
STEPS=${STEPS:-6000}
BATCH=${BATCH:-256}
LR=${LR:-5e-4}              # the rate for 16 images; --lr-scaling sqrt makes it 2e-3 at 256
WARMUP=${WARMUP:-300}
RESOLUTION=${RESOLUTION:-256}
PRESET=${PRESET:-default}
PITCHES=${PITCHES:-0.6 0.9 1.25}
POOL_VIEWS=${POOL_VIEWS:-192}
POOL_REFRESH=${POOL_REFRESH:-220}
VALIDATION_VIEWS=${VALIDATION_VIEWS:-16}
WORKERS=${WORKERS:-14}
CHECKPOINT_EVERY=${CHECKPOINT_EVERY:-500}
TRAIN_SECONDS=${TRAIN_SECONDS:-400}
EVAL_VIEWS=${EVAL_VIEWS:-8}
INIT_FROM=${INIT_FROM-MedShift/Resources/Models/medshift_default.safetensors}
export PYTHONPATH="$PWD/MedShift${PYTHONPATH:+:$PYTHONPATH}"

ct_options() {
    local path
    for path in "$CTS"/*.hu.npz; do
        [ -e "$path" ] && printf -- '--ct %s ' "$path"
    done
    return 0
}

train() {  # train DEVICE PRECISION SECONDS [extra options...]
    local device=$1 precision=$2 seconds=$3
    shift 3
    local resume=()
    [ -e "$OUT/training_state.safetensors" ] && resume=(--resume)
    local init=()
    [ -n "$INIT_FROM" ] && init=(--init-from "$INIT_FROM")  # recorded: a resumed run must name it again
    local status=0
    # shellcheck disable=SC2046,SC2086
    timeout --signal=TERM "$seconds" "$PYTHON" -m MedShiftLib.cli train --simulate --out "$OUT" \
        --device "$device" --precision "$precision" --preset "$PRESET" --resolution "$RESOLUTION" \
        --batch-size "$BATCH" --lr "$LR" --lr-scaling sqrt --warmup-steps "$WARMUP" --steps "$STEPS" \
        --views mixed --pixel-pitch-mm $PITCHES --phantoms-fraction 0.5 $(ct_options) \
        --pool-views "$POOL_VIEWS" --pool-refresh "$POOL_REFRESH" --validation-views "$VALIDATION_VIEWS" \
        --render-workers "$WORKERS" --sample-every 0 --quiet "${resume[@]}" "${init[@]}" "$@" || status=$?
    # 124/143: stopped by the time limit; the run resumes from its last checkpoint
    if [ "$status" -ne 0 ] && [ "$status" -ne 124 ] && [ "$status" -ne 143 ]; then
        return "$status"
    fi
}

package() {
    local best="$OUT/best.safetensors"
    [ -e "$best" ] || best="$OUT/latest.safetensors"
    mkdir -p "$OUT/bundled"
    "$PYTHON" scripts/package_bundled_model.py "$best" --out "$OUT/bundled/medshift_default.safetensors" \
        --data-command "rendered on the fly: medshift train --simulate (scripts/train_bundled_gpu.sh)" \
        --train-command "scripts/train_bundled_gpu.sh (STEPS=$STEPS BATCH=$BATCH LR=$LR RESOLUTION=$RESOLUTION)" \
        --note "Trained on simulated skull radiographs only (phantoms and real head CTs rendered on the fly)."
    # shellcheck disable=SC2046
    "$PYTHON" scripts/quick_bundled_evaluation.py "$OUT/bundled/medshift_default.safetensors" \
        --views "$EVAL_VIEWS" --size "$RESOLUTION" --pixel-pitch-mm $PITCHES $(ct_options) --json "$OUT/bundled/quick_evaluation.json"
    "$PYTHON" -c 'import sys; from MedShiftLib.engine.checkpoint import read_checkpoint_info as r; p = r(sys.argv[1]).provenance
print("trained", p["steps"], "steps,", p["images_seen"], "images seen")' "$OUT/bundled/medshift_default.safetensors"
}

case "${1:-gpu}" in
    prepare)
        mkdir -p "$CTS"
        for ct in $CT_SOURCES; do
            name=$(basename "$ct"); name=${name%%.*}
            "$PYTHON" scripts/prepare_training_ct.py "$ct" "$CTS/$name.hu.npz"
        done ;;
    gpu)
        started=$(date +%s)
        train "${GPU_DEVICE:-cuda}" "${GPU_PRECISION:-bf16}" "$TRAIN_SECONDS" --checkpoint-every "$CHECKPOINT_EVERY" --log-every 50
        package
        echo "gpu call: $(( $(date +%s) - started )) s end to end" ;;
    cpu)
        # one chunk on the CPU: fp32, a checkpoint every step (a step of 256 images takes minutes here)
        train cpu fp32 "${2:-3000}" --checkpoint-every 1 --log-every 1 --render-workers 0 ;;
    package)
        package ;;
    *)
        echo "usage: $0 prepare | gpu | cpu [SECONDS] | package" >&2
        exit 2 ;;
esac
