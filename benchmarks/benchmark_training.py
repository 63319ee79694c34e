"""Training throughput of the velocity network: a Markdown table of images/s, ms/step and model FLOPs utilisation.

Measures whole optimisation steps as `medshift train` runs them (coupling, forward, backward, gradient
clipping, AdamW, learning-rate schedule, EMA) on synthetic batches (random tensors: the data loader is not
measured). On the CPU: fp32. With CUDA: fp32, bf16 autocast, and bf16 + torch.compile (channels-last,
noise drawn on the GPU, no read-back per step, as `medshift train` runs on CUDA). With --simulate: the
on-the-fly path of `medshift train --simulate` (simulator/training_views.py): one pool of views rendered
(timed on its own: seconds per view, all five domains), then steps whose batches are drawn, cropped and
flipped from it on the device; the end-to-end rate with in-process rendering is
batch x refresh / (refresh x step + pool render), and "workers to keep up" is how many rendering
processes render the next pool within the current one's steps.

    MFU = 3 x forward FLOPs per image x images/s / peak rate of the row's precision

(3 x forward = forward + backward, the usual estimate). Forward FLOPs come from
torch.utils.flop_counter.FlopCounterMode on one image. The peak is the dense matmul rate measured here with a
loop of large torch.matmul calls in the row's precision (fp32 or bf16); on a GPU whose datasheet peak is known
(benchmarks/device_rates.py: H100, H200, A100) a second MFU column divides by that instead. fp32 on a GPU is
full IEEE fp32 for matmuls and convolutions unless --tf32 (set explicitly; PyTorch's own defaults, which
`medshift train` keeps, are IEEE matmuls and TF32 cuDNN convolutions).

    python benchmarks/benchmark_training.py                       # CPU and, when present, GPU
    python benchmarks/benchmark_training.py --device cpu --steps 2 --warmup 1
    python benchmarks/benchmark_training.py --simulate --device cpu --resolutions 256 --steps 2 --warmup 1
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from device_rates import datasheet_peak, matmul_rate, synchronize

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "MedShift"))

from MedShiftLib.engine.couplings import make_coupling  # noqa: E402
from MedShiftLib.engine.devices import describe_fp32_math, network_memory_format, set_tf32  # noqa: E402
from MedShiftLib.engine.loss import FlowMatchingLoss  # noqa: E402
from MedShiftLib.engine.network import VelocityUNet, config_from_preset  # noqa: E402
from MedShiftLib.training.optimisation import make_ema, train_step, warmup_cosine  # noqa: E402

DOMAINS = 5
GPU_ROWS = {"fp32": ("cuda", "fp32", False), "bf16": ("cuda", "bf16", False), "bf16-compile": ("cuda", "bf16", True)}


def forward_flops_per_image(preset: str, resolution: int) -> float:
    """FLOPs of one forward pass on one image (FlopCounterMode, 2 FLOPs per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = VelocityUNet(config_from_preset(preset, DOMAINS))
    x = torch.zeros(1, 1, resolution, resolution)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x, torch.full((1,), 0.5), torch.zeros(1, dtype=torch.long))
    return float(counter.get_total_flops())


def time_training_steps(device: torch.device, preset: str, resolution: int, batch_size: int, precision: str,
                        compile_model: bool, steps: int, warmup: int, data=None) -> float:
    """Seconds per optimisation step (after `warmup` untimed steps) on synthetic data, or on `data`'s batches
    (a SimulatedData: each step draws, crops and flips its batch from the rendered pool on the device)."""
    torch.manual_seed(0)
    memory_format = network_memory_format(device)
    model = VelocityUNet(config_from_preset(preset, DOMAINS)).to(device, memory_format=memory_format)
    ema = make_ema(model, 0.999)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.99))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, 10_000, 100))
    net = torch.compile(model) if compile_model else model
    loss_fn = FlowMatchingLoss(make_coupling("ot"), model.config.null_label, label_dropout=0.2)
    x1 = (torch.rand(batch_size, 1, resolution, resolution) * 2 - 1).to(device)
    labels = torch.randint(0, DOMAINS, (batch_size,)).to(device)
    autocast = torch.bfloat16 if precision == "bf16" else None
    generator = torch.Generator(device=device).manual_seed(0)

    def step(index: int) -> None:
        images, classes = data.batch(index) if data is not None else (x1, labels)
        images = images.contiguous(memory_format=memory_format)
        train_step(net, optimizer, loss_fn, images, classes, generator, scheduler=scheduler, autocast_dtype=autocast,
                   check_finite=False)
        ema.update_parameters(model)

    for index in range(warmup):
        step(index)
    synchronize(device)
    started = time.perf_counter()
    for index in range(warmup, warmup + steps):
        step(index)
    synchronize(device)
    return (time.perf_counter() - started) / steps


