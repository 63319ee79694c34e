"""Translation mechanics with small untrained networks (learned behaviour: test_end_to_end.py)."""
import numpy as np
import pytest
import torch

from MedShiftLib.engine.checkpoint import CheckpointInfo
from MedShiftLib.engine.network import VelocityUNet, config_from_preset
from MedShiftLib.engine.ode_solvers import CancelToken, IntegrationStats
from MedShiftLib.engine.translation import guided_velocity, renew_noise
from MedShiftLib.errors import DomainError, MedShiftError, TranslationCancelled
from MedShiftLib.io.radiograph import RadiographImage
from MedShiftLib.pipeline.image_translation import translate_batch, translate_image
from MedShiftLib.settings import TranslationSettings

DOMAINS = ("a", "b", "c")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = VelocityUNet(config_from_preset("tiny", len(DOMAINS)))
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return m.eval()


@pytest.fixture(scope="module")
def info(model):
    return CheckpointInfo(config=model.config, domains=DOMAINS, resolution=32)


def _image(shape=(48, 40), dtype=np.uint16, photometric="MONOCHROME2"):
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    pixels = 1000 + 800 * np.sin(xx / 5.0) * np.cos(yy / 7.0) + rng.normal(0, 20, shape)
    return RadiographImage(pixels.astype(dtype), spacing=(0.3, 0.4, 1.0), origin=(5.0, -2.0, 0.0),
                           direction=(0, 1, 0, 1, 0, 0, 0, 0, 1), photometric=photometric, file_format="nrrd")


class _Recorder(torch.nn.Module):
    """A fake network whose velocity is label-dependent and counts its calls."""

    def __init__(self):
        super().__init__()
        self.config = config_from_preset("tiny", 2)
        self.calls = []

    def forward(self, x, t, labels):
        self.calls.append(labels.tolist())
        return x * 0 + labels.float()[:, None, None, None] + 10 * t[:, None, None, None]


def test_guidance_is_one_batched_pass_with_the_cfg_formula():
    net = _Recorder()
    x = torch.zeros(2, 1, 8, 8)
    v = guided_velocity(net, torch.tensor([0, 1]), guidance_scale=3.0)(x, 0.5)
    assert net.calls == [[0, 1, 2, 2]]  # conditional and null (label 2) in one call
    v_label = torch.tensor([0.0, 1.0]) + 5
    v_null = torch.tensor([2.0, 2.0]) + 5
    expected = v_null + 3.0 * (v_label - v_null)
    assert torch.allclose(v[:, 0, 0, 0], expected)


def test_guidance_one_skips_the_null_pass():
    net = _Recorder()
    guided_velocity(net, torch.tensor([1]), guidance_scale=1.0)(torch.zeros(1, 1, 8, 8), 0.2)
    assert net.calls == [[1]]


def test_translation_is_deterministic_and_changes_the_image(model, info):
    image = _image()
    settings = TranslationSettings("a", "b", steps=3)
    first = translate_image(image, model, info, settings)
    second = translate_image(image, model, info, settings)
    np.testing.assert_array_equal(first.pixels, second.pixels)
    assert np.abs(first.pixels.astype(float) - image.pixels).mean() > 1.0


@pytest.mark.parametrize("dtype, photometric", [(np.uint16, "MONOCHROME2"), (np.int16, "MONOCHROME1"),
                                                (np.float32, "MONOCHROME2"), (np.uint8, "MONOCHROME2")])
def test_output_lies_on_the_input_grid_with_its_dtype(model, info, dtype, photometric):
    image = _image(dtype=dtype, photometric=photometric)
    if dtype == np.uint8:
        image = image.with_pixels((image.pixels / 8).astype(np.uint8))
    original = image.pixels.copy()
    out = translate_image(image, model, info, TranslationSettings("a", "c", steps=2))
    assert out.pixels.shape == image.pixels.shape and out.pixels.dtype == image.pixels.dtype
    assert (out.spacing, out.origin, out.direction, out.photometric) == (
        image.spacing, image.origin, image.direction, image.photometric)
    np.testing.assert_array_equal(image.pixels, original)  # the input is never modified
    # values stay in the input's range scale: the model range [-1, 1] maps back to the input window
    lo, hi = np.percentile(original.astype(float), [0.5, 99.5])
    assert np.percentile(out.pixels.astype(float), 50) == pytest.approx(np.median(original), abs=(hi - lo))


