"""Engine benchmark: model size, GFLOPs, forward and translation times against the FLOP floor, tiled memory.

Prints Markdown tables. Timings use a default-config network with random weights (cost does not
depend on the weights). The FLOP floor of a translation is its GFLOPs over this machine's measured
dense matmul rate in the precision of the run (fp32, or bf16 with --bf16): the time it would take if
every FLOP ran at matmul speed. On a GPU, times are per image in batches of --batch (default 16); fp32
matmuls and convolutions run in full IEEE fp32 unless --tf32 (set explicitly: PyTorch's own defaults are
IEEE for matmuls but TF32 for cuDNN convolutions). The "Default setting" table is the translation the
panel and `medshift translate` run when no option is given.
Run:  .venv/bin/python benchmarks/benchmark_engine.py [--sizes 256 512] [--memory] [--device cuda [--bf16]]
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
from device_rates import matmul_rate, synchronize
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "MedShift"))

from MedShiftLib.engine.devices import describe_fp32_math, set_tf32  # noqa: E402
from MedShiftLib.engine.network import VelocityUNet, config_from_preset, count_parameters  # noqa: E402
from MedShiftLib.engine.ode_solvers import IntegrationStats  # noqa: E402
from MedShiftLib.pipeline.image_translation import translate_batch  # noqa: E402
from MedShiftLib.postprocess.contrast_transfer import measure_domain_statistics  # noqa: E402
from MedShiftLib.settings import (  # noqa: E402
    DEFAULTS,
    MATCHED_CONTRAST,
    MATCHED_CONTRAST_AND_NOISE,
    NOISE_SYNTHESIS,
    TranslationSettings,
)

DEFAULT_FIELDS = ("tau", "guidance_scale", "solver", "steps", "schedule", "noise_renewal", "contrast_transfer",
                  "noise_matching")
SOLVER_STEPS = [("euler", 3), ("euler", 4), ("euler", 5), ("euler", 10), ("heun", 3), ("heun", 5), ("rk4", 2),
                ("dopri5", 0)]


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


def forward_inputs(size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One random image of size x size, a time and a label, on `device`."""
    return (torch.randn(1, 1, size, size, device=device), torch.tensor([0.5], device=device),
            torch.tensor([0], device=device))


def forward_gflop(model: VelocityUNet, size: int, device: torch.device) -> float:
    """GFLOPs of one forward pass at size x size (batch 1)."""
    x, t, y = forward_inputs(size, device)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(x, t, y)
    return counter.get_total_flops() / 1e9


def forward_table(model: VelocityUNet, sizes: list[int], device: torch.device) -> list[str]:
    rows = ["| size | parameters (M) | GFLOP / forward | forward (ms) | GFLOP/s |", "|---|---|---|---|---|"]
    for size in sizes:
        x, t, y = forward_inputs(size, device)
        gflop = forward_gflop(model, size, device)

        def run(x=x, t=t, y=y):
            with torch.inference_mode():
                model(x, t, y)
            synchronize(device)

        seconds = best_time(run, 5)
        rows.append(f"| {size} | {count_parameters(model) / 1e6:.2f} | {gflop:.2f} | {seconds * 1e3:.0f} | "
                    f"{gflop / seconds:.0f} |")
    return rows


# Contrast statistics for the random model's domains "a" and "b": their values do not change the cost.
CONTRAST = measure_domain_statistics({"a": torch.randn(4, 1, 128, 128), "b": 2 * torch.randn(4, 1, 128, 128)})


def time_translation(model: VelocityUNet, x: torch.Tensor, settings: TranslationSettings, device: torch.device,
                     autocast: torch.dtype | None) -> tuple[float, int]:
    """(best seconds per image, velocity evaluations) of translating the batch x with `settings`."""
    batch, stats = len(x), IntegrationStats()

    def run():
        stats.__init__()
        with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
            translate_batch(model, x, torch.zeros(batch, dtype=torch.long), torch.full((batch,), 2), settings,
                            stats=stats, statistics=CONTRAST)
        synchronize(device)

    return best_time(run, 2) / batch, stats.nfe


def translation_table(model: VelocityUNet, sizes: list[int], guidance: float, device: torch.device, batch: int,
                      rate_gflops: float, autocast: torch.dtype | None = None) -> list[str]:
    rows = ["| size | solver | steps per leg | guidance | NFE | GFLOP / image | floor (s / image) | seconds / image |",
            "|---|---|---|---|---|---|---|---|"]
    for size in sizes:
        x = torch.randn(batch, 1, size, size, device=device)
        per_forward = forward_gflop(model, size, device)
        for solver, steps in SOLVER_STEPS:
            settings = TranslationSettings("a", "b", tau=0.6, guidance_scale=guidance, solver=solver,
                                           steps=max(steps, 1))
            seconds, nfe = time_translation(model, x, settings, device, autocast)
            gflop = nfe * (1 if guidance == 1.0 else 2) * per_forward
            label = "adaptive" if solver == "dopri5" else str(steps)
            rows.append(f"| {size} | {solver} | {label} | {guidance:g} | {nfe} | {gflop:.1f} | "
                        f"{gflop / rate_gflops:.3f} | {seconds:.3f} |")
    return rows


def preset_table(model: VelocityUNet, preset: dict, sizes: list[int], device: torch.device, batch: int,
                 rate_gflops: float, autocast: torch.dtype | None = None) -> list[str]:
    """Cost of a settings preset (NOISE_SYNTHESIS, MATCHED_CONTRAST, ...) at tau 0.6."""
    settings = TranslationSettings("a", "b", tau=0.6, **preset)
    passes = 1 if settings.guidance_scale == 1.0 else 2
    rows = ["| size | NFE | GFLOP / image | floor (s / image) | seconds / image |", "|---|---|---|---|---|"]
    for size in sizes:
        x = torch.randn(batch, 1, size, size, device=device)
        seconds, nfe = time_translation(model, x, settings, device, autocast)
        gflop = nfe * passes * forward_gflop(model, size, device)
        rows.append(f"| {size} | {nfe} | {gflop:.1f} | {gflop / rate_gflops:.3f} | {seconds:.3f} |")
    return rows


