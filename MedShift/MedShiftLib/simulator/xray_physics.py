"""X-ray physics of the simulator: tissue materials, tube spectra, detector efficiency and signal.

Attenuation comes from the committed table `data/attenuation.json` that `scripts/make_attenuation_table.py`
wrote from `xraydb` (Elam/Ravel/Sieber tables) for ICRU-46 tissue compositions, interpolated log-log
(xraydb is not imported at run time); tube spectra come from the committed table `data/tube_spectra.json`
that `scripts/compute_spectra.py` computed with spekpy (tungsten anode, 2.5 mm Al + Cu prefilter).
See docs/simulator.md.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import MedShiftError

SPECTRA_TABLE = Path(__file__).resolve().parent / "data" / "tube_spectra.json"
ATTENUATION_TABLE = Path(__file__).resolve().parent / "data" / "attenuation.json"

# Mass fractions (percent) from ICRU Report 46 (1992) adult tissues; hydroxyapatite for enamel.
COMPOSITIONS: dict[str, dict[str, float]] = {
    "soft_tissue": {"H": 10.5, "C": 25.6, "N": 2.7, "O": 60.2, "Na": 0.1, "P": 0.2, "S": 0.3,
                    "Cl": 0.2, "K": 0.2},
    "cortical_bone": {"H": 3.4, "C": 15.5, "N": 4.2, "O": 43.5, "Na": 0.1, "Mg": 0.2, "P": 10.3,
                      "S": 0.3, "Ca": 22.5},
    "enamel": {"H": 0.2, "O": 41.4, "P": 18.5, "Ca": 39.9},
}

# Channel order of every material volume and line-integral array in the simulator.
MATERIALS: tuple[str, ...] = ("soft_tissue", "cortical_bone", "enamel")

# Nominal densities (g/cm^3): ICRU-46 soft tissue 1.03, brain 1.04, cortical bone 1.92,
# adipose 0.95; enamel ~2.9 (hydroxyapatite 3.16 at ~95 % mineral).
DENSITY = {"soft_tissue": 1.03, "brain": 1.04, "fat": 0.95, "cortical_bone": 1.92, "enamel": 2.9}

CSI_DENSITY = 4.51  # g/cm^3
CSI_THICKNESS_MM = 0.6  # typical needle-structured CsI:Tl of flat-panel angiography detectors


class SpectrumNotAvailable(MedShiftError):
    """A tube spectrum that the committed table does not hold."""


@lru_cache(maxsize=1)
def _attenuation_table() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(log energies, log mu/rho per material) of the committed table."""
    table = json.loads(ATTENUATION_TABLE.read_text())
    log_energy = np.log(np.asarray(table["energies_keV"], dtype=np.float64))
    return log_energy, {k: np.log(np.asarray(v, dtype=np.float64)) for k, v in table["mass_attenuation"].items()}


def mass_attenuation(material: str, energies_keV: np.ndarray) -> np.ndarray:
    """Mass attenuation coefficient mu/rho (cm^2/g, total with coherent) of a material at energies (1-150 keV)."""
    log_energy, log_mu = _attenuation_table()
    if material not in log_mu:
        raise KeyError(f"unknown material {material!r}; known: {', '.join(COMPOSITIONS)}, csi")
    energies = np.atleast_1d(np.asarray(energies_keV, dtype=np.float64))
    if energies.min() < np.exp(log_energy[0]) or energies.max() > np.exp(log_energy[-1]):
        raise MedShiftError(f"attenuation is tabulated for {np.exp(log_energy[0]):g}-{np.exp(log_energy[-1]):g} keV "
                            f"(scripts/make_attenuation_table.py), not {energies.min():g}-{energies.max():g} keV")
    return np.exp(np.interp(np.log(energies), log_energy, log_mu[material]))


def attenuation_matrix(energies_keV: np.ndarray) -> np.ndarray:
    """mu/rho (cm^2/g) for every simulator material at every energy, shape (materials, energies)."""
    return np.stack([mass_attenuation(m, energies_keV) for m in MATERIALS])


def csi_efficiency(energies_keV: np.ndarray, thickness_mm: float = CSI_THICKNESS_MM) -> np.ndarray:
    """Absorption efficiency eta(E) = 1 - exp(-mu_CsI(E) t) of a CsI scintillator."""
    mu = mass_attenuation("csi", energies_keV) * CSI_DENSITY  # 1/cm
    return 1.0 - np.exp(-mu * thickness_mm / 10.0)


