"""Engine benchmark: model size, GFLOPs, forward and translation times, tiled-translation memory.

Prints Markdown tables. Timings use a default-config network with random weights (cost does not
depend on the weights). Run:  .venv/bin/python benchmarks/benchmark_engine.py [--sizes 256 512] [--memory]
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "MedShift"))

from MedShiftLib.ode_solvers import IntegrationStats  # noqa: E402
from MedShiftLib.translation import TranslationSettings, translate_batch  # noqa: E402
from MedShiftLib.velocity_unet import VelocityUNet, config_from_preset, count_parameters  # noqa: E402

SOLVER_STEPS = [("euler", 3), ("euler", 5), ("euler", 10), ("heun", 3), ("heun", 5), ("rk4", 2), ("dopri5", 0)]


def make_model(preset: str) -> VelocityUNet:
    """A network of the preset with small random weights everywhere (so no path is trivially zero)."""
    torch.manual_seed(0)
    model = VelocityUNet(config_from_preset(preset, 5))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return model.eval()


def best_time(fn, repeats: int) -> float:
    """Fastest of `repeats` runs after one warm-up, in seconds."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def forward_table(model: VelocityUNet, sizes: list[int]) -> list[str]:
    rows = ["| size | parameters (M) | GFLOP / forward | forward (ms) | GFLOP/s |", "|---|---|---|---|---|"]
    for size in sizes:
        x, t, y = torch.randn(1, 1, size, size), torch.tensor([0.5]), torch.tensor([0])
        with FlopCounterMode(display=False) as counter, torch.inference_mode():
            model(x, t, y)
        gflop = counter.get_total_flops() / 1e9
        with torch.inference_mode():
            seconds = best_time(lambda: model(x, t, y), 5)
        rows.append(f"| {size} | {count_parameters(model) / 1e6:.2f} | {gflop:.2f} | {seconds * 1e3:.0f} | "
                    f"{gflop / seconds:.0f} |")
    return rows


def translation_table(model: VelocityUNet, sizes: list[int], guidance: float) -> list[str]:
    rows = ["| size | solver | steps per leg | guidance | NFE | seconds |", "|---|---|---|---|---|---|"]
    for size in sizes:
        x = torch.randn(1, 1, size, size)
        for solver, steps in SOLVER_STEPS:
            settings = TranslationSettings("a", "b", tau=0.6, guidance_scale=guidance, solver=solver,
                                           steps=max(steps, 1))
            stats = IntegrationStats()

            def run():
                stats.__init__()
                translate_batch(model, x, torch.tensor([0]), torch.tensor([2]), settings, stats=stats)

            seconds = best_time(run, 2)
            label = "adaptive" if solver == "dopri5" else str(steps)
            rows.append(f"| {size} | {solver} | {label} | {guidance:g} | {stats.nfe} | {seconds:.2f} |")
    return rows


def tiled_memory(size: int, tile: int) -> dict:
    """Translate one size x size image with tiles in this process; report peak resident memory."""
    model = make_model("default")
    x = torch.randn(1, 1, size, size)
    settings = TranslationSettings("a", "b", tile_size=tile, steps=5)
    start = time.perf_counter()
    translate_batch(model, x, torch.tensor([0]), torch.tensor([2]), settings)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"size": size, "tile": tile, "seconds": time.perf_counter() - start, "peak_rss_mb": peak_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--memory", action="store_true", help="also measure a tiled 2048x2048 translation")
    parser.add_argument("--child-memory", nargs=2, type=int, metavar=("SIZE", "TILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child_memory:
        print(json.dumps(tiled_memory(*args.child_memory)))
        return
    model = make_model(args.preset)
    print(f"# MedShift engine benchmark ({args.preset} preset; torch {torch.__version__}; "
          f"{platform.processor() or platform.machine()}; {torch.get_num_threads()} threads)\n")
    print("\n".join(forward_table(model, args.sizes)) + "\n")
    for guidance in (1.0, 2.0):
        print(f"Translation at tau=0.6, guidance {guidance:g} (NFE = network evaluations; guidance != 1 "
              "evaluates conditional and null in one batch of two):\n")
        print("\n".join(translation_table(model, args.sizes, guidance)) + "\n")
    if args.memory:
        print("| image | tile | seconds (euler, 5 steps per leg) | peak resident memory (MB) |\n|---|---|---|---|")
        for size, tile in ((2048, 512), (2048, 1024)):
            out = subprocess.run([sys.executable, __file__, "--child-memory", str(size), str(tile),
                                  "--threads", str(args.threads)], capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"| {r['size']}x{r['size']} | {r['tile']} | {r['seconds']:.1f} | {r['peak_rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
