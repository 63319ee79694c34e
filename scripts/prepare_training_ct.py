"""Prepare a head CT for `medshift train --simulate` on a machine without SimpleITK: OUT.hu.npz (numpy only).

Reads the CT once as `medshift simulate` does (any format it reads; non-patient objects removed; at its own
resolution) and writes the HU array and spacing compressed (simulator/subjects.write_prepared_ct). Pass
OUT.hu.npz to `medshift train --simulate --ct`.
Run: .venv/bin/python scripts/prepare_training_ct.py CT OUT.hu.npz
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "MedShift"))

from MedShiftLib.simulator.ct_volume import read_ct_hounsfield  # noqa: E402
from MedShiftLib.simulator.subjects import write_prepared_ct  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ct")
    parser.add_argument("out", help="the prepared file, ending in .hu.npz")
    args = parser.parse_args()
    hounsfield, spacing = read_ct_hounsfield(args.ct, grid_size=None)
    out = write_prepared_ct(args.out, hounsfield, spacing)
    voxels, mm = " x ".join(str(n) for n in hounsfield.shape[::-1]), " x ".join(f"{s:.2f}" for s in spacing)
    print(f"{out}: {voxels} voxels of {mm} mm, {out.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
