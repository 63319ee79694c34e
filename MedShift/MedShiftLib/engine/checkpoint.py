"""MedShift checkpoints: one `.safetensors` file with the (EMA) weights and JSON metadata.

Loading never unpickles Python objects: safetensors holds raw tensors plus a string->string header,
and every field read from it is type-checked before use. Weights are stored in float32 (training runs),
float16 (half the size) or mostly int8 with a scale per output channel (about a quarter;
weight_quantisation.py, whose format the metadata key "weights_format" names), and always loaded as float32.
The metadata key "medshift" holds JSON:

    format_version   int, CHECKPOINT_FORMAT_VERSION
    model_config     UNetConfig.to_dict()
    domains          domain names in label order (label i = domains[i]; label len(domains) = null)
    resolution       working resolution in pixels (the training crop size, and the default tile size)
    pixel_spacing_mm detector pixel spacing the model was trained at, or null when unknown
    intensity        how images were normalised (see intensity.py)
    provenance       free-form: data, steps, coupling, seed, metrics, software versions

Each domain's statistics (for contrast transfer and noise matching) sit beside the weights in
`<stem>.stats.json` (domain_statistics.py), written and read with the checkpoint, so re-measuring them
never rewrites the weights. Older checkpoints held them in the metadata as `domain_contrast`; that is
still read when no statistics file is there.
"""
from __future__ import annotations

import errno
import json
import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..atomic_files import atomic_target
from ..errors import CheckpointError, MedShiftError
from ..settings import TranslationSettings
from .checkpoint_header import (  # noqa: F401 (BUNDLED_MODEL_*, default_model_path: this module's API)
    BUNDLED_MODEL_DIR,
    BUNDLED_MODEL_NAME,
    CHECKPOINT_FORMAT,
    checked_domains,
    default_model_path,
    domain_label,
    read_medshift_metadata,
    read_metadata,
)
from .devices import network_memory_format
from .domain_statistics import DomainStatistics, read_statistics, statistics_path, write_statistics
from .intensity import DEFAULT_PERCENTILES
from .network import UNetConfig, VelocityUNet, count_parameters
from .weight_quantisation import (
    FLOAT_WEIGHTS,
    INT8_WEIGHTS,
    SCALE_SUFFIX,
    WEIGHTS_FORMAT_KEY,
    checked_weights_format,
    float32_weights,
    int8_tensors,
)

CHECKPOINT_FORMAT_VERSION = 1
DEFAULT_INTENSITY = {"mapping": "robust-percentile", "percentiles": list(DEFAULT_PERCENTILES), "range": [-1.0, 1.0],
                     "convention": "MONOCHROME2"}
REQUIRED_KEYS = ("format_version", "model_config", "domains", "resolution", "intensity", "provenance")
MIN_RESOLUTION, MAX_RESOLUTION = 8, 8192


@dataclass
class CheckpointInfo:
    """Everything a checkpoint says about itself besides the weights."""

    config: UNetConfig
    domains: tuple[str, ...]
    resolution: int
    pixel_spacing_mm: float | None = None
    intensity: dict = field(default_factory=lambda: dict(DEFAULT_INTENSITY))
    provenance: dict = field(default_factory=dict)
    format_version: int = CHECKPOINT_FORMAT_VERSION
    statistics: DomainStatistics | None = None
    statistics_provenance: dict = field(default_factory=dict)

    def label_of(self, domain: str) -> int:
        """Label index of a domain name; DomainError listing the valid names otherwise."""
        return domain_label(self.domains, domain)

    def validate(self, settings: TranslationSettings) -> TranslationSettings:
        """`settings` checked against this model (domains, recorded statistics, tile size); MedShiftError otherwise."""
        settings.validated()
        self.label_of(settings.source_domain)
        self.label_of(settings.target_domain)
        if settings.contrast_transfer and self.statistics is None:
            raise MedShiftError(
                "this model records no domain statistics, which contrast transfer needs; add them with "
                "`medshift domain-contrast --model CKPT --data TRAINING_DIR`, or translate without contrast transfer "
                "(--preset deterministic)")
        if settings.noise_matching and (self.statistics is None or self.statistics.noise_power is None):
            raise MedShiftError(
                "this model records no domain noise power spectra, which noise matching needs; add them with "
                "`medshift domain-contrast --model CKPT --data TRAINING_DIR`, or translate without noise matching "
                "(--preset deterministic)")
        if settings.noise_matching and self.statistics.noise_level is None:
            raise MedShiftError(
                "this model's domain statistics predate noise levels that follow the grey level (format version 1), "
                "which noise matching needs; measure them again with `medshift domain-contrast --model CKPT --data "
                "TRAINING_DIR --overwrite`, or translate without noise matching (--preset matched-contrast)")
        factor = self.config.downsampling_factor
        if settings.tile_size < factor:
            raise MedShiftError(f"tile size must be at least {factor} pixels, got {settings.tile_size}")
        return settings

    def to_json(self) -> str:
        """The "medshift" metadata string (the statistics go to their own file)."""
        return json.dumps({
            "format_version": self.format_version,
            "model_config": self.config.to_dict(),
            "domains": list(self.domains),
            "resolution": self.resolution,
            "pixel_spacing_mm": self.pixel_spacing_mm,
            "intensity": self.intensity,
            "provenance": self.provenance,
        })


