"""How long the check of every training file's header takes before step 1, against reading the files whole.

    PYTHONPATH=MedShift python benchmarks/benchmark_training_file_check.py --images 1000 --size 512

Writes a one-domain folder of identical 16-bit PNGs into a temporary folder and prints a table: the
header check (training.dataset.check_training_files) over all of them, and a full read of a sample
scaled to all of them (what finding a bad file by reading it would cost).
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from MedShiftLib.io.data_folder import scan_data_folder
from MedShiftLib.io.radiograph_files import read_radiograph
from MedShiftLib.training.dataset import check_training_files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000, help="number of PNG files")
    parser.add_argument("--size", type=int, default=512, help="pixels a side")
    parser.add_argument("--full-reads", type=int, default=100, help="files read whole (timed, then scaled)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        domain = Path(tmp) / "a"
        domain.mkdir()
        pixels = (np.random.default_rng(0).random((args.size, args.size)) * 60000).astype(np.uint16)
        sitk.WriteImage(sitk.GetImageFromArray(pixels), str(domain / "s0_v0.png"))
        for i in range(1, args.images):
            shutil.copy(domain / "s0_v0.png", domain / f"s{i}_v0.png")
        records = scan_data_folder(tmp, min_domains=1).records
        started = time.perf_counter()
        check_training_files(records)
        header = time.perf_counter() - started
        sample = records[: args.full_reads]
        started = time.perf_counter()
        for record in sample:
            read_radiograph(record.path)
        full = (time.perf_counter() - started) * len(records) / len(sample)
    print(f"| files | size | header check (s) | full read, scaled (s) |\n|---|---|---|---|\n"
          f"| {args.images} | {args.size}x{args.size} | {header:.2f} | {full:.2f} |")


if __name__ == "__main__":
    main()
