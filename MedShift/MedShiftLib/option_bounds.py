"""The range of a numeric option, and its check: one line naming the option, its value and what is allowed.

Every numeric option of every command has one (settings.TranslationSettings and training.config.TrainingConfig
keep theirs in their fields' metadata; the other commands' are in cli_checks.py), so a value that cannot work
is refused before any compute. NaN and infinity are outside every range.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from .errors import MedShiftError

MAX_SEED = 2**31 - 1
"""Seeds are 0..MAX_SEED: numpy and torch take them, and seed + image index stays a 32-bit integer."""


@dataclass(frozen=True)
class Bounds:
    """Allowed values low..high (ends included unless `low_open`/`high_open`); `note` says what the values mean."""

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False
    note: str = ""

    def contains(self, value: float) -> bool:
        """True for a finite number within the range (False for NaN and infinity)."""
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            return False
        if not math.isfinite(number):
            return False
        above = number > self.low if self.low_open else number >= self.low
        below = number < self.high if self.high_open else number <= self.high
        return above and below

    def describe(self) -> str:
        """'0..1000' for a closed range, else e.g. '0 <= x < 1' or '0 < x <= 10'."""
        low, high = _number(self.low), _number(self.high)
        if not (self.low_open or self.high_open):
            return f"{low}..{high}"
        return f"{low} {'<' if self.low_open else '<='} x {'<' if self.high_open else '<='} {high}"

    def check(self, name: str, value: Any) -> Any:
        """`value` itself when allowed; MedShiftError "NAME VALUE: must be within ..." otherwise."""
        if not self.contains(value):
            note = f" ({self.note})" if self.note else ""
            raise MedShiftError(f"{name} {value}: must be within {self.describe()}{note}")
        return value


def _number(value: float) -> str:
    """A range end as written: 2147483647, 0.5, 1e-06."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def check_fields(instance: Any, name_of=lambda f: f.metadata.get("flag", "--" + f.name.replace("_", "-"))) -> None:
    """Check every dataclass field of `instance` whose metadata has "bounds" (None values are left alone)."""
    for f in fields(instance):
        bounds = f.metadata.get("bounds")
        value = getattr(instance, f.name)
        if bounds is not None and value is not None:
            bounds.check(name_of(f), value)
