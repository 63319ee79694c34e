"""A screen-film radiograph from the detector's log exposure: the film look's clinical-normal and -exposure.

A film is not digitally processed. The intensifying screen's light spread (the detector PSF, applied before)
blurs the exposure, the film's characteristic (H&D) curve turns log exposure into optical density, and the
scan shows density as grey (bright = clear film = little exposure = dense anatomy):

- H&D curve: a logistic in ln E between base + fog (grey 1) and D_max (grey 0), of maximum slope `film_gradient`
  / 4 in grey per unit of ln E: a film of gamma G (density per decade of exposure) over a density range R has
  film_gradient = 4 G / (R ln 10), 1.4-2.6 for G 2.5-3 and R 2-3; toe and shoulder are the logistic's ends, the
  shoulder (dark side: thin tissue, the facial profile) long, of gradient `film_shoulder_gradient`, so thin soft
  tissue shows grey above the black open field, as on the skull films;
- speed point: the technique (kVp and mAs from a technique chart, or a phototimer) exposes the film so that
  the median attenuation of the head around the central ray (the tissue within `film_metering_radius_mm` of the
  detector's centre: the skull, not the neck and shoulders a large field also holds) reaches the grey
  `film_median_brightness`: the vault sits in the bright toe, soft tissue and the facial profile on the straight
  part, the open field in the dark shoulder;
- film granularity: white density noise whose variance grows with density (Selwyn: sigma_D^2 proportional to D
  for a fixed aperture) and whose RMS falls as one over the pixel side (sigma_D sqrt(area) constant), so a
  coarser pixel averages the grain as a microdensitometer's larger aperture does.
"""
from __future__ import annotations

import numpy as np
from scipy.special import log_expit

# Pixel side (mm) at which ClinicalStyle.film_grain_std gives the RMS of the normalised density at D_max.
GRAIN_REFERENCE_MM = 0.15
# ln-attenuation over which the curve's slope turns from the shoulder's to the toe's around the speed point.
SHOULDER_BLEND = 0.5
# Lowest speed point (ln-attenuation): below it the curve no longer changes (the whole view in the toe's tail,
# grey 1 - exp(-film_gradient * attenuation)); a view too thin to reach the target grey (little or no anatomy)
# gets it.
LOWEST_SPEED_POINT = -5.0


def metered_tissue(tissue: np.ndarray, pixel_spacing_mm: float, radius_mm: float) -> np.ndarray:
    """The tissue that sets the exposure: `tissue` within `radius_mm` of the detector's centre (the central ray), as
    a technique chart or a phototimer meters the skull, not the periphery; all of `tissue` when radius_mm <= 0 or
    when the disc holds none of it (a view aimed off the head)."""
    if radius_mm <= 0:
        return tissue
    rows, cols = tissue.shape
    radius_px = radius_mm / pixel_spacing_mm
    yy, xx = np.ogrid[:rows, :cols]
    metered = tissue & ((yy - (rows - 1) / 2) ** 2 + (xx - (cols - 1) / 2) ** 2 <= radius_px ** 2)
    return metered if metered.any() else tissue


def film_speed_point(clean_log: np.ndarray, tissue: np.ndarray, median_brightness: float, gradient: float,
                     shoulder_gradient: float) -> float:
    """ln-attenuation at which the H&D curve is half-way, such that the head's median (noise-free, over `tissue`)
    shows at the grey `median_brightness` (the curve rises with attenuation: bisection); LOWEST_SPEED_POINT when
    that grey cannot be reached (a view with little or no anatomy)."""
    median = float(np.median(clean_log[tissue] if tissue.any() else clean_log))
    low, high = median - 20.0, median + 20.0
    for _ in range(50):
        speed = (low + high) / 2
        if characteristic_curve(np.float64(median), speed, gradient, shoulder_gradient) > median_brightness:
            low = speed  # the median too bright: the speed point moves up
        else:
            high = speed
    return max((low + high) / 2, LOWEST_SPEED_POINT)


def _logit_of_grey(relative: np.ndarray, gradient: float, shoulder_gradient: float) -> np.ndarray:
    """The curve's logit at ln-attenuation `relative` to the speed point: slope `gradient` on the bright side (the
    toe), `shoulder_gradient` on the dark side (a long shoulder), blended smoothly over SHOULDER_BLEND."""
    weight = 0.5 * (1.0 + np.tanh(relative / SHOULDER_BLEND))
    return (shoulder_gradient + (gradient - shoulder_gradient) * weight) * relative


def characteristic_curve(attenuation: np.ndarray, speed_point: float, gradient: float,
                         shoulder_gradient: float) -> np.ndarray:
    """Displayed grey of the film (0: D_max, black; 1: base + fog, clear) at ln-attenuation `attenuation`
    relative to the open field; the open field (attenuation 0 or less) is black.

    (s(a) - s(0)) / (1 - s(0)) for the logistic s, written as 1 - expit(-x_a) / expit(-x_0) in logs so that it
    stays finite when the open field lies deep in the toe (s(0) rounds to 1)."""
    def log_dark(a):
        return log_expit(-_logit_of_grey(a - speed_point, gradient, shoulder_gradient))
    return np.clip(1.0 - np.exp(log_dark(attenuation) - log_dark(np.float64(0.0))), 0.0, 1.0)


def add_film_grain(grey: np.ndarray, grain_std: float, pixel_spacing_mm: float,
                   rng: np.random.Generator) -> np.ndarray:
    """White density noise: RMS grain_std * sqrt(density) at GRAIN_REFERENCE_MM pixels, over the pixel side."""
    density = 1.0 - grey
    std = grain_std * np.sqrt(np.clip(density, 0.0, 1.0)) * (GRAIN_REFERENCE_MM / pixel_spacing_mm)
    return np.clip(grey - std * rng.standard_normal(grey.shape), 0.0, 1.0)
