"""Real radiographs: fine detail kept, domain change made, time and peak memory at clinical sizes.

On pydicom-data's CR radiographs (RG1 chest 1955 x 1841, RG3 tibia 1760 x 1760; `pip install pydicom-data`)
with the bundled model, for each pair and each preset and for the network-free baselines at full
resolution (histogram matching + noise, contrast transfer + noise, dose noise insertion after Veldkamp et al.
2009 with the dose fraction the model's statistics imply), prints:

* detail kept: correlation of the input's and output's band-pass (Gaussian 1.5 px minus 6 px at the
  input's resolution) over the body (evaluation/detail_preservation.py);
* tone distance: mean |grey-level quantile - target domain's quantile| (each image in its own robust
  window, as the training images were measured), of the output beside the input's: whether the grey
  levels moved towards the target domain (on a chest or a tibia, anatomy the skull-trained model never
  saw, this says little); mean change: mean |output - input| over the body (model range, input window);

then time and peak memory (RSS, each case in its own process) of a translation with --preset (default:
the default setting) for square images of 256 (the working grid alone), 2048, 3000 and 4096 pixels (RG1
resized), on this CPU.
Run:  .venv/bin/python benchmarks/benchmark_real_images.py [--sizes 256 2048 3000 4096] [--preset NAME]
      [--skip-quality] [--pictures DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "MedShift"))

from MedShiftLib.engine.checkpoint import default_model_path, load_checkpoint  # noqa: E402
from MedShiftLib.engine.domain_statistics import QUANTILE_COUNT  # noqa: E402
from MedShiftLib.engine.intensity import fit_intensity_window, normalize  # noqa: E402
from MedShiftLib.evaluation.baselines import (  # noqa: E402
    BaselineDomain,
    contrast_noise_baseline,
    dose_noise_baseline,
    histogram_noise_baseline,
)
from MedShiftLib.evaluation.detail_preservation import detail_correlation  # noqa: E402
from MedShiftLib.io.radiograph_files import read_radiograph  # noqa: E402
from MedShiftLib.pipeline.image_translation import translate_image  # noqa: E402
from MedShiftLib.postprocess.body_region import body_mask  # noqa: E402
from MedShiftLib.postprocess.noise_model import statistics_dose_fraction  # noqa: E402
from MedShiftLib.settings import DEFAULT_PRESET, PRESETS, TranslationSettings  # noqa: E402

PAIRS = (("clinical-normal", "clinical-exposure"), ("sim-low", "clinical-normal"))
IMAGES = ("RG1_UNCR.dcm", "RG3_UNCR.dcm")


def _real_image(name: str):
    from pydicom.data import get_testdata_file
    return read_radiograph(get_testdata_file(name))


def tone_distance(model_range: np.ndarray, target_quantiles) -> float:
    """Mean |quantile - target quantile| of an image's grey levels, each image in its own robust window
    (0.5th..99.5th percentile to -1..1, as the model's training images were measured)."""
    low, high = np.percentile(model_range, [0.5, 99.5])
    own = np.clip(2 * (model_range - low) / max(high - low, 1e-12) - 1, -1, 1)
    levels = np.linspace(0.0, 1.0, QUANTILE_COUNT)
    return float(np.mean(np.abs(np.quantile(own, levels) - np.asarray(target_quantiles))))


def quality_rows(pictures: Path | None) -> list[str]:
    """One table row per image, pair and method."""
    model, info = load_checkpoint(default_model_path())
    stats = info.statistics
    rows = []
    for name in IMAGES:
        image = _real_image(name)
        window = fit_intensity_window(image.pixels, image.photometric)
        x = normalize(image.pixels, window)
        mask = body_mask(x)
        for source, target in PAIRS:
            target_q = stats.quantiles[target]
            before = tone_distance(x, target_q)
            outputs = {}
            for preset in sorted(PRESETS):
                started = time.perf_counter()
                result = translate_image(image, model, info, TranslationSettings(source, target).with_preset(preset))
                outputs[f"MedShift {preset}"] = (normalize(result.pixels, window), time.perf_counter() - started)
            domain = BaselineDomain(pixels=np.asarray(target_q), nps=np.asarray(stats.noise_power_of(target)),
                                    level=stats.noise_level_of(target))
            rng = np.random.default_rng(0)
            started = time.perf_counter()
            outputs["histogram + noise (full res.)"] = (histogram_noise_baseline(x, domain, rng),
                                                        time.perf_counter() - started)
            started = time.perf_counter()
            outputs["contrast transfer + noise (full res.)"] = (
                contrast_noise_baseline(x, source, target, stats, domain, rng), time.perf_counter() - started)
            started = time.perf_counter()
            outputs["Veldkamp dose noise (full res.)"] = (
                dose_noise_baseline(x.astype(np.float32), statistics_dose_fraction(stats, source, target), 0),
                time.perf_counter() - started)
            for method, (y, seconds) in outputs.items():
                rows.append(f"| {name.split('_')[0]} | {source} -> {target} | {method} | "
                            f"{detail_correlation(x, y, mask):.3f} | {before:.3f} -> "
                            f"{tone_distance(y, target_q):.3f} | {np.abs(y - x)[mask].mean():.3f} | {seconds:.1f} |")
                if pictures is not None:
                    _save_picture(pictures, name, source, target, method, x, y)
    return rows


def _save_picture(folder: Path, name: str, source: str, target: str, method: str, x: np.ndarray,
                  y: np.ndarray) -> None:
    """Input and output side by side (a 768-px window at full resolution) as PNG."""
    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)
    top, left = (x.shape[0] - 768) // 2, (x.shape[1] - 768) // 2
    crop = np.hstack([x[top:top + 768, left:left + 768], y[top:top + 768, left:left + 768]])
    grey = np.clip((crop + 1) / 2 * 255, 0, 255).astype(np.uint8)
    slug = method.lower().replace(" ", "-").replace("(", "").replace(")", "").replace(".", "").replace("+", "and")
    Image.fromarray(grey).save(folder / f"{name.split('_')[0]}_{source}_to_{target}_{slug}.png")


