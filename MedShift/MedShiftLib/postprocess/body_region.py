"""Where the body is on a radiograph: away from direct exposure (air) and collimator shutters."""
from __future__ import annotations

import numpy as np
from scipy.ndimage import binary_erosion, gaussian_filter

BODY_SMOOTHING_PX = 8.0
BODY_MARGIN = 0.06  # of the smoothed image's range, left out at each end (air, shutters)
BODY_EROSION_PX = 12


def body_mask(pixels: np.ndarray) -> np.ndarray:
    """Pixels of a radiograph that lie on the body: its smoothed grey level is away from both ends of its range."""
    smooth = gaussian_filter(np.asarray(pixels, dtype=np.float64), BODY_SMOOTHING_PX)
    low, high = np.percentile(smooth, [1.0, 99.0])
    margin = BODY_MARGIN * (high - low)
    mask = (smooth > low + margin) & (smooth < high - margin)
    eroded = binary_erosion(mask, iterations=BODY_EROSION_PX)
    return eroded if eroded.sum() >= 0.05 * mask.size else mask
