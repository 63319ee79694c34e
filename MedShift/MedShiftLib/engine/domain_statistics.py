"""Each domain's statistics, measured on its training images: what contrast transfer and noise matching need.

    band_sigmas_px   Gaussian scales of the detail bands (working pixels)
    quantiles        domain -> QUANTILE_COUNT grey levels (model range) at levels 0..1
    band_rms         [source][target] -> rms of each band of the source's images mapped onto the target's
                     grey levels ([t][t]: the target's own images)
    noise_power      domain -> radially averaged noise power spectrum, rings 1..NPS_BINS-1 (flattest
                     NPS_PATCH-pixel patches); None in statistics measured before noise matching existed
    noise_level      domain -> noise variance in NOISE_LEVEL_BINS bins of local grey level over [-1, 1]
                     (null: too few pixels; postprocess/noise_model.py); None in files of format version 1

They live in a small JSON file beside the weights, `<checkpoint stem>.stats.json` (`statistics_path`),
so re-measuring them never rewrites the weights. Checkpoints written before that held them inside the
safetensors header (`domain_contrast`); the loader still reads those when no such file is there.
Measuring them: postprocess.contrast_transfer.measure_domain_statistics.
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..atomic_files import write_bytes_atomically
from ..errors import CheckpointError, MedShiftError

QUANTILE_COUNT = 257
NPS_PATCH = 32
NPS_PATCHES_PER_IMAGE = 12
NPS_BINS = 8
STATISTICS_FORMAT = "medshift-domain-statistics"
NOISE_LEVEL_BINS = 16
STATISTICS_FORMAT_VERSION = 2  # 2: with each domain's noise level curve
READABLE_FORMAT_VERSIONS = (1, 2)
STATISTICS_SUFFIX = ".stats.json"
MAX_STATISTICS_BYTES = 16 * 1024 * 1024


def split_by_domain(images, labels, domains: Sequence[str]) -> dict:
    """{domain: the images (first axis; tensors or arrays) whose label is its index in `domains`}: the input of
    measure_domain_statistics."""
    return {d: images[labels == i] for i, d in enumerate(domains)}


@dataclass(frozen=True)
class DomainStatistics:
    """Per-domain grey-level quantiles, per-pair band contrast and per-domain noise power of training images."""

    band_sigmas_px: tuple[float, ...]
    quantiles: dict[str, tuple[float, ...]]
    band_rms: dict[str, dict[str, tuple[float, ...]]]
    noise_power: dict[str, tuple[float, ...]] | None = None
    noise_level: dict[str, tuple[float | None, ...]] | None = None

    def noise_level_of(self, domain: str) -> tuple[float | None, ...]:
        """The domain's noise level curve; MedShiftError naming the fix when it was not measured."""
        if self.noise_level is None or domain not in self.noise_level:
            raise MedShiftError(f"the model's domain statistics hold no noise level curve of {domain!r} (they predate "
                                "noise that follows the grey level); re-measure them with `medshift domain-contrast "
                                "--model CKPT --data TRAINING_DIR --overwrite`, or translate without noise matching")
        return self.noise_level[domain]

    def noise_power_of(self, domain: str) -> tuple[float, ...]:
        """The domain's noise power spectrum; MedShiftError naming the fix when it was not measured."""
        if self.noise_power is None or domain not in self.noise_power:
            raise MedShiftError(f"the model's domain statistics hold no noise power spectrum of {domain!r}, which "
                                "noise matching needs; re-measure them with `medshift domain-contrast --model CKPT "
                                "--data TRAINING_DIR`, or translate without noise matching")
        return self.noise_power[domain]

    def to_dict(self) -> dict:
        """JSON-ready form."""
        entry = {"band_sigmas_px": list(self.band_sigmas_px),
                 "quantiles": {d: list(q) for d, q in self.quantiles.items()},
                 "band_rms": {s: {t: list(v) for t, v in row.items()} for s, row in self.band_rms.items()}}
        if self.noise_power is not None:
            entry["noise_power"] = {d: list(v) for d, v in self.noise_power.items()}
        if self.noise_level is not None:
            entry["noise_level"] = {d: list(v) for d, v in self.noise_level.items()}
        return entry

    @classmethod
    def from_dict(cls, raw: object, domains: Sequence[str]) -> DomainStatistics:
        """Parse and check a `to_dict` form for a model of `domains`; CheckpointError when malformed."""
        def numbers(values: object, count: int, what: str) -> tuple[float, ...]:
            if not isinstance(values, list):
                found = f"a JSON {type(values).__name__}"
            elif len(values) != count:
                found = f"{len(values)} values"
            else:
                bad = [v for v in values if not (isinstance(v, (int, float)) and not isinstance(v, bool)
                                                 and math.isfinite(v))]
                found = f"the value {bad[0]!r} among them" if bad else ""
            if found:
                raise CheckpointError(f"domain statistics: {what} must be a list of {count} finite numbers, found "
                                      f"{found}; measure them again with `medshift domain-contrast`")
            return tuple(float(v) for v in values)

        if not isinstance(raw, dict):
            raise CheckpointError("domain statistics must be a JSON object")
        sigmas_raw = raw.get("band_sigmas_px")
        if not isinstance(sigmas_raw, list) or not sigmas_raw:
            raise CheckpointError("domain statistics: band_sigmas_px must be a non-empty list")
        sigmas = numbers(sigmas_raw, len(sigmas_raw), "band_sigmas_px")
        if any(s <= 0 for s in sigmas) or list(sigmas) != sorted(sigmas):
            raise CheckpointError("domain statistics: band_sigmas_px must be increasing positive numbers")
        quantiles_raw, rms_raw = raw.get("quantiles"), raw.get("band_rms")
        if not isinstance(quantiles_raw, dict) or set(quantiles_raw) != set(domains):
            raise CheckpointError("domain statistics: quantiles must list exactly the model's domains")
        quantiles = {d: numbers(quantiles_raw[d], QUANTILE_COUNT, f"quantiles of {d}") for d in domains}
        if any(list(q) != sorted(q) for q in quantiles.values()):
            raise CheckpointError("domain statistics: quantiles must be non-decreasing")
        if not isinstance(rms_raw, dict) or set(rms_raw) != set(domains):
            raise CheckpointError("domain statistics: band_rms must list exactly the model's domains")
        band_rms = {}
        for source in domains:
            row = rms_raw[source]
            if not isinstance(row, dict) or set(row) != set(domains):
                raise CheckpointError(f"domain statistics: band_rms of {source} must list every domain")
            band_rms[source] = {t: numbers(row[t], len(sigmas), f"band_rms {source}->{t}") for t in domains}
            if any(v < 0 for row_values in band_rms[source].values() for v in row_values):
                raise CheckpointError("domain statistics: band_rms must not be negative")
        noise_raw, noise_power = raw.get("noise_power"), None
        if noise_raw is not None:
            if not isinstance(noise_raw, dict) or set(noise_raw) != set(domains):
                raise CheckpointError("domain statistics: noise_power must list exactly the model's domains")
            noise_power = {d: numbers(noise_raw[d], NPS_BINS - 1, f"noise_power of {d}") for d in domains}
            if any(v < 0 for values in noise_power.values() for v in values):
                raise CheckpointError("domain statistics: noise_power must not be negative")
        level_raw, noise_level = raw.get("noise_level"), None
        if level_raw is not None:
            if not isinstance(level_raw, dict) or set(level_raw) != set(domains):
                raise CheckpointError("domain statistics: noise_level must list exactly the model's domains")
            noise_level = {d: _optional_variances(level_raw[d], f"noise_level of {d}") for d in domains}
        return cls(band_sigmas_px=sigmas, quantiles=quantiles, band_rms=band_rms, noise_power=noise_power,
                   noise_level=noise_level)


