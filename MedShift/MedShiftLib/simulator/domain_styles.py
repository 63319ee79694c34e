"""The parameters of each simulator domain, in three looks: "film" (default), "radiograph" and "legacy".

- film: clinical-normal and -exposure are screen-film radiographs (screen_film.py: screen blur, quantum mottle,
  the film's H&D curve, grain; no multi-scale equalisation) fitted to real skull films (benchmarks/fit_film_look.py;
  docs/simulator.md, "Against real skull films"); clinical-low a processed fluoroscopy frame after a recursive
  filter (detail bands down to 0.3 mm with gains taken from the noise-free bands, a grey toe). Everything scales
  with the pitch as a detector does (quanta per pixel area, a PSF in mm); fast wide filters for large views.
- radiograph: the look the bundled model was fine-tuned on (until it is retrained), kept byte for byte:
  scatter (and the simulator domains' veil) from the object only, the display window on the anatomy
  (direct exposure black), MUSICA-style compressed bands at fixed mm scales (docs/simulator.md, "The look").
- legacy: the earlier renderer: a veil and scatter that blur the open field into the head, the window
  over the whole image, linear bands in pixels.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import DomainError
from .domains import SIMULATOR_DOMAINS
from .object_detail import ObjectDetail

LOOKS = ("film", "radiograph", "legacy")
DEFAULT_LOOK = "film"
BUNDLED_MODEL_LOOK = "radiograph"  # the look the bundled model was fine-tuned on (the demo's default until a retrain)


@dataclass(frozen=True)
class SimulatorStyle:
    """Parameters of a simulator-style (synthetic) domain."""

    effective_energy_keV: float
    haze_strength: float  # radiograph: median veil-to-primary ratio over the anatomy; legacy: veil weight
    haze_sigma_mm: float
    render_scale: float  # 0.5: rendered at half resolution and upsampled
    blur_px: float
    white_noise_std: float  # in display units, after the display mapping
    display_range: tuple[float, float]  # display values of zero and of the reference attenuation
    veil_from_object: bool = True  # False (legacy): the veil blurs the whole transmission, open field included
    fast_wide_blur: bool = False  # True (film): the veil on block averages (wide_blur.py: within 0.5 %)


@dataclass(frozen=True)
class ClinicalStyle:
    """Parameters of a clinical (angiography system) domain."""

    kvp: float
    cu_mm: float
    dose_range_nGy: tuple[float, float]  # detector air kerma per frame behind the head (AEC)
    scatter_to_primary: float
    scatter_sigma_mm: float
    electronic_noise_quanta: float
    heel_range: tuple[float, float]  # relative intensity change across the field
    band_gains: tuple[float, ...]  # gains of the detail bands (sigma BAND_SIGMAS_MM, or 1-16 px in legacy)
    base_gain: float  # gain of the residual low-pass (< 1 compresses the dynamic range)
    detector_blur_px: float = 1.0  # detector blur in pixels at every pitch (radiograph, legacy: detector_psf_mm 0)
    lut_slope: float = 6.0  # steepness of the sigmoid display LUT (not screen-film)
    band_exponent: float = 1.0  # p of the band non-linearity (1: linear bands)
    band_knee: float = 0.05  # band amplitude (log units) that p < 1 leaves unchanged
    scatter_from_object: bool = True  # False (legacy): SPR times the blurred primary, open field included
    window_on_anatomy: bool = True  # False (legacy): window over the whole image
    band_scales_in_mm: bool = True  # False (legacy): bands at 1-16 px whatever the pixel size
    fine_band_sigmas_mm: tuple[float, ...] = ()  # detail bands below BAND_SIGMAS_MM (used where pixels resolve them)
    fine_band_gains: tuple[float, ...] = ()
    skin_window: bool = False  # True (film): window over all tissue, open field black by its own mask, toe
    lut_toe: float = 0.0  # display value the tissue starts from above black (skin_window only)
    fast_wide_blur: bool = False  # True (film): scatter and wide bands on block averages (wide_blur.py: within 0.5 %)
    noise_per_pixel_area: bool = False  # True (film): a pixel's quanta from its own area (pitch^2), not 0.308 mm
    detector_psf_mm: float = 0.0  # > 0 (film): detector PSF sigma in mm with the pixel aperture (not detector_blur_px)
    band_linear_below: float = 0.0  # band amplitude (log units) below which the compression is linear (noise)
    gain_from_clean: bool = False  # True (film): band gains from the noise-free band (noise amplified linearly)
    noise_frames: float = 1.0  # frames a recursive temporal filter averages (fluoroscopy): quantum noise variance / it
    screen_film: bool = False  # True (film look's normal, exposure): a screen-film radiograph (screen_film.py)
    film_gradient: float = 2.5  # the H&D curve's toe side: 4 x its slope (grey per unit of ln exposure)
    film_shoulder_gradient: float = 2.5  # the curve's (long) shoulder side, thin tissue: 4 x its slope
    film_median_brightness: float = 0.8  # the speed point: the head's median attenuation shows at this grey
    film_metering_radius_mm: float = 0.0  # > 0: that median over the tissue within this radius of the central ray
    film_grain_std: float = 0.0  # film granularity: RMS normalised density at D_max, 0.15 mm pixels


_SIM = dict(effective_energy_keV=55.0, haze_sigma_mm=45.0)
_CLINICAL = dict(scatter_to_primary=0.4, scatter_sigma_mm=40.0, electronic_noise_quanta=3.0, heel_range=(0.05, 0.15))
_FLUORO = dict(detector_blur_px=1.0, band_gains=(1.0, 1.6, 1.9, 1.6, 1.2), base_gain=0.4, lut_slope=5.0,
               band_exponent=0.7)

RADIOGRAPH_DOMAIN_STYLES: dict[str, SimulatorStyle | ClinicalStyle] = {
    "sim-low": SimulatorStyle(haze_strength=0.6, render_scale=0.5, blur_px=0.8, white_noise_std=0.012,
                              display_range=(0.06, 0.78), **_SIM),
    "sim-high": SimulatorStyle(haze_strength=0.45, render_scale=1.0, blur_px=0.6, white_noise_std=0.0,
                               display_range=(0.05, 0.82), **_SIM),
    "clinical-low": ClinicalStyle(kvp=80, cu_mm=0.9, dose_range_nGy=(10.0, 20.0), **_FLUORO, **_CLINICAL),
    "clinical-normal": ClinicalStyle(kvp=80, cu_mm=0.3, dose_range_nGy=(30.0, 50.0), **_FLUORO, **_CLINICAL),
    "clinical-exposure": ClinicalStyle(kvp=70, cu_mm=0.1, dose_range_nGy=(100.0, 1000.0), detector_blur_px=0.8,
                                       band_gains=(1.8, 2.4, 2.2, 1.8, 1.4), base_gain=0.4, lut_slope=5.5,
                                       band_exponent=0.7, **_CLINICAL),
}

# The film look's processed fluoroscopy (clinical-low; until issue 27's third round also normal and exposure, fitted
# to the skull films): quanta per pixel area and a detector PSF in mm (so the look scales with the pitch),
# bands at 0.3 and 0.6 mm where the pixels resolve them, gains that follow the noise-free bands, a grey toe.
# A fluoroscopy frame after the usual recursive temporal filter, weight a = 0.25 on the new frame: the quantum noise
# variance of a still scene falls to a / (2 - a), as if (2 - a) / a = 7 frames were averaged.
FLUORO_RECURSIVE_FRAMES = 7.0
_FILM = dict(fine_band_sigmas_mm=(0.3, 0.6), band_exponent=0.6, base_gain=0.2, skin_window=True, lut_toe=0.15,
             fast_wide_blur=True, noise_per_pixel_area=True, detector_psf_mm=0.15, gain_from_clean=True,
             band_linear_below=0.003)
# the film look's clinical-low: a processed fluoroscopy frame (its normal and exposure are screen-film radiographs)
_FILM_FLUORO = dict(band_gains=(2.4, 2.0, 2.2, 1.6, 1.0), fine_band_gains=(3.5, 3.5),
                    lut_slope=6.0, **_FILM)
# clinical-normal and -exposure: screen-film radiographs (screen_film.py) of the object finer than its CT
# (LOOK_OBJECT_DETAIL), fitted to the skull films by eye and by benchmarks/fit_film_look.py (docs/simulator.md): the
# screen's PSF (0.2 mm since issue 27's ninth round, 0.15 before), quantum mottle at a film-screen dose, linear
# detail bands (the development's edge effect: 2.3 at 1.25 mm, stronger than a film's 10-20 % for the edge goal; 1.15
# / 1.15 / 1.1 at 5 / 10 / 20 mm since issue 27's ninth round, a film's, none at 2.5-20 mm from its fifth round, when
# the films were measured without their unexposed frame, to its eighth; no finer bands since the object detail
# restores the fine scales), the H&D curve (long shoulder 1.3 since the ninth round, 1.0 before) with the speed point
# at the median of the head within FILM_METERING_RADIUS_MM of the central ray (0.89 since issue 27's ninth round;
# before it 0.81 over all of the view's tissue, neck and shoulders included), film grain (measured on the films since
# issue 27's seventh round: film_statistics.noise_by_grey, the renderings as scanned). Exposure: a slower detail
# system (a 0.1 mm screen PSF, 20-40 uGy: speed class 50-25, 10 x normal's mean dose; 5-15 uGy until issue 27's
# eighth round, 10-20 until its ninth, whose brighter speed points put normal's skull further into the toe, where the
# flatter curve hides more of its noise; finer grain), 70 kVp, a steeper film (toe 2.8, shoulder 1.4) exposed one
# step (0.08 of grey at the speed point) darker.
# The technique meters the skull: the speed point's median is taken over the tissue within this radius (mm, on the
# detector) of the central ray, 19 cm across at the head in the cephalostat's geometry where it was fitted (13 cm in
# the default C-arm's), so a view's neck and shoulders (the Visible Human's, down to C5) do not brighten its skull
# (issue 27's ninth round: fit_film_look.py, 50-140 mm tried).
FILM_METERING_RADIUS_MM = 100.0
_SCREEN_FILM = dict(screen_film=True, band_exponent=1.0, base_gain=1.0, band_gains=(2.3, 1.0, 1.15, 1.15, 1.1),
                    noise_per_pixel_area=True, fast_wide_blur=True, lut_toe=0.15,
                    film_metering_radius_mm=FILM_METERING_RADIUS_MM, **_CLINICAL)
FILM_DOMAIN_STYLES: dict[str, SimulatorStyle | ClinicalStyle] = {
    "sim-low": SimulatorStyle(haze_strength=0.6, render_scale=0.5, blur_px=0.8, white_noise_std=0.012,
                              display_range=(0.06, 0.78), fast_wide_blur=True, **_SIM),
    "sim-high": SimulatorStyle(haze_strength=0.45, render_scale=1.0, blur_px=0.6, white_noise_std=0.0,
                               display_range=(0.05, 0.82), fast_wide_blur=True, **_SIM),
    # low: fluoroscopy at low dose (visibly noisy, as X-DigiSkull's), digitally processed; normal: a screen-film
    # radiograph, as the real skull films; exposure: a slower, sharper screen-film system at more dose, darker
    "clinical-low": ClinicalStyle(kvp=80, cu_mm=0.9, dose_range_nGy=(10.0, 20.0), noise_frames=FLUORO_RECURSIVE_FRAMES,
                                  **_FILM_FLUORO, **_CLINICAL),
    "clinical-normal": ClinicalStyle(kvp=80, cu_mm=0.3, dose_range_nGy=(1500.0, 4500.0), detector_psf_mm=0.2,
                                     film_gradient=2.5, film_shoulder_gradient=1.3, film_median_brightness=0.89,
                                     film_grain_std=0.008, **_SCREEN_FILM),
    "clinical-exposure": ClinicalStyle(kvp=70, cu_mm=0.1, dose_range_nGy=(20000.0, 40000.0), detector_psf_mm=0.1,
                                       film_gradient=2.8, film_shoulder_gradient=1.4, film_median_brightness=0.81,
                                       film_grain_std=0.004, **_SCREEN_FILM),
}

_LEGACY_SIM = dict(veil_from_object=False, **_SIM)
_LEGACY = dict(scatter_from_object=False, window_on_anatomy=False, band_scales_in_mm=False, **_CLINICAL)
LEGACY_DOMAIN_STYLES: dict[str, SimulatorStyle | ClinicalStyle] = {
    "sim-low": SimulatorStyle(haze_strength=0.6, render_scale=0.5, blur_px=0.8, white_noise_std=0.012,
                              display_range=(0.06, 0.78), **_LEGACY_SIM),
    "sim-high": SimulatorStyle(haze_strength=0.45, render_scale=1.0, blur_px=0.6, white_noise_std=0.0,
                               display_range=(0.05, 0.82), **_LEGACY_SIM),
    "clinical-low": ClinicalStyle(kvp=80, cu_mm=0.9, dose_range_nGy=(10.0, 20.0), detector_blur_px=1.0,
                                  band_gains=(1.0, 1.4, 1.6, 1.4, 1.15), base_gain=0.55, lut_slope=6.0, **_LEGACY),
    "clinical-normal": ClinicalStyle(kvp=80, cu_mm=0.3, dose_range_nGy=(30.0, 50.0), detector_blur_px=1.0,
                                     band_gains=(1.0, 1.4, 1.6, 1.4, 1.15), base_gain=0.55, lut_slope=6.0,
                                     **_LEGACY),
    "clinical-exposure": ClinicalStyle(kvp=70, cu_mm=0.1, dose_range_nGy=(100.0, 1000.0), detector_blur_px=0.8,
                                       band_gains=(1.8, 2.4, 2.2, 1.7, 1.3), base_gain=0.5, lut_slope=7.0,
                                       **_LEGACY),
}

LOOK_STYLES = {"film": FILM_DOMAIN_STYLES, "radiograph": RADIOGRAPH_DOMAIN_STYLES, "legacy": LEGACY_DOMAIN_STYLES}
# The object finer than its CT (object_detail.py), seen by a look's clinical domains: the film look's radiographs are
# of the real head; the radiograph and legacy looks render the CT as it is. No added bone texture since issue 27's
# eighth round (3e-5 before, set by eye): inside the bone the renderings' 0.5-1 mm bands are 1.4-5.8 x the skull
# films' even without it (benchmarks/fit_film_look.py --bone-bands), and with it Cranium's edges and bands were further
# from the films (docs/simulator.md, "Against real skull films").
FILM_OBJECT_DETAIL = ObjectDetail(psf_fwhm_voxels=1.2, slice_fwhm=1.0, max_gain=6.0, texture_beta=3.4,
                                  texture_psd=0.0)
LOOK_OBJECT_DETAIL: dict[str, ObjectDetail | None] = {"film": FILM_OBJECT_DETAIL, "radiograph": None, "legacy": None}


def check_look(look: str) -> None:
    """Raise DomainError for a look the simulator does not have."""
    if look not in LOOK_STYLES:
        raise DomainError(f"unknown simulator look {look!r}; use one of {', '.join(LOOKS)}")


def domain_style(domain: str, look: str = DEFAULT_LOOK) -> SimulatorStyle | ClinicalStyle:
    """The parameters of a domain in a look; DomainError for an unknown domain or look."""
    check_look(look)
    if domain not in FILM_DOMAIN_STYLES:
        raise DomainError(f"unknown simulator domain {domain!r}; the simulator renders: "
                          f"{', '.join(SIMULATOR_DOMAINS)}")
    return LOOK_STYLES[look][domain]
