"""What storing the bundled weights in int8 (one scale per output channel) changes, against the float16 file.

Two tables. Per kind of weight: the network's velocity with only that kind quantised (per output channel;
the 1-D row: one scale per tensor) against the float16 weights, as RMS and max |difference| over the RMS
velocity, on the demo input at t = 0.3 and 0.6 under the sim-low, clinical-normal and null labels.
Per image: the demo input (half_precision_weights.py's) and pydicom-data's RG1 chest translated with the
float16 file and with its int8 copy (`save_checkpoint(..., weights_dtype=torch.int8)`, written to a
temporary folder), at the default setting and with the network alone (the default's tau, guidance and
steps, post-processing off); largest and mean absolute difference as a fraction of the output's range.
`--pictures DIR` writes each pair side by side with the difference x 20 (PNG, for looking, not committing).

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/int8_weights.py [FP16.safetensors] [--pictures DIR]
(default: the bundled model)
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "MedShift"))

from half_precision_weights import compare_translations, compared_images, default_settings, demo_image  # noqa: E402

from MedShiftLib.engine.checkpoint import default_model_path, load_checkpoint, read_checkpoint_info, save_checkpoint  # noqa: E402
from MedShiftLib.engine.intensity import fit_intensity_window, normalize  # noqa: E402
from MedShiftLib.engine.network import VelocityUNet  # noqa: E402
from MedShiftLib.engine.weight_quantisation import (  # noqa: E402
    MIN_QUANTISED_ELEMENTS,
    is_quantised,
    quantise_per_output_channel,
)

KINDS = {  # kind of weight -> which state-dict entries (name, tensor) belong to it
    "large 3x3 convolutions (the int8 file's)": lambda n, v: is_quantised(v) and v.dim() == 4 and v.shape[-1] == 3,
    "large 1x1 convolutions: attention qkv/out, skips (the int8 file's)": lambda n, v: is_quantised(v)
    and v.dim() == 4 and v.shape[-1] == 1,
    "large Linear: blocks' embedding projections (the int8 file's)": lambda n, v: is_quantised(v) and v.dim() == 2,
    "small 3x3 convolutions: finest levels, stem, head": lambda n, v: small(v) and v.dim() == 4 and v.shape[-1] == 3,
    "small 1x1 convolutions: skips, patch skip": lambda n, v: small(v) and v.dim() == 4 and v.shape[-1] == 1,
    "small Linear: time MLP, embedding projections, patch-skip gates": lambda n, v: small(v) and v.dim() == 2
    and not n.startswith("label_embedding"),
    "label embedding table (6 x 192)": lambda n, v: n.startswith("label_embedding"),
    "1-D: biases and norms (one scale per tensor)": lambda n, v: v.dim() == 1,
    f"the int8 file's rule (>= 2-D, >= {MIN_QUANTISED_ELEMENTS:,} values)": lambda n, v: is_quantised(v),
    "every tensor >= 2-D with >= 4,096 values": lambda n, v: v.dim() >= 2 and v.numel() >= 4096,
}


def small(value: torch.Tensor) -> bool:
    """A tensor of >= 2 dims that the int8 file keeps in float16 for its size."""
    return value.dim() >= 2 and not is_quantised(value)


def round_trip(value: torch.Tensor) -> torch.Tensor:
    """`value` quantised to int8 and back: per output channel, or with one scale for a 1-D tensor."""
    values, scale = quantise_per_output_channel(value if value.dim() >= 2 else value[None])
    return (values.float() * scale.reshape(-1, *([1] * (values.dim() - 1)))).reshape(value.shape)


def velocity_errors(model: VelocityUNet, x: torch.Tensor) -> list[tuple[str, float, float, int]]:
    """(kind, RMS and max |velocity change| over the RMS velocity, values quantised) per kind of weight."""
    t = torch.tensor([0.3, 0.6]).repeat_interleave(3)
    labels = torch.tensor([0, 3, model.config.null_label]).repeat(2)
    batch = x.expand(len(t), -1, -1, -1)
    state = {k: v.float() for k, v in model.state_dict().items()}
    with torch.no_grad():
        reference = model(batch, t, labels)
        rms = reference.pow(2).mean().sqrt()
        rows = []
        for kind, member in KINDS.items():
            chosen = [k for k, v in state.items() if v.is_floating_point() and member(k, v)]
            trial = VelocityUNet(model.config).eval()
            trial.load_state_dict(state | {k: round_trip(state[k]) for k in chosen})
            change = trial(batch, t, labels) - reference
            rows.append((kind, float(change.pow(2).mean().sqrt() / rms), float(change.abs().max() / rms),
                         sum(state[k].numel() for k in chosen)))
    return rows


def side_by_side(path: Path, a: np.ndarray, b: np.ndarray) -> None:
    """float16 output | int8 output | |difference| x 20, in the first output's grey-level window (PNG)."""
    from PIL import Image
    low, high = np.percentile(a, (0.5, 99.5))
    grey = [np.clip((im - low) / max(high - low, 1e-9), 0, 1) for im in (a, b)]
    diff = np.clip(20 * np.abs(a - b) / max(high - low, 1e-9), 0, 1)
    picture = (np.concatenate([*grey, diff], axis=1) * 255).astype(np.uint8)
    Image.fromarray(picture).save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fp16", nargs="?", default=str(default_model_path()))
    parser.add_argument("--pictures", type=Path, help="write the outputs side by side into this folder")
    args = parser.parse_args()
    fp16_path = Path(args.fp16)
    with tempfile.TemporaryDirectory() as tmp:
        int8_path = Path(tmp) / fp16_path.name
        shutil.copy(fp16_path.with_suffix(".stats.json"), int8_path.with_suffix(".stats.json"))
        model, info = load_checkpoint(fp16_path)
        save_checkpoint(int8_path, model.state_dict(), read_checkpoint_info(fp16_path), weights_dtype=torch.int8)
        models = [(model, info), load_checkpoint(int8_path)]
        print(f"files: float16 {fp16_path.stat().st_size / 1e6:.2f} MB, int8 {int8_path.stat().st_size / 1e6:.2f} MB\n")
    demo = demo_image()
    x = torch.from_numpy(normalize(demo.pixels, fit_intensity_window(demo.pixels)))[None, None].float()
    print("| weights quantised | values | RMS velocity change / RMS velocity | max / RMS velocity |")
    print("|---|---|---|---|")
    for kind, rms, peak, count in velocity_errors(model.to(memory_format=torch.contiguous_format), x):
        print(f"| {kind} | {count:,} | {rms:.1e} | {peak:.1e} |")
    print("\n| image | setting | max abs diff (of range) | mean abs diff (of range) | max abs diff (grey levels) |")
    print("|---|---|---|---|---|")
    for name, image, source, target in compared_images(demo):
        default = default_settings(source, target)
        for setting, settings in (("default", default),
                                  ("network alone", replace(default, contrast_transfer=False, noise_matching=False))):
            outputs, cells = compare_translations(image, models, settings)
            print(f"| {name} -> {target} | {setting} | {cells} |")
            if args.pictures:
                args.pictures.mkdir(parents=True, exist_ok=True)
                side_by_side(args.pictures / f"{name.split()[0]}_{setting.replace(' ', '_')}.png", *outputs)


if __name__ == "__main__":
    main()
