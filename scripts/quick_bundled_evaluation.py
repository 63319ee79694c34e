"""A quick check of a model on held-out simulated views, with nothing but torch, numpy, scipy and scikit-image.

Renders `--views` views of a held-out seed (the training run's subjects, views and pitches: same CTs and
phantoms) in the look the model was trained on (simulator/model_look.py), translates each sim-low image into
clinical-normal with post-processing off at the default tau/steps, and prints SSIM against the noise-free
clinical-normal rendering for: the translation, the input itself (no translation) and a genuine noisy
clinical-normal rendering (the ceiling the issue's goal is measured against). JSON with --json. Part of
scripts/train_bundled_gpu.sh; not `medshift evaluate`, which needs data folders.

Run: .venv/bin/python scripts/quick_bundled_evaluation.py MODEL [--ct CT.hu.npz] [--views 8] [--size 256]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "MedShift"))

from MedShiftLib.engine.checkpoint import load_checkpoint  # noqa: E402
from MedShiftLib.engine.devices import resolve_device  # noqa: E402
from MedShiftLib.evaluation.image_quality import ssim  # noqa: E402
from MedShiftLib.pipeline.image_translation import translate_batch  # noqa: E402
from MedShiftLib.settings import TranslationSettings  # noqa: E402
from MedShiftLib.simulator.cone_beam_projector import ConeBeamProjector  # noqa: E402
from MedShiftLib.simulator.model_look import model_look  # noqa: E402
from MedShiftLib.simulator.simulation import render_view, subject_source  # noqa: E402
from MedShiftLib.simulator.training_views import normalised  # noqa: E402
from MedShiftLib.simulator.views import ViewOptions  # noqa: E402

HELD_OUT_SEED = 424_242
SOURCE, TARGET = "sim-low", "clinical-normal"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--ct", action="append", help="prepared CT(s) (.hu.npz); subjects alternate with phantoms")
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--pixel-pitch-mm", type=float, nargs="+", default=[0.6, 0.9, 1.25])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args()
    model, info = load_checkpoint(args.model, resolve_device(args.device))
    settings = info.validate(TranslationSettings(SOURCE, TARGET))
    look = model_look(info)
    views = ViewOptions("mixed", tuple(args.pixel_pitch_mm))
    source = subject_source(HELD_OUT_SEED, args.size, views, tuple(args.ct or ()), phantoms_fraction=0.5)
    scores: dict[str, list[float]] = {"translation": [], "no translation": [], "genuine target rendering": []}
    device = next(model.parameters()).device
    labels = (torch.tensor([info.label_of(SOURCE)]), torch.tensor([info.label_of(TARGET)]))
    for index in range(args.views):
        subject = source.subject(index)
        _, geometry = views.geometry(HELD_OUT_SEED, index, 0, args.size)
        rendered = render_view(ConeBeamProjector(subject.volume), geometry, HELD_OUT_SEED, index, 0,
                               (SOURCE, TARGET), clean=True, look=look)
        x = normalised(rendered.images[SOURCE])
        reference = normalised(rendered.clean_images[TARGET]).astype(np.float64)
        with torch.no_grad():
            y = translate_batch(model, torch.from_numpy(x)[None, None].to(device), *labels, settings)
        scores["translation"].append(ssim(y[0, 0].float().cpu().numpy().astype(np.float64), reference))
        scores["no translation"].append(ssim(x.astype(np.float64), reference))
        scores["genuine target rendering"].append(ssim(normalised(rendered.images[TARGET]).astype(np.float64),
                                                       reference))
    summary = {name: float(np.mean(values)) for name, values in scores.items()}
    print(f"SSIM against the noise-free {TARGET} rendering, {args.views} held-out views, {SOURCE} -> {TARGET}, "
          f"post-processing off, tau {settings.tau:g}, {look} look:")
    for name, value in summary.items():
        print(f"  {name}: {value:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"views": args.views, "look": look, "ssim": summary}, indent=1) + "\n")


if __name__ == "__main__":
    main()