@dataclass(frozen=True)
class TubeSpectrum:
    """A tube spectrum: photon fluence per energy bin at 1 m per mAs, with its beam quality."""

    kvp: float
    cu_mm: float
    al_mm: float
    energies_keV: np.ndarray
    fluence: np.ndarray  # photons / cm^2 per 1-keV bin, per mAs at 1 m
    photons_per_mm2_per_uGy: float
    mean_energy_keV: float
    hvl1_mm_al: float


@lru_cache(maxsize=1)
def _spectra_table() -> dict:
    return json.loads(SPECTRA_TABLE.read_text())


def available_spectra() -> list[tuple[float, float]]:
    """The (kVp, mm Cu) pairs of the committed spectrum table."""
    return [(s["kvp"], s["cu_mm"]) for s in _spectra_table()["spectra"]]


def tube_spectrum(kvp: float, cu_mm: float) -> TubeSpectrum:
    """The committed spekpy spectrum for a kVp and Cu prefilter (2.5 mm Al, W anode 12 deg)."""
    table = _spectra_table()
    for s in table["spectra"]:
        if abs(s["kvp"] - kvp) < 1e-6 and abs(s["cu_mm"] - cu_mm) < 1e-6:
            return TubeSpectrum(
                kvp=float(s["kvp"]), cu_mm=float(s["cu_mm"]), al_mm=float(s["al_mm"]),
                energies_keV=np.asarray(table["energies_keV"], dtype=np.float64),
                fluence=np.asarray(s["fluence_per_keV"], dtype=np.float64),
                photons_per_mm2_per_uGy=float(s["photons_per_mm2_per_uGy"]),
                mean_energy_keV=float(s["mean_energy_keV"]), hvl1_mm_al=float(s["hvl1_mm_al"]))
    pairs = ", ".join(f"{k:g} kVp/{c:g} mm Cu" for k, c in available_spectra())
    raise SpectrumNotAvailable(
        f"no tube spectrum for {kvp:g} kVp with {cu_mm:g} mm Cu; available: {pairs} "
        "(add it to scripts/compute_spectra.py and rerun it)")


def binned_spectrum(spectrum: TubeSpectrum, bin_keV: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Merge the 1-keV spectrum into coarser bins: (fluence-weighted mean energies, fluence)."""
    e, f = spectrum.energies_keV, spectrum.fluence
    keep = f > 1e-6 * f.max()  # drop the empty low-energy tail that the filters absorbed
    e, f = e[keep], f[keep]
    index = np.floor((e - e[0]) / bin_keV).astype(int)
    fluence = np.bincount(index, weights=f)
    ok = fluence > 0
    energy = np.bincount(index, weights=f * e)[ok] / fluence[ok]
    return energy, fluence[ok]


@dataclass(frozen=True)
class DetectorResponse:
    """Energy weights of an energy-integrating CsI detector for one spectrum, and mu/rho per material."""

    energies_keV: np.ndarray
    weights: np.ndarray  # Phi(E) eta(E) E, normalised to sum 1 (open field signal = 1)
    detected_fraction: float  # fraction of incident photons absorbed in the scintillator
    mass_attenuation: np.ndarray  # (materials, energies), cm^2/g


def detector_response(spectrum: TubeSpectrum, bin_keV: float = 3.0) -> DetectorResponse:
    """Per-energy weights Phi(E) eta(E) E of the open field, and the materials' mu/rho at those energies."""
    energies, fluence = binned_spectrum(spectrum, bin_keV)
    eta = csi_efficiency(energies)
    weights = fluence * eta * energies
    return DetectorResponse(
        energies_keV=energies,
        weights=weights / weights.sum(),
        detected_fraction=float((fluence * eta).sum() / fluence.sum()),
        mass_attenuation=attenuation_matrix(energies))


def polychromatic_transmission(line_integrals: np.ndarray, response: DetectorResponse) -> np.ndarray:
    """Open-field-normalised energy-integrated signal sum_E w(E) exp(-sum_m mu_m(E) L_m).

    `line_integrals` holds g/cm^2 of each material, materials on the last axis.
    """
    shape = line_integrals.shape[:-1]
    flat = line_integrals.reshape(-1, line_integrals.shape[-1]).astype(np.float64)
    optical_depth = flat @ response.mass_attenuation  # (pixels, energies)
    signal = np.exp(-optical_depth) @ response.weights
    return signal.reshape(shape)


def monochromatic_transmission(line_integrals: np.ndarray, energy_keV: float) -> np.ndarray:
    """Transmission exp(-sum_m mu_m(E) L_m) at one energy (a monochromatic DRR)."""
    mu = attenuation_matrix(np.array([energy_keV]))[:, 0]
    return np.exp(-(line_integrals.astype(np.float64) @ mu))
