"""Choosing the torch device the user asked for, with a clear error when it is not there."""
from __future__ import annotations

import torch

from ..errors import MedShiftError


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA when available, else CPU; 'cuda'/'cuda:N' and 'mps' (Apple silicon) must exist."""
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
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise MedShiftError(f"device 'mps' requested but this PyTorch ({torch.__version__}) sees no Apple GPU "
                                "(MPS needs an Apple-silicon Mac and macOS 12.3+); use --device cpu")
        return torch.device("mps")
    raise MedShiftError(f"unknown device {name!r}; choose one of: auto, cpu, cuda, cuda:N, mps")


def network_memory_format(device: str | torch.device) -> torch.memory_format:
    """The layout of the network's weights and inputs on `device`, for inference and training alike.

    Channels-last on a CPU and CUDA: oneDNN's convolutions are faster in it on a CPU, for inference and
    training alike (benchmarks/weight_layout.py, docs/benchmarks.md), the PixelNorms' permutes become free,
    and the GPU's convolution kernels prefer it; results agree with the plain layout to ~1e-6. Elsewhere
    (MPS) the plain contiguous layout.
    """
    return torch.channels_last if torch.device(device).type in ("cpu", "cuda") else torch.contiguous_format


def describe_device(device: torch.device) -> str:
    """Human name, e.g. 'CPU (2 threads)' or 'CUDA: NVIDIA H100'."""
    if device.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "Apple GPU (MPS)"
    return f"CPU ({torch.get_num_threads()} threads)"



def set_tf32(enabled: bool) -> None:
    """Let float32 matmuls and cuDNN convolutions use TF32 tensor cores (True) or keep full IEEE fp32 (False).

    PyTorch's defaults differ per operation (matmul IEEE fp32, cuDNN convolutions TF32), so code that
    times or compares fp32 on a GPU sets both. Uses the `allow_tf32` flags: torch >= 2.9 also has
    per-backend `fp32_precision` flags, but torch.compile in some releases reads the `allow_tf32` ones
    and fails once the two APIs disagree; setting these keeps both readings consistent.
    """
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def describe_fp32_math() -> str:
    """How float32 matmuls and convolutions run on a GPU now, e.g. 'matmul ieee, cuDNN conv tf32'."""
    try:
        matmul, conv = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    except RuntimeError:  # flags set through torch >= 2.9's fp32_precision API, which forbids the legacy reading
        matmul = torch.backends.cuda.matmul.fp32_precision == "tf32"
        conv = torch.backends.cudnn.conv.fp32_precision == "tf32"
    return f"matmul {'tf32' if matmul else 'ieee'}, cuDNN conv {'tf32' if conv else 'ieee'}"
