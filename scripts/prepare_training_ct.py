"""Prepare a head CT for `medshift train --simulate` on a machine without SimpleITK: OUT.hu.npz (numpy only).

Reads the CT once as `medshift simulate` does (any format it reads; non-patient objects removed; at its own
resolution) and writes the HU array and spacing compressed (simulator/subjects.write_prepared_ct). Pass
OUT.hu.npz to `medshift train --simulate --ct`. `--show` lists prepared CTs' size and spacing with numpy
alone (scripts/train_bundled_gpu.sh does before training).
Run: .venv/bin/python scripts/prepare_training_ct.py CT OUT.hu.npz | --show PREPARED.hu.npz ...
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "MedShift"))


def ct_line(path: str | Path, shape_zyx: Sequence[int], spacing_mm: Sequence[float]) -> str:
    """'PATH: X x Y x Z voxels of a x b x c mm'."""
    voxels, mm = " x ".join(str(n) for n in shape_zyx[::-1]), " x ".join(f"{s:.2f}" for s in spacing_mm)
    return f"{path}: {voxels} voxels of {mm} mm"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ct", nargs="?")
    parser.add_argument("out", nargs="?", help="the prepared file, ending in .hu.npz")
    parser.add_argument("--show", nargs="+", metavar="PREPARED", help="list these prepared CTs instead (numpy only)")
    args = parser.parse_args()
    if args.show:
        for path in args.show:
            with np.load(path, allow_pickle=False) as ct:
                print(ct_line(path, ct["hounsfield"].shape, ct["spacing_mm"]))
        return
    if args.out is None:
        parser.error("give CT and OUT.hu.npz, or --show PREPARED.hu.npz ...")
    from MedShiftLib.simulator.ct_volume import read_ct_hounsfield
    from MedShiftLib.simulator.subjects import write_prepared_ct

    hounsfield, spacing = read_ct_hounsfield(args.ct, grid_size=None)
    out = write_prepared_ct(args.out, hounsfield, spacing)
    print(f"{ct_line(out, hounsfield.shape, spacing)}, {out.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
