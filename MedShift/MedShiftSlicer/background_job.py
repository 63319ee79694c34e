"""The panel's background translation: the project's own `medshift translate` command run in a worker.

The frames of the input node are written as NRRD files into a job folder; the worker runs

    PythonSlicer -m MedShiftLib.cli translate JOB/in --out JOB/out ... --machine-progress --cancel-file JOB/cancel

and prints `PID n`, `DEVICE text`, `PROGRESS done/total`, `OUTPUT path`, `WARNING message` and `ERROR message` lines
(`parse_worker_line`). Cancel is cooperative: `request_cancel` creates the cancel file and the worker
stops within one solver step (exit status 130); `kill` ends the worker and its launcher when it does not
(PythonSlicer is CTK's launcher: it starts python-real as its own child and forwards no signal, so killing
the launcher alone leaves the worker running). So the launcher is never killed before the worker's PID is
known, and the job folder with its cancel file stays until the launcher has ended (it ends when its worker
does): a worker that lost its launcher still finds the cancel file and stops. Only when the worker has
finished are its files read back onto the input's grids (`result`). Nothing here imports slicer or Qt, nor
the command line or anything that loads pydicom, torch or safetensors (MedShift.py imports this module at
Slicer start-up): MedShift.py drives a QProcess with it.
"""
from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from MedShiftLib.cli_errors import EXIT_INTERRUPTED, EXIT_OUT_OF_MEMORY, unescape_machine_text
from MedShiftLib.errors import MedShiftError
from MedShiftLib.io.radiograph import RadiographImage
from MedShiftLib.settings import TranslationSettings

MODULE_DIR = Path(__file__).resolve().parents[1]
"""MedShift/, the worker's working directory: `-m MedShiftLib.cli` is found there."""
KILL_AFTER_SECONDS = 5.0
"""How long a cancelled worker may take to stop by itself before it is killed."""
CANCELLED_MESSAGE = "Translation cancelled; nothing was added to the scene."


