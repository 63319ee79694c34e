"""Tiled velocity evaluation: coverage, blending, agreement with one pass."""
import dataclasses

import pytest
import torch

from MedShiftLib.engine.network import VelocityUNet, config_from_preset
from MedShiftLib.engine.tiling import blend_window, tile_starts, tiled


@pytest.mark.parametrize("length, tile, overlap", [(100, 32, 8), (64, 64, 16), (65, 32, 8), (300, 128, 32)])
def test_tiles_cover_the_image_with_the_overlap(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    assert starts[0] == 0 and starts[-1] + min(tile, length) == length
    covered = torch.zeros(length, dtype=torch.bool)
    for s in starts:
        covered[s:s + tile] = True
    assert covered.all()
    assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))


def test_overlap_must_be_smaller_than_tile():
    with pytest.raises(ValueError):
        tile_starts(100, 16, 16)


def test_windows_are_positive_and_flat_at_the_image_border():
    w = blend_window(100, 100, 32, 8, 0, 0)
    assert (w > 0).all()
    assert w[0, 0] == 1.0  # image corner: no ramp
    assert w[-1, -1] < 0.1  # interior corner: ramps down


def test_pointwise_field_is_reproduced_exactly():
    def velocity(x, t):
        return torch.sin(3 * x) * t

    x = torch.randn(2, 1, 100, 70)
    assert torch.allclose(tiled(velocity, 32, 8)(x, 0.7), velocity(x, 0.7), atol=1e-6)


def test_small_images_take_one_pass():
    calls = []

    def velocity(x, t):
        calls.append(x.shape)
        return x

    tiled(velocity, 64, 16)(torch.zeros(1, 1, 64, 48), 0.5)
    assert calls == [(1, 1, 64, 48)]


def _tiling_error(norm: str) -> float:
    torch.manual_seed(0)
    # no patch skip: it is exact under tiling and would only dilute the normalisation's effect
    model = VelocityUNet(dataclasses.replace(config_from_preset("tiny", 2), norm=norm, patch_skip=0)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x = torch.randn(1, 1, 128, 128)
    labels = torch.tensor([0])

    def velocity(z, t):
        return model(z, torch.full((z.shape[0],), t), labels)

    with torch.no_grad():
        full = velocity(x, 0.5)
        tiles = tiled(velocity, 64, 16)(x, 0.5)
    return float((tiles - full).norm() / full.norm())


def test_pixel_norm_makes_tiles_agree_better_than_group_norm():
    # With pixel norm only the attention span and zero padding at tile borders differ from one pass;
    # GroupNorm adds per-tile statistics. (Agreement of a trained model: test_end_to_end.py.)
    pixel, group = _tiling_error("pixel"), _tiling_error("group")
    assert pixel < 0.7 * group