def default_setting_table(model: VelocityUNet, sizes: list[int], device: torch.device, batch: int,
                          rate_gflops: float, autocast: torch.dtype | None, precision: str) -> list[str]:
    """Per-image milliseconds of the default translation (every TranslationSettings field at its default)."""
    settings = TranslationSettings("a", "b")
    passes = 1 if settings.guidance_scale == 1.0 else 2
    rows = ["| size | batch | precision | NFE | GFLOP / image | floor (ms / image) | ms / image |",
            "|---|---|---|---|---|---|---|"]
    for size in sizes:
        x = torch.randn(batch, 1, size, size, device=device)
        seconds, nfe = time_translation(model, x, settings, device, autocast)
        gflop = nfe * passes * forward_gflop(model, size, device)
        rows.append(f"| {size} | {batch} | {precision} | {nfe} | {gflop:.1f} | {1e3 * gflop / rate_gflops:.1f} | "
                    f"{1e3 * seconds:.1f} |")
    return rows


def tiled_memory(size: int, tile: int) -> dict:
    """Translate one size x size image with tiles in this process; report peak resident memory."""
    model = make_model("default")
    x = torch.randn(1, 1, size, size)
    settings = TranslationSettings("a", "b", tile_size=tile, steps=DEFAULTS["steps"])
    start = time.perf_counter()
    translate_batch(model, x, torch.tensor([0]), torch.tensor([2]), settings)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"size": size, "tile": tile, "seconds": time.perf_counter() - start, "peak_rss_mb": peak_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--memory", action="store_true", help="also measure a tiled 2048x2048 translation (CPU)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--batch", type=int, help="images per translation batch (default: 1 on CPU, 16 on GPU)")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast, floor from the bf16 matmul rate")
    parser.add_argument("--tf32", action="store_true", help="GPU: let fp32 matmuls and convolutions use TF32 "
                        "(default: full IEEE fp32)")
    parser.add_argument("--quick", action="store_true", help="only the forward and default-setting tables")
    parser.add_argument("--child-memory", nargs=2, type=int, metavar=("SIZE", "TILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child_memory:
        print(json.dumps(tiled_memory(*args.child_memory)))
        return
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("benchmark_engine: --device cuda but no CUDA GPU is visible")
    batch = args.batch or (16 if device.type == "cuda" else 1)
    autocast = torch.bfloat16 if args.bf16 else None
    set_tf32(args.tf32)
    model = make_model(args.preset).to(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    fp32_math = f"; fp32 math: {describe_fp32_math()}" if device.type == "cuda" else ""
    rates = {"fp32": matmul_rate(device, torch.float32) / 1e9}
    if device.type == "cuda" or autocast:
        rates["bf16"] = matmul_rate(device, torch.bfloat16) / 1e9
    rate = rates["bf16" if autocast else "fp32"]
    precision = "bf16" if autocast else ("tf32" if args.tf32 and device.type == "cuda" else "fp32")
    print(f"# MedShift engine benchmark ({args.preset} preset; torch {torch.__version__}; {name}; "
          f"{torch.get_num_threads()} CPU threads; batch {batch}{'; bf16 autocast' if autocast else ''}{fp32_math})\n")
    print("Measured matmul rate: " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in rates.items())
          + f" (floors below use {'bf16' if autocast else 'fp32'})\n")
    print("\n".join(forward_table(model, args.sizes, device)) + "\n")
    print("Default setting (" + ", ".join(f"{k} {DEFAULTS[k]}" for k in DEFAULT_FIELDS) + "), per image in "
          f"batches of {batch}:\n")
    print("\n".join(default_setting_table(model, args.sizes, device, batch, rate, autocast, precision)) + "\n")
    if args.quick:
        return
    for guidance in (1.0, 2.0):
        print(f"Translation at tau=0.6, guidance {guidance:g} (NFE = velocity evaluations; guidance != 1 "
              "evaluates conditional and null in one batch of two, so twice the FLOPs):\n")
        print("\n".join(translation_table(model, args.sizes, guidance, device, batch, rate, autocast)) + "\n")
    for title, preset in (("Noise synthesis", NOISE_SYNTHESIS), ("Matched contrast", MATCHED_CONTRAST),
                          ("Matched contrast and noise", MATCHED_CONTRAST_AND_NOISE)):
        print(f"{title} (" + ", ".join(f"{k} {v}" for k, v in preset.items()) + "; tau=0.6; NFE counts "
              "the renewal's extra evaluation, guidance doubles the FLOPs; the floor leaves out the contrast "
              "transfer's blurs and sorts and the noise matching's FFTs):\n")
        print("\n".join(preset_table(model, preset, args.sizes, device, batch, rate, autocast)) + "\n")
    if args.memory and device.type == "cpu":
        print(f"| image | tile | seconds (euler, {DEFAULTS['steps']} steps per leg) | peak resident memory (MB) |\n"
              "|---|---|---|---|")
        for size, tile in ((2048, 512), (2048, 1024)):
            out = subprocess.run([sys.executable, __file__, "--child-memory", str(size), str(tile),
                                  "--threads", str(args.threads)], capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"| {r['size']}x{r['size']} | {r['tile']} | {r['seconds']:.1f} | {r['peak_rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