def save_safetensors_atomically(tensors: dict[str, torch.Tensor], metadata: dict[str, str], path: Path) -> None:
    """Write a safetensors file through a temporary name and rename it into place (OSError when the disk refuses)."""
    with atomic_target(path) as tmp:
        try:
            save_file(tensors, str(tmp), metadata=metadata)
        except SafetensorError as exc:  # "I/O error: No space left on device (os error 28)", or older:
            code = re.search(r"\(os error (\d+)\)|code: (\d+)", str(exc))  # "IoError(Os { code: 28, ... })"
            number = int(code.group(1) or code.group(2)) if code else errno.EIO
            raise OSError(number, os.strerror(number), str(path)) from exc


def save_checkpoint(path: str | Path, state_dict: dict[str, torch.Tensor], info: CheckpointInfo,
                    weights_dtype: torch.dtype = torch.float32) -> Path:
    """Write weights and metadata, and the domain statistics beside them, each atomically.

    `weights_dtype` torch.float16 halves the file; floating-point weights are stored in it, ValueError when
    one does not fit (overflow to infinity). torch.int8 about quarters it: the large weights in int8 with a
    scale per output channel, the small tensors in float16 (weight_quantisation.py; ValueError for a weight
    that is not finite). Loading always gives float32.
    A checkpoint without statistics removes a statistics file left beside `path` by an earlier one.
    """
    if len(info.domains) != info.config.num_domains:
        raise ValueError(f"{len(info.domains)} domain names for a model of {info.config.num_domains} domains")
    metadata = {"format": CHECKPOINT_FORMAT, "medshift": info.to_json()}
    if weights_dtype == torch.int8:
        tensors = int8_tensors(state_dict)
        metadata[WEIGHTS_FORMAT_KEY] = INT8_WEIGHTS
    else:
        tensors = {k: stored_weight(v, weights_dtype) for k, v in state_dict.items()}
    overflowed = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()
                  and torch.isfinite(state_dict[k]).all()]
    if overflowed:  # int8 storage keeps its small tensors, the only ones that can overflow, in float16
        stored_in = torch.float16 if weights_dtype == torch.int8 else weights_dtype
        raise ValueError(f"weights {', '.join(overflowed[:3])} do not fit {stored_in}; save them in float32")
    path = Path(path)
    save_safetensors_atomically(tensors, metadata, path)
    if info.statistics is not None:
        write_statistics(statistics_path(path), info.statistics, info.domains, info.statistics_provenance)
    else:
        statistics_path(path).unlink(missing_ok=True)
    return path


def stored_weight(value: torch.Tensor, weights_dtype: torch.dtype) -> torch.Tensor:
    """One weight as written to the file: on the CPU, contiguous, floating point in `weights_dtype`."""
    value = value.detach().to("cpu")
    if value.is_floating_point():
        value = value.to(weights_dtype)
    return value.contiguous().clone()


