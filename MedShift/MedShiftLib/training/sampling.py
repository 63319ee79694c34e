"""What makes a run reproducible and resumable: the data order and the random draws of each step.

Data order, crops and noise derive from (seed, step) alone, so a resumed run continues as the original
would, and torchrun processes see exactly the batches one process would.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Sampler


class EpochPermutationSampler(Sampler[int]):
    """A fresh permutation per epoch from (seed, epoch), able to start part-way through an epoch.

    With several processes, each global batch (`batch_size` consecutive entries of the permutation) is cut
    into `world_size` equal shares and process `rank` takes its share, so together the processes see
    exactly the images, batch by batch, that one process would. `start` counts global positions."""

    def __init__(self, size: int, seed: int, epoch: int = 0, start: int = 0, rank: int = 0, world_size: int = 1,
                 batch_size: int | None = None) -> None:
        if world_size > 1 and (batch_size is None or batch_size % world_size):
            raise ValueError(f"the global batch size {batch_size} must be a multiple of the {world_size} processes")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside a world of {world_size}")
        self.size, self.seed, self.epoch, self.start = size, seed, epoch, start
        self.rank, self.world_size, self.batch_size = rank, world_size, batch_size

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.size, generator=g)[self.start:]
        if self.world_size > 1:
            share = self.batch_size // self.world_size
            whole = len(order) // self.batch_size * self.batch_size
            order = order[:whole].reshape(-1, self.world_size, share)[:, self.rank].reshape(-1)
        return iter(order.tolist())

    def __len__(self) -> int:
        remaining = max(self.size - self.start, 0)
        if self.world_size > 1:
            return remaining // self.batch_size * (self.batch_size // self.world_size)
        return remaining


def step_generator(seed: int, step: int, rank: int = 0, device: torch.device | str = "cpu") -> torch.Generator:
    """Noise, times and label dropout of one step on one process, from (seed, step, rank).

    Rank 0 keeps the single-process seeds; other ranks hash (seed, step, rank) with numpy's SeedSequence
    (torch's CPU generator keeps only 32 bits of a seed, so adding a large rank offset would be lost).
    `device`: where the draws are made; a CUDA generator draws on the GPU (no host-to-device copy per step;
    its numbers differ from the CPU generator's, reproducibly)."""
    generator = torch.Generator(device=device)
    if rank == 0:
        return generator.manual_seed(seed * 1_000_003 + 7919 * step + 1)
    return generator.manual_seed(int(np.random.SeedSequence([seed % 2**32, step, rank]).generate_state(1)[0]))
