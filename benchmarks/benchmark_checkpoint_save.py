"""Checkpoint save benchmark: seconds to write latest + best + the training state of the default network.

What one periodic checkpoint of `medshift train` writes (besides validation and the loss curve), to size the
checkpoint interval of scripts/train_bundled_gpu.sh. Prints a Markdown table.
Run:  .venv/bin/python benchmarks/benchmark_checkpoint_save.py [--repeats 3]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "MedShift"))

from MedShiftLib.engine.checkpoint import BUNDLED_MODEL_DIR, BUNDLED_MODEL_NAME, load_checkpoint, save_checkpoint  # noqa: E402
from MedShiftLib.training.optimisation import make_ema  # noqa: E402
from MedShiftLib.training.state import save_training_state  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model, info = load_checkpoint(BUNDLED_MODEL_DIR / BUNDLED_MODEL_NAME)
    ema = make_ema(model, 0.999)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for parameter in model.parameters():  # one step, so the optimiser holds its two moments as in a run
        parameter.grad = torch.zeros_like(parameter)
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    print("| repeat | seconds | MB written |\n|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        for repeat in range(args.repeats):
            started = time.perf_counter()
            save_checkpoint(out / "latest.safetensors", ema.module.state_dict(), info)
            save_checkpoint(out / "best.safetensors", ema.module.state_dict(), info)
            save_training_state(out / "training_state.safetensors", step=1, model=model, ema=ema,
                                optimizer=optimizer, scheduler=scheduler, config={})
            seconds = time.perf_counter() - started
            written = sum(path.stat().st_size for path in out.iterdir()) / 1e6
            print(f"| {repeat + 1} | {seconds:.2f} | {written:.0f} |")


if __name__ == "__main__":
    main()
