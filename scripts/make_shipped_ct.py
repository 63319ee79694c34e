"""Writes MedShift/Resources/ThirdParty/Cranium/cranium_head_ct.nrrd: the Cranium CT, body only, downsampled.

Run from the repository root: `python scripts/make_shipped_ct.py [--deb invesalius-examples_*.deb]` (without --deb
it runs `apt-get download invesalius-examples`). The result is GPL-2 data (see the folder's README.md): a
1.25 x 1.25 x 1.5 mm copy of the CT with the head holder removed, about 2 MB, so the demo renders a real head
on a machine without apt-get.
"""
import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, "MedShift")
from MedShiftLib.simulator.body_mask import remove_non_patient  # noqa: E402
from MedShiftLib.simulator.invesalius_ct import InVesaliusVolume, fetch_cranium_ct, write_ct_nrrd  # noqa: E402

SPACING_MM = (1.25, 1.25, 1.5)
OUT = Path("MedShift/Resources/ThirdParty/Cranium/cranium_head_ct.nrrd")

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--deb", help="an invesalius-examples .deb already downloaded")
args = parser.parse_args()
with tempfile.TemporaryDirectory() as folder:
    full = sitk.ReadImage(str(fetch_cranium_ct(folder, deb=args.deb)))
size = [int(round(n * s / t)) for n, s, t in zip(full.GetSize(), full.GetSpacing(), SPACING_MM)]
origin = [-(n - 1) / 2 * t for n, t in zip(size, SPACING_MM)]
small = sitk.Resample(full, size, sitk.Transform(), sitk.sitkLinear, origin, SPACING_MM, full.GetDirection(),
                      -1000, sitk.sitkFloat32)
body = remove_non_patient(sitk.GetArrayFromImage(small), SPACING_MM)
print(write_ct_nrrd(InVesaliusVolume(np.round(body).astype(np.int16), SPACING_MM, ""), OUT))
