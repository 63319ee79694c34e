"""Write the simulator's attenuation table (MedShift/MedShiftLib/simulator/data/attenuation.json) from xraydb.

mu/rho (cm^2/g, total with coherent) of every simulator material and of CsI on a 0.25-keV grid from 1 to
150 keV, with each absorption edge in that range represented by two points 2 eV either side of it
(xraydb's own tables resolve an edge to about 1 eV), so that log-log interpolation
(xray_physics.mass_attenuation) is exact at the grid and never smears an edge.
The simulator reads this table at run time and never imports xraydb (the GPU machine has none).
Run once after changing a composition: .venv/bin/python scripts/make_attenuation_table.py
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import xraydb

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "MedShift"))

from MedShiftLib.atomic_files import write_bytes_atomically  # noqa: E402
from MedShiftLib.simulator.xray_physics import ATTENUATION_TABLE, COMPOSITIONS  # noqa: E402

LOW_KEV, HIGH_KEV, STEP_KEV, EDGE_OFFSET_KEV = 1.0, 150.0, 0.25, 2e-3
MATERIAL_FORMULAS = {"csi": "CsI"}


def formula(mass_percent: dict[str, float]) -> str:
    """Mass fractions as an xraydb formula with relative atom counts."""
    counts = {el: w / xraydb.atomic_mass(el) for el, w in mass_percent.items()}
    scale = 1.0 / min(counts.values())
    return "".join(f"{el}{n * scale:.4f}" for el, n in counts.items())


def edge_energies_keV(elements: set[str]) -> list[float]:
    """Every absorption edge of `elements` between LOW_KEV and HIGH_KEV."""
    edges = []
    for element in elements:
        for edge in xraydb.xray_edges(element).values():
            if LOW_KEV < edge.energy / 1000.0 < HIGH_KEV:
                edges.append(edge.energy / 1000.0)
    return sorted(edges)


def main() -> None:
    formulas = {name: formula(parts) for name, parts in COMPOSITIONS.items()} | MATERIAL_FORMULAS
    elements = {el for parts in COMPOSITIONS.values() for el in parts} | {"Cs", "I"}
    grid = np.arange(LOW_KEV, HIGH_KEV + STEP_KEV / 2, STEP_KEV)
    edges = edge_energies_keV(elements)
    around = [e + side * EDGE_OFFSET_KEV for e in edges for side in (-1, 1)]
    grid = np.unique(np.round(np.concatenate([grid[np.all(np.abs(grid[:, None] - np.array(edges)[None, :])
                                                                  > EDGE_OFFSET_KEV, axis=1)], around]), 6))
    table = {"source": f"xraydb {xraydb.__version__} (Elam, Ravel, Sieber), scripts/make_attenuation_table.py",
             "unit": "cm^2/g", "energies_keV": grid.tolist(), "edges_keV": edges,
             "mass_attenuation": {name: [float(f"{v:.6g}") for v in xraydb.material_mu(f, grid * 1000.0, density=1.0)]
                                  for name, f in formulas.items()}}
    write_bytes_atomically(ATTENUATION_TABLE, (json.dumps(table, separators=(",", ":")) + "\n").encode())
    print(f"{ATTENUATION_TABLE}: {len(grid)} energies x {len(formulas)} materials")


if __name__ == "__main__":
    main()
