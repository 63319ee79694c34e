"""Prepare a head CT for `medshift train --simulate` on a machine without SimpleITK: OUT.hu.npz (numpy only).

Reads the CT once as `medshift simulate` does (any format it reads; non-patient objects removed; resampled
to the grid that --size and the finest --pixel-pitch-mm need) and writes the HU array and spacing
compressed (simulator/subjects.write_prepared_ct). Pass OUT.hu.npz to `medshift train --simulate --ct`.
Run: .venv/bin/python scripts/prepare_training_ct.py CT OUT.hu.npz --size 256 --pixel-pitch-mm 0.6 0.9 1.25
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "MedShift"))

from MedShiftLib.simulator.ct_volume import read_ct_hounsfield  # noqa: E402
from MedShiftLib.simulator.simulation import subject_source  # noqa: E402
from MedShiftLib.simulator.subjects import write_prepared_ct  # noqa: E402
from MedShiftLib.simulator.views import ViewOptions  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ct")
    parser.add_argument("out", help="the prepared file, ending in .hu.npz")
    parser.add_argument("--size", type=int, default=256, help="detector size in pixels of the training renderings")
    parser.add_argument("--pixel-pitch-mm", type=float, nargs="+", help="the training renderings' pitches")
    args = parser.parse_args()
    views = ViewOptions(pixel_spacings_mm=tuple(args.pixel_pitch_mm) if args.pixel_pitch_mm else None)
    grid = subject_source(0, args.size, views).ct_grid
    hounsfield, spacing = read_ct_hounsfield(args.ct, grid_size=grid)
    out = write_prepared_ct(args.out, hounsfield, spacing)
    print(f"{out}: {hounsfield.shape[::-1]} voxels of {spacing[0]:.2f} mm, {out.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
