"""Writes MedShift/Resources/SampleData/*.nrrd with the simulator (run from the repository root)."""
import sys

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, "MedShift")
from MedShiftLib.simulator.cone_beam_projector import DEFAULT_DETECTOR_WIDTH_MM, CArmGeometry, ConeBeamProjector
from MedShiftLib.simulator.domain_rendering import to_uint16
from MedShiftLib.simulator.head_phantom import make_head_phantom
from MedShiftLib.simulator.simulation import render_view

SEED, SUBJECT, VIEW = 2025, 0, 0
out = "MedShift/Resources/SampleData/"
# radiograph: sim-low, PA view with a small LAO tilt, 256 x 256 detector
size = 256
spacing = DEFAULT_DETECTOR_WIDTH_MM / size
volume = make_head_phantom(np.random.default_rng(np.random.SeedSequence(SEED, spawn_key=(SUBJECT,))), 160)
geometry = CArmGeometry(lao_rao_deg=10.0, cranial_caudal_deg=5.0, rows=size, cols=size, pixel_spacing_mm=spacing)
view = render_view(ConeBeamProjector(volume), geometry, SEED, SUBJECT, VIEW, domains=("sim-low",), clean=False)
image = sitk.GetImageFromArray(to_uint16(view.images["sim-low"]))
image.SetSpacing((spacing, spacing))
sitk.WriteImage(image, out + "MedShiftSkullSimLow.nrrd", useCompression=True)

# CT: the same kind of phantom on a 96-voxel grid, densities turned into Hounsfield units
ct = make_head_phantom(np.random.default_rng(np.random.SeedSequence(SEED, spawn_key=(SUBJECT + 1,))), 96)
density = ct.densities.sum(axis=0)
hu = np.where(density < 1.03, (density - 1.03) / 0.001029, (density - 1.03) / 0.0005886)
hu = np.clip(np.round(hu), -1000, 3000).astype(np.int16)
ct_image = sitk.GetImageFromArray(hu)  # [z, y, x], LPS axes
ct_image.SetSpacing(ct.spacing_mm)
ct_image.SetOrigin(ct.origin_mm)
sitk.WriteImage(ct_image, out + "MedShiftHeadPhantomCT.nrrd", useCompression=True)
print(hu.shape, hu.min(), hu.max(), ct.spacing_mm)
