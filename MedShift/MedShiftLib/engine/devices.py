"""Choosing the torch device the user asked for, with a clear error when it is not there."""
from __future__ import annotations

import torch

from ..errors import MedShiftError


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA when available, else CPU; 'cuda'/'cuda:N' must exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise MedShiftError(
                f"device {name!r} requested but this PyTorch ({torch.__version__}) sees no CUDA GPU; "
                "use --device cpu, or install a CUDA build of torch")
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise MedShiftError(f"device {name!r} requested but only {torch.cuda.device_count()} GPU(s) exist")
        return device
    raise MedShiftError(f"unknown device {name!r}; choose one of: auto, cpu, cuda, cuda:N")


def describe_device(device: torch.device) -> str:
    """Human name, e.g. 'CPU (2 threads)' or 'CUDA: NVIDIA H100'."""
    if device.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(device)}"
    return f"CPU ({torch.get_num_threads()} threads)"
