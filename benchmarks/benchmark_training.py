"""Training throughput of the velocity network: a Markdown table of images/s, ms/step and model FLOPs utilisation.

Measures whole optimisation steps as `medshift train` runs them (coupling, forward, backward, gradient
clipping, AdamW, learning-rate schedule, EMA) on synthetic batches (random tensors: the data loader is not
measured). On the CPU: fp32. With CUDA: fp32, bf16 autocast, and bf16 + torch.compile.

    MFU = 3 x forward FLOPs per image x images/s / measured matmul rate

(3 x forward = forward + backward, the usual estimate). Forward FLOPs come from
torch.utils.flop_counter.FlopCounterMode on one image. The matmul rate is measured here with a loop of large
torch.matmul calls: bf16 on the GPU (the rate MFU is usually quoted against), fp32 on the CPU (the precision
CPU training runs in).

    python benchmarks/benchmark_training.py                       # CPU and, when present, GPU
    python benchmarks/benchmark_training.py --device cpu --steps 2 --warmup 1
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "MedShift"))

from MedShiftLib.engine.couplings import make_coupling  # noqa: E402
from MedShiftLib.engine.loss import FlowMatchingLoss  # noqa: E402
from MedShiftLib.engine.network import VelocityUNet, config_from_preset  # noqa: E402
from MedShiftLib.training.optimisation import make_ema, train_step, warmup_cosine  # noqa: E402

DOMAINS = 5


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def forward_flops_per_image(preset: str, resolution: int) -> float:
    """FLOPs of one forward pass on one image (FlopCounterMode, 2 FLOPs per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = VelocityUNet(config_from_preset(preset, DOMAINS))
    x = torch.zeros(1, 1, resolution, resolution)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x, torch.full((1,), 0.5), torch.zeros(1, dtype=torch.long))
    return float(counter.get_total_flops())


def matmul_rate(device: torch.device, dtype: torch.dtype, size: int, seconds: float = 1.0) -> float:
    """Measured FLOP/s of size x size matrix products in `dtype` on `device`."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(2):
        torch.matmul(a, b)
    synchronize(device)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(10 if device.type == "cuda" else 1):
            torch.matmul(a, b)
            count += 1
        synchronize(device)
    return 2.0 * size**3 * count / (time.perf_counter() - started)


def time_training_steps(device: torch.device, preset: str, resolution: int, batch_size: int, precision: str,
                        compile_model: bool, steps: int, warmup: int) -> float:
    """Seconds per optimisation step on synthetic data (after `warmup` untimed steps)."""
    torch.manual_seed(0)
    model = VelocityUNet(config_from_preset(preset, DOMAINS)).to(device)
    ema = make_ema(model, 0.999)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.99))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, 10_000, 100))
    net = torch.compile(model) if compile_model else model
    loss_fn = FlowMatchingLoss(make_coupling("ot"), model.config.null_label, label_dropout=0.2)
    x1 = (torch.rand(batch_size, 1, resolution, resolution) * 2 - 1).to(device)
    labels = torch.randint(0, DOMAINS, (batch_size,)).to(device)
    autocast = torch.bfloat16 if precision == "bf16" else None
    generator = torch.Generator().manual_seed(0)

    def step() -> None:
        train_step(net, optimizer, loss_fn, x1, labels, generator, scheduler=scheduler, autocast_dtype=autocast)
        ema.update_parameters(model)

    for _ in range(warmup):
        step()
    synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return (time.perf_counter() - started) / steps


def main(argv: list[str] | None = None) -> int:
    """Print the benchmark table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=("all", "cpu", "cuda"), default="all")
    p.add_argument("--preset", default="default")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--resolutions", type=int, nargs="+", default=[256, 512])
    p.add_argument("--steps", type=int, default=5, help="timed steps per row (CPU rows use at most 3)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (compile happens here)")
    args = p.parse_args(argv)

    rows: list[tuple[str, str, bool]] = []
    if args.device in ("all", "cpu"):
        rows.append(("cpu", "fp32", False))
    if args.device in ("all", "cuda") and torch.cuda.is_available():
        rows += [("cuda", "fp32", False), ("cuda", "bf16", False), ("cuda", "bf16", True)]
    elif args.device == "cuda":
        print("no CUDA GPU visible to this PyTorch", file=sys.stderr)
        return 1

    rates = {}
    for kind in sorted({r[0] for r in rows}):
        device = torch.device(kind)
        dtype, size = (torch.bfloat16, 8192) if kind == "cuda" else (torch.float32, 2048)
        rates[kind] = (matmul_rate(device, dtype, size), "bf16" if kind == "cuda" else "fp32")
        name = torch.cuda.get_device_name(device) if kind == "cuda" else f"CPU, {torch.get_num_threads()} threads"
        print(f"- {kind}: {name}; measured {rates[kind][1]} matmul rate {rates[kind][0] / 1e12:.3f} TFLOP/s "
              f"({size}x{size})")
    flops = {r: forward_flops_per_image(args.preset, r) for r in args.resolutions}
    print(f"- preset {args.preset!r}, batch {args.batch_size}, {DOMAINS} domains, OT coupling, AdamW + EMA; "
          f"torch {torch.__version__}")
    print()
    print("| device | precision | compile | resolution | forward GFLOP/image | ms/step | images/s | MFU |")
    print("|---|---|---|---|---|---|---|---|")
    for kind, precision, compiled in rows:
        for resolution in args.resolutions:
            steps = min(args.steps, 3) if kind == "cpu" else args.steps
            warmup = min(args.warmup, 1) if kind == "cpu" else args.warmup
            seconds = time_training_steps(torch.device(kind), args.preset, resolution, args.batch_size, precision,
                                          compiled, steps, warmup)
            images = args.batch_size / seconds
            mfu = 3 * flops[resolution] * images / rates[kind][0]
            print(f"| {kind} | {precision} | {'yes' if compiled else 'no'} | {resolution} | "
                  f"{flops[resolution] / 1e9:.2f} | {seconds * 1e3:.0f} | {images:.1f} | {100 * mfu:.1f} % |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
