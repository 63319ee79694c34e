"""At which image scales a translation differs from the clean target (docs/evaluation.md, "Where the SSIM gap lies").

Translates the held-out views of one domain pair at the default settings and prints SSIM against the
aligned noise-free target after swapping content between translation and target at Gaussian scale s:
"target below s" puts the target's low-pass (sigma = s px) under the translation's detail, "target
above s" puts the target's detail over the translation's low-pass. Also prints SSIM of the translation
plus the target's own noise (noisy rendering minus clean), i.e. what real noise costs, and a paired
reference for what grey-level and band-contrast changes can reach with the answer known: each source
view fitted to its own clean target (histogram matching, then least squares over its detail bands at
sigma 1, 2, 4, 8, 16 px and the residual, then histogram matching again).

    .venv/bin/python scripts/ssim_gap_scales.py --model CKPT --data TEST_DIR [--source sim-low] \
        [--target clinical-normal] [--tau 0.6]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "MedShift"))

from MedShiftLib.engine.checkpoint import default_model_path, load_checkpoint  # noqa: E402
from MedShiftLib.evaluation.image_quality import ssim  # noqa: E402
from MedShiftLib.evaluation.test_set import load_test_set  # noqa: E402
from MedShiftLib.pipeline.image_translation import translate_batch  # noqa: E402
from MedShiftLib.postprocess.contrast_transfer import BAND_SIGMAS_PX, detail_bands  # noqa: E402
from MedShiftLib.settings import TranslationSettings  # noqa: E402

SCALES_PX = (1, 2, 4, 8, 16, 32)


def mean_ssim(images: np.ndarray, references: np.ndarray) -> float:
    """Mean SSIM of each image against its reference (model range)."""
    return float(np.mean([ssim(i, r) for i, r in zip(images, references)]))


def paired_band_fit(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The source view fitted to its own target: grey levels, then least-squares band gains, then grey levels."""
    from skimage.exposure import match_histograms

    matched = torch.from_numpy(match_histograms(source, target))[None, None]
    bands, residual = detail_bands(matched, BAND_SIGMAS_PX)
    design = np.stack([b[0, 0].numpy().ravel() for b in (*bands, residual)] + [np.ones(source.size)], axis=1)
    coefficients, *_ = np.linalg.lstsq(design, target.ravel(), rcond=None)
    return match_histograms((design @ coefficients).reshape(source.shape), target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="checkpoint (default: the bundled model)")
    parser.add_argument("--data", required=True, help="held-out test folder from `medshift simulate --clean`")
    parser.add_argument("--source", default="sim-low")
    parser.add_argument("--target", default="clinical-normal")
    parser.add_argument("--tau", type=float, default=0.6)
    args = parser.parse_args()
    model, info = load_checkpoint(args.model or default_model_path())
    test = load_test_set(args.data, list(info.domains), info.resolution)
    x = torch.from_numpy(test.images[args.source][:, None]).float()
    settings = info.validate(TranslationSettings(args.source, args.target, tau=args.tau))
    labels = [torch.full((len(x),), info.label_of(d)) for d in (args.source, args.target)]
    out = translate_batch(model, x, *labels, settings)[:, 0].double().numpy()
    clean = test.clean[args.target]
    with_noise = out + test.images[args.target] - clean
    print(f"{args.source} -> {args.target}, tau {args.tau:g}, {len(x)} views; SSIM vs clean target "
          f"{mean_ssim(out, clean):.3f}; with the target's own noise added {mean_ssim(with_noise, clean):.3f}\n")
    source = test.images[args.source]
    fitted = np.stack([paired_band_fit(s, c) for s, c in zip(source, clean)])
    print(f"paired band fit (each source view fitted to its own clean target by grey levels and band gains): "
          f"SSIM {mean_ssim(fitted, clean):.3f}\n")
    print("| scale s (px) | target below s | target above s |\n|---|---|---|")
    for s in SCALES_PX:
        low_out, low_clean = (gaussian_filter(a, (0, s, s)) for a in (out, clean))
        below, above = low_clean + out - low_out, low_out + clean - low_clean
        print(f"| {s} | {mean_ssim(below, clean):.3f} | {mean_ssim(above, clean):.3f} |")


if __name__ == "__main__":
    main()
