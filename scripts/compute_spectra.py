"""Compute the X-ray tube spectra table the simulator uses (run once; needs spekpy, not a dependency).

    python -m venv /tmp/spekenv && /tmp/spekenv/bin/pip install spekpy==2.5.4
    /tmp/spekenv/bin/python scripts/compute_spectra.py

Writes MedShift/MedShiftLib/simulator/data/tube_spectra.json: photon fluence per keV (1 keV bins, mid-bin
energies) at 1 m per mAs for a tungsten anode (12 deg) with 2.5 mm Al plus 0, 0.1, 0.3 or 0.9 mm Cu,
at 60, 70, 80 and 90 kVp, and for each spectrum the photons per mm^2 per uGy air kerma, the first HVL
and the mean energy, all as spekpy reports them.
"""
import json
import os
from pathlib import Path

import spekpy

KVPS = (90, 80, 70, 60)
COPPER_MM = (0.0, 0.1, 0.3, 0.9)
ALUMINIUM_MM = 2.5
ANODE_ANGLE_DEG = 12.0
OUT = Path(__file__).resolve().parents[1] / "MedShift" / "MedShiftLib" / "simulator" / "data" / "tube_spectra.json"


def main() -> None:
    """Compute every (kVp, Cu) spectrum with spekpy and write the JSON table atomically."""
    energies = None
    spectra = []
    for kvp in KVPS:
        for cu in COPPER_MM:
            spek = spekpy.Spek(kvp=kvp, th=ANODE_ANGLE_DEG, dk=1.0)
            spek.filter("Al", ALUMINIUM_MM)
            if cu > 0:
                spek.filter("Cu", cu)
            k, fluence = spek.get_spectrum()  # mid-bin keV, photons cm^-2 keV^-1 per mAs at 1 m
            if energies is None:
                energies = [float(e) for e in k]
            fluence_full = [0.0] * len(energies)
            for e, f in zip(k, fluence):
                fluence_full[energies.index(float(e))] = float(f)
            spectra.append({
                "kvp": kvp,
                "al_mm": ALUMINIUM_MM,
                "cu_mm": cu,
                "anode_angle_deg": ANODE_ANGLE_DEG,
                "hvl1_mm_al": round(float(spek.get_hvl1()), 4),
                "mean_energy_keV": round(float(spek.get_emean()), 4),
                # spekpy: fluence photons/cm^2 and kerma uGy, both per mAs at 1 m
                "photons_per_mm2_per_uGy": round(float(spek.get_flu() / spek.get_kerma()) / 100.0, 2),
                "fluence_per_keV": [float(f"{v:.6g}") for v in fluence_full],
            })
            if len(k) > len(energies):
                raise RuntimeError("compute the highest kVp first")
    table = {
        "source": f"spekpy {spekpy.__version__ if hasattr(spekpy, '__version__') else '2.5.4'}: "
                  "Poludniowski et al., Med. Phys. 48 (2021) 3630; tungsten anode",
        "units": "energies_keV: mid-bin keV (1 keV bins); fluence_per_keV: photons cm^-2 keV^-1 per mAs at 1 m",
        "energies_keV": energies,
        "spectra": spectra,
    }
    tmp = OUT.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(table, indent=1))
    os.replace(tmp, OUT)
    print(f"wrote {OUT} ({len(spectra)} spectra)")


if __name__ == "__main__":
    main()
