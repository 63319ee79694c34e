"""Seconds per training step and per inference pass of the bundled model's network, plain vs channels-last weights.

The evidence for engine/devices.network_memory_format (one layout rule for training and inference): the
`default` preset, a training step (forward, backward, AdamW) on a batch of 8 at 256 x 256 and a forward pass
of one 512 x 512 image, each timed as the best of --rounds rounds of --steps after one untimed call (the
layouts take turns in each round), on the CPU (or --device). On a CPU the time is the process's CPU time (all
its threads), which other work on a shared machine disturbs less than the wall clock.

Run: OMP_NUM_THREADS=2 .venv/bin/python benchmarks/weight_layout.py [--device cpu] [--rounds 4] [--steps 2]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "MedShift"))

from MedShiftLib.engine.devices import describe_device, network_memory_format, resolve_device  # noqa: E402
from MedShiftLib.engine.network import VelocityUNet, config_from_preset  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from device_rates import synchronize  # noqa: E402  (beside this script)

LAYOUTS = {"plain (contiguous)": torch.contiguous_format, "channels-last": torch.channels_last}


def timed(call, steps: int, clock) -> float:
    """Mean seconds of `steps` calls on `clock`."""
    start = clock()
    for _ in range(steps):
        call()
    return (clock() - start) / steps


def layout_calls(layout: torch.memory_format, device: torch.device):
    """(a training step of 8 x 256 px, an inference pass of 1 x 512 px) of a `default` network in `layout`."""
    torch.manual_seed(0)
    model = VelocityUNet(config_from_preset("default", 5)).to(device, memory_format=layout)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(8, 1, 256, 256, device=device).contiguous(memory_format=layout)
    t, labels = torch.rand(8, device=device), torch.randint(0, 5, (8,), device=device)
    image = torch.randn(1, 1, 512, 512, device=device).contiguous(memory_format=layout)
    one, label = torch.full((1,), 0.5, device=device), torch.zeros(1, dtype=torch.long, device=device)

    def training_step() -> None:
        optimizer.zero_grad()
        (model(x, t, labels) - x).pow(2).mean().backward()
        optimizer.step()
        synchronize(device)

    def inference() -> None:
        with torch.no_grad():
            model.eval()(image, one, label)
        model.train()
        synchronize(device)

    return training_step, inference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    device = resolve_device(args.device)
    calls = {name: layout_calls(layout, device) for name, layout in LAYOUTS.items()}
    for training_step, inference in calls.values():  # untimed first calls
        training_step(), inference()
    best = {name: [float("inf"), float("inf")] for name in LAYOUTS}
    # on a CPU shared with other work, the process's CPU time (all its threads) is what the layout changes
    clock = time.perf_counter if device.type == "cuda" else time.process_time
    for _ in range(args.rounds):  # the layouts take turns, so a change in the machine's load hits both
        for name, pair in calls.items():
            best[name] = [min(b, timed(call, args.steps, clock)) for b, call in zip(best[name], pair)]
    print(f"{describe_device(device)}; network_memory_format: {network_memory_format(device)}")
    kind = "s" if device.type == "cuda" else "CPU s"
    print(f"| weights | training step, 8 x 256 px ({kind}) | inference, 1 x 512 px ({kind}) |")
    print("|---|---|---|")
    for name, (training, inference) in best.items():
        print(f"| {name} | {training:.2f} | {inference:.3f} |")


if __name__ == "__main__":
    main()
