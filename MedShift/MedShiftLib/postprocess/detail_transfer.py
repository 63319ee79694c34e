"""Carrying a radiograph's fine detail past the model's working grid (a two-level Laplacian split).

The model translates the image at its training scale (the working grid, often several times coarser
than a clinical detector). What the working grid cannot hold, the input's fine band

    fine = input - up(down(input)),

is not sent through the model; the output is the input plus the translation's change brought up to
the input's grid,

    output = input + up(translated - down(input)) = up(translated) + fine,

so edges, trabeculae and the detector's own noise texture stay where they were at the input's own
resolution, and the model's change (tone, contrast, style at the working scale) is added on top. The
change is cleaned of the patch stem's grid first (patch_grid.py), so no crosshatch is scaled up, and
when the input is finer than the working grid it is smoothed by up to one working pixel
(`change_smoothing_px`), so the model's finest texture does not come out as blobs either.
"""
from __future__ import annotations

from torch import Tensor

from ..engine.working_grid import resample
from .patch_grid import gaussian_blur, remove_patch_grid


def upsampling(full_shape: tuple[int, int], working_shape: tuple[int, int]) -> float:
    """How many input pixels one working pixel spans (the larger of rows and columns)."""
    return max(full_shape[0] / working_shape[0], full_shape[1] / working_shape[1])


def change_smoothing_px(full_shape: tuple[int, int], working_shape: tuple[int, int]) -> float:
    """Gaussian sigma (working pixels) for the change: 0 at the input's own scale, 1 from 2x upsampling on.

    The working grid's finest texture (noise and sub-patch detail the model made up) would come out as
    blobs several input pixels wide; the input's own fine band takes its place.
    """
    return float(min(1.0, max(0.0, upsampling(full_shape, working_shape) - 1.0)))


def translation_change(coarse_input: Tensor, coarse_output: Tensor, patch_size: int, smoothing_px: float) -> Tensor:
    """What the translation changed on the working grid, without the patch stem's grid pattern, smoothed."""
    change = remove_patch_grid(coarse_output - coarse_input, patch_size)
    return gaussian_blur(change, smoothing_px) if smoothing_px > 0 else change


def fine_band(full: Tensor, working_shape: tuple[int, int]) -> Tensor:
    """What the working grid cannot hold: full - up(down(full))."""
    return full - resample(resample(full, working_shape), tuple(full.shape[-2:]))


def add_change_at_full_resolution(full_input: Tensor, change: Tensor) -> Tensor:
    """The full-resolution input plus the working-grid change resampled to its grid (bicubic)."""
    return full_input + resample(change.to(full_input.device, full_input.dtype), tuple(full_input.shape[-2:]))
