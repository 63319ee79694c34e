"""The film look scales with the pixel pitch as a detector does: quanta per pixel area, a PSF fixed in mm."""
from dataclasses import replace

import numpy as np
import pytest

from MedShiftLib.simulator.domain_rendering import draw_domain_settings, render_domain
from MedShiftLib.simulator.xray_physics import MATERIALS

FIELD_MM = 64.0


def head(pitch: float) -> np.ndarray:
    """Line integrals of a 64 mm field at `pitch`: a disc of tissue and bone with bone details, air around it."""
    size = int(round(FIELD_MM / pitch))
    centres = (np.arange(size) + 0.5) * pitch - FIELD_MM / 2  # mm
    yy, xx = np.meshgrid(centres, centres, indexing="ij")
    inside = np.hypot(yy, xx) < 26.0
    details = inside & ((np.floor(yy / 6) + np.floor(xx / 6)) % 2 == 0)
    integrals = np.zeros((size, size, len(MATERIALS)))
    integrals[..., MATERIALS.index("soft_tissue")] = 15.0 * inside
    integrals[..., MATERIALS.index("cortical_bone")] = 0.6 * inside + 0.3 * details
    return integrals


def render(look: str, domain: str, pitch: float, noise_seed: int | None = 1):
    settings = replace(draw_domain_settings(domain, np.random.default_rng(0), look), heel=0.0)
    rng = None if noise_seed is None else np.random.default_rng(noise_seed)
    return render_domain(head(pitch), settings, pitch, rng)


def binned(image: np.ndarray, factor: int) -> np.ndarray:
    rows, cols = image.shape[0] // factor, image.shape[1] // factor
    return image.reshape(rows, factor, cols, factor).mean(axis=(1, 3))


def noise_ratio(look: str, domain: str, stage: str) -> float:
    """Noise std at 1 mm over that of a 0.25 mm rendering binned 4 x 4, inside the head."""
    def noise(pitch):
        noisy, clean = render(look, domain, pitch), render(look, domain, pitch, None)
        if stage == "detector":
            return noisy.extras["log_image"] - noisy.extras["clean_log_image"]
        return noisy.image - clean.image
    inside = head(1.0).sum(-1) > 10
    return float(noise(1.0)[inside].std() / binned(noise(0.25), 4)[inside].std())


@pytest.mark.parametrize("domain", ["clinical-low", "clinical-normal"])
def test_film_noise_at_a_coarse_pitch_is_that_of_a_fine_rendering_binned(domain):
    # the detector's log signal: quanta counted over the pixel's own area, so a 1 mm pixel holds the quanta of
    # 16 pixels of 0.25 mm (the binned ones a little less noisy: their PSF also averages across the block's edges)
    assert 0.8 < noise_ratio("film", domain, "detector") < 1.25
    # the radiograph look counts the quanta of a fixed 0.308 mm element whatever the pitch (and blurs by 1 px):
    # noisier at 1 mm than binned 0.25 mm pixels
    assert noise_ratio("radiograph", domain, "detector") > 1.8


def test_the_displayed_film_look_is_not_noisier_at_a_coarse_pitch():
    assert noise_ratio("film", "clinical-normal", "display") < 1.25


def _psf_sigma_mm(look: str, pitch: float) -> float:
    """Gaussian sigma (mm) of the detector stage across a bone step at a pixel boundary (noise-free)."""
    size = int(round(16.0 / pitch))
    integrals = np.zeros((size, size, len(MATERIALS)))
    integrals[..., MATERIALS.index("soft_tissue")] = 15.0
    integrals[:, size // 2:, MATERIALS.index("cortical_bone")] = 0.5
    log = render_domain(integrals, replace(draw_domain_settings("clinical-normal", np.random.default_rng(0), look),
                                           heel=0.0), pitch, None).extras["clean_log_image"]
    half = int(round(1.0 / pitch))  # +-1 mm around the step: the scatter's slow slope stays out
    profile = log[size // 2, size // 2 - half: size // 2 + half]
    lsf = np.clip(np.diff(profile), 0, None)
    x = np.arange(len(lsf)) * pitch
    mean = np.sum(lsf * x) / lsf.sum()
    return float(np.sqrt(np.sum(lsf * (x - mean) ** 2) / lsf.sum()))


def test_the_film_detector_psf_is_fixed_in_mm_and_the_radiograph_one_in_pixels():
    film = _psf_sigma_mm("film", 0.1), _psf_sigma_mm("film", 0.2)
    radiograph = _psf_sigma_mm("radiograph", 0.1), _psf_sigma_mm("radiograph", 0.2)
    assert film[1] / film[0] < 1.3
    assert radiograph[1] / radiograph[0] > 1.7


def _display_noise(dose_nGy: float, gain_from_clean: bool, pitch: float = 0.2) -> float:
    import MedShiftLib.simulator.domain_rendering as rendering

    # the processed fluoroscopy of the film look (its clinical-normal is a screen-film radiograph, unprocessed)
    style = replace(rendering.domain_style("clinical-low", "film"), gain_from_clean=gain_from_clean, noise_frames=1.0)
    settings = replace(draw_domain_settings("clinical-low", np.random.default_rng(0), "film"), heel=0.0,
                       dose_nGy=dose_nGy)
    primary = rendering.polychromatic_transmission(
        head(pitch), rendering.detector_response(rendering.tube_spectrum(style.kvp, style.cu_mm)))
    noisy = rendering.render_clinical_primary(primary, style, settings, pitch, np.random.default_rng(1))
    clean = rendering.render_clinical_primary(primary, style, settings, pitch, None)
    inside = head(pitch).sum(-1) > 10
    return float((noisy - clean)[inside].std())


def test_film_band_gains_follow_the_noise_free_bands_so_noise_scales_with_the_dose():
    # a quarter of the dose: twice the quantum noise, amplified by the same gains (0.2 mm pixels: fine bands on)
    assert _display_noise(500.0, True) / _display_noise(2000.0, True) == pytest.approx(2.0, rel=0.06)
    # gains from the noisy bands compress the larger noise more
    assert _display_noise(500.0, False) / _display_noise(2000.0, False) < 1.88


def test_a_recursive_filter_divides_the_quantum_noise_variance_by_its_frames():
    import MedShiftLib.simulator.domain_rendering as rendering

    style = rendering.domain_style("clinical-low", "film")
    assert style.noise_frames > 1  # the film look's fluoroscopy is filtered
    settings = replace(draw_domain_settings("clinical-low", np.random.default_rng(0), "film"), heel=0.0)
    primary = rendering.polychromatic_transmission(
        head(1.0), rendering.detector_response(rendering.tube_spectrum(style.kvp, style.cu_mm)))
    inside = head(1.0).sum(-1) > 10

    def log_noise(frames):
        extras = {}
        rendering.render_clinical_primary(primary, replace(style, noise_frames=frames, electronic_noise_quanta=0.0),
                                          settings, 1.0, np.random.default_rng(1), extras)
        return float((extras["log_image"] - extras["clean_log_image"])[inside].std())

    assert log_noise(1.0) / log_noise(7.0) == pytest.approx(7 ** 0.5, rel=0.1)
