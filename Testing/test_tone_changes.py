"""Tone changes that are smooth and bounded (issue 23, item 3), on the device the tensors live on:
no working-grid lattice in the change, no added clipping, no detail band cut by the source's noise,
batched == one by one, CPU == CUDA."""
import numpy as np
import pytest
import torch
from helpers import write_tiny_checkpoint
from scipy.ndimage import gaussian_filter

from MedShiftLib.engine.checkpoint import load_checkpoint
from MedShiftLib.engine.working_grid import resample
from MedShiftLib.evaluation.detail_preservation import lattice_peak
from MedShiftLib.io.radiograph import RadiographImage
from MedShiftLib.pipeline.image_translation import translate_image
from MedShiftLib.postprocess.blur import gaussian_blur
from MedShiftLib.postprocess.contrast_transfer import (
    BAND_SIGMAS_PX,
    band_gains,
    detail_bands,
    measure_domain_statistics,
    split_contrast_transfer,
    transfer_contrast,
    without_band_gain_changes,
)
from MedShiftLib.postprocess.detail_transfer import add_change_at_full_resolution, bounded_change
from MedShiftLib.postprocess.patch_grid import remove_patch_grid
from MedShiftLib.settings import TranslationSettings


def anatomy(count: int, seed: int, size: int = 96) -> torch.Tensor:
    """Images with structure at every scale, in about [-0.8, 0.8] (no air, so noise is measurable everywhere)."""
    rng = np.random.default_rng(seed)
    fields = [sum(gaussian_filter(rng.standard_normal((size, size)), s) * s for s in (1, 2, 4, 8, 16))
              for _ in range(count)]
    return torch.from_numpy(0.8 * np.stack([f / np.abs(f).max() for f in fields])[:, None]).float()


def test_a_working_grid_change_brought_up_leaves_no_lattice_of_working_pixels():
    torch.manual_seed(0)
    full = torch.zeros(1, 1, 384, 384, dtype=torch.float64)
    full[..., 0, 0], full[..., -1, -1] = -10.0, 10.0  # a range far wider than the change: nothing bounded
    smooth = torch.nn.functional.interpolate(torch.randn(1, 1, 8, 8), size=(64, 64), mode="bicubic")
    change = (smooth + 0.5 * gaussian_blur(torch.randn(1, 1, 64, 64), 1.0)).double()  # as the model's, smoothed
    plain = resample(change, (384, 384))[0, 0].numpy()  # as the change was brought up before
    carried = (add_change_at_full_resolution(full, change) - full)[0, 0].numpy()
    assert lattice_peak(plain, 6.0) > 1000  # interpolation imprints the 6-px working grid
    assert lattice_peak(carried, 6.0) < 0.3 * lattice_peak(plain, 6.0)
    assert np.abs(gaussian_filter(carried - plain, 12)).max() < 0.02 * np.abs(plain).max()  # same change otherwise


def test_a_change_adds_no_clipped_pixels_and_leaves_saturated_ones_alone():
    rng = np.random.default_rng(1)
    image = torch.from_numpy(np.clip(rng.uniform(-1.2, 1.2, (2, 1, 80, 80)), -1, 1)).float()  # 8 % at each end
    change = torch.from_numpy(rng.normal(0, 0.3, image.shape)).float()
    out = image + bounded_change(image, change)
    for before, after in zip(image, out):
        for end in (before.max(), before.min()):
            assert float((after == end).float().mean()) <= float((before == end).float().mean()) + 0.001
        assert float(after.max()) <= float(before.max()) and float(after.min()) >= float(before.min())
    saturated = (image == image.amax(dim=(-2, -1), keepdim=True)) | (image == image.amin(dim=(-2, -1), keepdim=True))
    assert torch.equal(out[saturated], image[saturated])
    small = 0.2 * change.clamp(-0.1, 0.1)  # within half the headroom of pixels away from the ends: kept as it is
    middle = image.abs() < 0.5
    assert torch.allclose((image + bounded_change(image, small))[middle], (image + small)[middle], atol=1e-6)


def test_a_noisier_source_with_the_same_processing_gets_no_band_cut():
    """clinical-low and clinical-normal share their processing (simulator/domain_styles.py) at a third of the
    dose; the raw band rms of the bundled model's statistics cut clinical-low's finer bands by 3-15 %."""
    from conftest import REPO_ROOT
    statistics = load_checkpoint(REPO_ROOT / "MedShift/Resources/Models/medshift_default.safetensors")[1].statistics
    matched = np.array(statistics.band_rms["clinical-low"]["clinical-normal"])
    raw = np.array(statistics.band_rms["clinical-normal"]["clinical-normal"]) / matched
    assert raw[1] < 0.9 and raw[2] < 0.99  # the raw ratio takes the noise for anatomy
    gains = band_gains(statistics, "clinical-low", "clinical-normal").numpy()
    assert np.all(gains[1:] >= 0.99), gains
    for source, target in (("clinical-normal", "clinical-exposure"), ("sim-low", "clinical-normal")):
        boosts = band_rms_ratio(statistics, source, target) >= 1
        assert np.allclose(band_gains(statistics, source, target).numpy()[boosts], band_rms_ratio(
            statistics, source, target)[boosts])  # boosts stay the raw ratios


