"""How to translate: `TranslationSettings`, the named presets and the lists of valid choices.

The one home of every translation option and its default. The `medshift` command builds its options
from the fields below (flag and help text in each field's metadata), the Slicer panel takes its choice
lists, defaults, ranges and preset buttons from here, and the module logic takes a `TranslationSettings`.
Imports neither torch nor anything else of MedShiftLib but its errors and option bounds, so the Slicer
module can load it before torch is installed. Each numeric field's allowed range (option_bounds.Bounds)
is in its metadata: `validated` refuses NaN, infinity and values outside it.

Checks that need the model (domain names, recorded statistics, the network's size factor) are made by
`engine.checkpoint.CheckpointInfo.validate`; `TranslationSettings.validated` makes the others.
"""
from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any

from .errors import MedShiftError
from .option_bounds import MAX_SEED, Bounds, check_fields

SOLVERS: tuple[str, ...] = ("euler", "heun", "rk4", "dopri5")
SCHEDULES: tuple[str, ...] = ("uniform", "quadratic")
RESAMPLE_MODES: tuple[str, ...] = ("auto", "none")
DEVICE_CHOICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")


def _option(default: Any, flag: str, help: str, choices: tuple[str, ...] | None = None,
            bounds: Bounds | None = None) -> Any:
    """A settings field with its command-line flag, help text, choices and allowed range in the metadata."""
    return field(default=default, metadata={"flag": flag, "help": help, "choices": choices, "bounds": bounds})


