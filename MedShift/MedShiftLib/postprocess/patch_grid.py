"""Removing the patch stem's grid from a translation's change.

The network sees the image in `patch_size` x `patch_size` patches, so its output can carry a faint
pattern that repeats every patch: a crosshatch at the spatial frequencies (a/p, b/p) cycles per
working pixel. Its amplitude follows the image content, so it is not one fixed tile. It is estimated
locally: around each pixel, the smoothed mean of the pixels sharing its phase (row mod p, column mod p)
minus the smoothed mean of all pixels; what is left after subtracting that is free of the grid (a
notch at every multiple of 1/p whose width is set by the smoothing), and anything that does not
repeat with the patch period passes almost unchanged (the notches take a few per cent of the bins).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .blur import local_mean

SMOOTHING_PATCHES = 2.0  # Gaussian sigma of the local phase means, in patches


def patch_grid_pattern(change: Tensor, period: int) -> Tensor:
    """The part of (B, 1, H, W) `change` that repeats with `period` pixels in rows and columns (local estimate).

    Each phase's pixels form a sub-image one patch apart; its local mean (that sub-image blurred by
    SMOOTHING_PATCHES) minus the local mean of all pixels at the same positions is the pattern there.
    """
    rows, cols = change.shape[-2:]
    if period < 2 or min(rows, cols) < 2 * period:
        return torch.zeros_like(change)
    pad_rows, pad_cols = -rows % period, -cols % period
    padded = F.pad(change, (0, pad_cols, 0, pad_rows), mode="replicate") if pad_rows or pad_cols else change
    overall = local_mean(padded, SMOOTHING_PATCHES * period)
    batch, height, width = padded.shape[0], padded.shape[-2] // period, padded.shape[-1] // period
    phases = F.pixel_unshuffle(padded, period).reshape(-1, 1, height, width)  # every phase of every image at once
    phase_means = F.pixel_shuffle(local_mean(phases, SMOOTHING_PATCHES).reshape(batch, -1, height, width), period)
    return (phase_means - overall)[..., :rows, :cols]


def remove_patch_grid(change: Tensor, period: int) -> Tensor:
    """`change` (B, 1, H, W) without the pattern that repeats every `period` pixels (see module docstring)."""
    return change - patch_grid_pattern(change, period)
