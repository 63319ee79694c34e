"""Bringing an image of any size to the model's working grid and back.

A model is trained at a working resolution (`resolution` pixels across the training crop) and, when
the training data said so, a detector pixel spacing (`pixel_spacing_mm`). With resample="auto":

* if the model knows its pixel spacing and the image's spacing is known (DICOM, NRRD, NIfTI, MHA),
  the image is resampled so one working pixel covers the same millimetres as in training;
* otherwise (PNG/TIFF, or a model without a spacing) the image's short side is resampled to
  `resolution` pixels, i.e. the whole field of view is seen as in training.

With resample="none" the image is processed on its own grid. Either way the working image is then
reflection-padded to a multiple of the network's downsampling factor; the result is cropped and
resampled back onto the input's own grid (same size, spacing, origin and direction).
Down-sampling uses antialiased bilinear interpolation, up-sampling bicubic.

Sizes are bounded before anything is allocated (InputImageError saying what to do): the image's long
side may be at most MAX_ASPECT_RATIO times its short side (radiographs are not strips; a 2 x 20000 image
would become a 256 x 2,560,000 working grid), and the working grid at most MAX_WORKING_SIDE pixels on a
side and MAX_WORKING_PIXELS in all.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..errors import InputImageError
from ..settings import RESAMPLE_MODES

SPACING_FORMATS = ("dicom", "nrrd", "nifti", "mha")
MAX_ASPECT_RATIO = 10
MAX_WORKING_SIDE = 16384
MAX_WORKING_PIXELS = 8192 * 8192


def working_shape(
    shape: tuple[int, int],
    resolution: int,
    image_spacing_mm: float | None,
    model_spacing_mm: float | None,
    mode: str = "auto",
) -> tuple[int, int]:
    """(rows, cols) at which the model sees an image of `shape`; InputImageError when either is out of bounds."""
    if mode not in RESAMPLE_MODES:
        raise ValueError(f"unknown resample mode {mode!r}; choose one of: {', '.join(RESAMPLE_MODES)}")
    rows, cols = shape
    if max(rows, cols) > MAX_ASPECT_RATIO * min(rows, cols):
        raise InputImageError(f"the image is {rows} x {cols} pixels, a strip rather than a radiograph (MedShift takes "
                              f"images up to {MAX_ASPECT_RATIO} times longer than wide); crop or pad it, or split it "
                              "into squarer pieces")
    if mode == "none":
        working = rows, cols
    else:
        scale = (image_spacing_mm / model_spacing_mm if image_spacing_mm and model_spacing_mm
                 else resolution / min(rows, cols))
        working = max(1, round(rows * scale)), max(1, round(cols * scale))
    if max(working) > MAX_WORKING_SIDE or working[0] * working[1] > MAX_WORKING_PIXELS:
        fix = ("use --resample auto" if mode == "none" else
               "its pixel spacing is much finer than the model's; check the spacing, or use --resample none")
        raise InputImageError(f"the image ({rows} x {cols} pixels) would be translated on a {working[0]} x "
                              f"{working[1]} working grid, larger than the {MAX_WORKING_SIDE} pixels a side and "
                              f"{MAX_WORKING_PIXELS // 1024 // 1024} M pixels MedShift allows; {fix}")
    return working


def resample(x: Tensor, shape: tuple[int, int]) -> Tensor:
    """Resize a (B, C, H, W) batch to `shape` (antialiased when shrinking)."""
    if tuple(x.shape[-2:]) == tuple(shape):
        return x
    shrinking = shape[0] < x.shape[-2] or shape[1] < x.shape[-1]
    mode = "bilinear" if shrinking else "bicubic"
    return F.interpolate(x, size=shape, mode=mode, align_corners=False, antialias=shrinking)


def pad_to_multiple(x: Tensor, factor: int) -> tuple[Tensor, tuple[int, int]]:
    """Reflection-pad the bottom/right of (B, C, H, W) to multiples of `factor`; returns the original (H, W)."""
    h, w = x.shape[-2:]
    ph, pw = -h % factor, -w % factor
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


def crop_to(x: Tensor, shape: tuple[int, int]) -> Tensor:
    """Undo `pad_to_multiple`."""
    return x[..., : shape[0], : shape[1]]


def square_crop(pixels: Tensor, top: int, left: int, side: int, resolution: int) -> Tensor:
    """The side x side square at (top, left) of a (rows, cols) image, resized to (resolution, resolution).

    Antialiased bilinear; a square already of that size is returned as it is (bilinear at scale 1 is exact).
    """
    square = pixels[top:top + side, left:left + side]
    if side == resolution:
        return square
    return F.interpolate(square[None, None], size=(resolution, resolution), mode="bilinear", align_corners=False,
                         antialias=True)[0, 0]


def centre_square(pixels: Tensor, resolution: int) -> Tensor:
    """The centre square of the short side of a (rows, cols) image, resized to (resolution, resolution)."""
    rows, cols = pixels.shape
    short = min(rows, cols)
    return square_crop(pixels, (rows - short) // 2, (cols - short) // 2, short, resolution)
