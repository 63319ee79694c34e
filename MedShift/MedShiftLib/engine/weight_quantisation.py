"""Int8 weights with one scale per output channel: a checkpoint about half the size of float16, read back as float32.

A floating weight of at least 2 dimensions and MIN_QUANTISED_ELEMENTS values (the 3x3 convolutions of the coarser
levels, the attention's 1x1 projections, the larger embedding projections) is stored as q = round(w / s) in int8,
symmetric, s = max |w| over its output channel / 127, one float32 scale per output channel, saved as
`<name>` + SCALE_SUFFIX. Every other floating tensor stays float16: biases, norms, the label embedding table, and
the small weights of the finest levels, the stem, the head, the patch skip and the time MLP (in the bundled model
522,632 values, 9.5 %: 1.05 MB in float16, 0.52 MB more than int8 would take). Measured on the bundled model
(benchmarks/int8_weights.py, docs/bundled_model.md), those small tensors carry almost all of int8's error:
quantised as well, the network's velocity changes by 2.8e-3 of its RMS instead of 3.1e-4.
The safetensors metadata key WEIGHTS_FORMAT_KEY names the format; files without it hold plain float weights.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import CheckpointError

WEIGHTS_FORMAT_KEY = "weights_format"
FLOAT_WEIGHTS = "float"
INT8_WEIGHTS = "int8-symmetric-per-output-channel"
KNOWN_WEIGHTS_FORMATS = (FLOAT_WEIGHTS, INT8_WEIGHTS)
SCALE_SUFFIX = ".int8_scale"
MIN_QUANTISED_ELEMENTS = 40_000
INT8_LEVELS = 127
_REPACKAGE = ("the file is damaged or was not written by MedShift: copy it again from where it came from, "
              "or package it again with scripts/package_bundled_model.py")


def is_quantised(value: torch.Tensor) -> bool:
    """True for the weights int8 storage quantises: floating, >= 2 dims, >= MIN_QUANTISED_ELEMENTS values."""
    return value.is_floating_point() and value.dim() >= 2 and value.numel() >= MIN_QUANTISED_ELEMENTS


def quantise_per_output_channel(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(int8 values, float32 scale per output channel) with weight ~= values * scale along dim 0."""
    flat = weight.detach().to("cpu", torch.float32).reshape(weight.shape[0], -1)
    peak = flat.abs().amax(dim=1)
    scale = torch.where(peak > 0, peak / INT8_LEVELS, torch.ones_like(peak))  # an all-zero channel: any scale > 0
    values = torch.round(flat / scale[:, None]).clamp_(-INT8_LEVELS, INT8_LEVELS).to(torch.int8)
    return values.reshape(weight.shape).contiguous(), scale.contiguous()


def int8_tensors(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors of an int8 checkpoint: quantised weights with their scales, the rest in float16.

    ValueError for a weight that is not finite, or a name that could be taken for a scale."""
    tensors: dict[str, torch.Tensor] = {}
    for name, value in state_dict.items():
        value = value.detach().to("cpu")
        if name.endswith(SCALE_SUFFIX) or value.dtype == torch.int8:
            raise ValueError(f"{name}: int8 storage cannot hold a tensor named *{SCALE_SUFFIX} or already in int8")
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise ValueError(f"weight {name} is not finite; int8 storage needs finite weights")
        if is_quantised(value):
            tensors[name], tensors[name + SCALE_SUFFIX] = quantise_per_output_channel(value)
        else:
            tensors[name] = (value.to(torch.float16) if value.is_floating_point() else value).contiguous().clone()
    return tensors


def checked_weights_format(path: Path, metadata: dict[str, str]) -> str:
    """The file's weights format (FLOAT_WEIGHTS when unrecorded); CheckpointError for one this MedShift cannot read."""
    name = metadata.get(WEIGHTS_FORMAT_KEY, FLOAT_WEIGHTS)
    if name not in KNOWN_WEIGHTS_FORMATS:
        raise CheckpointError(f"{path}: its weights are stored as {name!r}, which this MedShift does not read "
                              f"(it reads {', '.join(KNOWN_WEIGHTS_FORMATS)}); update MedShift, or package the "
                              "checkpoint again in float16")
    return name


def float32_weights(path: Path, tensors: dict[str, torch.Tensor], weights_format: str) -> dict[str, torch.Tensor]:
    """The stored tensors as float32 weights, int8 ones times their scales; CheckpointError for a damaged pairing."""
    scales = {k.removesuffix(SCALE_SUFFIX): v for k, v in tensors.items() if k.endswith(SCALE_SUFFIX)}
    weights = {k: v for k, v in tensors.items() if not k.endswith(SCALE_SUFFIX)}
    if scales and weights_format != INT8_WEIGHTS:
        raise CheckpointError(f"{path}: int8 scales ({next(iter(scales))}{SCALE_SUFFIX}) in a file whose weights "
                              f"format is {weights_format!r}; {_REPACKAGE}")
    out = {}
    for name, value in weights.items():
        if value.dtype == torch.int8:
            out[name] = _dequantised(path, name, value, scales.pop(name, None))
        else:
            out[name] = value.float() if value.is_floating_point() else value
    if scales:
        raise CheckpointError(f"{path}: a scale for {next(iter(scales))}, which is not an int8 weight; {_REPACKAGE}")
    return out


def _dequantised(path: Path, name: str, values: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    """values * scale per output channel in float32, after checking the scale."""
    if scale is None:
        raise CheckpointError(f"{path}: int8 weight {name} has no scale ({name}{SCALE_SUFFIX}); {_REPACKAGE}")
    if values.dim() < 2 or not scale.is_floating_point() or tuple(scale.shape) != (values.shape[0],):
        raise CheckpointError(f"{path}: the scale of int8 weight {name} has shape {tuple(scale.shape)} "
                              f"({scale.dtype}) where {values.shape[0] if values.dim() else 0} output channels "
                              f"need one float each; {_REPACKAGE}")
    scale = scale.float()
    if not (torch.isfinite(scale).all() and (scale > 0).all()):
        raise CheckpointError(f"{path}: the scale of int8 weight {name} holds NaN, infinity, zero or a negative "
                              f"number; {_REPACKAGE}")
    return values.float() * scale.reshape(-1, *([1] * (values.dim() - 1)))
