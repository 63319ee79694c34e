"""How much storing the bundled weights in float16 changes a translation: fp16-stored vs fp32 weights.

Translates the demo image (simulator sim-low, seed 7, C-arm view 0, procedural phantom) and pydicom-data's
RG1 chest (CR, 1955 x 1841) into clinical-normal with the default setting (settings.RECOMMENDED), once with
the float32 weights and once with the same weights stored in float16 and upcast on loading, and prints the
largest and mean absolute difference of the outputs as a fraction of the output's value range.

Run: .venv/bin/python benchmarks/half_precision_weights.py FP32.safetensors [FP16.safetensors]
(FP16 default: the bundled model; FP32: e.g. `git show <commit>:MedShift/Resources/Models/medshift_default.safetensors`
with its .stats.json beside it.)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "MedShift"))

from MedShiftLib.engine.checkpoint import default_model_path, load_checkpoint  # noqa: E402
from MedShiftLib.io.radiograph import RadiographImage  # noqa: E402
from MedShiftLib.io.radiograph_files import read_radiograph  # noqa: E402
from MedShiftLib.pipeline.image_translation import translate_image  # noqa: E402
from MedShiftLib.settings import RECOMMENDED, TranslationSettings  # noqa: E402
from MedShiftLib.simulator.domain_rendering import to_uint16  # noqa: E402
from MedShiftLib.simulator.simulation import simulate_view  # noqa: E402


def demo_image() -> RadiographImage:
    """The demo's input: sim-low, seed 7, subject 0, C-arm view 0 at 256 px."""
    view = simulate_view(seed=7, subject=0, view=0, size=256, clean=False, vary_anatomy=False)
    spacing = view.geometry.pixel_spacing_mm
    return RadiographImage(to_uint16(view.images["sim-low"]), spacing=(spacing, spacing, 1.0),
                           metadata={"spacing_known": True})


def rg1_image() -> RadiographImage:
    """pydicom-data's RG1_UNCR.dcm (chest CR)."""
    from pydicom.data import get_testdata_file
    return read_radiograph(get_testdata_file("RG1_UNCR.dcm"))


def compared_images(demo: RadiographImage | None = None) -> list[tuple[str, RadiographImage, str, str]]:
    """(name, image, source, target) of the translations the weight benchmarks compare (`demo`: demo_image())."""
    return [("demo (sim-low, 256 px)", demo if demo is not None else demo_image(), "sim-low", "clinical-normal"),
            ("RG1 chest CR 1955 x 1841", rg1_image(), "clinical-normal", "clinical-exposure")]


def default_settings(source: str, target: str) -> TranslationSettings:
    """The default setting (settings.RECOMMENDED) from `source` to `target`."""
    fields = {k: v for k, v in RECOMMENDED.items() if k in TranslationSettings.__dataclass_fields__}
    return TranslationSettings(**(fields | {"source_domain": source, "target_domain": target}))


def compare_translations(image: RadiographImage, models: list, settings: TranslationSettings
                         ) -> tuple[list[np.ndarray], str]:
    """`image` translated by both (model, info) of `models`, and the table's cells of their difference: largest and
    mean absolute difference as a fraction of the first output's range, largest in grey levels."""
    outputs = [translate_image(image, model, info, settings).pixels.astype(np.float64) for model, info in models]
    span = max(float(outputs[0].max() - outputs[0].min()), 1e-9)
    diff = np.abs(outputs[0] - outputs[1])
    return outputs, f"{diff.max() / span:.2e} | {diff.mean() / span:.2e} | {diff.max():.1f} of {span:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fp32")
    parser.add_argument("fp16", nargs="?", default=str(default_model_path()))
    args = parser.parse_args()
    models = [load_checkpoint(path) for path in (args.fp32, args.fp16)]
    print("| image | source | max abs diff (of range) | mean abs diff (of range) | max abs diff (grey levels) |")
    print("|---|---|---|---|---|")
    for name, image, source, target in compared_images():
        _, cells = compare_translations(image, models, default_settings(source, target))
        print(f"| {name} -> {target} | {source} | {cells} |")


if __name__ == "__main__":
    main()
