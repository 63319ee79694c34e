"""The panel's translation parameters <-> TranslationSettings.

The parameter node spells fields in Slicer's camelCase (`guidanceScale`); MedShiftLib.settings in
snake_case (`guidance_scale`). This table is the one place that pairs them; the panel's choice lists,
defaults and preset buttons all come from MedShiftLib.settings. Imports no torch and no Slicer.
"""
from __future__ import annotations

import enum
import platform
from dataclasses import fields
from typing import Any

from MedShiftLib.settings import DEVICE_CHOICES, PRESETS, TranslationSettings

PARAMETER_OF_SETTING: dict[str, str] = {
    "source_domain": "sourceDomain",
    "target_domain": "targetDomain",
    "tau": "tau",
    "guidance_scale": "guidanceScale",
    "solver": "solver",
    "steps": "steps",
    "schedule": "schedule",
    "noise_renewal": "noiseRenewal",
    "seed": "seed",
    "contrast_transfer": "contrastTransfer",
    "noise_matching": "noiseMatching",
    "tile_size": "tileSize",
}
"""Each TranslationSettings field the panel shows, and its parameter-node field."""

PRESET_BUTTONS: dict[str, str] = {
    "deterministicPresetButton": "deterministic",
    "noisePresetButton": "synthesise-noise",
    "matchedContrastPresetButton": "matched-contrast",
    "matchedNoisePresetButton": "matched-contrast-and-noise",
}
"""Each preset button of MedShift.ui and the settings.PRESETS entry it applies."""

_TYPES = {f.name: f.type for f in fields(TranslationSettings)}


def settings_from_parameters(parameters: Any) -> TranslationSettings:
    """TranslationSettings from the panel's parameter node (or any object with its camelCase attributes)."""
    cast = {"float": float, "int": int, "bool": bool, "str": str}
    return TranslationSettings(**{name: cast[_TYPES[name]](getattr(parameters, parameter))
                                  for name, parameter in PARAMETER_OF_SETTING.items()})


def apply_preset(parameters: Any, preset: str) -> None:
    """Set the parameter-node fields of a settings.PRESETS entry."""
    for name, value in PRESETS[preset].items():
        setattr(parameters, PARAMETER_OF_SETTING[name], value)


class FrameChoice(enum.Enum):
    """The panel's Frames choice: Slicer's parameter-node wrapper shows `label()` in the combo box, saves the name."""

    single = "single"
    all = "all"
    one = "one"

    def label(self) -> str:
        """The text the combo box shows."""
        return {"single": "One radiograph", "all": "Every frame (cine)", "one": "One frame:"}[self.name]


def frame_selection(choice: FrameChoice, frame_index: int) -> int | str | None:
    """The logic's frame argument for a Frames choice: None, 'all' or a frame number."""
    return {FrameChoice.single: None, FrameChoice.all: "all", FrameChoice.one: int(frame_index)}[choice]


def panel_device_choices(system: str | None = None, machine: str | None = None) -> list[str]:
    """The device choices the panel offers: settings.DEVICE_CHOICES, and 'mps' on an Apple-silicon Mac.

    Decided from the platform, not from torch (the panel never imports torch; the worker process checks
    that its torch has the device and says so when it has not)."""
    system = platform.system() if system is None else system
    machine = platform.machine() if machine is None else machine
    mps = system == "Darwin" and machine.lower() in ("arm64", "aarch64")
    return [c for c in DEVICE_CHOICES if c != "mps" or mps]
