"""The default setting's outputs on the frontier's held-out views, translated by two source trees, scored side by side.

Issue 23's held-out goal (SSIM against the noise-free target not lower than before; body noise 0.7-1.4x the
target's) compares the translate path of two commits on the same views. The views come from
`benchmarks/frontier_sweep.py`'s cache (run it once first); each tree translates them in its own process:

    python benchmarks/heldout_default_across_trees.py translate --tree OLD_TREE --out old.npz
    python benchmarks/heldout_default_across_trees.py translate --tree . --out new.npz
    python benchmarks/heldout_default_across_trees.py score old.npz new.npz

`--network-alone` on both `translate` calls measures the network alone (post-processing off) the same way.
The translation loop repeats frontier_sweep.translate_set on purpose: it must run under an older tree,
which has neither that script nor the modules it imports.

`translate` runs this file under OLD_TREE/MedShift, so it uses only what both trees have (translate_image,
the settings' presets, the bundled model of that tree).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PAIRS = (("sim-low", "clinical-normal"), ("clinical-normal", "clinical-low"), ("sim-high", "clinical-exposure"))
SETS = ("phantom", "real-CT")
VIEW_FILE = "{name}_seed5151_6x256_radiograph.npz"  # frontier_sweep.py's held-out sets, bundled model's look


def views(cache: Path, name: str, kind: str) -> dict[str, np.ndarray]:
    """One kind of image ("stored", "clean", "images") of a cached held-out set, by domain."""
    with np.load(cache / VIEW_FILE.format(name=name)) as data:
        found = {k.split("/", 1)[1]: data[k] for k in data.files if k.startswith(kind + "/")}
        found["spacing_mm"] = data["spacing_mm"]
    return found


def translate_here(cache: Path, out: Path, network_alone: bool) -> None:
    """Translate every set and pair at the default preset with the MedShiftLib on sys.path (with
    `network_alone`: its tau, guidance and steps with contrast transfer, noise matching and renewal off)."""
    from MedShiftLib.engine.checkpoint import default_model_path, load_checkpoint
    from MedShiftLib.engine.intensity import fit_intensity_window, normalize
    from MedShiftLib.io.radiograph import RadiographImage
    from MedShiftLib.pipeline.image_translation import translate_image
    from MedShiftLib.settings import DEFAULT_PRESET, TranslationSettings

    model, info = load_checkpoint(default_model_path())
    result = {}
    for name in SETS:
        stored = views(cache, name, "stored")
        for source, target in PAIRS:
            settings = TranslationSettings(source_domain=source, target_domain=target, seed=0)
            settings = settings.with_preset(DEFAULT_PRESET)
            if network_alone:
                settings = replace(settings, contrast_transfer=False, noise_matching=False, noise_renewal=0.0)
            outputs = []
            for k, (pixels, spacing) in enumerate(zip(stored[source], stored["spacing_mm"])):
                image = RadiographImage(pixels, spacing=(float(spacing), float(spacing), 1.0),
                                        metadata={"spacing_known": True})
                window = fit_intensity_window(image.pixels, image.photometric)
                outputs.append(normalize(translate_image(image, model, info, settings.for_image(k)).pixels, window))
            result[f"{name}/{source}:{target}"] = np.stack(outputs).astype(np.float32)
    np.savez(out, **result)


def score(old_path: Path, new_path: Path, cache: Path) -> None:
    """Print SSIM, band error and body noise ratio of both files' outputs, set by set and pair by pair."""
    sys.path.insert(0, str(ROOT / "MedShift"))
    from MedShiftLib.evaluation.frontier import view_scores

    old, new = np.load(old_path), np.load(new_path)
    print("| set | pair | SSIM vs noise-free target: old -> new | band error: old -> new "
          "| body noise / target's: old -> new |")
    print("|---|---|---|---|---|")
    for name in SETS:
        clean, genuine = views(cache, name, "clean"), views(cache, name, "images")
        for source, target in PAIRS:
            key = f"{name}/{source}:{target}"
            means = []
            for outputs in (old[key], new[key]):
                means.append(np.mean([view_scores(y, c, g) for y, c, g in zip(outputs, clean[target], genuine[target])],
                                     axis=0))
            (s0, b0, n0), (s1, b1, n1) = means
            print(f"| {name} | {source} -> {target} | {s0:.3f} -> {s1:.3f} | {b0:.3f} -> {b1:.3f} "
                  f"| {n0:.2f} -> {n1:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/medshift-frontier"),
                        help="frontier_sweep.py's --cache")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("translate")
    p.add_argument("--tree", type=Path, required=True, help="a checkout of the commit to measure")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--network-alone", action="store_true", help="post-processing off (the default's tau, steps)")
    p = sub.add_parser("_translate_here")
    p.add_argument("out", type=Path)
    p.add_argument("--network-alone", action="store_true")
    p = sub.add_parser("score")
    p.add_argument("old", type=Path)
    p.add_argument("new", type=Path)
    args = parser.parse_args()
    if args.command == "translate":
        env = dict(os.environ, PYTHONPATH=str(args.tree.resolve() / "MedShift"))
        command = [sys.executable, __file__, "--cache", str(args.cache.resolve()), "_translate_here",
                   str(args.out.resolve()), *(["--network-alone"] if args.network_alone else [])]
        subprocess.run(command, env=env, check=True, cwd=args.tree)
    elif args.command == "_translate_here":
        translate_here(args.cache, args.out, args.network_alone)
    else:
        score(args.old, args.new, args.cache)


if __name__ == "__main__":
    main()