def run_size_case(size: int, preset: str) -> dict:
    """Time and peak RSS of one translation with `preset` of RG1 resized to size x size (in this process)."""
    from dataclasses import replace

    from MedShiftLib.engine.working_grid import resample
    image = _real_image("RG1_UNCR.dcm")
    pixels = resample(torch.from_numpy(image.pixels.astype(np.float32))[None, None], (size, size))[0, 0]
    image = replace(image, pixels=np.clip(pixels.numpy(), 0, 65535).astype(np.uint16), metadata=dict(image.metadata))
    model, info = load_checkpoint(default_model_path())
    settings = TranslationSettings("clinical-normal", "clinical-exposure").with_preset(preset)
    translate_image(image, model, info, settings)  # warm-up
    started, started_cpu = time.perf_counter(), time.process_time()
    translate_image(image, model, info, settings)
    seconds, cpu = time.perf_counter() - started, time.process_time() - started_cpu
    return {"size": size, "seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": peak_rss_mb()}


def peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM (reset at exec, unlike ru_maxrss, which a child started
    from a large parent inherits), else ru_maxrss."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 2048, 3000, 4096])
    parser.add_argument("--pictures", type=Path, help="also write input|output PNGs here")
    parser.add_argument("--skip-quality", action="store_true", help="only the time and memory table")
    parser.add_argument("--preset", default=DEFAULT_PRESET, choices=sorted(PRESETS),
                        help="setting of the time and memory table (default: the default setting)")
    parser.add_argument("--case", type=int, help=argparse.SUPPRESS)  # internal: one size case, JSON out
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_size_case(args.case, args.preset)))
        return
    print(f"# Real radiographs (torch {torch.__version__}; {platform.machine()}; {torch.get_num_threads()} CPU "
          "threads; bundled model)\n")
    if not args.skip_quality:
        print("| image | pair | method | detail kept | tone distance to target (input -> output) | mean change | s |")
        print("|---|---|---|---|---|---|---|")
        for row in quality_rows(args.pictures):
            print(row, flush=True)
        print()
    print(f"Translation with the {args.preset} preset (clinical-normal -> clinical-exposure) of RG1 resized to a "
          f"square, one process per size (load average {os.getloadavg()[0]:.1f} at the start):\n")
    print("| size | seconds | CPU seconds | peak RSS (MB) | time / working grid alone |")
    print("|---|---|---|---|---|")
    base = None
    for size in args.sizes:
        out = subprocess.run([sys.executable, __file__, "--case", str(size), "--preset", args.preset],
                             capture_output=True, text=True, check=True).stdout
        case = json.loads(out.strip().splitlines()[-1])
        base = case["seconds"] if base is None else base
        print(f"| {size} x {size} | {case['seconds']:.2f} | {case['cpu_seconds']:.2f} | {case['peak_rss_mb']:.0f} | "
              f"{case['seconds'] / base:.1f} |", flush=True)


if __name__ == "__main__":
    main()
