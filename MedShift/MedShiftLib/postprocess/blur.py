"""The post-processing's one separable blur: images (B, C, H, W) in torch, on their own device and dtype.

`gaussian_blur` (and `separable_filter` for other symmetric taps, such as a box) with one of three borders:

* "replicate": the edge pixel repeated (scipy's mode="nearest"); contrast transfer's detail bands;
* "reflect": mirrored about the edge pixel, which is not repeated (scipy's mode="mirror"); the noise
  model's local statistics;
* "inside": the weighted mean of the pixels that exist (normalised convolution), so that a sub-image
  and the full image give the same local mean at the same place; the patch grid's phase means.

The Gaussian has int(truncate * sigma + 0.5) taps on each side (scipy's rule). On a CPU the taps are
summed as shifted slices of the padded image (the same sums as conv2d, which on one channel at
3000 x 3000 is 3-4x slower); on other devices conv2d does it.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

BORDERS = ("replicate", "reflect", "inside")


def gaussian_taps(sigma: float, radius: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """The normalised Gaussian of standard deviation `sigma` at offsets -radius..radius."""
    offsets = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    taps = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return taps / taps.sum()


def box_taps(width: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Normalised taps of a box `width` pixels wide centred on a pixel (the end taps partly covered)."""
    radius = int(math.ceil(width / 2 - 0.5))
    offsets = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    weights = ((offsets + 0.5).clamp(max=width / 2) - (offsets - 0.5).clamp(min=-width / 2)).clamp(min=0.0)
    return weights / weights.sum()


def gaussian_radius(sigma: float, truncate: float = 4.0) -> int:
    """Taps each side of a Gaussian of `sigma` pixels cut at `truncate` sigma (at least 1)."""
    return max(1, int(truncate * sigma + 0.5))


def gaussian_blur(x: Tensor, sigma: float, border: str = "replicate", truncate: float = 4.0) -> Tensor:
    """`x` (B, C, H, W) blurred by a Gaussian of `sigma` pixels cut at `truncate` sigma, `border` as the module says.

    With "reflect" the radius is at most the image's smaller side less one (the mirror needs that many pixels).
    """
    radius = gaussian_radius(sigma, truncate)
    if border == "reflect":
        radius = min(radius, min(x.shape[-2:]) - 1)
    taps = gaussian_taps(sigma, radius, x.dtype, x.device)
    return separable_filter(x, taps, taps, border)


def local_mean(x: Tensor, sigma: float) -> Tensor:
    """Gaussian-weighted (3 sigma) local mean of (B, C, H, W) over the pixels inside the image ("inside" border)."""
    return gaussian_blur(x, sigma, border="inside", truncate=3.0)


def separable_filter(x: Tensor, column_taps: Tensor | None, row_taps: Tensor | None, border: str = "replicate"
                     ) -> Tensor:
    """`x` (B, C, H, W) filtered by odd-length taps down its columns (over H), then along its rows (over W).

    None skips that axis. With border "inside" the result is divided by the filtered image of ones.
    """
    if border not in BORDERS:
        raise ValueError(f"unknown border {border!r}; choose one of: {', '.join(BORDERS)}")
    for taps, axis in ((column_taps, -2), (row_taps, -1)):
        if taps is None:
            continue
        x = _filter_axis(x, taps, axis, border)
        if border == "inside":
            shape = [1, 1, 1, 1]
            shape[axis] = x.shape[axis]
            x = x / _filter_axis(torch.ones(shape, dtype=x.dtype, device=x.device), taps, axis, border)
    return x


def _filter_axis(x: Tensor, taps: Tensor, axis: int, border: str) -> Tensor:
    """`x` (B, C, H, W) correlated with `taps` along `axis` (-2 or -1), padded by `border` ("inside": zeros)."""
    radius = (len(taps) - 1) // 2
    padding = (0, 0, radius, radius) if axis == -2 else (radius, radius, 0, 0)
    padded = F.pad(x, padding, mode="constant" if border == "inside" else border) if radius else x
    return (shifted_sums if x.device.type == "cpu" else convolved)(padded, taps, axis)


def shifted_sums(padded: Tensor, taps: Tensor, axis: int) -> Tensor:
    """The valid correlation of `padded` (B, C, H, W) with `taps` along `axis`, as a sum of shifted slices."""
    size = padded.shape[axis] - len(taps) + 1
    weights = taps.tolist()
    out = padded.narrow(axis, 0, size) * weights[0]
    for offset in range(1, len(weights)):
        out.add_(padded.narrow(axis, offset, size), alpha=weights[offset])
    return out


def convolved(padded: Tensor, taps: Tensor, axis: int) -> Tensor:
    """The valid correlation of `padded` (B, C, H, W) with `taps` along `axis`, by conv2d."""
    kernel = taps.to(padded.dtype).view((1, 1, -1, 1) if axis == -2 else (1, 1, 1, -1))
    out = F.conv2d(padded.reshape(-1, 1, *padded.shape[-2:]), kernel)
    return out.reshape(*padded.shape[:-2], *out.shape[-2:])
