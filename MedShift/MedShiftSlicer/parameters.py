"""The panel's translation parameters <-> TranslationSettings.

The parameter node spells fields in Slicer's camelCase (`guidanceScale`); MedShiftLib.settings in
snake_case (`guidance_scale`). This table is the one place that pairs them; the panel's choice lists,
defaults and preset buttons all come from MedShiftLib.settings. Imports no torch and no Slicer.
"""
from __future__ import annotations

from dataclasses import fields
from typing import Any

from MedShiftLib.settings import PRESETS, TranslationSettings

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