@dataclass(frozen=True)
class TranslationSettings:
    """How to translate an image from `source_domain` into `target_domain`; the defaults are the panel's and CLI's."""

    source_domain: str
    target_domain: str
    tau: float = _option(0.6, "--tau", "structure (0.6) <-> realism (0.3) trade-off",
                         bounds=Bounds(0.0, 1.0, high_open=True, note="0.3 realism ... 0.6 structure"))
    guidance_scale: float = _option(1.0, "--guidance", "classifier-free guidance scale w; 1 = none, faster",
                                    bounds=Bounds(0.0, 10.0, note="1 = no guidance; the presets use 2; above "
                                                                  "about 5 edges are exaggerated"))
    solver: str = _option("euler", "--solver", "ODE solver", SOLVERS)
    steps: int = _option(4, "--steps", "solver steps over [tau, 1], per direction", bounds=Bounds(1, 1000))
    schedule: str = _option("uniform", "--schedule", "time grid of euler/heun/rk4: uniform, or quadratic (finer "
                            "towards t = 1, where noise texture forms)", SCHEDULES)
    noise_renewal: float = _option(0.0, "--noise-renewal", "share of the inverted latent's noise replaced by fresh "
                                   "noise, 0-1 (0: deterministic); 1 with --schedule quadratic --steps 8 synthesises "
                                   "the target's quantum noise", bounds=Bounds(0.0, 1.0, note="0 = deterministic"))
    seed: int = _option(0, "--seed", "seed of the renewed or matched noise", bounds=Bounds(0, MAX_SEED))
    contrast_transfer: bool = _option(False, "--contrast-transfer", "first give the image the target domain's grey "
                                      "levels and multi-scale contrast (from the model's domain statistics); keeps "
                                      "structure at tau 0.6 while matching the vendor look")
    noise_matching: bool = _option(False, "--noise-matching", "finally give the result the target domain's noise "
                                   "power spectrum (from the model's domain statistics): excess noise filtered out, "
                                   "missing quantum noise added")
    tile_size: int = _option(1024, "--tile-size", "largest side processed in one pass, in working pixels",
                             bounds=Bounds(8, 8192))
    resample: str = _option("auto", "--resample", "auto: bring the image to the model's pixel scale; none: use its "
                            "own grid", RESAMPLE_MODES)
    tile_overlap: int | None = None  # None: a quarter of the tile

    def validated(self) -> TranslationSettings:
        """Check every field that needs no model; raises MedShiftError saying what to change."""
        check_fields(self, lambda f: f"{f.name.replace('_', ' ')} ({f.metadata['flag']})")
        if self.solver not in SOLVERS:
            raise MedShiftError(f"unknown solver {self.solver!r}; choose one of: {', '.join(SOLVERS)}")
        if self.schedule not in SCHEDULES:
            raise MedShiftError(f"unknown time schedule {self.schedule!r}; choose one of: {', '.join(SCHEDULES)}")
        if self.schedule != "uniform" and self.solver == "dopri5":
            raise MedShiftError(f"--solver dopri5 chooses its own steps, so it needs --schedule uniform (this setting "
                                f"has {self.schedule}, e.g. from the preset); add --schedule uniform, or use --solver "
                                "euler, heun or rk4")
        if self.resample not in RESAMPLE_MODES:
            raise MedShiftError(f"unknown resample mode {self.resample!r}; choose one of: {', '.join(RESAMPLE_MODES)}")
        return self

    def for_image(self, index: int) -> TranslationSettings:
        """The settings for image `index` of a run over several images: its own noise seed (seed + index)."""
        return replace(self, seed=(self.seed + index) % (MAX_SEED + 1))

    def with_preset(self, name: str) -> TranslationSettings:
        """These settings with the fields of preset `name` (one of PRESETS) replaced."""
        if name not in PRESETS:
            raise MedShiftError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
        return replace(self, **PRESETS[name])

    def tiling(self, factor: int) -> tuple[int, int]:
        """(tile, overlap) rounded to the network's downsampling factor."""
        tile = max(factor, self.tile_size // factor * factor)
        overlap = self.tile_overlap if self.tile_overlap is not None else tile // 4
        overlap = min(max(factor, overlap // factor * factor), tile - factor) if tile > factor else 0
        return tile, overlap

    def description(self) -> str:
        """Short human description, e.g. 'sim-low->clinical-normal tau0.6'."""
        text = f"{self.source_domain}->{self.target_domain} tau{self.tau:g}"
        if self.guidance_scale != 1.0:
            text += f" w{self.guidance_scale:g}"
        if self.contrast_transfer:
            text += " contrast"
        if self.noise_renewal > 0:
            text += f" noise{self.noise_renewal:g}"
        if self.noise_matching:
            text += " matched-noise"
        if self.noise_renewal > 0 or self.noise_matching:
            text += f" seed{self.seed}"
        return text


DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(TranslationSettings) if f.default is not MISSING}
"""Every field's default value by name (source and target domain have none)."""

SETTING_RANGES: dict[str, tuple[float, float]] = {
    f.name: (f.metadata["bounds"].low, f.metadata["bounds"].high) for f in fields(TranslationSettings)
    if f.metadata.get("bounds")}
"""(lowest, highest) value of each numeric field by name (for the panel's widgets; tau's upper end is excluded)."""

COMMAND_LINE_OPTIONS: tuple[str, ...] = tuple(f.name for f in fields(TranslationSettings) if "flag" in f.metadata)
"""The fields the `medshift translate` command offers as options, in order."""

# Each preset sets tau, guidance and steps: the point of its family (the same noise renewal and
# post-processing) on the frontier measured by benchmarks/frontier_sweep.py (docs/frontier.md).
# Renews the latent's noise so the model synthesises the target domain's quantum noise (docs/evaluation.md,
# "Noise synthesis"); on its family's frontier once the noise level counts (docs/frontier.md).
NOISE_SYNTHESIS: dict[str, Any] = {"tau": 0.6, "noise_renewal": 1.0, "schedule": "quadratic", "steps": 8,
                                   "guidance_scale": 2.0, "contrast_transfer": False, "noise_matching": False}
# Gives the target domain's contrast before the flow (docs/evaluation.md, "Contrast transfer"); at tau 0.3 it
# dominates tau 0.6 on SSIM, band-contrast error and classifier acceptance (docs/frontier.md).
MATCHED_CONTRAST: dict[str, Any] = {"tau": 0.3, "contrast_transfer": True, "noise_renewal": 0.0,
                                    "schedule": "quadratic", "steps": 8, "guidance_scale": 2.0, "noise_matching": False}
# Contrast transfer at tau 0.6 plus the target domain's noise (docs/evaluation.md, "Noise matching"): on the
# measured frontier of a dose change and of sim-high -> clinical-exposure (docs/frontier.md).
MATCHED_CONTRAST_AND_NOISE: dict[str, Any] = MATCHED_CONTRAST | {"tau": 0.6, "noise_matching": True}
DETERMINISTIC: dict[str, Any] = {"tau": 0.3, "noise_renewal": 0.0, "schedule": "quadratic", "steps": 8,
                                 "guidance_scale": 2.0, "contrast_transfer": False, "noise_matching": False}
"""The published deterministic translation (the network alone, no noise renewal) at its frontier point;
the plain field defaults (tau 0.6, guidance 1, 4 uniform Euler steps) are dominated by it (docs/frontier.md)."""

PRESETS: dict[str, dict[str, Any]] = {
    "deterministic": DETERMINISTIC,
    "synthesise-noise": NOISE_SYNTHESIS,
    "matched-contrast": MATCHED_CONTRAST,
    "matched-contrast-and-noise": MATCHED_CONTRAST_AND_NOISE,
}
"""Named settings the panel offers as buttons and the CLI as --preset."""

DEFAULT_PRESET = "matched-contrast-and-noise"
"""The setting the panel and `medshift translate` start from: the best average rank over all pairs
(docs/evaluation.md), on the measured frontier of a dose change and of sim-high -> clinical-exposure and of its
family on sim-low -> clinical-normal (docs/frontier.md); the network alone is the preset "deterministic"."""
RECOMMENDED: dict[str, Any] = DEFAULTS | PRESETS[DEFAULT_PRESET]
"""Every field's value in the panel's and the command line's default setting (DEFAULTS with DEFAULT_PRESET)."""
