"""Peak rates the benchmarks divide by: measured dense matmul FLOP/s, and datasheet peaks of known GPUs.

Shared by benchmark_engine.py and benchmark_training.py (imported from this folder, which Python puts
first on sys.path when it runs a script here).
"""
from __future__ import annotations

import time

import torch

# Dense (no sparsity) peak TFLOP/s from NVIDIA's datasheets: fp32 = IEEE fp32 on the CUDA cores, tf32 and
# bf16 on the tensor cores. Matched against torch.cuda.get_device_name() in this order (first hit wins),
# e.g. "NVIDIA H100 80GB HBM3" is the SXM part, "NVIDIA H200" the SXM H200.
DATASHEET_TFLOPS: tuple[tuple[str, dict[str, float]], ...] = (
    ("H100 NVL", {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5}),
    ("H100 PCIe", {"fp32": 51.2, "tf32": 378.0, "bf16": 756.0}),
    ("H100", {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4}),
    ("H200 NVL", {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5}),
    ("H200", {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4}),
    ("A100", {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0}),
)


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_rate(device: torch.device, dtype: torch.dtype, size: int | None = None, seconds: float = 1.0) -> float:
    """Measured FLOP/s of square matrix products in `dtype` on `device` (8192 on a GPU, 2048 on the CPU).

    fp32 on a GPU runs as the TF32 flags say (engine.devices.set_tf32): set them before measuring.
    """
    size = size or (8192 if device.type == "cuda" else 2048)
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


def datasheet_peak(device_name: str, math: str) -> float | None:
    """Datasheet dense peak in FLOP/s of `math` ('fp32', 'tf32' or 'bf16') on the named GPU; None if unknown."""
    for pattern, peaks in DATASHEET_TFLOPS:
        if pattern.lower() in device_name.lower():
            return peaks[math] * 1e12
    return None
