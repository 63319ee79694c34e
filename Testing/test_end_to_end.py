"""An honest learned result: a tiny model trained here moves a domain statistic and keeps structure.

Two synthetic domains share the same kind of anatomy (smooth random blobs); domain "striped" adds a
fine stripe texture of random phase. The network is trained by flow matching (train_step with the
FlowMatchingLoss, label dropout, EMA) and must learn to add or remove the texture while keeping the
blobs. Training takes minutes on a CPU, so the module is marked slow (`.ci/run` runs it).
"""
import numpy as np
import pytest
import torch

from MedShiftLib.engine.couplings import make_coupling
from MedShiftLib.engine.loss import FlowMatchingLoss
from MedShiftLib.engine.network import VelocityUNet, config_from_preset
from MedShiftLib.pipeline.image_translation import translate_batch
from MedShiftLib.settings import TranslationSettings
from MedShiftLib.training.optimisation import make_ema, train_step, warmup_cosine

pytestmark = pytest.mark.slow

SIZE, PERIOD, AMPLITUDE = 32, 4, 0.35
DOMAINS = ("smooth", "striped")


def anatomy(n: int, rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """Smooth random blob images in about [-1, 1]."""
    yy, xx = np.mgrid[:size, :size] / size
    images = np.zeros((n, size, size))
    for i in range(n):
        for _ in range(3):
            cy, cx, w = rng.uniform(0.15, 0.85), rng.uniform(0.15, 0.85), rng.uniform(0.08, 0.2)
            images[i] += rng.uniform(0.5, 1.0) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * w**2))
    images = images / images.max(axis=(1, 2), keepdims=True)
    return (1.6 * images - 0.8).astype(np.float32)


def stripes(n: int, rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    phase = np.zeros((n, 1, 1))  # a fixed texture: the "vendor look" of the striped domain
    xx = np.arange(size)[None, None, :]
    return (AMPLITUDE * np.cos(2 * np.pi * (xx + phase) / PERIOD) * np.ones((1, size, 1))).astype(np.float32)


def stripe_energy(x: torch.Tensor) -> torch.Tensor:
    """Per-image amplitude of the stripe frequency (column frequency size/PERIOD)."""
    spectrum = torch.fft.rfft(x[:, 0].double(), dim=-1).abs().mean(dim=1) / x.shape[-1] * 2
    return spectrum[:, x.shape[-1] // PERIOD]


def low_pass(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.avg_pool2d(x, PERIOD)


def correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a.flatten(1) - a.flatten(1).mean(1, keepdim=True), b.flatten(1) - b.flatten(1).mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n = 512
    smooth = anatomy(n, rng)
    striped = anatomy(n, rng) + stripes(n, rng)
    data = torch.from_numpy(np.concatenate([smooth, striped]))[:, None]
    labels = torch.cat([torch.zeros(n, dtype=torch.long), torch.ones(n, dtype=torch.long)])
    model = VelocityUNet(config_from_preset("tiny", 2))
    ema = make_ema(model, 0.99)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    steps = 400
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, steps, 25))
    # OT pairing is tested in test_couplings.py
    loss_fn = FlowMatchingLoss(make_coupling("independent"), model.config.null_label, label_dropout=0.2)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, len(data), (128,), generator=g)
        result = train_step(model, optimizer, loss_fn, data[idx], labels[idx], g, scheduler=scheduler)
        ema.update_parameters(model)
        losses.append(result.loss)
    return ema.module.eval(), losses


def test_training_reduces_the_loss(trained):
    _, losses = trained
    assert np.mean(losses[-50:]) < 0.6 * np.mean(losses[:20])


@pytest.mark.parametrize("source, target", [(0, 1), (1, 0)])
def test_translation_moves_the_texture_and_keeps_the_anatomy(trained, source, target):
    model, _ = trained
    rng = np.random.default_rng(123)  # unseen images
    base = torch.from_numpy(anatomy(16, rng))[:, None]
    texture = torch.from_numpy(stripes(16, rng))[:, None]
    x = base + texture if source == 1 else base
    settings = TranslationSettings(DOMAINS[source], DOMAINS[target], tau=0.5, steps=10)
    y = translate_batch(model, x, torch.full((16,), source), torch.full((16,), target), settings)

    energy_in, energy_out = stripe_energy(x).mean(), stripe_energy(y).mean()
    if target == 1:
        assert energy_in < 0.05 * AMPLITUDE
        assert energy_out > 0.6 * AMPLITUDE, f"stripes not added: {energy_out:.3f}"
    else:
        assert energy_in > 0.9 * AMPLITUDE
        assert energy_out < 0.3 * AMPLITUDE, f"stripes not removed: {energy_out:.3f}"
    # the anatomy (what survives a PERIOD-wide average) is kept
    assert correlation(low_pass(y), low_pass(base)).mean() > 0.9


def test_same_domain_round_trip_is_nearly_identity(trained):
    model, _ = trained
    x = torch.from_numpy(anatomy(8, np.random.default_rng(5)))[:, None]
    y = translate_batch(model, x, torch.zeros(8, dtype=torch.long), torch.zeros(8, dtype=torch.long),
                        TranslationSettings("smooth", "smooth", tau=0.5, steps=10))
    assert float((y - x).abs().mean()) < 0.1 * float(x.abs().mean())


def test_guidance_strengthens_the_target_style(trained):
    model, _ = trained
    x = torch.from_numpy(anatomy(16, np.random.default_rng(9)))[:, None]
    src, dst = torch.zeros(16, dtype=torch.long), torch.ones(16, dtype=torch.long)
    plain = translate_batch(model, x, src, dst, TranslationSettings("smooth", "striped", tau=0.7, steps=10))
    guided = translate_batch(model, x, src, dst, TranslationSettings("smooth", "striped", tau=0.7, steps=10,
                                                                     guidance_scale=2.0))
    assert stripe_energy(guided).mean() > stripe_energy(plain).mean()


def test_tiled_translation_matches_one_pass_and_shows_no_seam(trained):
    model, _ = trained
    rng = np.random.default_rng(11)
    x = torch.from_numpy(anatomy(2, rng, size=128))[:, None]
    src, dst = torch.zeros(2, dtype=torch.long), torch.ones(2, dtype=torch.long)
    one_pass = translate_batch(model, x, src, dst, TranslationSettings("smooth", "striped", steps=6, tile_size=128))
    tiles = translate_batch(model, x, src, dst, TranslationSettings("smooth", "striped", steps=6, tile_size=48,
                                                                    tile_overlap=16))
    change = float((one_pass - x).abs().mean())
    assert float((tiles - one_pass).abs().mean()) < 0.15 * change
    # gradient energy across tile borders is no larger than elsewhere (a seam would be an edge there)
    grad = (tiles[..., :, 1:] - tiles[..., :, :-1]).pow(2).mean(dim=(0, 1, 2))
    borders = [s - 1 for s in (32, 48, 64, 80)] + [s + 47 for s in (32, 64)]
    border_energy = grad[sorted(set(b for b in borders if b < len(grad)))].mean()
    assert border_energy < 1.5 * grad.mean()