def simulated_pool(args: argparse.Namespace, resolution: int, device: torch.device):
    """A SimulatedData whose first pool is rendered (timed) and serves every timed step."""
    from MedShiftLib.simulator.training_views import SimulatedData, SimulationOptions

    options = SimulationOptions(size=resolution, ct_paths=tuple(args.ct or ()), phantoms_fraction=0.5 if args.ct
                                else 0.0, views="mixed", pixel_spacings_mm=(0.6, 0.9, 1.25), pool_views=args.pool_views,
                                pool_refresh=10**9, validation_views=1)
    data = SimulatedData(options, resolution, args.batch_size, seed=0, device=device)
    synchronize(device)
    started = time.perf_counter()
    data.pool(0)
    synchronize(device)
    data.render_seconds = time.perf_counter() - started
    return data


def main(argv: list[str] | None = None) -> int:
    """Print the benchmark table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=("all", "cpu", "cuda"), default="all")
    p.add_argument("--preset", default="default")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--resolutions", type=int, nargs="+", default=[256, 512])
    p.add_argument("--steps", type=int, default=5, help="timed steps per row (CPU rows use at most 3)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (compile happens here)")
    p.add_argument("--tf32", action="store_true", help="GPU fp32 rows: TF32 matmuls and convolutions (default IEEE)")
    p.add_argument("--gpu-rows", nargs="+", choices=GPU_ROWS, default=list(GPU_ROWS), help="which GPU rows to measure")
    p.add_argument("--simulate", action="store_true", help="the on-the-fly path: batches from a rendered pool")
    p.add_argument("--pool-views", type=int, default=8, help="with --simulate: views rendered for the pool")
    p.add_argument("--pool-refresh", type=int, default=25, help="with --simulate: steps a pool serves in training")
    p.add_argument("--ct", action="append", help="with --simulate: CT(s) (.hu.npz) to render besides phantoms")
    args = p.parse_args(argv)

    rows: list[tuple[str, str, bool]] = []
    if args.device in ("all", "cpu"):
        rows.append(("cpu", "fp32", False))
    if args.device in ("all", "cuda") and torch.cuda.is_available():
        rows += [GPU_ROWS[name] for name in args.gpu_rows]
    elif args.device == "cuda":
        print("no CUDA GPU visible to this PyTorch", file=sys.stderr)
        return 1
    set_tf32(args.tf32)

    # peak FLOP/s per (device, precision): measured, and the datasheet's where the GPU is known
    measured: dict[tuple[str, str], float] = {}
    datasheet: dict[tuple[str, str], float | None] = {}
    for kind, precision in sorted({r[:2] for r in rows}):
        device = torch.device(kind)
        math = "tf32" if precision == "fp32" and args.tf32 and kind == "cuda" else precision
        measured[kind, precision] = matmul_rate(device, torch.bfloat16 if precision == "bf16" else torch.float32)
        name = torch.cuda.get_device_name(device) if kind == "cuda" else f"CPU, {torch.get_num_threads()} threads"
        datasheet[kind, precision] = datasheet_peak(name, math) if kind == "cuda" else None
        sheet = datasheet[kind, precision]
        print(f"- {kind}: {name}; measured {math} matmul rate {measured[kind, precision] / 1e12:.3f} TFLOP/s"
              + (f"; datasheet dense {math} peak {sheet / 1e12:.1f} TFLOP/s" if sheet else ""))
    if any(kind == "cuda" for kind, _, _ in rows):
        print(f"- GPU fp32 math: {describe_fp32_math()}")
    flops = {r: forward_flops_per_image(args.preset, r) for r in args.resolutions}
    print(f"- preset {args.preset!r}, batch {args.batch_size}, {DOMAINS} domains, OT coupling, AdamW + EMA; "
          f"torch {torch.__version__}")
    print()
    print("| device | precision | compile | resolution | forward GFLOP/image | ms/step | images/s "
          "| MFU (measured peak) | MFU (datasheet peak) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind, precision, compiled in rows:
        for resolution in args.resolutions:
            steps = min(args.steps, 3) if kind == "cpu" else args.steps
            warmup = min(args.warmup, 1) if kind == "cpu" else args.warmup
            data = simulated_pool(args, resolution, torch.device(kind)) if args.simulate else None
            seconds = time_training_steps(torch.device(kind), args.preset, resolution, args.batch_size, precision,
                                          compiled, steps, warmup, data)
            images = args.batch_size / seconds
            if data is not None:
                end_to_end = args.batch_size * args.pool_refresh / (args.pool_refresh * seconds + data.render_seconds)
                print(f"  on the fly ({kind}, {resolution} px): {data.render_seconds / args.pool_views:.2f} s per "
                      f"rendered view (5 domains); end to end with in-process rendering {end_to_end:.1f} images/s; "
                      f"workers to keep up: {data.render_seconds / (args.pool_refresh * seconds):.1f}", flush=True)
            achieved = 3 * flops[resolution] * images
            sheet = datasheet[kind, precision]
            print(f"| {kind} | {precision} | {'yes' if compiled else 'no'} | {resolution} | "
                  f"{flops[resolution] / 1e9:.2f} | {seconds * 1e3:.0f} | {images:.1f} | "
                  f"{100 * achieved / measured[kind, precision]:.1f} % | "
                  f"{f'{100 * achieved / sheet:.1f} %' if sheet else 'n/a'} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
