"""Prints the simulator's sharpness (edge MTF), noise (NPS) and contrast figures against PHYSICS.md, and the
display statistics of real-CT renderings beside real CR radiographs.

Run from the repository root: `python benchmarks/measure_simulator.py [--ct CT.nrrd] [--real RG1.dcm RG3.dcm]
[--films FILM_DIR --film-cts CT.nrrd ... --film-picture JPG]` (default CT: the shipped head CT; the real radiographs
and the skull films are optional; the film comparison is in benchmarks/skull_films.py). Results go to
docs/simulator.md.

- Edge MTF: a 3-degree slanted bone edge (0.3 g/cm^2 of cortical bone on 15 g/cm^2 of soft tissue), each
  pixel the mean of 8 x 8 sub-pixel samples; ESF binned at 1/4 pixel across the edge, LSF by differences
  with a Hann window, MTF = |FFT| normalised at zero (ISO 12233 slanted-edge method). "detector": the
  noise-free log signal before processing; "displayed": the final image (processing makes it overshoot).
- NPS: 64 x 64 ROIs of the noise (noisy - noise-free log signal) of a uniform field, 2-D periodogram,
  radial mean; the log-domain noise std against 1/sqrt(N) (PHYSICS.md) reduced by the Gaussian detector
  blur (sqrt of the sum of its squared weights, ~1 / (2 sqrt(pi) sigma) for sigma >= 1 px), with the electronic
  noise added after the blur (Var = g mean + sigma_e^2).
- Contrast: the log-signal step of the bone edge with scatter against the polychromatic primary alone;
  the ratio against 1/(1 + SPR) expected for a small detail under a uniform scatter fraction.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "MedShift"))
from MedShiftLib.simulator.domain_rendering import (  # noqa: E402
    detector_blur_px,
    draw_domain_settings,
    quanta_pixel_mm,
    render_domain,
)
from MedShiftLib.simulator.domain_styles import domain_style  # noqa: E402
from MedShiftLib.simulator.xray_physics import MATERIALS, detector_response, tube_spectrum  # noqa: E402

CLINICAL = ("clinical-low", "clinical-normal", "clinical-exposure")
TISSUE, BONE = 15.0, 0.3  # g/cm^2


def slanted_edge(size: int, angle_deg: float = 3.0, supersample: int = 8, air: bool = True) -> np.ndarray:
    """Line integrals (size, size, materials): soft tissue everywhere, bone right of a slanted edge."""
    sub = (np.arange(size * supersample) + 0.5) / supersample
    r, c = np.meshgrid(sub, sub, indexing="ij")
    right = (c - size / 2 - (r - size / 2) * np.tan(np.radians(angle_deg))) > 0
    bone = right.reshape(size, supersample, size, supersample).mean(axis=(1, 3))
    integrals = np.zeros((size, size, len(MATERIALS)))
    integrals[..., MATERIALS.index("soft_tissue")] = TISSUE
    integrals[..., MATERIALS.index("cortical_bone")] = BONE * bone
    if air:
        integrals[:, : size // 8] = 0.0  # some direct exposure, so the display window finds the anatomy
    return integrals


def edge_mtf(image: np.ndarray, angle_deg: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies in cycles/pixel, MTF) of a slanted edge through the image centre."""
    size = image.shape[0]
    r, c = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5, indexing="ij")
    t = np.tan(np.radians(angle_deg))
    distance = (c - size / 2 - (r - size / 2) * t) * np.cos(np.radians(angle_deg))
    rows = slice(size // 4, 3 * size // 4)
    d, v = distance[rows].ravel(), image[rows].ravel()
    keep = np.abs(d) < 16
    bins = np.round(d[keep] * 4).astype(int) + 64
    esf = np.bincount(bins, weights=v[keep], minlength=129) / np.maximum(np.bincount(bins, minlength=129), 1)
    lsf = np.diff(esf) * np.hanning(len(esf) - 1)
    spectrum = np.abs(np.fft.rfft(lsf))
    return np.fft.rfftfreq(len(lsf), d=0.25), spectrum / spectrum[0]


def mtf50(f: np.ndarray, mtf: np.ndarray) -> float:
    """First frequency where the MTF falls to 0.5."""
    below = np.nonzero(mtf < 0.5)[0]
    if not len(below):
        return float("nan")
    k = below[0]
    return float(np.interp(0.5, [mtf[k], mtf[k - 1]], [f[k], f[k - 1]]))


def render(integrals, domain, pitch, noise_seed=None, dose=None):
    """One rendering without heel effect (at `dose` nGy when given)."""
    from dataclasses import replace

    settings = replace(draw_domain_settings(domain, np.random.default_rng(0)), heel=0.0)
    if dose is not None:
        settings = replace(settings, dose_nGy=dose)
    rng = None if noise_seed is None else np.random.default_rng(noise_seed)
    return render_domain(integrals, settings, pitch, rng)


def print_mtf() -> None:
    print("## Edge MTF (slanted edge, noise-free)\n")
    print("| domain | pitch mm | stage | MTF 0.1 | MTF 0.2 | MTF 0.3 | MTF 0.4 c/px | MTF50 c/px | Gaussian sigma px |")
    print("|---|---|---|---|---|---|---|---|---|")
    integrals = slanted_edge(128, air=False)  # no open field: its scatter gradient would tilt the ESF
    for domain in ("clinical-normal", "clinical-exposure"):
        for pitch in (1.25, 0.5):
            sigma = round(detector_blur_px(domain_style(domain), pitch), 2)
            rendering = render(integrals, domain, pitch)
            for stage, image in (("detector", rendering.extras["clean_log_image"]), ("displayed", rendering.image)):
                f, mtf = edge_mtf(image)
                values = " | ".join(f"{np.interp(q, f, mtf):.2f}" for q in (0.1, 0.2, 0.3, 0.4))
                print(f"| {domain} | {pitch} | {stage} | {values} | {mtf50(f, mtf):.3f} | "
                      f"{sigma if stage == 'detector' else '-'} |")
    f = np.array([0.1, 0.2, 0.3, 0.4])
    for sigma in (0.5, 1.0, 1.5):
        theory = np.exp(-2 * np.pi ** 2 * sigma ** 2 * f ** 2) * np.sinc(f)
        print(f"| PHYSICS.md PSF sigma {sigma} px x pixel aperture | - | theory | "
              + " | ".join(f"{v:.2f}" for v in theory) + " | - | - |")


def print_nps() -> None:
    print("\n## Noise (uniform field, 15 g/cm^2 tissue + 0.3 g/cm^2 bone, log signal)\n")
    print("| domain | dose nGy | quanta/pixel (x filter frames) | std ln I measured | std predicted | "
          "NPS(0.05-0.15)/NPS(0.35-0.5) |")
    print("|---|---|---|---|---|---|")
    integrals = np.zeros((192, 192, len(MATERIALS)))
    integrals[..., 0], integrals[..., 1] = TISSUE, BONE
    integrals[:, :24] = 0.0
    for domain in CLINICAL:
        style = domain_style(domain)
        for dose in style.dose_range_nGy:
            rendering = render(integrals, domain, 1.25, noise_seed=1, dose=dose)
            noise = (rendering.extras["log_image"] - rendering.extras["clean_log_image"])[32:160, 64:192]
            rois = [noise[i:i + 64, j:j + 64] for i in (0, 64) for j in (0, 64)]
            power = np.mean([np.abs(np.fft.fft2(roi - roi.mean())) ** 2 for roi in rois], axis=0)
            fy, fx = np.meshgrid(np.fft.fftfreq(64), np.fft.fftfreq(64), indexing="ij")
            radius = np.hypot(fy, fx)
            ratio = power[(radius > 0.05) & (radius < 0.15)].mean() / power[(radius > 0.35) & (radius < 0.5)].mean()
            spectrum = tube_spectrum(style.kvp, style.cu_mm)
            response = detector_response(spectrum)
            signal = rendering.extras["primary"] + rendering.extras["scatter"]
            centre = signal[48:144, 48:144].mean()
            quanta = (dose * 1e-3 * spectrum.photons_per_mm2_per_uGy * quanta_pixel_mm(style, 1.25) ** 2
                      * style.noise_frames  # a recursive temporal filter's frames (fluoroscopy)
                      * response.detected_fraction / centre * signal[64:160, 96:192].mean())
            delta = np.zeros((33, 33))
            delta[16, 16] = 1.0
            kernel = ndimage.gaussian_filter(delta, detector_blur_px(style, 1.25), mode="nearest")
            quantum = np.sqrt(np.sum(kernel ** 2) / quanta)  # white noise through the sampled Gaussian blur
            predicted = np.hypot(quantum, style.electronic_noise_quanta / quanta)  # electronic noise after the blur
            print(f"| {domain} | {dose:g} | {quanta:.0f} | {noise.std():.4f} | {predicted:.4f} | {ratio:.1f} |")


def print_contrast() -> None:
    print("\n## Contrast (bone step 0.3 g/cm^2 on 15 g/cm^2 tissue, log signal, noise-free)\n")
    print("| domain | primary step (theory) | rendered step | ratio | 1/(1+SPR) |")
    print("|---|---|---|---|---|")
    integrals = slanted_edge(128, angle_deg=0.0, supersample=1, air=False)
    for domain in CLINICAL:
        style = domain_style(domain)
        rendering = render(integrals, domain, 1.25)
        log = rendering.extras["clean_log_image"]
        step = log[:, 68:76].mean() - log[:, 52:60].mean()  # beside the edge, beyond the detector blur
        primary = -np.log(rendering.extras["primary"])
        theory = primary[:, 68:76].mean() - primary[:, 52:60].mean()
        expected = 1 / (1 + style.scatter_to_primary)
        print(f"| {domain} | {theory:.4f} | {step:.4f} | {step / theory:.2f} | {expected:.2f} |")


def display_statistics(image: np.ndarray, anatomy: np.ndarray) -> str:
    """Display-value statistics over the anatomy: spread, clipped shares, local contrast at 2-8 mm-ish scales."""
    values = image[anatomy]
    band = ndimage.gaussian_filter(image, 2) - ndimage.gaussian_filter(image, 8)
    return (f"{np.percentile(values, 5):.2f} | {np.percentile(values, 50):.2f} | {np.percentile(values, 95):.2f} | "
            f"{values.std():.3f} | {band[anatomy].std():.3f}")


def print_display_comparison(ct: Path | None, real: list[str]) -> None:
    print("\n## Display statistics over the anatomy (256 px images, values 0-1, bright = dense)\n")
    print("| image | p5 | median | p95 | std | local contrast (DoG 2-8 px) std |")
    print("|---|---|---|---|---|---|")
    if ct is not None:
        from MedShiftLib.simulator.simulation import simulate_view
        from MedShiftLib.simulator.views import ViewOptions
        for kind, views in (("PA", ViewOptions("pa", (0.9,), 1150.0, 1000.0)),
                            ("lateral", ViewOptions("lateral", (0.9,), 1150.0, 1000.0)),
                            ("C-arm", ViewOptions("c-arm"))):
            view = simulate_view(seed=3, size=256, ct_path=str(ct), views=views, vary_anatomy=False, clean=True)
            anatomy = view.clean_images["sim-high"] > 0.1
            for domain in ("sim-low", "clinical-normal", "clinical-exposure"):
                print(f"| {ct.name} {kind}, {domain} | {display_statistics(view.images[domain], anatomy)} |")
    for path in real:
        from PIL import Image

        from MedShiftLib.io.radiograph_files import read_radiograph
        image = read_radiograph(path)
        pixels = image.pixels.astype(float)
        low, high = np.percentile(pixels, [0.5, 99.5])
        x = np.clip((pixels - low) / (high - low), 0, 1)
        if image.photometric == "MONOCHROME1":
            x = 1 - x
        x = np.asarray(Image.fromarray((x * 255).astype(np.uint8)).resize((256, 256)), float) / 255
        anatomy = x > 0.1
        print(f"| real CR {Path(path).name} | {display_statistics(x, anatomy)} |")


def main() -> None:
    """Print every table."""
    from MedShiftLib.simulator.head_cts import shipped_ct_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ct", type=Path, default=shipped_ct_path())
    parser.add_argument("--real", nargs="*", default=[])
    parser.add_argument("--films", type=Path, help="folder with the Bolton-Brush films B1893L12.jpg and B1893F12.jpg "
                        "(open-ortho/dcm4ceph, dcm4ceph-sampledata/): compare clinical renderings with them")
    parser.add_argument("--film-cts", type=Path, nargs="*", default=[],
                        help="full-resolution CTs for the film comparison (medshift fetch-ct OUT_DIR)")
    parser.add_argument("--film-picture", type=Path, help="write the films and renderings side by side here")
    parser.add_argument("--only-films", action="store_true", help="print only the film comparison")
    args = parser.parse_args()
    if not args.only_films:
        print_mtf()
        print_nps()
        print_contrast()
        print_display_comparison(args.ct, args.real)
    if args.films is not None:
        from skull_films import compare_with_films
        compare_with_films(args.film_cts or [args.ct], args.films, args.film_picture)


if __name__ == "__main__":
    main()