def _parse_info(path: Path, raw: dict, weights_format: str = FLOAT_WEIGHTS) -> CheckpointInfo:
    """The checkpoint's decoded MedShift metadata checked field by field."""
    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if missing:
        raise CheckpointError(f"{path}: checkpoint metadata lacks {', '.join(missing)}")
    version = raw["format_version"]
    if version != CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version!r}; this MedShift reads version "
            f"{CHECKPOINT_FORMAT_VERSION} (update MedShift, or re-export the checkpoint)")
    domains = checked_domains(path, raw["domains"])
    resolution = raw["resolution"]
    if not isinstance(resolution, int) or not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
        raise CheckpointError(f"{path}: 'resolution' {resolution!r} is not a whole number of pixels in "
                              f"{MIN_RESOLUTION}..{MAX_RESOLUTION}; the file is corrupt or not a MedShift checkpoint")
    spacing = raw.get("pixel_spacing_mm")
    if spacing is not None and (not isinstance(spacing, (int, float)) or spacing <= 0):
        raise CheckpointError(f"{path}: 'pixel_spacing_mm' must be a positive number or null")
    if not isinstance(raw["intensity"], dict) or not isinstance(raw["provenance"], dict):
        raise CheckpointError(f"{path}: 'intensity' and 'provenance' must be JSON objects")
    try:
        config = UNetConfig.from_dict(raw["model_config"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: invalid model_config ({exc})") from None
    if config.num_domains != len(domains):
        raise CheckpointError(f"{path}: model has {config.num_domains} domain slots but {len(domains)} names")
    _check_network_fits_file(path, config, bytes_per_weight=1 if weights_format == INT8_WEIGHTS else 2)
    statistics = None
    if raw.get("domain_contrast") is not None:  # checkpoints written before the statistics file existed
        try:
            statistics = DomainStatistics.from_dict(raw["domain_contrast"], domains)
        except CheckpointError as exc:
            raise CheckpointError(f"{path}: {exc}") from None
    return CheckpointInfo(config=config, domains=domains, resolution=resolution,
                          pixel_spacing_mm=None if spacing is None else float(spacing), intensity=raw["intensity"],
                          provenance=raw["provenance"], format_version=version, statistics=statistics)


def _check_network_fits_file(path: Path, config: UNetConfig, bytes_per_weight: int) -> None:
    """CheckpointError when the config describes a network whose weights (2 bytes each, 1 in int8) the file cannot hold.

    Counted on the meta device: nothing is allocated, so hostile metadata (channels of 65536) costs nothing."""
    with torch.device("meta"):
        parameters = count_parameters(VelocityUNet(config))
    size = path.stat().st_size
    if parameters * bytes_per_weight > size:
        raise CheckpointError(f"{path}: its metadata describes a network of {parameters:,} parameters, more than its "
                              f"{size:,} bytes can hold; the file is corrupt or not a MedShift checkpoint: "
                              "copy it again from where it came from")


def read_checkpoint_info(path: str | Path) -> CheckpointInfo:
    """The metadata of a checkpoint and its domain statistics, validated, without loading its weights."""
    return _read_info(Path(path))[0]


def _read_info(path: Path) -> tuple[CheckpointInfo, str]:
    """read_checkpoint_info's result and the file's weights format, from one read of the header."""
    metadata = read_metadata(path)
    raw = read_medshift_metadata(path, metadata)
    weights_format = checked_weights_format(path, metadata)
    info = _parse_info(path, raw, weights_format)
    beside = statistics_path(path)
    if beside.is_file():
        info.statistics, info.statistics_provenance = read_statistics(beside, info.domains)
    elif os.path.lexists(beside):  # a folder or a FIFO of that name: say so rather than fall back silently
        warnings.warn(f"{beside} is not a file, so the model's domain statistics are not read from it; "
                      "move it away (or run `medshift domain-contrast` again)", UserWarning, stacklevel=1)
    return info, weights_format


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[VelocityUNet, CheckpointInfo]:
    """A ready (eval-mode) network and its metadata; CheckpointError for anything wrong with the file.

    Its weights are in the layout devices.network_memory_format picks (channels-last on a CPU and CUDA).
    """
    path = Path(path)
    info, weights_format = _read_info(path)
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: cannot read the weights ({exc}); the file is corrupt or truncated") from None
    model = VelocityUNet(info.config)
    # names and shapes first (an int8 weight keeps its shape; its scale is checked with it), so nothing is
    # dequantised for a file that does not fit the model
    _check_weights_match(path, model.state_dict(), {k: v for k, v in tensors.items() if not k.endswith(SCALE_SUFFIX)})
    # float16 and int8 files (the bundled model) are computed in float32; checked for NaN/inf after the cast
    tensors = float32_weights(path, tensors, weights_format)
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{path}: weights contain NaN or infinity ({', '.join(bad[:3])}); the file is "
                              f"damaged{_divergence_hint(info)}: copy it again from where it came from")
    model.load_state_dict(tensors)
    # save_checkpoint stores the weights contiguous again
    return model.to(device, memory_format=network_memory_format(device)).eval(), info


def provenance_section(info: CheckpointInfo, key: str, remedy: str = "re-package the model") -> dict:
    """The provenance's JSON object `key` ({} when absent or null); CheckpointError (one line, ending in `remedy`)
    when a hand-edited or hostile file holds something else there."""
    value = info.provenance.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CheckpointError(f"the model's provenance field {key!r} is a {type(value).__name__}, not a JSON object: "
                              f"its metadata was edited or damaged; {remedy}")
    return value


def _check_weights_match(path: Path, expected: dict[str, torch.Tensor], stored: dict[str, torch.Tensor]) -> None:
    """CheckpointError naming the missing, unexpected and misshapen weights of `stored` against the model's."""
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    mismatched = [f"{k} {tuple(stored[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
                  if k in stored and stored[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f"missing weights: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    if unexpected:
        problems.append(f"unexpected weights: {', '.join(unexpected[:5])}{' ...' if len(unexpected) > 5 else ''}")
    if mismatched:
        problems.append(f"shape mismatch: {', '.join(mismatched[:5])}{' ...' if len(mismatched) > 5 else ''}")
    if problems:
        raise CheckpointError(f"{path}: weights do not match its model config ({'; '.join(problems)})")


def _divergence_hint(info: CheckpointInfo) -> str:
    """", or the training that wrote it diverged" when the recorded loss is not a finite number, else ""."""
    loss = info.provenance.get("metrics", {}).get("loss") if isinstance(info.provenance.get("metrics"), dict) else None
    finite = isinstance(loss, (int, float)) and math.isfinite(loss)
    return "" if finite else ", or the training that wrote it diverged (retrain with a lower learning rate)"