def _optional_variances(values: object, what: str) -> tuple[float | None, ...]:
    """NOISE_LEVEL_BINS finite non-negative numbers or nulls; CheckpointError otherwise."""
    if not (isinstance(values, list) and len(values) == NOISE_LEVEL_BINS and all(
            v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0)
            for v in values)):
        raise CheckpointError(f"domain statistics: {what} must be a list of {NOISE_LEVEL_BINS} non-negative numbers "
                              "or nulls; measure them again with `medshift domain-contrast`")
    return tuple(None if v is None else float(v) for v in values)


def statistics_path(checkpoint_path: str | Path) -> Path:
    """The statistics file that belongs to a checkpoint: `model.safetensors` -> `model.stats.json`."""
    path = Path(checkpoint_path)
    return path.with_name(path.stem + STATISTICS_SUFFIX)


def write_statistics(path: str | Path, statistics: DomainStatistics, domains: Sequence[str],
                     provenance: dict | None = None) -> Path:
    """Write statistics for a model of `domains` (with where they came from) atomically."""
    record = {"format": STATISTICS_FORMAT, "format_version": STATISTICS_FORMAT_VERSION, "domains": list(domains),
              "statistics": statistics.to_dict(), "provenance": provenance or {}}
    return write_bytes_atomically(path, json.dumps(record, indent=1).encode())


def read_statistics(path: str | Path, domains: Sequence[str]) -> tuple[DomainStatistics, dict]:
    """(statistics, provenance) from a `write_statistics` file for a model of `domains`; CheckpointError if unusable."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_STATISTICS_BYTES:
            raise CheckpointError(f"{path}: {path.stat().st_size} bytes is too large for a domain statistics file")
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable domain statistics ({exc}); measure them again with "
                              "`medshift domain-contrast`, or delete the file to translate without them") from None
    if not isinstance(record, dict) or record.get("format") != STATISTICS_FORMAT:
        raise CheckpointError(f"{path}: not a MedShift domain statistics file")
    if record.get("format_version") not in READABLE_FORMAT_VERSIONS:
        raise CheckpointError(f"{path}: domain statistics format version {record.get('format_version')!r}; this "
                              f"MedShift reads versions {', '.join(map(str, READABLE_FORMAT_VERSIONS))}")
    if not isinstance(record.get("provenance", {}), dict):
        raise CheckpointError(f"{path}: 'provenance' must be a JSON object")
    if record.get("domains") != list(domains):
        raise CheckpointError(f"{path}: statistics of domains {record.get('domains')} beside a model of "
                              f"{list(domains)}; measure them again for this model with `medshift domain-contrast`")
    provenance = record.get("provenance", {})
    try:
        return DomainStatistics.from_dict(record.get("statistics"), domains), provenance
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
