"""Tone changes on real radiographs (issue 23, item 3): smooth, bounded, no detail band cut; and the CPU time.

On pydicom-data's RG1 (chest) and RG3 (tibia) with the bundled model, for every direction between the
clinical domains at the default setting, prints per image and direction:

* detail kept: band-pass (1.5-6 px) correlation over the body (evaluation/detail_preservation.py); where
  the output depends on the seed (added noise, e.g. a dose decrease), also the detail its anatomy keeps under that noise
  and the most the noise allows (`detail_under_added_noise`, from a second run with the next seed);
* band 1: rms of the 1-2 working-pixel band (Gaussian u - 2u input px, u input px per working pixel; about
  0.5-2 mm on a skull film) over the body, output / input, beside what contrast transfer asks for (the same
  ratio on the working grid, transfer_contrast's output / its input: grey-level curve and band gains) and
  the statistics' band gain;
* ends: percentage points of pixels at the input's minimum and maximum, output minus input;
* lattice: the change map's spectral peak at the working pixel period (u) and the stem's tile period (4u)
  over its ring's median, divided by the input's own (1 = no more periodic than the image itself);
* mean change over the body, in 8-bit grey levels (1/255 of the input's robust window).

Then, for the grey-level curve's change alone (clinical-normal -> clinical-exposure), its lattice peak at the
working pixel period when evaluated on the working grid and interpolated up (as before), the same averaged
over one working pixel, and applied at full resolution (as now); and the time of the default setting on
RG1 resized to 512 x 512 (median of 5 after a warm-up).
Run:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/benchmark_tone_changes.py [--images RG1 RG3]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "MedShift"))

from MedShiftLib.engine.checkpoint import default_model_path, load_checkpoint  # noqa: E402
from MedShiftLib.engine.intensity import fit_intensity_window, normalize  # noqa: E402
from MedShiftLib.engine.working_grid import resample  # noqa: E402
from MedShiftLib.evaluation.detail_preservation import (  # noqa: E402
    detail_correlation,
    detail_under_added_noise,
    lattice_peak,
)
from MedShiftLib.io.radiograph_files import read_radiograph  # noqa: E402
from MedShiftLib.pipeline.image_translation import translate_image  # noqa: E402
from MedShiftLib.postprocess.blur import gaussian_blur  # noqa: E402
from MedShiftLib.postprocess.body_region import body_mask  # noqa: E402
from MedShiftLib.postprocess.contrast_transfer import (  # noqa: E402
    band_gains,
    map_grey_levels,
    transfer_contrast,
)
from MedShiftLib.postprocess.detail_transfer import working_pixel_average  # noqa: E402
from MedShiftLib.settings import DEFAULT_PRESET, TranslationSettings  # noqa: E402

CLINICAL = ("clinical-low", "clinical-normal", "clinical-exposure")


def quality_rows(names: list[str], preset: str) -> list[str]:
    """One table row per image and direction."""
    from pydicom.data import get_testdata_file
    model, info = load_checkpoint(default_model_path())
    rows = []
    for name in names:
        image = read_radiograph(get_testdata_file(f"{name}_UNCR.dcm"))
        window = fit_intensity_window(image.pixels, image.photometric)
        x = normalize(image.pixels, window).astype(np.float64)
        mask = body_mask(x)
        u = min(image.shape) / info.resolution
        band = lambda a, u=u: gaussian_filter(a, u) - gaussian_filter(a, 2 * u)  # noqa: E731
        band_in = band(x)[mask].std()
        low, high = image.pixels.min(), image.pixels.max()
        own = lattice_peak(x, u), lattice_peak(x, 4 * u)
        for source in CLINICAL:
            for target in CLINICAL:
                if source == target:
                    continue
                settings = TranslationSettings(source, target).with_preset(preset)
                out = translate_image(image, model, info, settings)
                y = normalize(out.pixels, window).astype(np.float64)
                detail = f"{detail_correlation(x, y, mask):.3f}"
                other = out  # a second seed only where the settings may add seeded noise
                if settings.noise_renewal > 0 or settings.noise_matching:
                    other = translate_image(image, model, info, replace(settings, seed=settings.seed + 1))
                if not np.array_equal(other.pixels, out.pixels):  # the seed matters: added noise
                    anatomy, ceiling = detail_under_added_noise(x, y, normalize(other.pixels, window), mask)
                    detail += f" ({anatomy:.3f} / {ceiling:.3f})"
                change = y - x
                ends = [100 * (np.mean(out.pixels == v) - np.mean(image.pixels == v)) for v in (low, high)]
                gain = float(band_gains(info.statistics, source, target)[1])
                asked = asked_band_ratio(image, window, info, source, target)
                rows.append(f"| {name} | {source} -> {target} | {detail} | "
                            f"{band(y)[mask].std() / band_in:.3f} / {asked:.3f} / {gain:.3f} | "
                            f"{ends[0]:+.2f} / {ends[1]:+.2f} | "
                            f"{lattice_peak(change, u) / max(own[0], 1):.1f} / "
                            f"{lattice_peak(change, 4 * u) / max(own[1], 1):.1f} | "
                            f"{change[mask].mean() * 127.5:+.1f} |")
                print(rows[-1], flush=True)
    return rows


def asked_band_ratio(image, window, info, source: str, target: str) -> float:
    """Band 1's rms over the body after contrast transfer / before, on the working grid."""
    x = torch.from_numpy(normalize(image.pixels, window))[None, None]
    coarse = resample(x, tuple(round(side * info.resolution / min(image.shape)) for side in image.shape))
    mask = torch.from_numpy(body_mask(coarse[0, 0].double().numpy()))
    band = lambda a: (gaussian_blur(a, 1.0) - gaussian_blur(a, 2.0))[0, 0][mask].std()  # noqa: E731
    return float(band(transfer_contrast(coarse, info.statistics, source, target)) / band(coarse))


