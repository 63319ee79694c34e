"""CT projection in Slicer: a C-arm cone-beam projection of a CT volume node, rendered in a simulator domain,
added to the scene as a radiograph node (MedShiftLib's simulator does the physics).

The panel runs the projection in a PythonSlicer worker (projection_worker.py: the CT written as NRRD, the
radiograph read back), so Slicer stays responsive; project_ct_node does the same in Slicer's process for
the Python console. Both call project_ct_image.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from MedShiftLib.errors import InputImageError
from MedShiftLib.io.radiograph import RadiographImage

from .node_geometry import frame_geometry, ijk_to_ras_of_node
from .volume_nodes import add_radiograph_volume, check_volume_node, frame_count


def ct_image_of_node(ct_node: Any) -> Any:
    """A SimpleITK image (float32 HU, LPS geometry) of a CT volume node; InputImageError for no 3-D volume."""
    import SimpleITK as sitk
    import slicer

    check_volume_node(ct_node)
    if frame_count(ct_node) < 2:
        raise InputImageError(f"'{ct_node.GetName()}' is a single slice; CT projection needs a 3-D CT volume")
    geometry = frame_geometry(ijk_to_ras_of_node(ct_node))
    image = sitk.GetImageFromArray(np.array(slicer.util.arrayFromVolume(ct_node), dtype=np.float32))
    image.SetSpacing(geometry["spacing"])
    image.SetOrigin(geometry["origin"])
    image.SetDirection(geometry["direction"])
    return image


def projection_name(ct_name: str, domain: str, lao_rao_deg: float, cranial_caudal_deg: float) -> str:
    """Name of a projected radiograph node, e.g. 'CT sim-low LAO+0 CRA+10'."""
    return f"{ct_name} {domain} LAO{lao_rao_deg:+g} CRA{cranial_caudal_deg:+g}"


def project_ct_image(image: Any, name: str, lao_rao_deg: float = 0.0, cranial_caudal_deg: float = 0.0,
                     sid_mm: float | None = None, detector_pixels: int = 256, domain: str = "sim-low",
                     seed: int = 0, grid_size: int = 160, device: str = "cpu") -> RadiographImage:
    """A radiograph: a C-arm projection of a CT image (SimpleITK, HU) rendered in a simulator domain."""
    from MedShiftLib.simulator.cone_beam_projector import (
        DEFAULT_DETECTOR_WIDTH_MM,
        DEFAULT_SID_MM,
        DEFAULT_SOD_MM,
        CArmGeometry,
        ConeBeamProjector,
        check_angles,
    )
    from MedShiftLib.simulator.ct_volume import material_volume_from_ct
    from MedShiftLib.simulator.domain_rendering import (
        check_domain,
        draw_domain_settings,
        render_domain,
        to_uint16,
        view_object_integrals,
    )
    from MedShiftLib.simulator.domain_styles import ClinicalStyle, domain_style
    from MedShiftLib.simulator.views import anatomy_rng

    check_domain(domain)
    try:
        check_angles(lao_rao_deg, cranial_caudal_deg)
    except ValueError as exc:
        raise InputImageError(str(exc)) from None
    sid_mm = DEFAULT_SID_MM if sid_mm is None else float(sid_mm)
    if sid_mm <= DEFAULT_SOD_MM:
        raise InputImageError(f"source-detector distance {sid_mm:g} mm must exceed the source-isocentre distance "
                              f"{DEFAULT_SOD_MM:g} mm")
    if not 16 <= detector_pixels <= 4096:
        raise InputImageError(f"detector size must be 16..4096 pixels, got {detector_pixels}")
    volume = material_volume_from_ct(image, grid_size, name=name)
    spacing = DEFAULT_DETECTOR_WIDTH_MM / detector_pixels
    geometry = CArmGeometry(lao_rao_deg=lao_rao_deg, cranial_caudal_deg=cranial_caudal_deg, sid_mm=sid_mm,
                            rows=detector_pixels, cols=detector_pixels, pixel_spacing_mm=spacing)
    line_integrals = ConeBeamProjector(volume, device=device).project(geometry)
    rng = np.random.default_rng(seed)
    settings = draw_domain_settings(domain, rng)
    if isinstance(domain_style(domain, settings.look), ClinicalStyle):  # the head finer than its CT (film look)
        line_integrals = view_object_integrals(line_integrals, settings.look, volume, geometry,
                                               anatomy_rng(seed, 0, 0))  # the simulator's: one subject, one view
    rendering = render_domain(line_integrals, settings, spacing, rng)
    return RadiographImage(to_uint16(rendering.image), spacing=(spacing, spacing, 1.0))


def project_ct_node(ct_node: Any, lao_rao_deg: float = 0.0, cranial_caudal_deg: float = 0.0,
                    sid_mm: float | None = None, detector_pixels: int = 256, domain: str = "sim-low",
                    seed: int = 0, grid_size: int = 160, device: str = "cpu") -> Any:
    """A new radiograph node: a C-arm projection of a CT node rendered in a simulator domain (blocking)."""
    image = project_ct_image(ct_image_of_node(ct_node), f"'{ct_node.GetName()}'", lao_rao_deg, cranial_caudal_deg,
                             sid_mm, detector_pixels, domain, seed, grid_size, device)
    return add_radiograph_volume(ct_node.GetScene(), image,
                                 projection_name(ct_node.GetName(), domain, lao_rao_deg, cranial_caudal_deg))
