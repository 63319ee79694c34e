"""Read a real CT (Hounsfield units) into the simulator's material volume.

HU -> mass density with DeepDRR's piecewise-linear fit (Unberath et al. 2018), and materials by
HU thresholds: air <= -800 (left empty), soft tissue -800..350, bone > 350. The image is turned to
LPS orientation (nearest axis-aligned), resampled so that its longest side has at most `grid_size`
voxels (physical size kept), and centred on the C-arm isocentre. Objects that are not the patient
(head holder, table) are removed first (`body_mask`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputImageError
from .cone_beam_projector import MaterialVolume
from .xray_physics import MATERIALS

AIR_MAX_HU = -800.0
SOFT_TISSUE_MAX_HU = 350.0


class CTVolumeError(InputImageError):
    """A CT volume that cannot be read or is not a 3-D Hounsfield-unit image."""


def hounsfield_to_density(hu: np.ndarray) -> np.ndarray:
    """Mass density (g/cm^3) from CT numbers with DeepDRR's piecewise fit."""
    hu = np.asarray(hu, dtype=np.float32)
    return np.maximum(np.minimum(0.001029 * hu + 1.03, 0.0005886 * hu + 1.03), 0.0).astype(np.float32)


def volume_from_hounsfield(hu_zyx: np.ndarray, spacing_mm: tuple[float, float, float]) -> MaterialVolume:
    """Material volume from a HU array indexed [z, y, x] (LPS) with spacing (x, y, z), centred on the isocentre."""
    hu = np.asarray(hu_zyx, dtype=np.float32)
    if hu.ndim != 3:
        raise CTVolumeError(f"a CT volume must be 3-D; this array has shape {hu.shape}")
    density = hounsfield_to_density(hu)
    densities = np.zeros((len(MATERIALS),) + hu.shape, np.float32)
    soft = (hu > AIR_MAX_HU) & (hu <= SOFT_TISSUE_MAX_HU)
    bone = hu > SOFT_TISSUE_MAX_HU
    densities[MATERIALS.index("soft_tissue")][soft] = density[soft]
    densities[MATERIALS.index("cortical_bone")][bone] = density[bone]
    spacing = tuple(float(s) for s in spacing_mm)
    n_xyz = hu.shape[::-1]
    origin = tuple(-(n - 1) / 2 * s for n, s in zip(n_xyz, spacing))
    return MaterialVolume(densities=densities, materials=MATERIALS, spacing_mm=spacing, origin_mm=origin,
                          reconstructed=True)


def read_ct_image(path: str | Path):
    """Read a CT file (NRRD, NIfTI, MHA, ...) or a DICOM series folder as a SimpleITK image."""
    import SimpleITK as sitk

    path = Path(path)
    if not path.exists():
        raise CTVolumeError(f"CT volume {path} does not exist; give a NRRD/NIfTI/MHA file or a DICOM series folder")
    try:
        if path.is_dir():
            reader = sitk.ImageSeriesReader()
            series = reader.GetGDCMSeriesIDs(str(path))
            if not series:
                raise CTVolumeError(f"no DICOM series found in folder {path}; give a folder of CT slices "
                                    "or a NRRD/NIfTI/MHA file")
            reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(path), series[0]))
            image = reader.Execute()
        else:
            image = sitk.ReadImage(str(path))
    except CTVolumeError:
        raise
    except RuntimeError as error:
        first_line = str(error).strip().splitlines()[-1] if str(error).strip() else "unknown error"
        raise CTVolumeError(f"cannot read CT volume {path} ({first_line}); give a NRRD/NIfTI/MHA file "
                            "or a DICOM series folder") from error
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1 or min(image.GetSize()) < 2:
        raise CTVolumeError(f"CT volume {path} has size {image.GetSize()} with "
                            f"{image.GetNumberOfComponentsPerPixel()} component(s); the simulator needs a "
                            "single-component 3-D image in Hounsfield units")
    return image


def read_ct_volume(path: str | Path, grid_size: int | None = 192, remove_objects: bool = True) -> MaterialVolume:
    """Read a CT in Hounsfield units and convert it to the simulator's material volume."""
    return volume_from_hounsfield(*read_ct_hounsfield(path, grid_size, remove_objects))


def read_ct_hounsfield(path: str | Path, grid_size: int | None = 192, remove_objects: bool = True
                       ) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A CT file's HU array [z, y, x] (LPS, at most `grid_size` voxels a side) and spacing (x, y, z) mm."""
    return hounsfield_from_ct(read_ct_image(path), grid_size, name=f"CT volume {path}", remove_objects=remove_objects)


def material_volume_from_ct(image, grid_size: int | None = 192, name: str = "the CT volume",
                            remove_objects: bool = True) -> MaterialVolume:
    """The simulator's material volume from a 3-D SimpleITK image in Hounsfield units (any orientation)."""
    return volume_from_hounsfield(*hounsfield_from_ct(image, grid_size, name, remove_objects))


def hounsfield_from_ct(image, grid_size: int | None = 192, name: str = "the CT volume", remove_objects: bool = True
                       ) -> tuple[np.ndarray, tuple[float, float, float]]:
    """HU array [z, y, x] in LPS and spacing (x, y, z) of a SimpleITK CT; non-patient objects removed if asked."""
    import SimpleITK as sitk

    image = sitk.DICOMOrient(image, "LPS")
    size = np.asarray(image.GetSize(), dtype=float)
    spacing = np.asarray(image.GetSpacing(), dtype=float)
    if grid_size is not None and size.max() > grid_size:
        new_spacing = np.full(3, (size * spacing).max() / grid_size)
        new_spacing = np.maximum(new_spacing, spacing)
        new_size = [max(2, int(round(n))) for n in size * spacing / new_spacing]
        image = sitk.Resample(sitk.Cast(image, sitk.sitkFloat32), new_size, sitk.Transform(),
                              sitk.sitkLinear, image.GetOrigin(), new_spacing.tolist(),
                              image.GetDirection(), -1000.0, sitk.sitkFloat32)
    hu = sitk.GetArrayFromImage(image).astype(np.float32)
    if hu.max() - hu.min() < 1e-6:
        raise CTVolumeError(f"{name} is constant ({hu.min():g}); it holds no anatomy to project")
    if hu.min() >= 0 and hu.max() > 1500:
        raise CTVolumeError(f"{name} has no negative values (min {hu.min():g}): it does not look like "
                            "Hounsfield units; apply the rescale slope/intercept or give a HU volume")
    spacing_xyz = tuple(float(s) for s in image.GetSpacing())
    if remove_objects:
        from .body_mask import remove_non_patient

        hu = remove_non_patient(hu, spacing_xyz)
    return hu, spacing_xyz
