"""`medshift demo`: simulate a skull radiograph, translate it with a model, write a side-by-side picture.

It translates with the published deterministic settings (preset "deterministic"), with the
"synthesise-noise" preset, which
renews the latent's noise so the model makes the target domain's noise texture, and, when the model
records its domains' statistics, with "matched-contrast", which first gives the input the target's
contrast, and "matched-contrast-and-noise", which also gives the result the target's noise spectrum
(settings.PRESETS; the panel's and the command line's default, settings.DEFAULT_PRESET).

The view, a lateral view of the whole head on a 400 mm detector, is rendered by the project's simulator
from the shipped Visible Human head (MedShift/Resources/ThirdParty/VisibleHumanHead: Courtesy of the U.S.
National Library of Medicine; see its README) or Cranium (GPL-2 data) when present, or from any other CT
given, else from a procedural head phantom, with a seed the bundled model was not trained on,
so the translation can be set beside the simulator's own rendering of the same view in the target
domain (the reference a perfect translation would resemble, up to its noise).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from .engine.checkpoint import default_model_path, load_checkpoint
from .engine.devices import resolve_device
from .io.comparison_figure import save_side_by_side
from .io.radiograph import RadiographImage
from .io.radiograph_files import write_radiograph
from .pipeline.image_translation import translate_image
from .settings import TranslationSettings
from .simulator.domain_rendering import to_uint16
from .simulator.model_look import model_look
from .simulator.simulation import simulate_view
from .simulator.views import ViewOptions

WHOLE_HEAD_DETECTOR_MM = 400.0  # 267 mm at the isocentre (magnification 1.5): vertex to C5 of the Visible Human


def run_demo(out_dir: str | Path, model_path: str | Path | None = None, source: str = "sim-low",
             target: str = "clinical-normal", tau: float | None = None, seed: int = 7,
             device: str = "auto", ct_path: str | Path | None = None, look: str | None = None) -> list[Path]:
    """Write input, translation, reference and a comparison picture into `out_dir`; returns their paths.

    `ct_path`: the CT to render (None: the procedural phantom); the view is lateral view 0 of `seed` (the whole
    head), rendered in the simulator's `look` (domain_styles.LOOKS; None: the look the model was trained on,
    simulator/model_look.py); `tau`: every preset's tau (None: their own).
    """
    model, info = load_checkpoint(model_path or default_model_path(), resolve_device(device))
    look = look or model_look(info)

    def preset(name: str) -> TranslationSettings:
        settings = TranslationSettings(source, target, seed=seed).with_preset(name)
        return info.validate(settings if tau is None else replace(settings, tau=tau))

    settings, noisy = preset("deterministic"), preset("synthesise-noise")
    size = info.resolution
    views = ViewOptions("lateral", pixel_spacings_mm=(WHOLE_HEAD_DETECTOR_MM / size,))
    view = simulate_view(seed=seed, subject=0, view=0, size=size, clean=False, ct_path=ct_path, vary_anatomy=False,
                         look=look, views=views)
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
    labels = [f"input: {source}", f"MedShift -> {target}, deterministic (tau {settings.tau:g})",
              f"noise synthesis (tau {noisy.tau:g}, seed {seed})"]
    if info.statistics is not None:
        matched_settings = preset("matched-contrast")
        matched = translate_image(image, model, info, matched_settings)
        paths.append(write_radiograph(matched, out / f"translated_{source}_to_{target}_matched_contrast.png"))
        panels.append(matched.pixels)
        labels.append(f"matched contrast (tau {matched_settings.tau:g})")
    if info.statistics is not None and None not in (info.statistics.noise_power, info.statistics.noise_level):
        default = preset("matched-contrast-and-noise")
        matched_noise = translate_image(image, model, info, default)
        paths.append(write_radiograph(matched_noise,
                                      out / f"translated_{source}_to_{target}_matched_contrast_noise.png"))
        panels.append(matched_noise.pixels)
        labels.append(f"matched contrast and noise (default, tau {default.tau:g})")
    if target in view.images:
        reference = to_uint16(view.images[target])
        paths.append(write_radiograph(image.with_pixels(reference), out / f"simulator_{target}.png"))
        panels.append(reference)
        labels.append(f"simulator's own {target}")
    paths.append(save_side_by_side(panels, labels, out / "comparison.png"))
    return paths
