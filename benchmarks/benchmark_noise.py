"""Dose change and noise against physics: real radiographs and held-out simulated views, at the default setting.

1. pydicom-data's CR radiographs RG1 (chest) and RG3 (tibia) translated clinical-normal -> clinical-low
   with the bundled model at the default setting, beside the physics baseline (noise insertion scaled
   by the dose ratio the model's statistics imply and shaped by the image's own noise, Veldkamp et al.
   2009): the added noise's grey-level dependence against the image's own (ratio; goal within 1.5x),
   its lag-1 correlation against the own noise's (goal within 0.15), its size against the own noise
   (goal 0.8-2.0x) and against sqrt(1/r - 1) for the statistics' dose fraction r (goal within 20 %);
   measures of evaluation/noise_texture.py.
2. Held-out simulated views (a `medshift simulate --clean` folder with a seed the training data did not
   use) translated into each clinical domain at the default setting: the output's noise (robust level of
   the high-pass residual) in direct exposure (the target's noise-free rendering at its dark end; goal
   no higher than the real target rendering's there) and over the body (goal 0.7-1.4x the target's).

With --pictures DIR it also writes, per real image, a 384-px window at full resolution: the input, the
MedShift output, the physics baseline, and the two added-noise maps (output - input, high-pass, mid-grey = 0).
Run:  .venv/bin/python benchmarks/benchmark_noise.py [--heldout DIR] [--views N] [--pictures DIR] [--skip-real]
"""
from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "MedShift"))

from MedShiftLib.engine.checkpoint import default_model_path, load_checkpoint  # noqa: E402
from MedShiftLib.engine.intensity import fit_intensity_window, normalize  # noqa: E402
from MedShiftLib.evaluation.baselines import dose_noise_baseline  # noqa: E402
from MedShiftLib.evaluation.noise_texture import added_noise, implied_size, noise_residual, robust_level  # noqa: E402
from MedShiftLib.io.radiograph_files import read_radiograph  # noqa: E402
from MedShiftLib.pipeline.image_translation import translate_image  # noqa: E402
from MedShiftLib.postprocess.body_region import body_mask  # noqa: E402
from MedShiftLib.postprocess.noise_model import statistics_dose_fraction  # noqa: E402
from MedShiftLib.settings import DEFAULT_PRESET, TranslationSettings  # noqa: E402

SOURCE, TARGET = "clinical-normal", "clinical-low"
CLINICAL = ("clinical-low", "clinical-normal", "clinical-exposure")
DIRECT_EXPOSURE = -0.9  # model range: the noise-free target rendering's dark end


def save_picture(folder: Path, name: str, x: np.ndarray, outputs: dict[str, np.ndarray]) -> None:
    """Input, outputs and their added-noise maps (a 384-px centre window) side by side as one JPEG."""
    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)
    top, left = (x.shape[0] - 384) // 2, (x.shape[1] - 384) // 2
    window = (slice(top, top + 384), slice(left, left + 384))
    panels = [np.clip((x[window] + 1) * 127.5, 0, 255)]
    panels += [np.clip((y[window] + 1) * 127.5, 0, 255) for y in outputs.values()]
    panels += [np.clip(128 + noise_residual(y - x)[window] / 0.04 * 127, 0, 255) for y in outputs.values()]
    Image.fromarray(np.hstack(panels).astype(np.uint8)).save(folder / f"dose_{name.split('_')[0]}.jpg", quality=80)


def real_rows(model, info, pictures: Path | None = None) -> list[str]:
    """One row per image and method: dose-change measures against the image's own noise."""
    from pydicom.data import get_testdata_file
    fraction = statistics_dose_fraction(info.statistics, SOURCE, TARGET)
    implied = implied_size(fraction)
    rows = [f"Dose fraction {SOURCE} -> {TARGET} the statistics imply: r = {fraction:.3f}; "
            f"added noise sqrt(1/r - 1) = {implied:.2f}x the own noise\n",
            "| image | method | grey-level dependence own / added (ratio) | lag-1 own / added | size "
            "| size / implied |",
            "|---|---|---|---|---|---|"]
    settings = TranslationSettings(SOURCE, TARGET).with_preset(DEFAULT_PRESET)
    for name in ("RG1_UNCR.dcm", "RG3_UNCR.dcm"):
        image = read_radiograph(get_testdata_file(name))
        window = fit_intensity_window(image.pixels, image.photometric)
        x = normalize(image.pixels, window)
        outputs = {"MedShift default": normalize(translate_image(image, model, info, settings).pixels, window),
                   "Veldkamp dose noise": dose_noise_baseline(x.astype(np.float32), fraction, 0)}
        if pictures is not None:
            save_picture(pictures, name, x, outputs)
        for method, y in outputs.items():
            r = added_noise(x, y)
            rows.append(f"| {name.split('_')[0]} | {method} | {r.own_dependence:.2f} / {r.added_dependence:.2f} "
                        f"({r.dependence_ratio:.2f}) | {r.own_lag1:.2f} / {r.added_lag1:.2f} | {r.size:.2f} | "
                        f"{r.size / implied:.2f} |")
    return rows


def heldout_rows(model, info, folder: Path, views: int) -> Iterator[str]:
    """Per pair into a clinical domain: output noise against the real target rendering's, background and body."""
    yield "| pair | views | background noise output / target | body noise output / target |"
    yield "|---|---|---|---|"
    names = sorted(p.name for p in (folder / "clinical-low").glob("*.png"))[:views]
    for target in CLINICAL:
        for source in info.domains:
            if source == target:
                continue
            settings = TranslationSettings(source, target).with_preset(DEFAULT_PRESET)
            background, body = [], []
            for k, name in enumerate(names):
                image = read_radiograph(folder / source / name)
                window = fit_intensity_window(image.pixels, image.photometric)
                y = normalize(translate_image(image, model, info, settings.for_image(k)).pixels, window)
                real = read_radiograph(folder / target / name)
                t = normalize(real.pixels, fit_intensity_window(real.pixels, real.photometric))
                clean = read_radiograph(folder / "clean" / target / name)
                c = normalize(clean.pixels, fit_intensity_window(clean.pixels, clean.photometric))
                air, inside = c < DIRECT_EXPOSURE, body_mask(c)
                out_res, target_res = noise_residual(y), noise_residual(t)
                if air.sum() > 100:
                    background.append((robust_level(out_res[air]), robust_level(target_res[air])))
                body.append(robust_level(out_res[inside]) / max(robust_level(target_res[inside]), 1e-12))
            air_text = (" / ".join(f"{np.mean([b[i] for b in background]):.4f}" for i in (0, 1))
                        if background else "no direct exposure")
            yield f"| {source} -> {target} | {len(names)} | {air_text} | {np.mean(body):.2f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heldout", type=Path, help="a `medshift simulate --clean` folder the model never saw")
    parser.add_argument("--views", type=int, default=8, help="held-out views per pair")
    parser.add_argument("--pictures", type=Path, help="also write the real images' dose-change pictures here")
    parser.add_argument("--skip-real", action="store_true", help="only the held-out table")
    args = parser.parse_args()
    model, info = load_checkpoint(default_model_path())
    print(f"# Dose change and noise (torch {torch.__version__}; {platform.machine()}; bundled model; "
          f"preset {DEFAULT_PRESET})\n")
    for row in () if args.skip_real else real_rows(model, info, args.pictures):
        print(row, flush=True)
    if args.heldout is not None:
        print()
        for row in heldout_rows(model, info, args.heldout, args.views):
            print(row, flush=True)


if __name__ == "__main__":
    main()
