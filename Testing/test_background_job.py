"""The panel's background translation: `medshift translate` in a worker, its lines, cancel, kill and result.

The worker is started the way the panel starts it (its arguments, its working directory), directly and
through a stand-in for PythonSlicer: CTK's AppLauncher runs python-real as its own child and forwards no
signal, so the stand-in runs the real Python as a child and ignores SIGTERM and SIGINT.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from MedShiftLib.engine.checkpoint import load_checkpoint
from MedShiftLib.errors import MedShiftError
from MedShiftLib.io.radiograph import RadiographImage
from MedShiftLib.settings import TranslationSettings
from MedShiftSlicer.background_job import (
    CANCELLED_MESSAGE,
    BackgroundTranslation,
    eta_seconds,
    format_eta,
    parse_worker_line,
)
from MedShiftSlicer.node_translation import translate_frames

SETTINGS = TranslationSettings("a", "c", tau=0.5, steps=2)
TILTED = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)


def _frames(count=2, size=(40, 48), spacing_known=True):
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:size[0], :size[1]]
    return [RadiographImage((1500 + 900 * np.sin(xx / (4.0 + k)) * np.cos(yy / 6.0)
                             + rng.normal(0, 30, size)).astype(np.uint16),
                            spacing=(0.3, 0.4, 2.5), origin=(1.0, 2.0, 2.5 * k), direction=TILTED,
                            metadata={"spacing_known": spacing_known}) for k in range(count)]


def _launcher(tmp_path: Path) -> Path:
    """A stand-in for PythonSlicer: runs the real Python as a child, forwards no signal, ignores SIGTERM/SIGINT."""
    script = tmp_path / "launcher.py"
    script.write_text(textwrap.dedent(f"""
        import signal, subprocess, sys
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        sys.exit(subprocess.call([{sys.executable!r}, *sys.argv[1:]]))
        """))
    return script


def _start(job: BackgroundTranslation, *prefix: str) -> subprocess.Popen:
    return subprocess.Popen([*prefix, *job.arguments()], cwd=job.working_directory, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONPATH": ""})


def _run(job: BackgroundTranslation) -> tuple[int, list]:
    proc = _start(job, sys.executable)
    output, _ = proc.communicate(timeout=300)
    return proc.returncode, job.read(output)


def _ended(pid: int) -> bool:
    """True when the process is gone or a zombie (killed, not yet reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


@pytest.mark.parametrize("settings, spacing_known", [
    (SETTINGS, True), (SETTINGS, False),
    (replace(SETTINGS, noise_renewal=1.0, schedule="quadratic", seed=4), True),
])
def test_the_worker_gives_what_the_blocking_translation_gives(tmp_path, model_path, settings, spacing_known):
    frames = _frames(spacing_known=spacing_known)
    job = BackgroundTranslation(frames, settings, model_path, "cpu", tmp_path / "job")
    code, events = _run(job)
    assert code == 0, events
    progress = [value for kind, value in events if kind == "progress"]
    assert progress == [(k, 8) for k in range(1, 9)]  # solver steps over both frames
    assert job.device_description.startswith("CPU") and job.worker_pid > 0
    result = job.result(code, crashed=False)
    model, info = load_checkpoint(model_path)
    blocking = translate_frames(frames, model, info, settings)
    for got, expected, frame in zip(result, blocking, frames):
        np.testing.assert_array_equal(got.pixels, expected.pixels)
        assert got.origin == frame.origin and got.direction == frame.direction and got.pixels.dtype == np.uint16
    job.remove()
    assert not job.job_dir.exists()


def test_a_worker_error_is_one_message_and_no_result(tmp_path, model_path):
    job = BackgroundTranslation(_frames(1), replace(SETTINGS, target_domain="nope"), model_path, "cpu",
                                tmp_path / "job")
    code, _ = _run(job)
    assert code == 2 and job.error == "unknown domain 'nope'; this model knows: a, b, c"
    with pytest.raises(MedShiftError, match="unknown domain 'nope'"):
        job.result(code, crashed=False)


def test_a_crash_without_a_message_is_named(tmp_path, model_path):
    job = BackgroundTranslation(_frames(1), SETTINGS, model_path, "cpu", tmp_path / "job")
    with pytest.raises(MedShiftError, match="stopped unexpectedly"):
        job.result(-11, crashed=True)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads process states from /proc")
def test_cancel_stops_the_worker_behind_a_launcher_that_forwards_no_signal(tmp_path, model_path):
    frames = _frames(1, size=(256, 256))
    job = BackgroundTranslation(frames, replace(SETTINGS, steps=400), model_path, "cpu", tmp_path / "job")
    launcher = _start(job, sys.executable, str(_launcher(tmp_path)))
    for line in launcher.stdout:
        if any(kind == "progress" for kind, _ in job.read(line)):
            break
    launcher.terminate()  # what QProcess.terminate() does to PythonSlicer: ignored, the worker goes on
    time.sleep(0.5)
    assert launcher.poll() is None and not _ended(job.worker_pid)
    asked = time.monotonic()
    job.request_cancel()
    launcher.communicate(timeout=30)
    assert time.monotonic() - asked < 10
    assert launcher.returncode == 130 and _ended(job.worker_pid)
    with pytest.raises(MedShiftError, match="cancelled"):
        job.result(launcher.returncode, crashed=False)
    assert not (job.out_dir / job.names[0]).exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads process states from /proc")
def test_kill_ends_a_worker_that_does_not_stop_and_its_launcher(tmp_path, model_path):
    job = BackgroundTranslation(_frames(1), SETTINGS, model_path, "cpu", tmp_path / "job")
    hung = [sys.executable, "-c", "import os, time; print('PID', os.getpid(), flush=True); time.sleep(120)"]
    launcher = subprocess.Popen([sys.executable, str(_launcher(tmp_path)), *hung[1:]], stdout=subprocess.PIPE,
                                text=True)
    job.read(launcher.stdout.readline())
    worker = job.worker_pid
    assert worker and worker != launcher.pid
    job.request_cancel()  # this worker never looks at the cancel file
    job.kill(launcher.pid)
    launcher.wait(timeout=10)
    deadline = time.monotonic() + 10
    while not _ended(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _ended(worker) and launcher.returncode != 0
    with pytest.raises(MedShiftError, match="cancelled"):
        job.result(launcher.returncode, crashed=True)


def test_worker_lines_and_eta():
    assert parse_worker_line("PROGRESS 3/10\n") == ("progress", (3, 10))
    assert parse_worker_line("PROGRESS x/10") == ("log", "PROGRESS x/10")
    assert parse_worker_line("PID 4242") == ("pid", 4242)
    assert parse_worker_line("OUTPUT /tmp/a.nrrd") == ("output", "/tmp/a.nrrd")
    assert parse_worker_line("ERROR no model") == ("error", "no model")
    assert parse_worker_line("some warning") == ("log", "some warning")
    assert eta_seconds(10.0, 0, 8) is None
    assert eta_seconds(10.0, 2, 8) == pytest.approx(30.0)
    assert format_eta(65.4) == "ETA 1:05"
    assert format_eta(None) == ""
    assert CANCELLED_MESSAGE.startswith("Translation cancelled")


def test_lines_split_across_reads_are_joined(tmp_path, model_path):
    job = BackgroundTranslation(_frames(1), SETTINGS, model_path, "cpu", tmp_path / "job")
    assert job.read("PROGR") == []
    assert job.read("ESS 1/4\nDEVICE CPU (2 thr") == [("progress", (1, 4))]
    assert job.read("eads)\n") == [("device", "CPU (2 threads)")] and job.device_description == "CPU (2 threads)"
