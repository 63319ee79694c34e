"""What structure any translation of the source can reach: a supervised, paired regressor as a reference.

MedShift learns without pairs. The simulator renders every view in every domain, so a network can also be
trained *with* the answer: noisy source view in, aligned noise-free target view out (mean squared error,
the project's U-Net at a constant time and label). Its SSIM against the clean target on held-out views is
an empirical ceiling for any translation of that source (docs/evaluation.md, "How far the SSIM goal is");
"with the target's noise" adds the real target rendering's own noise (noisy minus clean), the best a
translation that also has the target's noise texture could score, to compare with the oracle.

    .venv/bin/python scripts/paired_ceiling.py --train-data TRAIN_DIR --data TEST_DIR \
        [--source sim-low] [--target clinical-normal] [--steps 1500] [--preset default]
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "MedShift"))

from MedShiftLib.engine.network import VelocityUNet, config_from_preset  # noqa: E402
from MedShiftLib.evaluation.image_quality import structure_scores  # noqa: E402
from MedShiftLib.evaluation.test_set import check_held_out, load_test_set  # noqa: E402


def mean_scores(images: np.ndarray, references: np.ndarray) -> tuple[float, float]:
    """Mean (SSIM, PSNR) of each image against its reference (model range)."""
    scores = np.array([structure_scores(i, r) for i, r in zip(images, references)])
    return float(scores[:, 0].mean()), float(scores[:, 1].mean())


class PairedRegressor(torch.nn.Module):
    """Source view -> its clean target: the source plus the U-Net's correction (time 1, label 0)."""

    def __init__(self, preset: str) -> None:
        super().__init__()
        self.net = VelocityUNet(config_from_preset(preset, num_domains=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ones, zeros = torch.ones(len(x)), torch.zeros(len(x), dtype=torch.long)
        return x + self.net(x, ones, zeros)


def train(model: PairedRegressor, source: torch.Tensor, target: torch.Tensor, steps: int, batch: int,
          lr: float, seed: int) -> None:
    """Mean-squared-error training on random flips of the pairs; warm-up, then a cosine learning rate."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: min(1.0, (k + 1) / warmup)
                                                 * 0.5 * (1.0 + math.cos(math.pi * k / steps)))
    started = time.time()
    for step in range(1, steps + 1):
        index = torch.randint(len(source), (batch,), generator=generator)
        x, y = source[index], target[index]
        flips = [d for d, flip in zip((-1, -2), torch.rand(2, generator=generator) < 0.5) if flip]
        if flips:
            x, y = x.flip(flips), y.flip(flips)
        loss = torch.nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 100 == 0 or step == steps:
            print(f"  step {step}/{steps}  loss {loss.item():.5f}  ({time.time() - started:.0f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-data", required=True, help="training folder from `medshift simulate --clean`")
    parser.add_argument("--data", required=True, help="held-out test folder from `medshift simulate --clean`")
    parser.add_argument("--source", default="sim-low")
    parser.add_argument("--target", default="clinical-normal")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    check_held_out(Path(args.data), Path(args.train_data))  # the held-out views share no subject with the pairs
    domains = [args.source, args.target]
    training = load_test_set(args.train_data, domains, args.resolution)
    test = load_test_set(args.data, domains, args.resolution)
    source = torch.from_numpy(training.images[args.source][:, None]).float()
    target = torch.from_numpy(training.clean[args.target][:, None]).float()
    print(f"{args.source} -> clean {args.target}: {len(source)} training pairs, {len(test.names)} held-out views, "
          f"preset {args.preset}, {args.steps} steps of {args.batch_size}")
    model = PairedRegressor(args.preset)
    train(model, source, target, args.steps, args.batch_size, args.lr, args.seed)
    model.eval()
    with torch.inference_mode():
        held_out = torch.from_numpy(test.images[args.source][:, None]).float()
        predicted = torch.cat([model(chunk) for chunk in held_out.split(8)])[:, 0].double().numpy()
    clean, noisy = test.clean[args.target], test.images[args.target]
    rows = [("oracle (real target rendering)", noisy),
            ("paired regressor", predicted),
            ("paired regressor + the target's own noise", predicted + noisy - clean)]
    print(f"\n| {args.source} -> {args.target}, {len(clean)} held-out views | SSIM vs clean target | PSNR (dB) |")
    print("|---|---|---|")
    for name, images in rows:
        ssim_value, psnr_value = mean_scores(images, clean)
        print(f"| {name} | {ssim_value:.3f} | {psnr_value:.1f} |")


if __name__ == "__main__":
    main()
