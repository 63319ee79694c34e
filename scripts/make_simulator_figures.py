"""Writes the simulator pictures of docs/simulator.md (run from the repository root).

`python scripts/make_simulator_figures.py [--real RG1_UNCR.dcm RG3_UNCR.dcm]`: the shipped head CTs (Cranium and
the Visible Human head) in the five domains (PA, lateral and C-arm views), the Visible Human head's mid-sagittal
and axial slices (orientation check) and, given real CR radiographs (PyPI pydicom-data), the clinical renderings
beside them.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, "MedShift")
from MedShiftLib.io.comparison_figure import display_window, save_side_by_side  # noqa: E402
from MedShiftLib.io.radiograph_files import read_radiograph  # noqa: E402
from MedShiftLib.simulator import invesalius_ct, visible_human_ct  # noqa: E402
from MedShiftLib.simulator.simulation import render_domain_strip, simulate_view  # noqa: E402
from MedShiftLib.simulator.views import ViewOptions  # noqa: E402

OUT = Path("docs/images")


def views(kind: str, size: int) -> ViewOptions:
    """Skull series in a radiography room (SID 1150, SOD 1000 mm, a 240 mm detector), or the default C-arm."""
    if kind == "c-arm":
        return ViewOptions("c-arm")
    return ViewOptions(kind, pixel_spacings_mm=(240.0 / size,), sid_mm=1150.0, sod_mm=1000.0)


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--real", nargs="*", default=[])
args = parser.parse_args()
ct = invesalius_ct.shipped_ct_path()
for name, path in (("cranium", ct), ("visible_human", visible_human_ct.shipped_ct_path())):
    for kind in ("pa", "lateral", "c-arm"):
        print(render_domain_strip(OUT / f"simulator_{name}_{kind}.jpg", seed=3, size=200, ct_path=path,
                                  views=views(kind, 200)))


def orientation_figure(path: Path, out: Path) -> Path:
    """Mid-sagittal (anterior left, superior up) and axial (anterior up) slices of a shipped LPS CT."""
    import SimpleITK as sitk

    hu = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))  # [z, y, x], LPS: z superior, y posterior
    window = lambda a: (np.clip((a + 1000.0) / 2500.0, 0, 1) * 255).astype(np.uint8)  # noqa: E731
    sagittal = window(hu[::-1, :, hu.shape[2] // 2])  # rows: superior first; columns: anterior first
    axial = window(hu[hu.shape[0] // 3])  # through the teeth; rows: anterior first
    return save_side_by_side([sagittal, axial], ["mid-sagittal: anterior left, superior up",
                                                 "axial (teeth): anterior up, patient's left right"], out,
                             panel_size=300)


print(orientation_figure(visible_human_ct.shipped_ct_path(), OUT / "visible_human_orientation.png"))
panels, labels = [], []
for path in args.real:
    image = read_radiograph(path)
    panels.append(display_window(image.pixels, image.photometric))
    labels.append(f"real CR {Path(path).stem}")
for kind, domain in (("pa", "clinical-exposure"), ("lateral", "clinical-exposure"), ("c-arm", "clinical-normal")):
    view = simulate_view(seed=3, size=256, ct_path=ct, views=views(kind, 256), vary_anatomy=False, clean=False)
    panels.append((np.clip(view.images[domain], 0, 1) * 255 + 0.5).astype(np.uint8))
    labels.append(f"simulated {kind} {domain}")
print(save_side_by_side(panels, labels, OUT / "simulator_real_vs_simulated.jpg", panel_size=240))
