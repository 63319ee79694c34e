"""Multi-process training through PyTorch's own engine (torchrun / `python -m torch.distributed.run`).

torchrun starts one process per GPU (or per CPU group) and tells each its place in the environment
(WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT). This file reads that place, opens and closes
the process group (NCCL on CUDA, Gloo on CPU), picks each process's GPU from LOCAL_RANK, wraps the model
in DistributedDataParallel and offers the few collective operations the trainer needs. A process that
torchrun did not start is a group of one: every helper then does nothing, so single-process runs are
untouched.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from ..atomic_files import write_bytes_atomically
from ..errors import MedShiftError

_SETUP = {"finished": False}
REPLICA_DIGEST_ENV = "MEDSHIFT_REPLICA_DIGEST_DIR"
"""When set, every process writes `rank{R}.json` there at the end of training: digests of its weights."""


def launched_by_torchrun() -> bool:
    """True when this process was started by torchrun (or another launcher setting WORLD_SIZE and RANK)."""
    return dist.is_torchelastic_launched() or ("WORLD_SIZE" in os.environ and "RANK" in os.environ)


def _environment_integer(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise MedShiftError(f"environment variable {name}={value!r} is not a whole number; "
                            "start multi-process training with torchrun") from None


@dataclass(frozen=True)
class ProcessPlace:
    """This process's place among the training processes: rank, world size and rank on this machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls) -> ProcessPlace:
        """The place torchrun gave this process; a group of one when it was not launched by torchrun."""
        if not launched_by_torchrun():
            return cls()
        place = cls(rank=_environment_integer("RANK", 0), world_size=_environment_integer("WORLD_SIZE", 1),
                    local_rank=_environment_integer("LOCAL_RANK", 0))
        if not 0 <= place.rank < place.world_size:
            raise MedShiftError(f"RANK={place.rank} is outside WORLD_SIZE={place.world_size}; start with torchrun")
        return place

    @property
    def is_main(self) -> bool:
        """The process that writes files (rank 0)."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        """More than one process takes part."""
        return self.world_size > 1


def process_device(device: torch.device, place: ProcessPlace) -> torch.device:
    """The device this process trains on: with several processes on CUDA, the GPU numbered LOCAL_RANK."""
    if device.type != "cuda" or not place.is_distributed:
        return device
    if place.local_rank >= torch.cuda.device_count():
        raise MedShiftError(f"process {place.rank} needs GPU {place.local_rank}, but this machine has "
                            f"{torch.cuda.device_count()}; give torchrun --nproc_per_node at most the GPU count")
    return torch.device("cuda", place.local_rank)


@contextmanager
def process_group(place: ProcessPlace, device: torch.device) -> Iterator[None]:
    """Open the process group (NCCL on CUDA, Gloo on CPU) for the block and always close it afterwards.

    Does nothing for a single process, or when the caller has already opened a group (it then keeps it)."""
    opened = False
    if place.is_distributed and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
            dist.init_process_group(backend="nccl", device_id=device)
        else:
            dist.init_process_group(backend="gloo")
        opened = True
    try:
        yield
    finally:
        if opened and dist.is_initialized():
            dist.destroy_process_group()


def mark_setup_finished() -> None:
    """Record that every process passed the common setup: errors from now on are this process's own."""
    _SETUP["finished"] = True


def setup_finished() -> bool:
    """True once mark_setup_finished was called (the command line then lets every process print its own errors)."""
    return _SETUP["finished"]


def barrier(place: ProcessPlace, device: torch.device) -> None:
    """Wait until every process arrives here (no-op for a single process)."""
    if place.is_distributed and dist.is_initialized():
        if device.type == "cuda":
            dist.barrier(device_ids=[device.index])
        else:
            dist.barrier()


def mean_across_processes(value: float, place: ProcessPlace, device: torch.device) -> float:
    """The mean of `value` over all processes (the value itself for a single process)."""
    if not (place.is_distributed and dist.is_initialized()):
        return value
    total = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return float(total) / place.world_size


def data_parallel(model: torch.nn.Module, place: ProcessPlace, device: torch.device) -> torch.nn.Module:
    """`model` wrapped in DistributedDataParallel when several processes train it, else `model` itself."""
    if not place.is_distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def replica_digest(state_dict: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of a state dict (equal weights give equal digests)."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{name}|{tensor.dtype}|{tuple(state_dict[name].shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def write_replica_digest(place: ProcessPlace, step: int, model: torch.nn.Module, ema: torch.nn.Module) -> Path | None:
    """When REPLICA_DIGEST_ENV names a folder, write this process's weight digests there (for checking replicas)."""
    folder = os.environ.get(REPLICA_DIGEST_ENV)
    if not folder:
        return None
    record = {"rank": place.rank, "world_size": place.world_size, "step": step,
              "model": replica_digest(model.state_dict()), "ema": replica_digest(ema.state_dict())}
    return write_bytes_atomically(Path(folder) / f"rank{place.rank}.json", json.dumps(record).encode())