def test_inversion_then_regeneration_with_the_same_label_reconstructs(model):
    x = torch.randn(2, 1, 32, 32)
    labels = torch.tensor([0, 1])
    errors = []
    for steps in (2, 4, 8, 16):
        y = translate_batch(model, x, labels, labels, TranslationSettings("a", "a", tau=0.3, steps=steps))
        errors.append(float((y - x).abs().max()))
    assert all(b < a for a, b in zip(errors, errors[1:]))
    assert errors[-1] < errors[0] / 4


def test_batched_equals_one_by_one(model):
    x = torch.randn(3, 1, 32, 32)
    src, dst = torch.tensor([0, 1, 2]), torch.tensor([2, 0, 1])
    settings = TranslationSettings("a", "b", steps=2, guidance_scale=2.0)
    together = translate_batch(model, x, src, dst, settings)
    alone = torch.cat([translate_batch(model, x[i:i + 1], src[i:i + 1], dst[i:i + 1], settings) for i in range(3)])
    assert torch.allclose(together, alone, atol=1e-5)


def test_progress_counts_both_legs_and_cancel_stops_within_a_step(model, info):
    reports = []
    translate_image(_image(), model, info, TranslationSettings("a", "b", steps=3),
                    progress=lambda done, total: reports.append((done, total)))
    assert reports[-1] == (6, 6) and [d for d, _ in reports] == sorted(d for d, _ in reports)

    token = CancelToken()
    seen = []

    def cancel_at_two(done, total):
        seen.append(done)
        if done == 2:
            token.cancel()

    with pytest.raises(TranslationCancelled):
        translate_image(_image(), model, info, TranslationSettings("a", "b", steps=3), progress=cancel_at_two,
                        cancel=token)
    assert max(seen) == 2


def test_sizes_that_are_not_multiples_of_the_factor_are_padded_and_cropped(model):
    x = torch.randn(1, 1, 37, 29)
    y = translate_batch(model, x, torch.tensor([0]), torch.tensor([1]), TranslationSettings("a", "b", steps=1))
    assert y.shape == x.shape


@pytest.mark.parametrize("change, error, message", [
    (dict(source_domain="real"), DomainError, "this model knows: a, b, c"),
    (dict(target_domain="B"), DomainError, "unknown domain 'B'"),
    (dict(tau=1.0), MedShiftError, "tau"),
    (dict(solver="midpoint"), MedShiftError, "euler, heun, rk4, dopri5"),
    (dict(steps=0), MedShiftError, "steps"),
    (dict(guidance_scale=float("nan")), MedShiftError, "guidance"),
    (dict(noise_renewal=1.5), MedShiftError, r"noise renewal \(--noise-renewal\) 1.5: must be within 0..1"),
    (dict(schedule="cosine"), MedShiftError, "uniform, quadratic"),
    (dict(solver="dopri5", schedule="quadratic"), MedShiftError, "dopri5 chooses its own steps"),
    (dict(resample="nearest"), MedShiftError, "auto, none"),
    (dict(tile_size=4), MedShiftError, r"tile size \(--tile-size\) 4: must be within 8..8192"),
    (dict(tile_size=0), MedShiftError, "tile size .* must be within 8..8192"),
])
def test_bad_settings_are_refused(model, info, change, error, message):
    settings = TranslationSettings(**({"source_domain": "a", "target_domain": "b"} | change))
    with pytest.raises(error, match=message):
        translate_image(_image(), model, info, settings)