def band_rms_ratio(statistics, source: str, target: str) -> np.ndarray:
    return np.array(statistics.band_rms[target][target]) / np.array(statistics.band_rms[source][target])


def test_the_flows_cut_of_a_detail_band_is_taken_out_and_the_rest_of_its_change_kept():
    transferred = anatomy(2, 10, 128)
    bands, _ = detail_bands(transferred, BAND_SIGMAS_PX)
    tone = 0.1 * torch.linspace(-1, 1, 128).view(1, 1, 1, -1).expand(2, 1, 128, 128)  # a smooth tone change
    texture = 0.02 * torch.randn(2, 1, 128, 128, generator=torch.Generator().manual_seed(11))
    cut = -0.2 * bands[1]  # the flow smoothing the 1-2 px band by 20 %
    kept = without_band_gain_changes(tone + texture + cut, transferred, BAND_SIGMAS_PX)
    after, _ = detail_bands(transferred + kept, BAND_SIGMAS_PX)
    assert abs(float(after[1].std() / bands[1].std()) - 1.0) < 0.05  # before: 0.8
    inner = (..., slice(20, -20), slice(20, -20))
    assert float((kept - tone)[inner].mean().abs()) < 0.001  # the tone change stays
    texture_kept = torch.corrcoef(torch.stack([(kept - tone)[inner].flatten(), texture[inner].flatten()]))[0, 1]
    assert float(texture_kept) > 0.95  # and the flow's new texture


def _statistics():
    return measure_domain_statistics({"a": anatomy(4, 5, 64), "b": 1.3 * anatomy(4, 6, 64).clamp(-0.7, 0.7)})


def test_batched_equals_one_by_one():
    statistics = _statistics()
    full = anatomy(3, 7, 192)
    coarse = resample(full, (64, 64))
    parts = split_contrast_transfer(full, coarse, statistics, "a", "b")
    change = remove_patch_grid(0.1 * coarse.flip(-1), 4)
    out = add_change_at_full_resolution(full, change + parts[1], parts[2])
    for k in range(3):
        one = slice(k, k + 1)
        assert torch.allclose(parts[0][one], transfer_contrast(coarse[one], statistics, "a", "b"), atol=1e-6)
        for batched, alone in zip(parts, split_contrast_transfer(full[one], coarse[one], statistics, "a", "b")):
            assert torch.allclose(batched[one], alone, atol=1e-6)
        assert torch.allclose(change[one], remove_patch_grid(0.1 * coarse[one].flip(-1), 4), atol=1e-6)
        alone = add_change_at_full_resolution(full[one], change[one] + parts[1][one], parts[2][one])
        assert torch.allclose(out[one], alone, atol=1e-6)


def _post_processing(device: str, dtype: torch.dtype) -> list[torch.Tensor]:
    statistics = _statistics()
    full = anatomy(2, 8, 192).to(device, dtype)
    coarse = resample(full, (64, 64))
    transferred, band_change, grey_levels = split_contrast_transfer(full, coarse, statistics, "a", "b")
    change = remove_patch_grid(transferred - coarse, 4) + band_change
    return [transferred, band_change, grey_levels, add_change_at_full_resolution(full, change, grey_levels)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_results_stay_on_the_inputs_device_and_type(dtype):
    for result in _post_processing("cpu", dtype):
        assert result.device.type == "cpu" and result.dtype == dtype


@pytest.mark.cuda
def test_cuda_gives_the_cpus_results():
    for on_cpu, on_cuda in zip(_post_processing("cpu", torch.float32), _post_processing("cuda", torch.float32)):
        assert on_cuda.device.type == "cuda"
        assert torch.allclose(on_cuda.cpu(), on_cpu, atol=1e-5)


def test_translating_with_contrast_transfer_adds_no_clipping_at_full_resolution(tmp_path):
    model, info = load_checkpoint(write_tiny_checkpoint(tmp_path / "m.safetensors", domains=("a", "b")))
    info.statistics = _statistics()
    body = (anatomy(1, 9, 128)[0, 0].numpy() + 1.0) * 1500 + 500
    body[:, :24] = 4095  # a shutter, saturated
    image = RadiographImage(pixels=np.clip(body, 0, 4095).astype(np.uint16), spacing=(0.2, 0.2, 1.0))
    out = translate_image(image, model, info, TranslationSettings("a", "b", steps=2, contrast_transfer=True)).pixels
    assert np.all(out[:, :24] == 4095)
    for end in (image.pixels.max(), image.pixels.min()):
        assert np.mean(out == end) <= np.mean(image.pixels == end) + 0.001
    assert out.max() <= image.pixels.max() and out.min() >= image.pixels.min()
    assert np.abs(out.astype(float) - image.pixels).mean() > 5  # and it did change the tones
