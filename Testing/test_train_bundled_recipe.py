"""scripts/train_bundled_gpu.sh at toy size on the CPU: the GPU call's steps (train on the fly, package in float16,
quick evaluation), then the CPU fallback resuming the same run, and a chunk cut short by its time limit."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_training_on_the_fly import _small_head

from MedShiftLib.engine.checkpoint import load_checkpoint
from MedShiftLib.simulator.subjects import write_prepared_ct

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "train_bundled_gpu.sh"


def _run(env, *args, timeout=600):
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=timeout)


def _steps(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_the_recipe_trains_packages_half_precision_evaluates_and_resumes_on_the_cpu(tmp_path):
    cts = tmp_path / "cts"
    cts.mkdir()
    write_prepared_ct(cts / "ball.hu.npz", _small_head(), (4.0, 4.0, 4.0))
    run = tmp_path / "run"
    env = dict(os.environ, PYTHON=sys.executable, OUT=str(run), CTS=str(cts), STEPS="4",
               BATCH="4", RESOLUTION="32", PRESET="tiny", POOL_VIEWS="2", POOL_REFRESH="2", VALIDATION_VIEWS="1",
               WORKERS="1", CHECKPOINT_EVERY="2", TRAIN_SECONDS="300", EVAL_VIEWS="1", WARMUP="1", INIT_FROM="",
               GPU_DEVICE="cpu", GPU_PRECISION="fp32", OMP_NUM_THREADS="1")
    done = _run(env, "gpu")
    assert done.returncode == 0, done.stderr[-3000:]
    bundled = run / "bundled" / "medshift_default.safetensors"
    assert all(v.dtype == torch.float16 for v in load_file(str(bundled)).values() if v.is_floating_point())
    model, info = load_checkpoint(bundled)
    assert info.provenance["images_seen"] == 16
    assert info.provenance["simulate"]["ct_paths"] == [str(cts / "ball.hu.npz")]
    assert info.provenance["config"]["lr_scaling"] == "sqrt"
    assert set(json.loads((run / "bundled" / "quick_evaluation.json").read_text())["ssim"]) == {
        "translation", "no translation", "genuine target rendering"}
    assert "images seen" in done.stdout and _steps(run) == [2, 4]  # logged at the checkpoints

    done = _run(env | {"STEPS": "6"}, "cpu", "300")  # the CPU fallback continues the same run
    assert done.returncode == 0, done.stderr[-3000:]
    assert _steps(run) == [2, 4, 5, 6]
    state = load_file(str(run / "training_state.safetensors"))
    done = _run(env | {"STEPS": "8"}, "cpu", "1")  # cut short by its time limit before a step: nothing lost
    assert done.returncode == 0, done.stderr[-3000:]
    assert _steps(run) == [2, 4, 5, 6]
    assert all(torch.equal(v, load_file(str(run / "training_state.safetensors"))[k]) for k, v in state.items())
