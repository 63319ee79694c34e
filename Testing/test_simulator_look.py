"""The radiograph look: scatter from the object only, a window on the anatomy, detail visible behind a thick head."""
import numpy as np
import pytest

from MedShiftLib.cli import main
from MedShiftLib.errors import DomainError
from MedShiftLib.simulator.domain_rendering import draw_domain_settings, render_domain
from MedShiftLib.simulator.domain_styles import domain_style
from MedShiftLib.simulator.xray_physics import MATERIALS

SIZE, PITCH = 96, 2.0


def thick_head() -> np.ndarray:
    """Line integrals of a thick head (30 g/cm^2 of tissue, as a real head's base) with a grid of bone details."""
    yy, xx = np.mgrid[:SIZE, :SIZE]
    inside = (yy - SIZE / 2) ** 2 + (xx - SIZE / 2) ** 2 < (SIZE * 0.35) ** 2
    integrals = np.zeros((SIZE, SIZE, len(MATERIALS)))
    integrals[..., MATERIALS.index("soft_tissue")] = 30.0 * inside
    details = inside & ((yy // 6 + xx // 6) % 2 == 0)
    integrals[..., MATERIALS.index("cortical_bone")] = 1.5 * inside + 0.4 * details
    return integrals, inside, details


def _render(domain, look, noise=False):
    settings = draw_domain_settings(domain, np.random.default_rng(0), look)
    return render_domain(thick_head()[0], settings, PITCH, np.random.default_rng(1) if noise else None)


@pytest.mark.parametrize("domain", ["clinical-low", "clinical-normal", "clinical-exposure"])
def test_scatter_comes_from_the_object_at_the_styles_ratio(domain):
    _, inside, _ = thick_head()
    extras = _render(domain, "radiograph").extras
    ratio = extras["scatter"] / extras["primary"]
    assert np.median(ratio[inside]) == pytest.approx(domain_style(domain).scatter_to_primary, rel=1e-6)
    legacy = _render(domain, "legacy").extras
    assert np.median((legacy["scatter"] / legacy["primary"])[inside]) > 5  # the open field blurred into the head


@pytest.mark.parametrize("domain", ["clinical-normal", "clinical-exposure", "sim-high"])
def test_detail_behind_a_thick_head_is_visible_only_in_the_radiograph_look(domain):
    _, inside, details = thick_head()
    core = inside & (np.hypot(*np.mgrid[:SIZE, :SIZE] - SIZE / 2) < SIZE * 0.25)

    def detail_contrast(look):
        image = _render(domain, look).image
        return image[core & details].mean() - image[core & ~details].mean()

    assert detail_contrast("radiograph") > 0.004  # sim-high: 0.009, clinical: 0.03-0.05 of the display range
    assert detail_contrast("radiograph") > 10 * abs(detail_contrast("legacy"))  # legacy: saturated, < 0.001


def test_direct_exposure_is_black_in_the_clinical_radiograph_look():
    _, inside, _ = thick_head()
    image = _render("clinical-normal", "radiograph", noise=True).image
    corners = np.zeros((SIZE, SIZE), bool)
    corners[:8, :8] = True
    assert image[corners].mean() < 0.02 and image[inside].mean() > 0.3


def test_an_unknown_look_is_refused(tmp_path, capsys):
    with pytest.raises(DomainError, match="unknown simulator look"):
        draw_domain_settings("sim-low", np.random.default_rng(0), "cinematic")
    with pytest.raises(SystemExit):
        main(["simulate", str(tmp_path), "--look", "cinematic"])


@pytest.mark.parametrize("domain", ["clinical-low", "clinical-normal", "clinical-exposure"])
def test_the_facial_profile_stays_grey_against_black_air(domain):
    """A thin soft-tissue rim (a nose, the scalp: 0.3-2 g/cm^2) beside a head is grey, not in the LUT's black toe."""
    integrals, inside, _ = thick_head()
    yy, xx = np.mgrid[:SIZE, :SIZE]
    radius = np.hypot(yy - SIZE / 2, xx - SIZE / 2)
    rim = ~inside & (radius < SIZE * 0.43)
    tissue = MATERIALS.index("soft_tissue")
    integrals[..., tissue] += rim * (0.3 + 2.0 * np.clip((SIZE * 0.43 - radius) / (SIZE * 0.08), 0, 1))
    air = radius > SIZE * 0.47
    image = render_domain(integrals, draw_domain_settings(domain, np.random.default_rng(0)), PITCH,
                          np.random.default_rng(1)).image
    assert np.median(image[rim]) > 0.12 and image[air].mean() < 0.01
