"""scripts/gpu_readiness.sh refuses to run without a GPU; its summary judges the steps and gathers the key figures."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _summarise(folder: Path, mode: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_readiness_summary.py"), str(folder),
                           "--mode", mode], capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a CUDA GPU the script runs every check")
def test_without_a_gpu_the_script_says_so_in_one_line_and_runs_nothing(tmp_path):
    run = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_readiness.sh"), str(tmp_path / "out")],
                         capture_output=True, text=True, env={**os.environ, "PYTHON": sys.executable}, timeout=120)
    assert run.returncode == 2
    assert run.stdout == "" and len(run.stderr.splitlines()) == 1 and "no CUDA GPU" in run.stderr
    assert "--allow-cpu" in run.stderr and not (tmp_path / "out").exists()


def _engine_output(precision: str, ms: float) -> str:
    return (f"# MedShift engine benchmark (default preset)\n\nMeasured matmul rate: fp32 50000 GFLOP/s\n\n"
            "| size | parameters (M) | GFLOP / forward | forward (ms) | GFLOP/s |\n|---|---|---|---|---|\n"
            "| 512 | 5.49 | 3.54 | 2 | 1770 |\n\n"
            "Default setting (tau 0.6, solver euler), per image in batches of 16:\n\n"
            "| size | batch | precision | NFE | GFLOP / image | floor (ms / image) | ms / image |\n"
            f"|---|---|---|---|---|---|---|\n| 512 | 16 | {precision} | 8 | 28.3 | 0.6 | {ms} |\n\n"
            "Translation at tau=0.6, guidance 1:\n\n| size | solver |\n|---|---|\n| 512 | euler |\n")


TRAINING = ("- cuda: NVIDIA H100 80GB HBM3; measured bf16 matmul rate 700.000 TFLOP/s\n"
            "- preset 'default', batch 16, 5 domains\n\n"
            "| device | precision | compile | resolution | forward GFLOP/image | ms/step | images/s "
            "| MFU (measured peak) | MFU (datasheet peak) |\n|---|---|---|---|---|---|---|---|---|\n"
            "| cuda | bf16 | no | 256 | 0.89 | 20 | 800.0 | 0.3 % | 0.2 % |\n")
JUNIT = ('<?xml version="1.0"?><testsuites><testsuite name="pytest" errors="0" failures="0" skipped="{skipped}" '
         'tests="4"></testsuite></testsuites>')


def _run_folder(folder: Path, skipped: int) -> None:
    steps = [("environment", 0, "GPU: NVIDIA H100 80GB HBM3, 80 GiB\n", ""),
             ("cuda-tests", 0, "4 passed\n", ""),
             ("engine-fp32", 0, _engine_output("fp32", 31.5), ""),
             ("engine-bf16", 0, _engine_output("bf16", 18.25), ""),
             ("training", 124, TRAINING, "Terminated\n"),
             ("smoke-train", 1, "", "medshift: bf16 needs a CUDA GPU\n")]
    folder.mkdir()
    (folder / "steps.tsv").write_text("".join(f"{n}\t{rc}\t12.5\t60\tchecks {n}\tpython {n}.py\n"
                                              for n, rc, _, _ in steps))
    for name, _, out, err in steps:
        (folder / f"{name}.out").write_text(out)
        (folder / f"{name}.err").write_text(err)
    (folder / "cuda-tests.xml").write_text(JUNIT.format(skipped=skipped))


def test_summary_fails_timed_out_failed_and_skipped_gpu_steps_and_gathers_the_key_figures(tmp_path):
    _run_folder(tmp_path / "gpu", skipped=1)
    run = _summarise(tmp_path / "gpu", "cuda")
    assert run.returncode == 1 and "FAIL: cuda-tests, training, smoke-train" in run.stdout
    text = (tmp_path / "gpu" / "gpu_readiness.md").read_text()
    assert ("| cuda-tests | FAIL | 12 | 60 | checks cuda-tests | 3 passed, 0 failed, 1 skipped "
            "(none may skip on a GPU) |") in text
    assert "| training | FAIL | 12 | 60 | checks training | timed out after 60 s |" in text
    assert "| smoke-train | FAIL |" in text and "medshift: bf16 needs a CUDA GPU" in text
    # one table of the default setting from both engine runs, and the goal judged on the faster one
    key = text[text.index("## Key figures"):text.index("## Step outputs")]
    assert "| 512 | 16 | fp32 | 8 | 28.3 | 0.6 | 31.5 |\n| 512 | 16 | bf16 | 8 | 28.3 | 0.6 | 18.25 |" in key
    assert "Measured: 18.2 ms (bf16) - met." in key
    assert "| cuda | bf16 | no | 256 | 0.89 | 20 | 800.0 | 0.3 % | 0.2 % |" in key
    assert "- GPU: NVIDIA H100 80GB HBM3, 80 GiB" in text and "\n# MedShift engine" not in text


def test_on_the_cpu_the_skipped_cuda_tests_read_skip_and_no_gpu_goal_is_judged(tmp_path):
    _run_folder(tmp_path / "cpu", skipped=4)
    assert "FAIL: training, smoke-train" in _summarise(tmp_path / "cpu", "cpu").stdout
    text = (tmp_path / "cpu" / "gpu_readiness.md").read_text()
    assert "| cuda-tests | SKIP |" in text and "Goal (issue 18)" not in text


def test_the_environment_step_says_which_optional_packages_the_machine_lacks(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(  # as on the GPU machine: neither SimpleITK nor pydicom installed
        "import sys\nfor name in ('SimpleITK', 'pydicom'):\n    sys.modules[name] = None\n")
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_readiness_summary.py"), "--environment"],
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT / 'MedShift'}"})
    assert run.returncode == 0, run.stderr
    line = run.stdout.splitlines()[-1]
    assert line.startswith("optional packages: SimpleITK absent, pydicom absent, POT ")
    assert "Pillow absent" not in line
