"""Evaluate a velocity field on an image too large for one pass, in overlapping tiles.

The whole image stays one ODE state; only the velocity evaluation is split. Each tile's velocity is
weighted by a window that ramps linearly from near zero to one across the overlap on every side
that borders another tile (and is flat at the image border), and the weighted sum is divided by
the summed weights. Blending at every solver step, not stitching outputs, is what leaves no seams;
peak memory is set by the tile size, not the image size.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

VelocityFn = Callable[[Tensor, float], Tensor]


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size `tile` covering [0, length) with at least `overlap` overlap."""
    if tile >= length:
        return [0]
    stride = tile - overlap
    if stride <= 0:
        raise ValueError(f"tile overlap {overlap} must be smaller than the tile size {tile}")
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def _ramp(tile: int, overlap: int, ramp_start: bool, ramp_end: bool) -> Tensor:
    w = torch.ones(tile)
    if overlap > 0:
        ramp = (torch.arange(overlap, dtype=torch.float32) + 0.5) / overlap
        if ramp_start:
            w[:overlap] = ramp
        if ramp_end:
            w[-overlap:] = ramp.flip(0)
    return w


def blend_window(height: int, width: int, tile: int, overlap: int, top: int, left: int) -> Tensor:
    """(h, w) weights of the tile at (top, left) in an image of (height, width)."""
    th, tw = min(tile, height), min(tile, width)
    wy = _ramp(th, overlap, top > 0, top + th < height)
    wx = _ramp(tw, overlap, left > 0, left + tw < width)
    return wy[:, None] * wx[None, :]


def tiled(velocity: VelocityFn, tile: int, overlap: int) -> VelocityFn:
    """Wrap `velocity` so it is evaluated tile by tile when the image is larger than `tile`."""

    def evaluate(x: Tensor, t: float) -> Tensor:
        height, width = x.shape[-2:]
        if height <= tile and width <= tile:
            return velocity(x, t)
        out = torch.zeros_like(x)
        weight_sum = torch.zeros((height, width), dtype=x.dtype, device=x.device)
        for top in tile_starts(height, tile, overlap):
            for left in tile_starts(width, tile, overlap):
                th, tw = min(tile, height), min(tile, width)
                window = blend_window(height, width, tile, overlap, top, left).to(x)
                v = velocity(x[..., top:top + th, left:left + tw], t)
                out[..., top:top + th, left:left + tw] += v * window
                weight_sum[top:top + th, left:left + tw] += window
        return out / weight_sum

    return evaluate