class BackgroundTranslation:
    """One translation in a worker process: its job folder, command, the lines it printed, cancel and result."""

    def __init__(self, frames: Sequence[RadiographImage], settings: TranslationSettings,
                 model_path: str | Path | None, device: str, job_dir: str | Path) -> None:
        """Write `frames` into `job_dir` (created) for the worker; nothing is started here."""
        from MedShiftLib.io.radiograph_files import write_radiograph

        self.frames, self.settings = list(frames), settings
        self.model_path, self.device = model_path, device
        self.job_dir = Path(job_dir)
        self.in_dir, self.out_dir = self.job_dir / "in", self.job_dir / "out"
        self.cancel_file = self.job_dir / "cancel"
        self.in_dir.mkdir(parents=True, exist_ok=True)
        self.names = [f"frame{k:04d}.nrrd" for k in range(len(self.frames))]
        for frame, name in zip(self.frames, self.names):
            write_radiograph(frame, self.in_dir / name)
        self.worker_pid: int | None = None
        self.device_description = ""
        self.error = ""
        self.warnings: list[str] = []
        self.cancel_requested = False
        self._buffer = ""

    @classmethod
    def in_temporary_folder(cls, parent: str | Path, frames: Sequence[RadiographImage], settings: TranslationSettings,
                            model_path: str | Path | None, device: str) -> BackgroundTranslation:
        """A job in a new folder below `parent` (Slicer's temporary folder)."""
        return cls(frames, settings, model_path, device, tempfile.mkdtemp(prefix="MedShift-", dir=parent))

    def arguments(self) -> list[str]:
        """The worker's arguments after the Python executable."""
        from MedShiftLib.cli_parser import translation_arguments  # loads the file readers: not at start-up

        args = ["-m", "MedShiftLib.cli", "translate", str(self.in_dir), "--out", str(self.out_dir),
                *translation_arguments(self.settings), "--device", self.device, "--machine-progress",
                "--cancel-file", str(self.cancel_file)]
        return args + (["--model", str(self.model_path)] if self.model_path else [])

    @property
    def working_directory(self) -> str:
        """Where the worker runs (so `python -m MedShiftLib.cli` finds the engine)."""
        return str(MODULE_DIR)

    def read(self, text: str) -> list[tuple[str, Any]]:
        """Parse what the worker printed since the last call; returns its complete lines as (kind, value)."""
        self._buffer += text
        *lines, self._buffer = self._buffer.split("\n")
        events = [parse_worker_line(line) for line in lines if line.strip()]
        for kind, value in events:
            if kind == "pid":
                self.worker_pid = value
            elif kind == "device":
                self.device_description = value
            elif kind == "error":
                self.error = value
            elif kind == "warning":
                self.warnings.append(value)
        return events

    def request_cancel(self) -> None:
        """Ask the worker to stop at its next solver step (it checks the cancel file)."""
        self.cancel_requested = True
        if self.job_dir.is_dir():
            self.cancel_file.touch()

    def kill(self, launcher_pid: int | None) -> bool:
        """End the worker, then its launcher; False, killing nothing, while the worker's PID is not known yet.

        Killing the launcher first would orphan the worker; instead the cancel file (kept until the launcher
        ends) stops it, and the caller kills both once the worker has printed its PID."""
        self.request_cancel()
        if not self.worker_pid:
            return False
        for pid in (self.worker_pid, launcher_pid):
            if pid:
                kill_process(pid)
        return True

    def result(self, exit_code: int, crashed: bool) -> list[RadiographImage]:
        """The translated frames on the input's grids; MedShiftError saying why there are none."""
        from MedShiftLib.io.radiograph_files import read_radiograph

        if self.cancel_requested or exit_code == EXIT_INTERRUPTED:
            raise MedShiftError(CANCELLED_MESSAGE)
        if crashed or exit_code != 0:
            if self.error:
                raise MedShiftError(self.error)
            raise MedShiftError(f"the translation process stopped unexpectedly (exit code {exit_code}); see the "
                                "Python console")
        results = []
        for frame, name in zip(self.frames, self.names):
            path = self.out_dir / name
            if not path.is_file():
                raise MedShiftError(f"the translation process ended without writing {path}; see the Python console")
            pixels = read_radiograph(path).pixels
            if pixels.shape != frame.pixels.shape:
                raise MedShiftError(f"{path}: the translation has {pixels.shape} pixels for a frame of "
                                    f"{frame.pixels.shape}")
            results.append(frame.with_pixels(pixels.astype(frame.pixels.dtype, copy=False)))
        return results

    def out_of_memory(self, exit_code: int) -> bool:
        """True when the worker stopped because the GPU ran out of memory."""
        return exit_code == EXIT_OUT_OF_MEMORY

    def remove(self) -> None:
        """Delete the job folder."""
        shutil.rmtree(self.job_dir, ignore_errors=True)


def parse_worker_line(line: str) -> tuple[str, Any]:
    """('progress', (done, total)), ('pid', n), ('device', text), ('output', path), ('error', message),
    ('warning', message) or ('log', line) for one line the worker printed."""
    line = line.rstrip("\r\n")
    kind, _, rest = line.partition(" ")
    if kind == "PROGRESS":
        done, _, total = rest.partition("/")
        if done.isdigit() and total.isdigit():
            return "progress", (int(done), int(total))
    if kind == "PID" and rest.isdigit():
        return "pid", int(rest)
    if kind == "DEVICE":
        return "device", rest
    if kind == "OUTPUT":
        return "output", unescape_machine_text(rest)
    if kind == "ERROR":
        return "error", rest
    if kind == "WARNING":
        return "warning", rest
    return "log", line


def python_slicer_executable(slicer_home: str = "") -> str:
    """Path of PythonSlicer (Slicer's Python with its packages), for a worker process.

    MedShiftError when it cannot be found: Slicer's own executable is no Python, so there is no fallback."""
    name = "PythonSlicer" + (".exe" if os.name == "nt" else "")
    candidates = [os.path.join(os.path.dirname(sys.executable), name)]
    if slicer_home:
        candidates.append(os.path.join(slicer_home, "bin", name))
    found = shutil.which("PythonSlicer")
    for candidate in ([found] if found else []) + candidates:
        if candidate and os.path.isfile(candidate):
            return candidate
    raise MedShiftError(
        f"MedShift cannot find PythonSlicer (looked in: {', '.join(candidates)}), which runs the work in the "
        "background; run it from the Python console instead (slicer.util.getModuleLogic('MedShift') or "
        "slicer.util.getModuleLogic('MedShiftTraining'))")


