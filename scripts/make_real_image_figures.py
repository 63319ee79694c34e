"""The pictures of docs/real_images.md: pydicom-data's CR radiographs translated with the bundled model.

For each picture, a 640 x 640 window at full resolution: the input, the translation as it was before
detail carrying (the working grid scaled back up), the deterministic preset and the default preset
(settings.DEFAULT_PRESET), each through the whole translate path, and the default's change map (output minus
input around mid grey, x4 or less so that 99 % of it fits).
Run: .venv/bin/python scripts/make_real_image_figures.py [--out docs/images]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "MedShift"))

from MedShiftLib.engine.checkpoint import default_model_path, load_checkpoint  # noqa: E402
from MedShiftLib.engine.intensity import denormalize, fit_intensity_window, normalize  # noqa: E402
from MedShiftLib.engine.working_grid import resample, working_shape  # noqa: E402
from MedShiftLib.io.comparison_figure import save_side_by_side  # noqa: E402
from MedShiftLib.io.radiograph_files import read_radiograph  # noqa: E402
from MedShiftLib.pipeline.image_translation import image_spacing_mm, translate_batch, translate_image  # noqa: E402
from MedShiftLib.settings import DEFAULT_PRESET, TranslationSettings  # noqa: E402

FIGURES = (  # file, window (top, left), source, target
    ("RG1_UNCR.dcm", (900, 560), "sim-low", "clinical-normal"),
    ("RG3_UNCR.dcm", (980, 560), "clinical-normal", "clinical-exposure"),
    ("RG1_UNCR.dcm", (900, 560), "clinical-low", "clinical-normal"),
)
WINDOW = 640
MAX_CHANGE_GAIN = 4.0  # the change map's contrast: at most x4, less where 99 % of the change would not fit


def working_grid_scaled_up(image, model, info, settings: TranslationSettings) -> np.ndarray:
    """The translation as it was before detail carrying: on the working grid, then resampled back up."""
    window = fit_intensity_window(image.pixels, image.photometric)
    x = torch.from_numpy(normalize(image.pixels, window).astype(np.float32))[None, None]
    shape = working_shape(image.shape, info.resolution, image_spacing_mm(image), info.pixel_spacing_mm)
    labels = [torch.tensor([info.label_of(d)]) for d in (settings.source_domain, settings.target_domain)]
    y = translate_batch(model, resample(x, shape), *labels, settings, statistics=info.statistics)
    return denormalize(resample(y, image.shape)[0, 0].numpy(), window, image.pixels.dtype)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    args = parser.parse_args()
    from pydicom.data import get_testdata_file
    model, info = load_checkpoint(default_model_path())
    for name, (top, left), source, target in FIGURES:
        image = read_radiograph(get_testdata_file(name))
        deterministic = TranslationSettings(source, target).with_preset("deterministic")
        default = TranslationSettings(source, target).with_preset(DEFAULT_PRESET)
        panels = [image.pixels, working_grid_scaled_up(image, model, info, deterministic),
                  translate_image(image, model, info, deterministic).pixels,
                  translate_image(image, model, info, default).pixels]
        crops = [p[top:top + WINDOW, left:left + WINDOW] for p in panels]
        if image.photometric == "MONOCHROME1":  # shown as a radiologist sees it: dense = bright
            crops = [float(crops[0].max()) - c.astype(np.float64) for c in crops]
        low, high = np.percentile(crops[0], [0.5, 99.5])  # one window for all: tone changes show
        crops = [(c - low) / (high - low) * 255 for c in crops]
        difference = crops[3] - crops[0]  # before the display window clips
        gain = min(MAX_CHANGE_GAIN, 100.0 / max(float(np.percentile(np.abs(difference), 99)), 1e-6))
        crops = [np.clip(c, 0, 255).astype(np.uint8) for c in [*crops, 128 + gain * difference]]
        labels = [f"input ({name.split('_')[0]}, as {source})", "before: working grid scaled up",
                  f"-> {target}, deterministic", f"-> {target}, default ({DEFAULT_PRESET})",
                  f"change of the default x{gain:.1f} (grey: none)"]
        print(save_side_by_side(crops, labels, args.out / f"real_{name.split('_')[0]}_{source}_to_{target}.jpg"))


if __name__ == "__main__":
    main()
