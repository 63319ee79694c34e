"""`medshift demo`: simulate a skull radiograph, translate it with a model, write a side-by-side picture.

It translates with the default (deterministic) settings, with NOISE_SYNTHESIS, which renews the
latent's noise so the model makes the target domain's noise texture, and, when the model records its
domains' statistics, with MATCHED_CONTRAST, which first gives the input the target's contrast, and
MATCHED_CONTRAST_AND_NOISE, which also gives the result the target's noise spectrum.

The view is rendered by the project's simulator with a seed the bundled model was not trained on,
so the translation can be set beside the simulator's own rendering of the same view in the target
domain (the reference a perfect translation would resemble, up to its noise).
"""
from __future__ import annotations

from pathlib import Path

from .checkpoint import default_model_path, load_checkpoint
from .comparison_figure import save_side_by_side
from .devices import resolve_device
from .domain_rendering import to_uint16
from .radiograph import RadiographImage
from .radiograph_io import write_radiograph
from .simulation import simulate_view
from .translation import (MATCHED_CONTRAST, MATCHED_CONTRAST_AND_NOISE, NOISE_SYNTHESIS, TranslationSettings,
                          translate_image)


def run_demo(out_dir: str | Path, model_path: str | Path | None = None, source: str = "sim-low",
             target: str = "clinical-normal", tau: float = 0.6, seed: int = 7, device: str = "auto") -> list[Path]:
    """Write input, translation, reference and a comparison picture into `out_dir`; returns their paths."""
    model, info = load_checkpoint(model_path or default_model_path(), resolve_device(device))
    settings = TranslationSettings(source, target, tau=tau).validated(info)
    noisy = TranslationSettings(source, target, tau=tau, seed=seed, **NOISE_SYNTHESIS).validated(info)
    size = info.resolution
    view = simulate_view(seed=seed, subject=0, view=0, size=size, clean=False)
    spacing = view.geometry.pixel_spacing_mm
    image = RadiographImage(to_uint16(view.images[source]), spacing=(spacing, spacing, 1.0),
                            metadata={"spacing_known": True})
    translated = translate_image(image, model, info, settings)
    with_noise = translate_image(image, model, info, noisy)
    out = Path(out_dir)
    paths = [write_radiograph(image, out / f"input_{source}.png"),
             write_radiograph(translated, out / f"translated_{source}_to_{target}.png"),
             write_radiograph(with_noise, out / f"translated_{source}_to_{target}_noise.png")]
    panels = [image.pixels, translated.pixels, with_noise.pixels]
    labels = [f"input: {source}", f"MedShift -> {target}, tau {tau:g}", f"same + noise synthesis (seed {seed})"]
    if info.contrast is not None:
        matched = translate_image(image, model, info, TranslationSettings(source, target, tau=tau, **MATCHED_CONTRAST))
        paths.append(write_radiograph(matched, out / f"translated_{source}_to_{target}_matched_contrast.png"))
        panels.append(matched.pixels)
        labels.append("same, matched contrast")
    if info.contrast is not None and info.contrast.noise_power is not None:
        both = TranslationSettings(source, target, tau=tau, seed=seed, **MATCHED_CONTRAST_AND_NOISE)
        matched_noise = translate_image(image, model, info, both)
        paths.append(write_radiograph(matched_noise,
                                      out / f"translated_{source}_to_{target}_matched_contrast_noise.png"))
        panels.append(matched_noise.pixels)
        labels.append("same, matched contrast and noise")
    if target in view.images:
        reference = to_uint16(view.images[target])
        paths.append(write_radiograph(image.with_pixels(reference), out / f"simulator_{target}.png"))
        panels.append(reference)
        labels.append(f"simulator's own {target}")
    paths.append(save_side_by_side(panels, labels, out / "comparison.png"))
    return paths
