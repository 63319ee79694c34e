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
(`change_smoothing_px`), so the model's finest texture does not come out as blobs either. A change
computed at the input's own resolution (contrast transfer's grey-level curve) is added as it is, and
the sum is bounded so that no pixel is taken to the ends of the image's range (`bounded_change`).
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..engine.working_grid import resample
from .blur import box_taps, local_mean, separable_filter
from .patch_grid import remove_patch_grid

EASING_LIMIT = 4.0  # tanh(4) = 0.9993: the eased change stops 0.07 % of the headroom short of the end


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
    return local_mean(change, smoothing_px) if smoothing_px > 0 else change


def fine_band(full: Tensor, working_shape: tuple[int, int]) -> Tensor:
    """What the working grid cannot hold: full - up(down(full))."""
    return full - resample(resample(full, working_shape), tuple(full.shape[-2:]))


def add_change_at_full_resolution(full_input: Tensor, change: Tensor, full_change: Tensor | None = None,
                                  margin: float = 0.0) -> Tensor:
    """The full-resolution input plus the working-grid change resampled to its grid (bicubic) and `full_change`
    (a change already at the input's resolution), the sum bounded by each image's range (`bounded_change`)."""
    full_shape = tuple(full_input.shape[-2:])
    total = resample(change.to(full_input.device, full_input.dtype), full_shape)
    if full_shape != tuple(change.shape[-2:]):
        total = working_pixel_average(total, (full_shape[0] / change.shape[-2], full_shape[1] / change.shape[-1]))
    if full_change is not None:
        total = total + full_change
    return full_input + bounded_change(full_input, total, margin)


def working_pixel_average(x: Tensor, pixels_per_working_pixel: tuple[float, float]) -> Tensor:
    """(B, 1, H, W) averaged over one working pixel's width in rows and columns (edges replicated).

    Interpolating a working-grid change up leaves an imprint of the working grid: its spectrum repeats
    around the grid's frequencies (k / working pixel), a lattice of peaks, i.e. blobs one working pixel
    apart. A box exactly one working pixel wide has its zeros at those frequencies and takes them out.
    """
    taps = [box_taps(width, x.dtype, x.device) if width > 1.0 else None for width in pixels_per_working_pixel]
    return separable_filter(x, taps[0], taps[1], border="replicate")


def bounded_change(full_input: Tensor, change: Tensor, margin: float = 0.0) -> Tensor:
    """`change` to images (B, 1, H, W) that takes no pixel to or past its image's own minimum or maximum.

    A detector clips at its ends, and a pixel there (shutters, direct exposure, saturation) holds no
    anatomy: it keeps its value. Elsewhere the change is kept as it is while it uses at most half the
    headroom h to the extreme it moves towards (less `margin`: one stored grey level, so rounding does
    not land on the extreme either), and beyond that eased towards h without reaching it
    (h/2 + h/2 tanh((c - h/2) / (h/2)), the tanh's argument at most EASING_LIMIT, so that in float32 too
    it stays short of h): a translation adds no clipped pixels.
    """
    low = full_input.amin(dim=(-2, -1), keepdim=True)
    high = full_input.amax(dim=(-2, -1), keepdim=True)
    half = torch.where(change > 0, high - full_input, full_input - low).sub_(margin).clamp_(min=0.0).mul_(0.5)
    size = change.abs()
    over = size > half  # only these are eased; the rest keep their change exactly
    result = change.clone()
    if bool(over.any()):
        h, c = half[over], size[over]
        eased = h + h * torch.tanh(((c - h) / h.clamp(min=1e-12)).clamp(max=EASING_LIMIT))
        result[over] = torch.sign(change[over]) * eased
    return result.masked_fill_((full_input == low) | (full_input == high), 0.0)