TRAINING_WORKER = ("import os, sys; print('PID', os.getpid(), flush=True); "
                   "from MedShiftLib.cli import main; sys.exit(main(sys.argv[1:]))")
"""Python code of the training worker: `medshift train` (the code MedShiftTraining.py runs headless), after
printing the PID of the process that trains, so that Stop can end it behind PythonSlicer's launcher."""


def training_arguments(data_dir: str | Path, out_dir: str | Path, steps: int, resume: bool = False) -> list[str]:
    """The training worker's arguments after the Python executable (working directory: MODULE_DIR)."""
    return ["-c", TRAINING_WORKER, "train", str(data_dir), "--out", str(out_dir), "--steps", str(int(steps)),
            *(["--resume"] if resume else [])]


class WorkerProcess:
    """A panel's worker (translation, CT projection, training) in a qt.QProcess: its output as it comes, one end.

    `on_text(text)` gets what the worker printed (output channels merged); `on_end(exit_code, exit_status,
    start_error)` runs exactly once, after the last output: when the process has finished (start_error
    None), or when it could not start (Qt then emits errorOccurred and never finished: exit code and status
    None, start_error Qt's reason). The QProcess is parented to slicer.app, since PythonQt deletes a
    parentless object created from Python with its last Python reference, which could be dropped inside the
    process's own signal handler (docs/slicer.md); it is released with deleteLater when the worker ends."""

    def __init__(self, working_directory: str | Path, on_text: Callable[[str], None],
                 on_end: Callable[[int | None, int | None, str | None], None]) -> None:
        import qt
        import slicer

        self.on_text, self.on_end, self.ended = on_text, on_end, False
        self.failed_to_start = qt.QProcess.FailedToStart
        self.process = qt.QProcess(slicer.app)
        self.process.setWorkingDirectory(str(working_directory))
        self.process.setProcessChannelMode(qt.QProcess.MergedChannels)
        self.process.connect("readyReadStandardOutput()", self.read_output)
        self.process.connect("finished(int,QProcess::ExitStatus)", self._finished)
        self.process.connect("errorOccurred(QProcess::ProcessError)", self._error)

    def start(self, executable: str, arguments: Sequence[str]) -> None:
        """Start `executable` (PythonSlicer) with `arguments`."""
        self.process.start(executable, arguments)

    def launcher_pid(self) -> int | None:
        """The started program's process id (PythonSlicer's launcher, not the worker behind it); None before."""
        return int(self.process.processId()) or None

    def read_output(self) -> None:
        """Hand what the worker printed since the last call to on_text (nothing once it has ended)."""
        if not self.ended:
            self.on_text(bytes(self.process.readAllStandardOutput().data()).decode("utf-8", "replace"))

    def _finished(self, exit_code: int, exit_status: int) -> None:
        self._end(exit_code, exit_status, None)

    def _error(self, error: int) -> None:
        if error == self.failed_to_start:  # the one error after which Qt never emits finished
            self._end(None, None, self.process.errorString())

    def _end(self, exit_code: int | None, exit_status: int | None, start_error: str | None) -> None:
        if self.ended:
            return
        self.read_output()
        self.ended = True
        self.process.deleteLater()  # Qt deletes it after this handler has returned
        self.on_end(exit_code, exit_status, start_error)


def kill_process(pid: int) -> None:
    """Kill one process by id; nothing happens when it has already ended."""
    try:
        if sys.platform == "win32":
            subprocess.run(["taskkill", "/F", "/T", "/PID", str(pid)], capture_output=True, check=False)
        else:
            os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def eta_seconds(elapsed_s: float, done: int, total: int) -> float | None:
    """Seconds left at the average pace so far, or None before the first step."""
    if done <= 0 or total <= 0 or elapsed_s <= 0:
        return None
    return elapsed_s * max(total - done, 0) / done


def format_eta(seconds: float | None) -> str:
    """'ETA 1:05' style text ('' when unknown)."""
    if seconds is None or not math.isfinite(seconds):
        return ""
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"ETA {minutes}:{secs:02d}"

