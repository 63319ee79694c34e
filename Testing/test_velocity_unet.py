"""The velocity network: shapes, conditioning, sizes, budget."""
import pytest
import torch

from MedShiftLib.engine.network import (
    MODEL_PRESETS,
    UNetConfig,
    VelocityUNet,
    config_from_preset,
    count_parameters,
    sinusoidal_embedding,
)
from MedShiftLib.settings import DEFAULTS


def _perturbed(model: VelocityUNet, seed: int = 0) -> VelocityUNet:
    """Randomise the zero-initialised layers so the output depends on the input."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model.eval()


def test_untrained_network_predicts_zero_velocity():
    model = VelocityUNet(config_from_preset("tiny", 3))
    v = model(torch.randn(2, 1, 32, 32), torch.rand(2), torch.tensor([0, 3]))
    assert v.shape == (2, 1, 32, 32)
    assert torch.count_nonzero(v) == 0


@pytest.mark.parametrize("shape", [(32, 32), (64, 96), (48, 80)])
def test_fully_convolutional_on_multiples_of_the_factor(shape):
    model = _perturbed(VelocityUNet(config_from_preset("tiny", 2)))
    assert model.config.downsampling_factor == 8
    v = model(torch.randn(1, 1, *shape), torch.tensor([0.5]), torch.tensor([1]))
    assert v.shape == (1, 1, *shape) and torch.isfinite(v).all()


def test_other_sizes_are_refused_with_the_factor_named():
    model = VelocityUNet(config_from_preset("tiny", 2))
    with pytest.raises(ValueError, match="multiples of 8"):
        model(torch.randn(1, 1, 30, 32), torch.tensor([0.5]), torch.tensor([0]))


def test_output_depends_on_time_and_label_including_null():
    model = _perturbed(VelocityUNet(config_from_preset("tiny", 2)))
    x = torch.randn(1, 1, 32, 32)
    base = model(x, torch.tensor([0.5]), torch.tensor([0]))
    assert not torch.allclose(base, model(x, torch.tensor([0.9]), torch.tensor([0])))
    assert not torch.allclose(base, model(x, torch.tensor([0.5]), torch.tensor([1])))
    null = model(x, torch.tensor([0.5]), torch.tensor([model.config.null_label]))
    assert not torch.allclose(base, null)
    with pytest.raises(IndexError):
        model(x, torch.tensor([0.5]), torch.tensor([3]))


def test_batch_elements_are_independent():
    model = _perturbed(VelocityUNet(config_from_preset("tiny", 2)))
    x = torch.randn(3, 1, 32, 32)
    t = torch.tensor([0.1, 0.5, 0.9])
    labels = torch.tensor([0, 1, 2])
    together = model(x, t, labels)
    alone = torch.cat([model(x[i:i + 1], t[i:i + 1], labels[i:i + 1]) for i in range(3)])
    assert torch.allclose(together, alone, atol=1e-5)


def test_default_model_fits_the_budget():
    from torch.utils.flop_counter import FlopCounterMode
    model = VelocityUNet(config_from_preset("default", 5)).eval()
    assert count_parameters(model) < 20e6
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(1, 1, 512, 512), torch.tensor([0.5]), torch.tensor([0]))
    # the default translation (DEFAULTS["steps"] per leg, two legs, guidance 1) must stay within ~30 GFLOP at 512x512
    assert 2 * DEFAULTS["steps"] * counter.get_total_flops() <= 30e9


def test_default_model_rebuilds_every_pixel_from_as_many_features():
    """The stem must not squeeze a patch into fewer channels than it has pixels: the velocity target holds
    full-resolution noise, and a rank-deficient head cannot represent it (docs/engine.md)."""
    for preset in ("small", "default", "large"):
        cfg = config_from_preset(preset, 5)
        assert cfg.channels[0] >= cfg.patch_size**2, preset


def test_config_round_trip_and_validation():
    cfg = config_from_preset("small", 5)
    assert UNetConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown model config keys"):
        UNetConfig.from_dict(cfg.to_dict() | {"bogus": 1})
    with pytest.raises(ValueError, match="unknown model preset"):
        config_from_preset("huge", 2)
    assert set(MODEL_PRESETS) >= {"tiny", "default"}


def test_time_embedding_distinguishes_close_times():
    e = sinusoidal_embedding(torch.tensor([0.50, 0.51]), 64)
    assert e.shape == (2, 64)
    assert (e[0] - e[1]).abs().max() > 0.1


def test_checkpoints_without_a_patch_skip_field_build_the_network_without_it():
    legacy = config_from_preset("small", 5).to_dict()
    del legacy["patch_skip"]
    cfg = UNetConfig.from_dict(legacy)
    assert cfg.patch_skip == 0 and VelocityUNet(cfg).patch_skip is None
    with pytest.raises(ValueError, match="patch_skip"):
        UNetConfig(num_domains=2, patch_skip=-1)


def _noise_loss_after_training(patch_skip: int, steps: int = 60) -> float:
    """Fit the velocity near t = 1, where it is mostly 'remove the noise', on smooth images."""
    torch.manual_seed(0)
    cfg = UNetConfig(num_domains=2, patch_size=4, channels=(16, 32), embedding_dim=64, norm_groups=8,
                     patch_skip=patch_skip)
    model = VelocityUNet(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    ramp = torch.linspace(-1, 1, 32)
    losses = []
    for _ in range(steps):
        x1 = torch.rand(8, 1, 1, 1, generator=g) * ramp.view(1, 1, 1, 32)  # smooth: random-slope ramps
        x0 = torch.randn(8, 1, 32, 32, generator=g)
        t = torch.full((8,), 0.9)
        x_t = 0.9 * x1 + 0.1 * x0
        loss = (model(x_t, t, torch.zeros(8, dtype=torch.long)) - (x1 - x0)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return sum(losses[-10:]) / 10


def test_patch_skip_lets_the_network_remove_full_resolution_noise():
    """Near t = 1 the velocity is mostly the noise in x_t, a linear function of each input patch; the
    U-Net alone learns it slowly (its features do not carry the noise), the patch skip learns it fast."""
    with_skip, without = _noise_loss_after_training(8), _noise_loss_after_training(0)
    assert with_skip < 0.3 and with_skip < 0.5 * without