def curve_lattice_rows(names: list[str]) -> list[str]:
    """Lattice peak at the working pixel period of the grey-level curve's change, three ways (module docstring)."""
    from pydicom.data import get_testdata_file
    _, info = load_checkpoint(default_model_path())
    source, target = info.statistics.quantiles["clinical-normal"], info.statistics.quantiles["clinical-exposure"]
    rows = []
    for name in names:
        image = read_radiograph(get_testdata_file(f"{name}_UNCR.dcm"))
        x = torch.from_numpy(normalize(image.pixels, fit_intensity_window(image.pixels, image.photometric)))
        x = x[None, None].double()
        shape = tuple(round(side * info.resolution / min(image.shape)) for side in image.shape)
        coarse, u = resample(x, shape), min(image.shape) / info.resolution
        before = resample(map_grey_levels(coarse, source, target) - coarse, image.shape)
        averaged = working_pixel_average(before, (image.shape[0] / shape[0], image.shape[1] / shape[1]))
        now = map_grey_levels(x, source, target) - x
        peaks = [lattice_peak(a[0, 0].numpy(), u) for a in (x, before, averaged, now)]
        rows.append(f"| {name} | {peaks[0]:.0f} | {peaks[1]:.0f} | {peaks[2]:.0f} | {peaks[3]:.0f} |")
    return rows


def seconds_at_512(preset: str) -> tuple[float, float]:
    """Median wall and CPU (process) seconds of 5 translations of RG1 resized to 512 x 512 with `preset`
    (after one warm-up). CPU time counts every thread; with one thread (OMP_NUM_THREADS=1) it is what other
    processes sharing the CPU change least (with two under load, waiting threads inflate it too)."""
    from pydicom.data import get_testdata_file
    model, info = load_checkpoint(default_model_path())
    image = read_radiograph(get_testdata_file("RG1_UNCR.dcm"))
    pixels = resample(torch.from_numpy(image.pixels.astype(np.float32))[None, None], (512, 512))[0, 0]
    image = replace(image, pixels=np.clip(pixels.numpy(), 0, 65535).astype(np.uint16), metadata=dict(image.metadata))
    settings = TranslationSettings("clinical-normal", "clinical-exposure").with_preset(preset)
    translate_image(image, model, info, settings)
    wall, cpu = [], []
    for _ in range(5):
        started, started_cpu = time.perf_counter(), time.process_time()
        translate_image(image, model, info, settings)
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return float(np.median(wall)), float(np.median(cpu))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", nargs="+", default=["RG1", "RG3"], choices=["RG1", "RG3"])
    parser.add_argument("--preset", default=DEFAULT_PRESET)
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args()
    print(f"# Tone changes, {args.preset} (torch {torch.__version__}, {torch.get_num_threads()} CPU threads)\n")
    if not args.skip_quality:
        print("| image | direction | detail kept (with added noise: anatomy / noise's ceiling) "
              "| band 1 out/in / asked / gain | ends (min / max, points) "
              "| lattice u / 4u | mean change (grey) |")
        print("|---|---|---|---|---|---|---|")
        quality_rows(args.images, args.preset)
    print("\n| image | input's own | curve on the working grid, interpolated up | same, averaged over a working "
          "pixel | curve at full resolution |")
    print("|---|---|---|---|---|")
    print("\n".join(curve_lattice_rows(args.images)))
    wall, cpu = seconds_at_512(args.preset)
    print(f"\n{args.preset} at 512 x 512 (RG1 resized): {wall:.2f} s per image ({cpu:.2f} s CPU time over "
          f"{torch.get_num_threads()} threads; load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