def test_noise_renewal_replaces_that_share_of_the_latent_noise():
    tau = 0.6
    image, noise = torch.randn(2, 1, 8, 8), torch.randn(2, 1, 8, 8)
    x_tau = tau * image + (1 - tau) * noise
    velocity = image - noise  # the exact velocity of this straight path
    assert torch.allclose(renew_noise(x_tau, velocity, tau, 0.0, torch.Generator().manual_seed(3)), x_tau)
    fresh = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    renewed = renew_noise(x_tau, velocity, tau, 1.0, torch.Generator().manual_seed(3))
    assert torch.allclose(renewed, tau * image + (1 - tau) * fresh, atol=1e-6)  # image kept, noise all new
    half = renew_noise(x_tau, velocity, tau, 0.6, torch.Generator().manual_seed(3))
    assert torch.allclose(half, tau * image + (1 - tau) * (0.8 * noise + 0.6 * fresh), atol=1e-6)


def test_noise_renewal_is_seeded_costs_one_evaluation_and_off_by_default(model):
    x = torch.randn(2, 1, 32, 32)
    a, b = torch.tensor([0, 0]), torch.tensor([1, 1])
    plain = TranslationSettings("a", "b", steps=3)
    stats = IntegrationStats()
    deterministic = translate_batch(model, x, a, b, plain)
    noisy = TranslationSettings("a", "b", steps=3, noise_renewal=1.0, seed=5)
    first = translate_batch(model, x, a, b, noisy, stats=stats)
    assert stats.nfe == 2 * 3 + 1
    assert torch.equal(first, translate_batch(model, x, a, b, noisy))
    other_seed = translate_batch(model, x, a, b, TranslationSettings("a", "b", steps=3, noise_renewal=1.0, seed=6))
    assert (first - other_seed).abs().mean() > 1e-3 and (first - deterministic).abs().mean() > 1e-3
    assert torch.equal(deterministic, translate_batch(model, x, a, b, TranslationSettings("a", "b", steps=3, seed=6)))
    assert noisy.description() == "a->b tau0.6 noise1 seed5" and plain.description() == "a->b tau0.6"


def test_quadratic_schedule_changes_the_grid_of_both_legs(model):
    seen = []
    x = torch.randn(1, 1, 32, 32)

    class Recording(torch.nn.Module):
        config = model.config

        def forward(self, x, t, labels):
            seen.append(round(float(t[0]), 4))
            return model(x, t, labels)

    translate_batch(Recording(), x, torch.tensor([0]), torch.tensor([1]),
                    TranslationSettings("a", "b", steps=2, schedule="quadratic"))
    assert seen == [1.0, 0.9, 0.6, 0.9]  # inversion 1 -> 0.9 -> 0.6, regeneration 0.6 -> 0.9 -> 1


def test_for_image_gives_each_image_its_own_seed_and_nothing_else():
    settings = TranslationSettings("a", "b", noise_renewal=0.5, seed=10, steps=3)
    assert settings.for_image(0) == settings
    assert settings.for_image(2) == TranslationSettings("a", "b", noise_renewal=0.5, seed=12, steps=3)


@pytest.mark.cuda
def test_translation_on_the_gpu_gives_the_cpu_result(model):
    import copy

    from MedShiftLib.engine.devices import set_tf32
    from MedShiftLib.postprocess.contrast_transfer import measure_domain_statistics

    set_tf32(False)  # full IEEE fp32 on the GPU, so both devices agree to rounding
    statistics = measure_domain_statistics({d: (i + 1) * torch.randn(4, 1, 32, 32) for i, d in enumerate(DOMAINS)})
    settings = TranslationSettings("a", "c", contrast_transfer=True)
    x, source, target = torch.rand(2, 1, 32, 32) * 2 - 1, torch.tensor([0, 0]), torch.tensor([2, 2])
    on_cpu = translate_batch(model, x, source, target, settings, statistics=statistics)
    on_gpu = translate_batch(copy.deepcopy(model).cuda(), x.cuda(), source, target, settings, statistics=statistics)
    assert on_gpu.device.type == "cuda"
    assert (on_cpu - x).abs().mean() > 0.01  # the translation does change the images
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, rtol=1e-4, atol=1e-4)
