"""Peak memory of `medshift translate` on large images: a Markdown table of peak RSS per image size.

Each case runs in its own fresh Python process (so one case's peak cannot hide another's) that loads the
model, notes its resident set (the baseline: Python, torch and the model), then translates one 16-bit PNG
through the same path as `medshift translate` (read, window, working grid, flow, back to the input's grid,
write) and reports its peak resident set (resource.getrusage ru_maxrss). The image-dependent part is
shown per input pixel. A PNG has no pixel spacing, so its short side is resampled to the model's working
resolution: the flow itself runs on a small grid and the whole-image arrays dominate.

    python benchmarks/benchmark_memory.py                   # 2k x 2k, 6k x 6k and a 2 x 20000 strip, bundled model
    python benchmarks/benchmark_memory.py --sizes 2000x2000 --steps 2
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MEDSHIFT = Path(__file__).resolve().parents[1] / "MedShift"
sys.path.insert(0, str(MEDSHIFT))

DEFAULT_SIZES = ("2000x2000", "6000x6000", "2x20000")


def peak_rss_mb() -> float:
    """This process's peak resident set so far, in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def write_image(path: Path, rows: int, cols: int) -> None:
    """A smooth 16-bit radiograph-like PNG with noise."""
    import numpy as np
    import SimpleITK as sitk

    rng = np.random.default_rng(0)
    y = np.linspace(-1, 1, rows, dtype=np.float32)[:, None]
    x = np.linspace(-1, 1, cols, dtype=np.float32)[None, :]
    pixels = 20000 + 30000 * np.exp(-(x * x + y * y) * 2) + rng.normal(0, 500, (rows, cols)).astype(np.float32)
    sitk.WriteImage(sitk.GetImageFromArray(np.clip(pixels, 0, 65535).astype(np.uint16)), str(path))


def measure_one(image: Path, out: Path, steps: int, tile_size: int | None) -> dict:
    """In this (fresh) process: baseline after loading the model, then peak while translating `image`."""
    from MedShiftLib.engine.checkpoint import default_model_path, load_checkpoint
    from MedShiftLib.pipeline.file_translation import translate_files
    from MedShiftLib.settings import TranslationSettings

    model, _ = load_checkpoint(default_model_path(), "cpu")
    del model
    baseline = peak_rss_mb()
    settings = TranslationSettings("sim-low", "clinical-normal", steps=steps)
    if tile_size:
        settings = TranslationSettings("sim-low", "clinical-normal", steps=steps, tile_size=tile_size)
    started = time.perf_counter()
    report = translate_files([image], out, settings, device="cpu")
    seconds = time.perf_counter() - started
    failed = [why for _, why in report.failed]
    return {"baseline_mb": baseline, "peak_mb": peak_rss_mb(), "seconds": seconds,
            "outcome": "written" if report.written else "refused: " + (failed[0].split(": ", 1)[-1] if failed else "?")}


def main() -> None:
    """Run every size in its own process and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=list(DEFAULT_SIZES), help="ROWSxCOLS of each test image")
    parser.add_argument("--steps", type=int, default=4, help="solver steps per leg (default 4, the default)")
    parser.add_argument("--tile-size", type=int, help="--tile-size for the translation (default: the settings')")
    parser.add_argument("--one", nargs=2, metavar=("IMAGE", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--make", nargs=3, metavar=("IMAGE", "ROWS", "COLS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make:
        write_image(Path(args.make[0]), int(args.make[1]), int(args.make[2]))
        return
    if args.one:
        print(json.dumps(measure_one(Path(args.one[0]), Path(args.one[1]), args.steps, args.tile_size)))
        return
    print("| image (rows x cols) | pixels | outcome | baseline RSS (MiB) | peak RSS (MiB) | peak - baseline per "
          "pixel (bytes) | time (s) |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            rows, cols = (int(v) for v in size.lower().split("x"))
            image = Path(folder) / f"image_{rows}x{cols}.png"
            # made in a process of its own: Linux keeps a parent's peak RSS in ru_maxrss across fork and exec
            subprocess.run([sys.executable, __file__, "--make", str(image), str(rows), str(cols)], check=True)
            command = [sys.executable, __file__, "--one", str(image), str(Path(folder) / f"out_{size}"),
                       "--steps", str(args.steps)] + (["--tile-size", str(args.tile_size)] if args.tile_size else [])
            result = subprocess.run(command, capture_output=True, text=True, check=True)
            row = json.loads(result.stdout.strip().splitlines()[-1])
            per_pixel = (row["peak_mb"] - row["baseline_mb"]) * 1024 * 1024 / (rows * cols)
            print(f"| {rows} x {cols} | {rows * cols / 1e6:.2f} M | {row['outcome']} | {row['baseline_mb']:.0f} | "
                  f"{row['peak_mb']:.0f} | {per_pixel:.1f} | {row['seconds']:.1f} |", flush=True)
            image.unlink()


if __name__ == "__main__":
    main()
