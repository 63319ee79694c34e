"""Render one projection (per-material line integrals) in the five simulator domains.

Every domain starts from the same line integrals, so images of one subject and view are aligned
across domains. Display convention everywhere: MONOCHROME2 in [0, 1], air dark, bone bright.

- sim-low / sim-high: an interventional simulator's look: monochromatic attenuation at an
  effective energy, a broad low-frequency veil (haze), smooth, low-contrast, linear display;
  sim-low is rendered at half resolution with weak white noise, sim-high clean and full resolution.
- clinical-low / clinical-normal / clinical-exposure: an angiography system: polychromatic
  spectrum through an energy-integrating CsI detector (beam hardening), scatter, heel effect,
  Poisson quantum noise at the detector air kerma of the mode, detector blur on signal and noise,
  electronic noise, then log, multi-scale contrast equalisation with edge enhancement and a
  sigmoid display LUT; the exposure mode has more dose and stronger detail enhancement. The film look's
  clinical-normal and -exposure instead end as screen-film radiographs (screen_film.py: linear detail bands,
  the film's H&D curve, film grain; no window).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .cone_beam_projector import CArmGeometry, MaterialVolume
from .domain_styles import DEFAULT_LOOK, LOOK_OBJECT_DETAIL, ClinicalStyle, SimulatorStyle, check_look, domain_style
from .object_detail import ObjectDetail, object_line_integrals
from .scan_edges import scan_edges_on_detector
from .screen_film import add_film_grain, characteristic_curve, film_speed_point, metered_tissue
from .wide_blur import gaussian_blur
from .xray_physics import detector_response, monochromatic_transmission, polychromatic_transmission, tube_spectrum

# Side of the detector element whose photon count sets the quantum noise: 2x2-binned 154 um
# CsI pixels (the usual fluoroscopy read-out); see docs/simulator.md for why.
QUANTUM_PIXEL_MM = 0.308
# The pixel's own aperture (a box one pixel wide) as a Gaussian sigma in pixels: 1 / sqrt(12).
PIXEL_APERTURE_SIGMA_PX = 12 ** -0.5
# Exposure recognition: the display window is taken over the anatomy, pixels attenuated by more than
# 1 - exp(-0.1) (10 %) of the open field, from its 0.5th to its 99.7th percentile.
ANATOMY_MIN_ATTENUATION = 0.1
# Direct exposure (black on the display): pixels attenuated by less than 1 - exp(-0.02) (2 %).
DIRECT_EXPOSURE_MAX_ATTENUATION = 0.02
# Scales (Gaussian sigma at the detector, mm) of the contrast-equalisation bands: 1-16 pixels of the
# default 1.25 mm pitch, fixed in mm as vendor processing is, so a finer pitch sees the same bands
# (a coarser pitch keeps 1-16 pixels: no band finer than a pixel).
BAND_SIGMAS_MM = (1.25, 2.5, 5.0, 10.0, 20.0)
WINDOW_PERCENTILES = (0.5, 99.7)
# A fine band (ClinicalStyle.fine_band_sigmas_mm) is used where its sigma is at least this many pixels: a band at
# one pixel holds mostly pixel noise, which binning from a finer pitch would have averaged away.
FINE_BAND_MIN_PX = 1.5
# Scale (Gaussian sigma, mm) at which the film look's window is taken: the first band's, so the same at every pitch.
WINDOW_SCALE_MM = 1.25
# The window fraction over which the display toe (ClinicalStyle.lut_toe) rises to its full height.
TOE_RAMP = 0.04


def check_domain(domain: str) -> None:
    """Raise DomainError for a name that is not one of the simulator domains."""
    domain_style(domain)


@dataclass(frozen=True)
class DomainSettings:
    """The per-image random choices of a domain rendering (shared by its noisy and clean images)."""

    domain: str
    dose_nGy: float | None = None
    heel: float = 0.0  # relative intensity change from the left to the right image edge
    kvp: float | None = None
    effective_energy_keV: float | None = None
    look: str = DEFAULT_LOOK  # which parameter set renders it (domain_styles.LOOKS)


def draw_domain_settings(domain: str, rng: np.random.Generator, look: str = DEFAULT_LOOK,
                         style: SimulatorStyle | ClinicalStyle | None = None) -> DomainSettings:
    """Draw one image's dose (log-uniform in the mode's range) and heel effect for a domain (from `style` when
    given: a candidate style of a fit)."""
    check_look(look)
    style = domain_style(domain, look) if style is None else style
    if isinstance(style, SimulatorStyle):
        return DomainSettings(domain=domain, effective_energy_keV=style.effective_energy_keV, look=look)
    low, high = style.dose_range_nGy
    dose = float(np.exp(rng.uniform(np.log(low), np.log(high))))
    heel = float(rng.uniform(*style.heel_range) * rng.choice([-1.0, 1.0]))
    spectrum = tube_spectrum(style.kvp, style.cu_mm)
    return DomainSettings(domain=domain, dose_nGy=dose, heel=heel, kvp=style.kvp,
                          effective_energy_keV=spectrum.mean_energy_keV, look=look)


@dataclass
class DomainRendering:
    """One rendered image in [0, 1] (MONOCHROME2) and the settings that made it."""

    image: np.ndarray
    settings: DomainSettings
    extras: dict = field(default_factory=dict)


def object_integrals(line_integrals: np.ndarray, look: str, spacing_mm_xyz, magnification: float,
                     pixel_spacing_mm: float, rng: np.random.Generator,
                     detail: ObjectDetail | None = None, reconstructed: bool = True,
                     scan_edges: np.ndarray | None = None) -> np.ndarray:
    """The line integrals a look's clinical domains render: the object finer than its CT (object_detail.py) where the
    look has it (`detail` overrides the look's), else the CT's own. `rng`: the subject and view's anatomy seed;
    `reconstructed`: the volume is a CT (MaterialVolume.reconstructed), whose blur is undone (not within a few blur
    sigmas of its `scan_edges`, scan_edges.scan_edges_on_detector); a phantom's is not."""
    detail = LOOK_OBJECT_DETAIL[look] if detail is None else detail
    if detail is None:
        return line_integrals
    return object_line_integrals(line_integrals, spacing_mm_xyz, magnification, pixel_spacing_mm, detail, rng,
                                 reconstructed, scan_edges)


def view_object_integrals(line_integrals: np.ndarray, look: str, volume: MaterialVolume, geometry: CArmGeometry,
                          rng: np.random.Generator) -> np.ndarray:
    """object_integrals for one projected view of `volume`: a CT's blur undone away from its own cut (its scan
    edges, found only when the look restores a CT), a phantom only textured."""
    if LOOK_OBJECT_DETAIL[look] is None:
        return line_integrals
    edges = scan_edges_on_detector(volume, geometry) if volume.reconstructed else None
    return object_integrals(line_integrals, look, volume.spacing_mm, geometry.magnification,
                            geometry.pixel_spacing_mm, rng, reconstructed=volume.reconstructed, scan_edges=edges)


def render_domain(line_integrals: np.ndarray, settings: DomainSettings, pixel_spacing_mm: float,
                  noise_rng: np.random.Generator | None) -> DomainRendering:
    """Render line integrals (rows, cols, materials; g/cm^2) in a domain; noise_rng=None: noise-free."""
    style = domain_style(settings.domain, settings.look)
    extras: dict = {}
    if isinstance(style, SimulatorStyle):
        image = _render_simulator(line_integrals, style, pixel_spacing_mm, noise_rng)
    else:
        image = _render_clinical(line_integrals, style, settings, pixel_spacing_mm, noise_rng, extras)
    return DomainRendering(image=image.astype(np.float32), settings=settings, extras=extras)


def to_uint16(image: np.ndarray) -> np.ndarray:
    """Quantise a [0, 1] display image to 16 bits."""
    return np.round(np.clip(image, 0.0, 1.0) * 65535.0).astype(np.uint16)


def _render_simulator(line_integrals, style: SimulatorStyle, pixel_spacing_mm, noise_rng):
    integrals = line_integrals
    if style.render_scale != 1.0:  # coarser rendering: project on a grid half as fine
        integrals = ndimage.zoom(line_integrals, (style.render_scale, style.render_scale, 1), order=1)
    transmission = monochromatic_transmission(integrals, style.effective_energy_keV)
    if style.render_scale != 1.0:
        factors = (line_integrals.shape[0] / transmission.shape[0], line_integrals.shape[1] / transmission.shape[1])
        transmission = ndimage.zoom(transmission, factors, order=1)
        transmission = transmission[: line_integrals.shape[0], : line_integrals.shape[1]]
    if style.veil_from_object:
        hazy = transmission + _object_veil(transmission, style.haze_strength, style.haze_sigma_mm, pixel_spacing_mm,
                                           style.fast_wide_blur)
    else:
        veil = ndimage.gaussian_filter(transmission, style.haze_sigma_mm / pixel_spacing_mm, mode="nearest")
        hazy = (transmission + style.haze_strength * veil) / (1.0 + style.haze_strength)
    if style.blur_px > 0:
        hazy = ndimage.gaussian_filter(hazy, style.blur_px, mode="nearest")
    attenuation = -np.log(np.clip(hazy, 1e-6, None))
    reference = max(float(np.percentile(attenuation, 99.5)), 1e-6)
    low, high = style.display_range
    image = low + (high - low) * attenuation / reference
    image = image * np.clip(attenuation / 0.05, 0.0, 1.0)  # air outside the head stays black
    if noise_rng is not None and style.white_noise_std > 0:
        image = image + noise_rng.normal(0.0, style.white_noise_std, image.shape)
    return np.clip(image, 0.0, 1.0)


def _band_decomposition(image: np.ndarray, sigmas_px, fast: bool = False) -> tuple[list[np.ndarray], np.ndarray]:
    """Difference-of-Gaussian detail bands at increasing scales and the residual low-pass (fast: wide_blur)."""
    bands, previous = [], image
    for sigma in sigmas_px:
        smooth = gaussian_blur(image, sigma) if fast else ndimage.gaussian_filter(image, sigma, mode="nearest")
        bands.append(previous - smooth)
        previous = smooth
    return bands, previous


def _render_clinical(line_integrals, style: ClinicalStyle, settings: DomainSettings,
                     pixel_spacing_mm, noise_rng, extras: dict):
    primary = polychromatic_transmission(line_integrals, detector_response(tube_spectrum(style.kvp, style.cu_mm)))
    return render_clinical_primary(primary, style, settings, pixel_spacing_mm, noise_rng, extras)


def quanta_pixel_mm(style: ClinicalStyle, pixel_spacing_mm: float) -> float:
    """Side of the detector area whose photons make one pixel's quantum noise: the pixel itself where the style
    counts quanta per pixel area (film), else the fixed binned element QUANTUM_PIXEL_MM (radiograph, legacy)."""
    return pixel_spacing_mm if style.noise_per_pixel_area else QUANTUM_PIXEL_MM


def detector_blur_px(style: ClinicalStyle, pixel_spacing_mm: float) -> float:
    """Gaussian sigma (pixels) of the detector: a PSF fixed in mm combined with the pixel's own aperture (film),
    else detector_blur_px whatever the pitch (radiograph, legacy)."""
    if style.detector_psf_mm <= 0:
        return style.detector_blur_px
    return float(np.hypot(style.detector_psf_mm / pixel_spacing_mm, PIXEL_APERTURE_SIGMA_PX))


def render_clinical_primary(primary: np.ndarray, style: ClinicalStyle, settings: DomainSettings,
                            pixel_spacing_mm: float, noise_rng: np.random.Generator | None,
                            extras: dict | None = None) -> np.ndarray:
    """A clinical domain's image from the polychromatic primary transmission (relative to the open field)."""
    extras = {} if extras is None else extras
    rows, cols = primary.shape
    heel = 1.0 + settings.heel * (np.arange(cols) / max(cols - 1, 1) - 0.5)
    if style.scatter_from_object:
        scatter = _object_veil(primary, style.scatter_to_primary, style.scatter_sigma_mm, pixel_spacing_mm,
                               style.fast_wide_blur)
    else:
        scatter = style.scatter_to_primary * ndimage.gaussian_filter(
            primary, style.scatter_sigma_mm / pixel_spacing_mm, mode="nearest")
    signal = (primary + scatter) * heel[None, :]  # relative to the open field
    # automatic exposure control: the central half of the field receives the mode's air kerma
    centre = signal[rows // 4: rows - rows // 4, cols // 4: cols - cols // 4]
    spectrum = tube_spectrum(style.kvp, style.cu_mm)
    response = detector_response(spectrum)
    photons_behind_head = (settings.dose_nGy * 1e-3 * spectrum.photons_per_mm2_per_uGy
                           * quanta_pixel_mm(style, pixel_spacing_mm) ** 2)
    # a recursive temporal filter (noise_frames > 1): the quanta of noise_frames frames of a still scene
    open_field_quanta = (photons_behind_head * style.noise_frames * response.detected_fraction
                         / max(float(centre.mean()), 1e-6))
    quanta = open_field_quanta * signal
    blur_px = detector_blur_px(style, pixel_spacing_mm)
    if noise_rng is not None:
        quanta = noise_rng.poisson(quanta).astype(np.float64)
    quanta = ndimage.gaussian_filter(quanta, blur_px, mode="nearest")
    if noise_rng is not None:
        quanta = quanta + noise_rng.normal(0.0, style.electronic_noise_quanta, quanta.shape)
    log_image = -np.log(np.clip(quanta, 0.5, None) / open_field_quanta)
    # window from the noise-free image so noisy and clean share one display mapping
    clean_log = -np.log(np.clip(ndimage.gaussian_filter(open_field_quanta * signal, blur_px,
                                                        mode="nearest"), 0.5, None) / open_field_quanta)
    # the object's own attenuation (no heel effect, no scatter) tells anatomy from direct exposure
    attenuation = -np.log(np.clip(ndimage.gaussian_filter(primary, blur_px, mode="nearest"), 1e-9, None))
    # intermediate images for measurements (benchmarks/measure_simulator.py): detector log signal, primary, scatter
    extras.update(log_image=log_image, clean_log_image=clean_log, primary=primary, scatter=scatter)
    if style.screen_film:
        return _screen_film(log_image, clean_log, attenuation, style, pixel_spacing_mm, noise_rng)
    if noise_rng is None:
        processed = processed_clean = _equalise(log_image, style, pixel_spacing_mm)
    elif style.gain_from_clean:  # film: each band's compression follows the noise-free band (same gain at every pitch)
        processed, processed_clean = _equalise_noisy_and_clean(log_image, clean_log, style, pixel_spacing_mm)
    else:
        processed, processed_clean = (_equalise(log_image, style, pixel_spacing_mm),
                                      _equalise(clean_log, style, pixel_spacing_mm))
    if style.skin_window:
        # the window from the processed image at WINDOW_SCALE_MM: fine overshoots do not widen it at fine pitches
        low, high = _skin_window(_smooth_mm(processed_clean, WINDOW_SCALE_MM, pixel_spacing_mm, style.fast_wide_blur),
                                 attenuation)
    elif style.window_on_anatomy:
        low, high = _anatomy_window(processed_clean, clean_log)
    else:
        low, high = float(np.percentile(processed_clean, 0.5)), float(np.percentile(processed_clean, 99.8))
    x = (processed - low) / max(high - low, 1e-6)
    image = _sigmoid_lut(x, style.lut_slope)
    if style.skin_window:  # exposure recognition: the open field black, from the skin line on
        tissue = _tissue(attenuation)
        x_clean = (processed_clean - low) / max(high - low, 1e-6)  # noise-free
        # film-like toe (lut_toe > 0): the thinnest anatomy (skin, facial profile) grey, the open field black
        toe = style.lut_toe * np.clip(x_clean / TOE_RAMP, 0.0, 1.0)
        image = tissue * (toe + (1.0 - style.lut_toe) * image)
    return image


def _smooth_mm(image: np.ndarray, sigma_mm: float, pixel_spacing_mm: float, fast: bool = False) -> np.ndarray:
    """A Gaussian blur of sigma_mm (wide_blur's when fast)."""
    sigma = sigma_mm / pixel_spacing_mm
    return gaussian_blur(image, sigma) if fast else ndimage.gaussian_filter(image, sigma, mode="nearest")


def _object_veil(primary: np.ndarray, ratio: float, sigma_mm: float, pixel_spacing_mm: float,
                 fast: bool = False) -> np.ndarray:
    """Scatter (or a simulator's veil) from the object: a Gaussian kernel over sources P * ln(1/P), none in air.

    Single scatter leaves the object roughly in proportion to the primary and the path length through
    it (Love & Kruger 1987, Med Phys 14:178: convolution scatter estimates weighted by the object's
    thickness); the amount is set so that the median veil-to-primary ratio over the anatomy is `ratio`
    (for scatter, the SPR: 0.2-0.6 for a head with an anti-scatter grid, PHYSICS.md).
    """
    depth = -np.log(np.clip(primary, 1e-9, None))
    sigma_px = sigma_mm / pixel_spacing_mm
    spread = (gaussian_blur(primary * depth, sigma_px) if fast
              else ndimage.gaussian_filter(primary * depth, sigma_px, mode="nearest"))
    anatomy = depth > ANATOMY_MIN_ATTENUATION
    if not anatomy.any() or ratio == 0:
        return np.zeros_like(primary)
    median = float(np.median(spread[anatomy] / np.clip(primary[anatomy], 1e-12, None)))
    return ratio / max(median, 1e-12) * spread


def _anatomy_window(processed_clean: np.ndarray, clean_log: np.ndarray) -> tuple[float, float]:
    """Display window from the anatomy only (exposure recognition): the direct-exposure field goes black."""
    anatomy = clean_log > ANATOMY_MIN_ATTENUATION
    if anatomy.mean() < 0.02 or anatomy.mean() > 0.98:  # no anatomy, or no direct exposure: the whole image
        values = processed_clean.ravel()
        return float(np.percentile(values, WINDOW_PERCENTILES[0])), float(np.percentile(values, WINDOW_PERCENTILES[1]))
    low = max(float(np.percentile(processed_clean[anatomy], WINDOW_PERCENTILES[0])),
              float(np.percentile(processed_clean[~anatomy], 75.0)))  # direct exposure saturates black
    high = float(np.percentile(processed_clean[anatomy], WINDOW_PERCENTILES[1]))
    return low, max(high, low + 1e-6)


def _skin_window(processed_clean: np.ndarray, attenuation: np.ndarray) -> tuple[float, float]:
    """Display window from the 0.5th percentile over all tissue (skin and facial profile included) to the
    99.7th over the anatomy; the processing's halo can push thin tissue below the open field, so the open
    field is set black by its own mask in _render_clinical, not by the window."""
    anatomy = attenuation > ANATOMY_MIN_ATTENUATION
    if anatomy.mean() < 0.02 or anatomy.mean() > 0.98:  # no anatomy, or no direct exposure: the whole image
        values = processed_clean.ravel()
        return float(np.percentile(values, WINDOW_PERCENTILES[0])), float(np.percentile(values, WINDOW_PERCENTILES[1]))
    low = float(np.percentile(processed_clean[attenuation > DIRECT_EXPOSURE_MAX_ATTENUATION], WINDOW_PERCENTILES[0]))
    high = float(np.percentile(processed_clean[anatomy], WINDOW_PERCENTILES[1]))
    return low, max(high, low + 1e-6)


def _band_plan(style: ClinicalStyle, pixel_spacing_mm: float) -> tuple[list[float], list[float]]:
    """(sigmas in pixels, gains) of the contrast-equalisation bands at this pitch."""
    scale_px = 1.0 / BAND_SIGMAS_MM[0]  # 1, 2, 4, 8, 16 pixels
    if style.band_scales_in_mm:
        scale_px = max(1.0 / pixel_spacing_mm, scale_px)  # fixed in mm, but no finer than 1, 2, 4, 8, 16 pixels
    # bands finer than BAND_SIGMAS_MM, only where the pixels resolve them (sigma at least FINE_BAND_MIN_PX)
    fine = [(sigma / pixel_spacing_mm, gain) for sigma, gain in zip(style.fine_band_sigmas_mm, style.fine_band_gains)
            if sigma >= FINE_BAND_MIN_PX * pixel_spacing_mm]
    sigmas = [sigma for sigma, _ in fine] + [sigma * scale_px for sigma in BAND_SIGMAS_MM]
    return sigmas, [gain for _, gain in fine] + list(style.band_gains)


def _equalise(log_image: np.ndarray, style: ClinicalStyle, pixel_spacing_mm: float) -> np.ndarray:
    """Multi-scale contrast equalisation: amplified (compressed) detail bands on a compressed low-pass."""
    sigmas, gains = _band_plan(style, pixel_spacing_mm)
    bands, residual = _band_decomposition(log_image, sigmas, style.fast_wide_blur)
    out = style.base_gain * residual
    for gain, band in zip(gains, bands):
        out = out + gain * _compress(band, style.band_exponent, style.band_knee, style.band_linear_below)
    return out


def _equalise_noisy_and_clean(log_image: np.ndarray, clean_log: np.ndarray, style: ClinicalStyle,
                              pixel_spacing_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """(processed noisy, processed noise-free) images, the noise-free one split into bands once: each noisy band is
    multiplied by the compression's gain at the noise-free band's amplitude (noise-adaptive: the quantum noise is
    amplified linearly, by the same gain at every pitch); the noise-free image is _equalise(clean_log), bit for bit."""
    sigmas, gains = _band_plan(style, pixel_spacing_mm)
    bands, residual = _band_decomposition(log_image, sigmas, style.fast_wide_blur)
    clean_bands, clean_residual = _band_decomposition(clean_log, sigmas, style.fast_wide_blur)
    out, clean_out = style.base_gain * residual, style.base_gain * clean_residual
    for gain, band, clean in zip(gains, bands, clean_bands):
        out = out + gain * band * _compression_gain(clean, style.band_exponent, style.band_knee,
                                                    style.band_linear_below)
        clean_out = clean_out + gain * _compress(clean, style.band_exponent, style.band_knee, style.band_linear_below)
    return out, clean_out


def _tissue(attenuation: np.ndarray) -> np.ndarray:
    """0 in the open field, 1 from the skin line on (attenuation from DIRECT_EXPOSURE_MAX_ATTENUATION up)."""
    return np.clip(attenuation / (DIRECT_EXPOSURE_MAX_ATTENUATION / 2) - 1.0, 0.0, 1.0)


def _screen_film(log_image, clean_log, attenuation, style: ClinicalStyle, pixel_spacing_mm: float,
                 noise_rng) -> np.ndarray:
    """A screen-film radiograph (screen_film.py): the log exposure, blurred by the screen (already applied), with
    the development's edge (adjacency) effect as linear bands (band_gains), through the film's H&D curve, with film
    grain. No window: the speed point sets the densities."""
    exposure = _equalise(log_image, style, pixel_spacing_mm)
    metered = metered_tissue(attenuation > DIRECT_EXPOSURE_MAX_ATTENUATION, pixel_spacing_mm,
                             style.film_metering_radius_mm)
    speed = film_speed_point(clean_log, metered, style.film_median_brightness, style.film_gradient,
                             style.film_shoulder_gradient)
    image = characteristic_curve(exposure, speed, style.film_gradient, style.film_shoulder_gradient)
    if style.lut_toe > 0:  # the skin line: tissue from lut_toe up (a cephalostat's soft-tissue filter keeps it grey)
        image = _tissue(attenuation) * (style.lut_toe + (1.0 - style.lut_toe) * image)
    if noise_rng is not None and style.film_grain_std > 0:
        image = add_film_grain(image, style.film_grain_std, pixel_spacing_mm, noise_rng)
    return image


def _compression_gain(band: np.ndarray, exponent: float, knee: float, linear_below: float) -> np.ndarray:
    """_compress(b) / b: (|b| / knee)^(p - 1), constant below `linear_below` (at least 1e-6)."""
    return (np.maximum(np.abs(band), max(linear_below, 1e-6)) / knee) ** (exponent - 1.0)


def _compress(band: np.ndarray, exponent: float, knee: float, linear_below: float = 0.0) -> np.ndarray:
    """MUSICA's band non-linearity knee * sign(b) * (|b| / knee)^p: small details up, large edges down (p < 1);
    linear below `linear_below` (with the curve's value there), so the noise floor is not raised further."""
    if exponent == 1.0:
        return band
    compressed = knee * np.sign(band) * (np.abs(band) / knee) ** exponent
    if linear_below <= 0:
        return compressed
    return np.where(np.abs(band) < linear_below, band * (linear_below / knee) ** (exponent - 1.0), compressed)


def _sigmoid_lut(x: np.ndarray, slope: float, centre: float = 0.5) -> np.ndarray:
    """Sigmoid display LUT mapping the window [0, 1] onto [0, 1] (0 and 1 kept fixed)."""
    def s(v):
        return 1.0 / (1.0 + np.exp(-slope * (v - centre)))
    return np.clip((s(x) - s(0.0)) / (s(1.0) - s(0.0)), 0.0, 1.0)
