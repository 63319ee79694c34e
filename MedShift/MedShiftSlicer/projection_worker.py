"""The panel's CT projection in a worker process: `PythonSlicer -m MedShiftSlicer.projection_worker CT OUT ...`.

Reads the CT (NRRD, HU) the panel wrote, projects it (ct_projection.project_ct_image, the code the console's
projectCT runs) and writes the radiograph atomically to OUT. Prints `PID n` first and `ERROR message` for a
problem the user can fix (exit status 2). `worker_arguments` builds the command line; nothing here imports
slicer or Qt.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def worker_arguments(ct_path: str | Path, out_path: str | Path, name: str, lao_rao_deg: float,
                     cranial_caudal_deg: float, sid_mm: float, detector_pixels: int, domain: str) -> list[str]:
    """The worker's arguments after the Python executable (working directory: the MedShift module folder)."""
    return ["-m", "MedShiftSlicer.projection_worker", str(ct_path), str(out_path), "--name", name,
            "--lao", repr(float(lao_rao_deg)), "--cranial", repr(float(cranial_caudal_deg)),
            "--sid", repr(float(sid_mm)), "--pixels", str(int(detector_pixels)), "--domain", domain]


def main(argv: list[str] | None = None) -> int:
    """Project, write, and return the exit status."""
    parser = argparse.ArgumentParser(prog="projection_worker")
    parser.add_argument("ct")
    parser.add_argument("out")
    parser.add_argument("--name", default="CT")
    parser.add_argument("--lao", type=float, default=0.0)
    parser.add_argument("--cranial", type=float, default=0.0)
    parser.add_argument("--sid", type=float, default=None)
    parser.add_argument("--pixels", type=int, default=256)
    parser.add_argument("--domain", default="sim-low")
    args = parser.parse_args(argv)
    print("PID", os.getpid(), flush=True)
    import SimpleITK as sitk

    from MedShiftLib.errors import MedShiftError
    from MedShiftLib.io.radiograph_files import write_radiograph

    from .ct_projection import project_ct_image

    try:
        image = project_ct_image(sitk.ReadImage(args.ct), args.name, args.lao, args.cranial, args.sid, args.pixels,
                                 args.domain)
        write_radiograph(image, args.out)
    except MedShiftError as exc:
        print("ERROR", " ".join(str(exc).split()), flush=True)
        return 2
    print("OUTPUT", args.out, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
