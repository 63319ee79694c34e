"""The panel's background translation: a job folder, a worker process, and the protocol between them.

The panel writes the frames and settings into a job folder (`write_translation_job`) and starts
`PythonSlicer -m MedShiftSlicer.background_job JOB_DIR`; the worker translates them with the engine,
prints DEVICE / PROGRESS k/N / ERROR lines (`parse_worker_line`) and writes output.npy atomically; the
panel adds the node only when the whole result is there (`read_translation_result`). Killing the
worker cancels. Runs without a scene: nothing here imports slicer.
"""
from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from MedShiftLib.errors import MedShiftError
from MedShiftLib.io.radiograph import RadiographImage
from MedShiftLib.settings import TranslationSettings

JOB_FILE, INPUT_FILE, OUTPUT_FILE = "job.json", "input.npy", "output.npy"
EXIT_USER_ERROR, EXIT_OUT_OF_MEMORY = 2, 3


def write_translation_job(job_dir: str | Path, frames: Sequence[RadiographImage], settings: TranslationSettings,
                          model_path: str | Path | None, device: str) -> Path:
    """Write frames and settings into `job_dir` for `python -m MedShiftSlicer.background_job JOB_DIR`."""
    job_dir = Path(job_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    np.save(job_dir / INPUT_FILE, np.stack([f.pixels for f in frames]))
    job = {
        "settings": asdict(settings),
        "model_path": str(model_path) if model_path else None,
        "device": device,
        "frames": [{"spacing": f.spacing, "origin": f.origin, "direction": f.direction, "photometric": f.photometric,
                    "spacing_known": bool(f.metadata.get("spacing_known", True))} for f in frames],
    }
    (job_dir / JOB_FILE).write_text(json.dumps(job, indent=1))
    return job_dir


def read_translation_job(job_dir: str | Path) -> tuple[list[RadiographImage], TranslationSettings, str | None, str]:
    """(frames, settings, model_path, device) of a job written by `write_translation_job`."""
    job_dir = Path(job_dir)
    job = json.loads((job_dir / JOB_FILE).read_text())
    pixels = np.load(job_dir / INPUT_FILE, allow_pickle=False)
    frames = [RadiographImage(np.ascontiguousarray(p), spacing=tuple(g["spacing"]), origin=tuple(g["origin"]),
                              direction=tuple(g["direction"]), photometric=g["photometric"],
                              metadata={"spacing_known": g["spacing_known"]})
              for p, g in zip(pixels, job["frames"])]
    return frames, TranslationSettings(**job["settings"]), job["model_path"], job["device"]


def run_translation_job(job_dir: str | Path, out=None) -> int:
    """Run a job (in the child process): prints DEVICE/PROGRESS/ERROR lines, writes output.npy; exit code."""
    out = out if out is not None else sys.stdout

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    job_dir = Path(job_dir)
    try:
        import torch
    except ImportError:
        say("ERROR PyTorch is not installed in this Python; install it with the PyTorch extension (PyTorch Utils)")
        return EXIT_USER_ERROR
    from MedShiftLib.engine.devices import describe_device

    from .model_cache import cached_model
    from .node_translation import translate_frames

    try:
        frames, settings, model_path, device = read_translation_job(job_dir)
        model, info = cached_model(model_path, device)
        say(f"DEVICE {describe_device(next(model.parameters()).device)}")
        results = translate_frames(frames, model, info, settings,
                                   progress=lambda done, total: say(f"PROGRESS {done}/{total}"))
        fd, tmp = tempfile.mkstemp(prefix=".output.", suffix=".npy", dir=job_dir)
        with os.fdopen(fd, "wb") as handle:
            np.save(handle, np.stack([r.pixels for r in results]))
        os.replace(tmp, job_dir / OUTPUT_FILE)
    except MedShiftError as exc:
        say(f"ERROR {exc}")
        return EXIT_USER_ERROR
    except torch.cuda.OutOfMemoryError:
        say("ERROR out of GPU memory: choose device 'cpu', or a smaller tile size under Advanced")
        return EXIT_OUT_OF_MEMORY
    return 0


def read_translation_result(job_dir: str | Path, frames: Sequence[RadiographImage]) -> list[RadiographImage]:
    """The translated frames a finished job wrote, on the grids of `frames`."""
    path = Path(job_dir) / OUTPUT_FILE
    if not path.is_file():
        raise MedShiftError(f"the translation process ended without writing {path}; see the Python console log")
    pixels = np.load(path, allow_pickle=False)
    if pixels.shape[0] != len(frames):
        raise MedShiftError(f"the translation process returned {pixels.shape[0]} frames for {len(frames)} inputs")
    return [f.with_pixels(p) for f, p in zip(frames, pixels)]


def parse_worker_line(line: str) -> tuple[str, Any]:
    """('progress', (done, total)), ('device', text), ('error', message) or ('log', line) for a worker line."""
    line = line.rstrip("\r\n")
    kind, _, rest = line.partition(" ")
    if kind == "PROGRESS":
        done, _, total = rest.partition("/")
        if done.isdigit() and total.isdigit():
            return "progress", (int(done), int(total))
    if kind == "DEVICE":
        return "device", rest
    if kind == "ERROR":
        return "error", rest
    return "log", line


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


def main(argv: list[str] | None = None) -> int:
    """`python -m MedShiftSlicer.background_job JOB_DIR`: the panel's background translation worker."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m MedShiftSlicer.background_job JOB_DIR", file=sys.stderr)
        return EXIT_USER_ERROR
    return run_translation_job(argv[0])


if __name__ == "__main__":
    sys.exit(main())
