"""Film statistics (edge width, band energies, grey levels) on images whose answers are known."""
from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage

from MedShiftLib.evaluation.film_statistics import (
    CUT_MARGIN_MM,
    band_log_ratio,
    clear_of,
    fill_from_nearest,
    film_statistics,
    head_region,
    histogram_distance,
    noise_by_grey,
    noise_log_ratio,
    unexposed_film,
)

PIXEL = 0.1


def _disc_image(blur_mm: float, seed: int = 0, noise: float = 0.002) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:400, :400]
    inside = np.hypot(yy - 200, xx - 200) < 150
    image = 0.4 + 0.5 * ((np.hypot(yy - 200, xx - 180) < 60) | ((xx // 40) % 2 == 0) & inside)
    image = np.where(inside, image, 0.0)
    image = ndimage.gaussian_filter(image, blur_mm / PIXEL)
    return image + np.random.default_rng(seed).normal(0, noise, image.shape), inside


@pytest.mark.parametrize("blur_mm", [0.3, 0.6])
def test_edge_width_is_the_10_90_rise_of_a_gaussian_edge(blur_mm):
    image, inside = _disc_image(blur_mm)
    stats = film_statistics(image, inside, PIXEL, common_pixel_mm=PIXEL)
    # within 5 %: the crossings interpolated between the profile's samples (counting whole samples read the 0.3 mm
    # edge 7 % wide)
    assert stats.edge_width_mm == pytest.approx(2.563 * blur_mm, rel=0.05)


def test_same_image_compares_equal_and_a_blurred_or_darker_one_does_not():
    image, inside = _disc_image(0.2)
    base = film_statistics(image, inside, PIXEL, common_pixel_mm=PIXEL)
    again = film_statistics(_disc_image(0.2, seed=1)[0], inside, PIXEL, common_pixel_mm=PIXEL)
    assert band_log_ratio(base, again) < 0.05 and histogram_distance(base, again) < 0.01
    blurred = film_statistics(ndimage.gaussian_filter(image, 10), inside, PIXEL, common_pixel_mm=PIXEL)
    assert blurred.band_energies[0] < 0.1 * base.band_energies[0] and band_log_ratio(base, blurred) > 1
    darker = film_statistics(np.clip(image, 0, None) ** 4, inside, PIXEL, common_pixel_mm=PIXEL)
    assert histogram_distance(base, darker) > 0.05 and darker.median_grey < base.median_grey


def test_the_head_region_is_the_bright_object_without_the_excluded_boxes():
    image, inside = _disc_image(0.2)
    head = head_region(image, PIXEL, exclude=((0, 100, 0, 400),))
    assert not head[:100].any() and (head[100:] == inside[100:]).mean() > 0.95  # up to the 2 mm blur at the rim


def _film_like(pixel_mm: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A 200 mm film: air 0.2, a head (bone 0.85 inside a soft-tissue rim 0.35) with a small dark sinus, and the
    film's bright unexposed border joined to the head by a bright bar (a ruler), closing off the air."""
    yy, xx = np.mgrid[:400, :400] * pixel_mm
    radius = np.hypot(yy - 100, xx - 100)
    image = np.full((400, 400), 0.2)
    image[radius < 70] = 0.35  # soft tissue
    image[radius < 60] = 0.85  # skull
    sinus = np.hypot(yy - 100, xx - 80) < 5
    image[sinus] = 0.3
    border = (yy < 5) | (yy >= 195) | (xx < 5) | (xx >= 195)
    image[border | ((np.abs(xx - 100) < 3) & (yy > 150))] = 0.95
    return image, radius < 70, radius < 60, sinus


def test_the_head_region_fills_small_holes_but_not_air_closed_off_by_the_film_border():
    image, tissue, skull, sinus = _film_like()
    head = head_region(image, 0.5)
    assert head[sinus].all()  # a dark detail inside the head is filled
    air = ~tissue & (image < 0.3)
    assert head[air].mean() < 0.05  # the air closed off by the border is not (up to the 2 mm blur)


def test_a_tissue_fraction_counts_thin_soft_tissue_as_head():
    image, tissue, skull, _ = _film_like()
    rim = tissue & ~skull
    rim_inner = rim & ndimage.binary_erosion(rim, iterations=4)  # away from the 2 mm blur at its edges
    assert head_region(image, 0.5)[rim_inner].mean() < 0.05  # Otsu: bone only
    assert head_region(image, 0.5, tissue_fraction=0.1)[rim_inner].mean() > 0.95


def _framed_film(pixel_mm: float = 0.5, frame: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """A 200 mm film: air 0.2 with a head (bone 0.85 in soft tissue 0.35) whose skull runs into the film's edge on
    the left, and (frame=True) the cassette's unexposed border (0.95, 5 mm) with a cut corner; and the skull."""
    yy, xx = np.mgrid[:400, :400] * pixel_mm
    radius = np.hypot(yy - 100, xx - 55)
    image = np.full((400, 400), 0.2)
    image[radius < 70] = 0.35
    image[radius < 60] = 0.85
    image[(radius < 30) & (np.abs(yy - 100) < 3)] = 0.5  # an inner detail
    image[(np.abs(xx - 60) < 25) & (yy > 100) & (radius >= 60)] = 0.35  # the neck, down to the film's edge
    if frame:
        border = (yy < 5) | (yy >= 195) | (xx < 5) | (xx >= 195) | (yy + xx < 25)
        image[border] = 0.95
    return image, radius < 60


def test_a_films_unexposed_border_is_found_but_not_the_skull_the_film_cuts():
    image, skull = _framed_film()
    frame = unexposed_film(image, 0.5, margin_mm=4.0)
    yy, xx = np.mgrid[:400, :400] * 0.5
    assert frame[(yy < 5) | (yy >= 195) | (xx < 5) | (xx >= 195) | (yy + xx < 25)].all()
    away = skull & (xx > 5 + 4.0 + 1.0) & (yy > 5 + 4.0 + 1.0) & (yy < 195 - 4.0 - 1.0)
    assert not frame[away].any()  # bone is darker than unexposed film, even where it touches the frame
    unframed = unexposed_film(_framed_film(frame=False)[0], 0.5, margin_mm=4.0)  # only the scan's own edge
    assert unframed[0].all() and not unframed[(yy > 1.5 + 4.0 + 0.5) & (yy < 200 - 1.5 - 4.0 - 0.5)
                                                & (xx > 6.0) & (xx < 194.0)].any()


def test_a_films_frame_adds_nothing_to_the_statistics_once_filled_and_left_out():
    framed, _ = _framed_film()
    plain, _ = _framed_film(frame=False)
    frame = unexposed_film(framed, 0.5)
    truth_head = head_region(plain, 0.5, tissue_fraction=0.1) & ~frame
    truth = film_statistics(plain, truth_head, 0.5, 0.5)
    naive_head = head_region(framed, 0.5, tissue_fraction=0.1)
    assert naive_head[frame].mean() > 0.5  # without the fix the frame joins the head ...
    naive = film_statistics(framed, naive_head, 0.5, 0.5)
    assert band_log_ratio(naive, truth) > 0.3  # ... and its edges add to the bands
    filled = fill_from_nearest(framed, frame)
    head = head_region(filled, 0.5, tissue_fraction=0.1, outside=frame)
    assert not head[frame].any() and (head == truth_head).mean() > 0.99
    fixed = film_statistics(filled, head, 0.5, 0.5)
    assert band_log_ratio(fixed, truth) < 0.1 and histogram_distance(fixed, truth) < 0.01
    unfilled = film_statistics(framed, head, 0.5, 0.5)  # the frame out of the region but left in the image
    coarse = [np.log(stats.band_energies[-1] / truth.band_energies[-1]) for stats in (fixed, unfilled)]
    assert abs(coarse[0]) < 0.04 and coarse[1] > 0.08  # its steps reach the neck through the 8 mm band


def test_filling_takes_each_masked_pixel_from_the_nearest_unmasked_one():
    image = np.arange(25, dtype=np.float32).reshape(5, 5)
    mask = np.zeros((5, 5), bool)
    mask[:, 3:] = True
    filled = fill_from_nearest(image, mask)
    assert (filled[:, 3:] == image[:, 2:3]).all() and (filled[:, :3] == image[:, :3]).all()
    assert fill_from_nearest(image, np.zeros((5, 5), bool)) is image
    with pytest.raises(ValueError, match="whole image"):
        fill_from_nearest(image, np.ones((5, 5), bool))


def _cut_rendering(cut: bool, pixel_mm: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 250 mm rendering of a head (blurred 1 mm: a CT's resolution) with a textured skull and a neck; with
    `cut`, the CT ends 150 mm down: a step no reconstruction blurred, to the thin matter the cone beam sees through
    the cut's face for 10 mm more, then air. (image, matter, the cut's line)."""
    yy, xx = np.mgrid[:500, :500] * pixel_mm
    radius = np.hypot(yy - 90, xx - 125)
    matter = (radius < 80) | ((np.abs(xx - 125) < 45) & (yy > 90))
    texture = ndimage.gaussian_filter(np.random.default_rng(3).normal(0, 1, (500, 500)), 4.0)
    image = np.where(matter, 0.45 + 0.6 * texture, 0.0) + np.where(radius < 70, 0.3, 0.0)
    image = ndimage.gaussian_filter(image, 1.0 / pixel_mm)
    line = (np.abs(yy - 150) < pixel_mm / 2) & matter
    if cut:
        matter = matter & (yy < 160)
        image[yy >= 150] = np.where(matter, 0.08, 0.0)[yy >= 150]
    return image, matter, line


def test_a_cts_own_cut_adds_nothing_to_the_statistics_once_the_region_keeps_clear_of_it():
    plain, _, line = _cut_rendering(cut=False)
    image, matter, _ = _cut_rendering(cut=True)
    head = clear_of(matter, line, 0.5)
    distance = ndimage.distance_transform_edt(~line) * 0.5
    assert head[matter & (distance > CUT_MARGIN_MM + 0.5)].all() and not head[distance <= CUT_MARGIN_MM].any()
    truth = film_statistics(plain, head, 0.5, 0.5)  # the same anatomy, no CT cut
    fixed = film_statistics(image, head, 0.5, 0.5)
    assert band_log_ratio(fixed, truth) < 0.02 and histogram_distance(fixed, truth) < 0.005
    assert fixed.edge_width_mm == pytest.approx(truth.edge_width_mm, abs=0.05)
    naive = film_statistics(image, matter, 0.5, 0.5)  # up to the cut, as before the fix
    uncut = film_statistics(plain, matter, 0.5, 0.5)
    assert band_log_ratio(naive, uncut) > 0.1  # the cut's step adds band energy ...
    assert naive.edge_width_mm < uncut.edge_width_mm - 0.3  # ... and the sharpest edges
    assert clear_of(matter, np.zeros_like(line), 0.5) is matter
    above = np.mgrid[:500, :500][0] * 0.5 < 150  # the filters' reach alone: only the anatomy above the cut
    for margin, reached in ((8.0, True), (CUT_MARGIN_MM, False)):
        region = clear_of(matter, line, 0.5, margin) & above
        coarse = np.log(film_statistics(image, region, 0.5, 0.5).band_energies[-1]
                        / film_statistics(plain, region, 0.5, 0.5).band_energies[-1])
        assert (coarse > 0.05) == reached  # 8 mm from the cut the 8 mm band still sees its step


def _grey_ramp(noise_of_grey, seed: int = 0) -> np.ndarray:
    """A 600 x 600 image whose grey rises smoothly from 0 to 1 across its columns, plus white noise whose standard
    deviation at each pixel is noise_of_grey(grey)."""
    grey = np.broadcast_to(np.linspace(0.0, 1.0, 600), (600, 600))
    return grey + noise_of_grey(grey) * np.random.default_rng(seed).standard_normal(grey.shape)


def test_noise_by_grey_measures_white_noise_per_pixel_in_each_grey_band():
    head = np.ones((600, 600), bool)
    flat = noise_by_grey(_grey_ramp(lambda g: np.full_like(g, 0.01)), head)
    assert np.allclose(flat, 0.01, rtol=0.08)
    rising = noise_by_grey(_grey_ramp(lambda g: 0.004 + 0.02 * g), head)  # noise that follows the grey level
    centres = [0.004 + 0.02 * (low + high) / 2 for low, high in [(0.05, 0.25), (0.25, 0.45), (0.45, 0.65),
                                                                  (0.65, 0.85), (0.85, 0.97)]]
    assert np.allclose(rising, centres, rtol=0.1) and np.all(np.diff(rising) > 0)
    assert np.isnan(noise_by_grey(_grey_ramp(lambda g: np.full_like(g, 0.01))[:, :100], head[:, :100])[-1])


def test_noise_by_grey_is_not_fooled_by_anatomy():
    clean, inside = _disc_image(0.3, noise=0.0)  # sharp edges and stripes at two grey levels
    measured = np.asarray(noise_by_grey(_disc_image(0.3, noise=0.01)[0], inside))
    held = np.isfinite(measured)
    assert held.sum() >= 2 and np.allclose(measured[held], 0.01, rtol=0.15)
    edges_alone = np.asarray(noise_by_grey(clean, inside))
    assert np.all(edges_alone[held] < 0.1 * 0.01)


def test_noise_log_ratio_compares_noise_band_by_band():
    inside = np.ones((600, 600), bool)
    once = film_statistics(_grey_ramp(lambda g: np.full_like(g, 0.01)), inside, PIXEL, common_pixel_mm=PIXEL)
    again = film_statistics(_grey_ramp(lambda g: np.full_like(g, 0.01), seed=1), inside, PIXEL, common_pixel_mm=PIXEL)
    twice = film_statistics(_grey_ramp(lambda g: np.full_like(g, 0.02)), inside, PIXEL, common_pixel_mm=PIXEL)
    brighter = film_statistics(3.0 * _grey_ramp(lambda g: np.full_like(g, 0.01)) + 5.0, inside, PIXEL,
                               common_pixel_mm=PIXEL)
    assert np.allclose(brighter.noise, once.noise, rtol=1e-3)  # measured on the normalised image
    assert noise_log_ratio(once, again) < 0.05
    assert noise_log_ratio(once, twice) == pytest.approx(np.log(2), abs=0.1)
    nan = float("nan")
    with_noise = replace(once, noise=(0.01, 0.01, 0.02, nan, 0.01))
    assert noise_log_ratio(with_noise, replace(once, noise=(0.01, 0.01, 0.01, 0.05, nan))) == pytest.approx(
        np.log(2) / 3)  # only the bands both hold
    assert noise_log_ratio(with_noise, replace(once, noise=(0.0, 0.01, 0.02, nan, 0.01))) == np.inf  # none vs some
    assert np.isnan(noise_log_ratio(with_noise, replace(once, noise=(nan,) * 5)))  # no band in common
    assert noise_log_ratio(with_noise, with_noise) == 0.0
