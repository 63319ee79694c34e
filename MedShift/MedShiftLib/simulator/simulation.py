"""Write a simulated five-domain skull X-ray data folder, and a side-by-side preview of the domains.

Layout: OUT_DIR/<domain>/sSSSS_vVV.png (16-bit PNG, MONOCHROME2, same name in every domain for the
same subject and view), OUT_DIR/manifest.csv, and with clean=True OUT_DIR/clean/<domain>/<names>.
Every random choice comes from numpy SeedSequence(seed, spawn_key=(subject, view, ...)), so an
image depends only on the seed and its own indices, not on how many were asked for.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..atomic_files import write_bytes_atomically
from ..errors import DataFolderError
from ..optional_packages import progress_bar
from .cone_beam_projector import CArmGeometry, ConeBeamProjector, check_angles
from .domain_rendering import DomainSettings, draw_domain_settings, render_domain, to_uint16, view_object_integrals
from .domain_styles import DEFAULT_LOOK, ClinicalStyle, check_look, domain_style
from .domains import SIMULATOR_DOMAINS
from .subjects import SubjectSource
from .views import ViewOptions, anatomy_rng, angle_limit, draw_view, seeded_rng

MANIFEST_COLUMNS = ("file", "domain", "subject", "view", "lao_rao_deg", "cranial_caudal_deg", "dose_nGy",
                    "kvp", "seed", "cu_mm", "effective_energy_keV", "heel", "sid_mm", "sod_mm",
                    "pixel_spacing_mm", "rows", "cols", "phantom", "clean_file", "view_kind", "head_scale", "look")


def image_name(subject: int, view: int) -> str:
    """File name of one subject and view, the same in every domain folder."""
    return f"s{subject:04d}_v{view:02d}.png"


def default_phantom_grid(size: int) -> int:
    """Phantom grid size (voxels along the longest side) that suits an image size."""
    return int(min(224, max(64, round(size * 0.625))))


def view_angles(seed: int, subject: int, view: int) -> tuple[float, float]:
    """LAO/RAO and cranial/caudal angles (deg, 0.1-deg steps, within -40..40) of one C-arm view."""
    _, lao, cran = draw_view(seed, subject, view, "c-arm")
    return lao, cran


@dataclass
class RenderedView:
    """One subject and view in every domain: noisy images, clean images and their settings."""

    geometry: CArmGeometry
    images: dict[str, np.ndarray]
    clean_images: dict[str, np.ndarray]
    settings: dict[str, DomainSettings]


def render_view(projector: ConeBeamProjector, geometry: CArmGeometry, seed: int, subject: int, view: int,
                domains: tuple[str, ...] = SIMULATOR_DOMAINS, clean: bool = True,
                look: str = DEFAULT_LOOK) -> RenderedView:
    """Project one view once and render it in every domain (and noise-free when clean=True)."""
    line_integrals = projector.project(geometry)
    clinical = [d for d in domains if isinstance(domain_style(d, look), ClinicalStyle)]
    # the object finer than its CT, once for every clinical domain: its seed is the subject and view's (anatomy)
    object_line_integrals = view_object_integrals(line_integrals, look, projector.volume, geometry,
                                                  anatomy_rng(seed, subject, view)) if clinical else line_integrals
    images, clean_images, settings = {}, {}, {}
    for domain in domains:
        d = SIMULATOR_DOMAINS.index(domain)
        setting = draw_domain_settings(domain, seeded_rng(seed, subject, view, 1, d), look)
        settings[domain] = setting
        integrals = object_line_integrals if domain in clinical else line_integrals
        images[domain] = render_domain(integrals, setting, geometry.pixel_spacing_mm,
                                       seeded_rng(seed, subject, view, 2, d)).image
        if clean:
            clean_images[domain] = render_domain(integrals, setting, geometry.pixel_spacing_mm, None).image
    return RenderedView(geometry=geometry, images=images, clean_images=clean_images, settings=settings)


def _write_png_atomically(path: Path, image_uint16: np.ndarray, pixel_spacing_mm: float | None = None) -> None:
    """Write a 16-bit greyscale PNG (with its pixel size in the pHYs chunk) through a temporary file."""
    from PIL import Image

    buffer = io.BytesIO()
    options = {} if pixel_spacing_mm is None else {"dpi": (25.4 / pixel_spacing_mm,) * 2}
    Image.fromarray(image_uint16).save(buffer, format="PNG", **options)
    write_bytes_atomically(path, buffer.getvalue())


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _as_tuple(value) -> tuple:
    if value is None:
        return ()
    return (value,) if isinstance(value, (str, Path, float, int)) else tuple(value)


def subject_source(seed: int, size: int, views: ViewOptions, ct_paths=(), phantom_grid: int | None = None,
                   phantoms_fraction: float = 0.0, vary_anatomy: bool = True, device: str = "cpu") -> SubjectSource:
    """The subjects of a data set rendered at `size` px with `views` (CTs at their own resolution)."""
    grid = phantom_grid or default_phantom_grid(size)
    return SubjectSource(seed, grid, tuple(str(p) for p in _as_tuple(ct_paths)), None, phantoms_fraction,
                         vary_anatomy, device)


def simulate_dataset(out_dir: str | Path, subjects: int, views_per_subject: int, size: int, seed: int,
                     ct_path=None, clean: bool = False, pixel_spacing_mm=None,
                     progress: bool = True, device: str = "cpu", phantom_grid: int | None = None,
                     views: ViewOptions | None = None, phantoms_fraction: float = 0.0,
                     vary_anatomy: bool = True, look: str = DEFAULT_LOOK) -> Path:
    """Simulate `subjects` x `views_per_subject` skull views in the five domains; returns out_dir.

    `ct_path`: one CT or several (subjects cycle through them; `phantoms_fraction` of the subjects are
    procedural phantoms instead); `pixel_spacing_mm`: one detector pitch or several (one drawn per view),
    overriding `views.pixel_spacings_mm`.
    """
    if subjects < 1 or views_per_subject < 1:
        raise DataFolderError(f"need at least one subject and one view (got {subjects} subjects, "
                              f"{views_per_subject} views)")
    if size < 16:
        raise DataFolderError(f"image size {size} px is too small; use at least 16 (e.g. 256)")
    check_look(look)
    views = views or ViewOptions()
    if pixel_spacing_mm is not None:
        views = replace(views, pixel_spacings_mm=tuple(float(v) for v in _as_tuple(pixel_spacing_mm)))
    source = subject_source(seed, size, views, ct_path, phantom_grid, phantoms_fraction, vary_anatomy, device)
    source.load_all()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    rows_out = []
    bar = progress_bar(progress, total=subjects * views_per_subject, desc="simulating views", unit="view")
    for subject in range(subjects):
        person = source.subject(subject)
        projector = ConeBeamProjector(person.volume, device=device)
        for view in range(views_per_subject):
            kind, geometry = views.geometry(seed, subject, view, size)
            rendered = render_view(projector, geometry, seed, subject, view, clean=clean, look=look)
            name, spacing = image_name(subject, view), geometry.pixel_spacing_mm
            for domain in SIMULATOR_DOMAINS:
                _write_png_atomically(out / domain / name, to_uint16(rendered.images[domain]), spacing)
                clean_file = ""
                if clean:
                    clean_file = f"clean/{domain}/{name}"
                    _write_png_atomically(out / clean_file, to_uint16(rendered.clean_images[domain]), spacing)
                s = rendered.settings[domain]
                rows_out.append({
                    "file": f"{domain}/{name}", "domain": domain, "subject": f"s{subject:04d}",
                    "view": view, "lao_rao_deg": geometry.lao_rao_deg,
                    "cranial_caudal_deg": geometry.cranial_caudal_deg, "dose_nGy": s.dose_nGy,
                    "kvp": s.kvp, "seed": seed,
                    "cu_mm": None if s.kvp is None else _clinical_cu(domain, look),
                    "effective_energy_keV": s.effective_energy_keV, "heel": s.heel if s.kvp else None,
                    "sid_mm": geometry.sid_mm, "sod_mm": geometry.sod_mm, "pixel_spacing_mm": spacing,
                    "rows": size, "cols": size, "phantom": person.source, "clean_file": clean_file,
                    "view_kind": kind,
                    "head_scale": None if person.variation is None else person.variation.head_scale,
                    "look": look})
            bar.update(1)
    bar.close()
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows_out:
        writer.writerow({k: _fmt(v) for k, v in row.items()})
    write_bytes_atomically(out / "manifest.csv", text.getvalue().encode())
    return out


def _clinical_cu(domain: str, look: str) -> float:
    return domain_style(domain, look).cu_mm


def simulate_view(seed: int = 0, subject: int = 0, view: int = 0, size: int = 256, ct_path=None,
                  lao_rao_deg: float | None = None, cranial_caudal_deg: float | None = None, device: str = "cpu",
                  clean: bool = True, views: ViewOptions | None = None, vary_anatomy: bool = True,
                  look: str = DEFAULT_LOOK) -> RenderedView:
    """One subject and view of the simulated data set, in memory, in all five domains."""
    views = views or ViewOptions()
    kind, geometry = views.geometry(seed, subject, view, size)
    lao = geometry.lao_rao_deg if lao_rao_deg is None else float(lao_rao_deg)
    cran = geometry.cranial_caudal_deg if cranial_caudal_deg is None else float(cranial_caudal_deg)
    check_angles(lao, cran, angle_limit(kind))
    geometry = replace(geometry, lao_rao_deg=lao, cranial_caudal_deg=cran)
    person = subject_source(seed, size, views, ct_path, vary_anatomy=vary_anatomy, device=device).subject(subject)
    return render_view(ConeBeamProjector(person.volume, device=device), geometry, seed, subject, view, clean=clean,
                       look=look)


def render_domain_strip(out_png: str | Path, seed: int = 0, subject: int = 0, view: int = 0, size: int = 256,
                        ct_path=None, lao_rao_deg: float | None = None,
                        cranial_caudal_deg: float | None = None, device: str = "cpu",
                        views: ViewOptions | None = None, look: str = DEFAULT_LOOK) -> Path:
    """Write a PNG (a JPEG for a .jpg path) of one subject and view in all five domains side by side, labelled."""
    from PIL import Image, ImageDraw

    rendered = simulate_view(seed, subject, view, size, ct_path, lao_rao_deg, cranial_caudal_deg, device,
                             clean=False, views=views, look=look)
    lao, cran = rendered.geometry.lao_rao_deg, rendered.geometry.cranial_caudal_deg
    label_height, gap = 22, 4
    strip = Image.new("L", (len(SIMULATOR_DOMAINS) * (size + gap) - gap, size + label_height), 255)
    draw = ImageDraw.Draw(strip)
    for i, domain in enumerate(SIMULATOR_DOMAINS):
        tile = Image.fromarray((np.clip(rendered.images[domain], 0, 1) * 255 + 0.5).astype(np.uint8))
        x = i * (size + gap)
        strip.paste(tile, (x, label_height))
        s = rendered.settings[domain]
        label = domain if s.dose_nGy is None else f"{domain} {s.dose_nGy:.0f} nGy {s.kvp:g} kVp"
        draw.text((x + 4, 5), label, fill=0)
    draw.text((4, size + label_height - 14), f"LAO/RAO {lao:+.1f}  cran/caud {cran:+.1f}", fill=255)
    buffer = io.BytesIO()
    out = Path(out_png)
    if out.suffix.lower() in (".jpg", ".jpeg"):  # a documentation picture of modest size
        strip.save(buffer, format="JPEG", quality=85, optimize=True)
    else:
        strip.save(buffer, format="PNG")
    write_bytes_atomically(out, buffer.getvalue())
    return out
