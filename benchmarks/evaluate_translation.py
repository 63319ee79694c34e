"""Quick structure/noise check of a model on held-out simulated views (the full evaluation is a later issue).

For each domain pair and tau, on views rendered with a seed the model never saw:
  SSIM / PSNR of the translation against the aligned noise-free rendering of the target domain,
  beside the "oracle" (an independent noisy rendering of the target, i.e. what a perfect translation
  scores) and "no translation" (the source image itself); and the high-frequency noise level of the
  translation relative to real target-domain renderings (1.0 = same noise as the target domain).
Images are compared after the same robust-percentile normalisation the model uses.

Run: .venv/bin/python benchmarks/evaluate_translation.py --model CKPT [--views 16] [--seed 99]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "MedShift"))

from MedShiftLib.checkpoint import load_checkpoint  # noqa: E402
from MedShiftLib.domain_rendering import to_uint16  # noqa: E402
from MedShiftLib.intensity import fit_intensity_window, normalize  # noqa: E402
from MedShiftLib.radiograph import RadiographImage  # noqa: E402
from MedShiftLib.simulation import simulate_view  # noqa: E402
from MedShiftLib.translation import TranslationSettings, translate_image  # noqa: E402

PAIRS = [("sim-low", "clinical-normal"), ("sim-high", "clinical-exposure"), ("sim-low", "clinical-low"),
         ("clinical-normal", "sim-low"), ("clinical-low", "clinical-exposure")]


def model_range(pixels: np.ndarray) -> np.ndarray:
    """The model's view of an image: robust percentiles to [-1, 1]."""
    return normalize(pixels, fit_intensity_window(pixels))


def structure(image: np.ndarray, clean_target: np.ndarray) -> tuple[float, float]:
    """(SSIM, PSNR) of an image against the noise-free target, both in the model range."""
    a, b = model_range(image), model_range(clean_target)
    return (structural_similarity(a, b, data_range=2.0), peak_signal_noise_ratio(b, a, data_range=2.0))


def noise_level(image: np.ndarray) -> float:
    """Standard deviation of the high-frequency residual (image minus a 1.5 px Gaussian blur), model range."""
    x = model_range(image).astype(np.float64)
    return float(np.std(x - gaussian_filter(x, 1.5)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--views", type=int, default=16)
    parser.add_argument("--seed", type=int, default=99)
    parser.add_argument("--taus", type=float, nargs="+", default=[0.3, 0.45, 0.6])
    args = parser.parse_args()
    model, info = load_checkpoint(args.model)
    views = [simulate_view(seed=args.seed, subject=k, view=0, size=info.resolution) for k in range(args.views)]
    print(f"# {args.model}: {args.views} held-out views (seed {args.seed}), {info.resolution} px, euler 4 steps, w=1\n")
    print("| source -> target | method | SSIM vs clean target | PSNR (dB) | noise / target noise | s per image |")
    print("|---|---|---|---|---|---|")
    for source, target in PAIRS:
        if source not in info.domains or target not in info.domains:
            continue
        target_noise = np.mean([noise_level(v.images[target]) for v in views])

        def row(name: str, outputs: list[np.ndarray], seconds: float | None = None) -> None:
            scores = np.array([structure(o, v.clean_images[target]) for o, v in zip(outputs, views)])
            noise = np.mean([noise_level(o) for o in outputs]) / target_noise
            cost = "" if seconds is None else f"{seconds:.2f}"
            print(f"| {source} -> {target} | {name} | {scores[:, 0].mean():.3f} | {scores[:, 1].mean():.1f} | "
                  f"{noise:.2f} | {cost} |")

        row("oracle (noisy target rendering)", [v.images[target] for v in views])
        row("no translation", [v.images[source] for v in views])
        for tau in args.taus:
            settings = TranslationSettings(source, target, tau=tau)
            start = time.perf_counter()
            outputs = []
            for v in views:
                spacing = v.geometry.pixel_spacing_mm
                image = RadiographImage(to_uint16(v.images[source]), spacing=(spacing, spacing, 1.0),
                                        metadata={"spacing_known": True})
                outputs.append(translate_image(image, model, info, settings).pixels)
            row(f"MedShift tau={tau:g}", outputs, (time.perf_counter() - start) / len(views))


if __name__ == "__main__":
    main()
