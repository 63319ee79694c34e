"""The allowed range of every numeric option of the `medshift` commands, checked before any work.

The translation options take theirs from settings.TranslationSettings and the training options from
training.config.TrainingConfig (where the panel, the console and the training module share them); this
table adds the options only the command line has (`train --processes` is checked by training/launcher.py).
Values of options given several times are each checked.
"""
from __future__ import annotations

import argparse
from dataclasses import fields

from .option_bounds import MAX_SEED, Bounds
from .settings import TranslationSettings

_SETTING = {f.name: f.metadata["bounds"] for f in fields(TranslationSettings) if f.metadata.get("bounds")}
SEED = Bounds(0, MAX_SEED)

COMMAND_BOUNDS: dict[str, dict[str, Bounds]] = {
    "translate": {"frame": Bounds(0, 100_000)},
    "simulate": {
        "subjects": Bounds(0, 100_000), "views_per_subject": Bounds(1, 1000),
        "size": Bounds(16, 4096, note="pixels a side; 256 matches the bundled model"), "seed": SEED,
        "phantoms_fraction": Bounds(0.0, 1.0), "pixel_pitch_mm": Bounds(0.0, 10.0, low_open=True),
        "fov_mm": Bounds(0.0, 2000.0, low_open=True), "sid_mm": Bounds(100.0, 5000.0),
        "sod_mm": Bounds(10.0, 5000.0), "lao_rao": Bounds(-180.0, 180.0), "cranial_caudal": Bounds(-180.0, 180.0)},
    "demo": {"tau": _SETTING["tau"], "seed": SEED},
    "evaluate": {
        "taus": _SETTING["tau"], "guidance": _SETTING["guidance_scale"], "steps": _SETTING["steps"],
        "noise_renewal": _SETTING["noise_renewal"], "ddib_taus": _SETTING["tau"], "max_views": Bounds(3, 1_000_000),
        "classifier_steps": Bounds(1, 1_000_000), "seed": SEED},
    "domain-contrast": {"images_per_domain": Bounds(1, 100_000)},
}
"""For each command, the allowed range of its numeric options by argparse destination."""


def check_command_options(args: argparse.Namespace) -> None:
    """MedShiftError naming the first numeric option of `args.command` outside its range (None: not given)."""
    for dest, bounds in COMMAND_BOUNDS.get(args.command, {}).items():
        value = getattr(args, dest, None)
        for item in value if isinstance(value, list) else [value]:
            if item is not None:
                bounds.check("--" + dest.replace("_", "-"), item)
