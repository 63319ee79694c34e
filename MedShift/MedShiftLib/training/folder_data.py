"""A run's training data from a data folder (one sub-folder per domain): split, loaders, samples, statistics.

`TrainingRun` (run.py) asks its data for the same few things whatever it is: this folder, or images
rendered on the fly by the simulator (simulator/training_views.py, built by `medshift train --simulate`):

    domains, validation_size
    batches(start_step)      (x1, labels) of this process's share of each step's batch, from start_step on
    validation_batches()     the fixed validation images in batches
    sample_batch()           up to SAMPLE_IMAGES fixed images for the sample grids, spread over the domains
    statistics_images()      images of each domain for the domain statistics
    statistics_provenance()  what the checkpoint records about those images
    working_pixel_spacing()  the working grid's pixel spacing (mm) when known
    provenance()             what the checkpoint records about the data
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ..errors import DataFolderError
from ..io.data_folder import ImageRecord, scan_data_folder, split_by_subject
from .dataset import RadiographDomainDataset, check_training_files
from .report import SAMPLE_IMAGES
from .sampling import EpochPermutationSampler


def working_pixel_spacing(records: list[ImageRecord], resolution: int) -> float | None:
    """Pixel spacing (mm) of the working grid when every image's manifest gives the same spacing and size.

    A whole image's short side maps to `resolution` pixels (as the validation crop does), so one
    working pixel covers spacing * short_side / resolution millimetres; None when unknown or mixed."""
    values = {(r.extra.get("pixel_spacing_mm"), r.extra.get("rows"), r.extra.get("cols")) for r in records}
    if len(values) != 1:
        return None
    spacing, rows, cols = values.pop()
    try:
        spacing_mm, short_side = float(spacing), min(int(rows), int(cols))
    except (TypeError, ValueError):
        return None
    return spacing_mm * short_side / resolution if math.isfinite(spacing_mm) and spacing_mm > 0 < short_side else None


class FolderData:
    """A data folder split by subject into training and validation images (see the module docstring)."""

    def __init__(self, data_dir: str, domains: list[str], resolution: int, batch_size: int,
                 validation_fraction: float, seed: int, num_workers: int, rank: int = 0, world_size: int = 1) -> None:
        # Naming exactly one domain asks for a single-domain model (one half of a DDIB pair, evaluation/ddib.py).
        self.folder = scan_data_folder(data_dir, domains=domains or None, min_domains=1 if len(domains) == 1 else 2)
        train_records, val_records = split_by_subject(self.folder, validation_fraction, seed)
        check_training_files(self.folder.records, report=rank == 0)  # headers only: bad files before step 1
        if len(train_records) < batch_size:
            raise DataFolderError(f"{data_dir}: {len(train_records)} training images, fewer than the batch "
                                  f"size {batch_size}; lower --batch-size or add images")
        self.data_dir, self.resolution, self.batch_size, self.seed = data_dir, resolution, batch_size, seed
        self.num_workers, self.rank, self.world_size = num_workers, rank, world_size
        self.domains = list(self.folder.domains)
        self.train_set = RadiographDomainDataset(train_records, self.domains, resolution, train=True, seed=seed)
        self.val_set = RadiographDomainDataset(val_records, self.domains, resolution, train=False, seed=seed)

    @property
    def train_size(self) -> int:
        """Training images."""
        return len(self.train_set)

    @property
    def validation_size(self) -> int:
        """Validation images."""
        return len(self.val_set)

    def batches(self, start_step: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This process's share of every step's batch from `start_step` on (data order from (seed, epoch))."""
        batches_per_epoch = len(self.train_set) // self.batch_size
        step = start_step
        while True:
            epoch, start = divmod(step, batches_per_epoch)
            sampler = EpochPermutationSampler(len(self.train_set), self.seed, epoch, start * self.batch_size,
                                              rank=self.rank, world_size=self.world_size, batch_size=self.batch_size)
            self.train_set.set_epoch(epoch)
            loader = DataLoader(self.train_set, batch_size=self.batch_size // self.world_size, sampler=sampler,
                                drop_last=True, num_workers=self.num_workers, persistent_workers=False)
            for batch in loader:
                yield batch
                step += 1

    def validation_batches(self) -> DataLoader:
        """The validation images (centre squares) in batches."""
        return DataLoader(self.val_set, batch_size=self.batch_size, shuffle=False, num_workers=0)

    def sample_batch(self) -> tuple[torch.Tensor, list[int]]:
        """Up to SAMPLE_IMAGES fixed images for the sample grids, spread over the domains (validation if any)."""
        dataset = self.val_set if len(self.val_set) else RadiographDomainDataset(
            self.train_set.records, self.train_set.domains, self.train_set.resolution, train=False)
        by_domain: dict[int, list[int]] = {}
        for index in range(len(dataset)):
            by_domain.setdefault(dataset.label(index), []).append(index)
        chosen: list[int] = []
        while len(chosen) < min(SAMPLE_IMAGES, len(dataset)):
            for indices in by_domain.values():
                taken = [i for i in indices if i not in chosen]
                if taken and len(chosen) < SAMPLE_IMAGES:
                    chosen.append(taken[0])
        items = [dataset[i] for i in chosen]
        return torch.stack([x for x, _ in items]), [label for _, label in items]

    def statistics_images(self) -> dict[str, torch.Tensor]:
        """Up to IMAGES_PER_DOMAIN training images of each domain, for the checkpoints' domain statistics."""
        from .domain_statistics import images_by_domain

        return images_by_domain(self.folder.records, self.domains, self.resolution, seed=self.seed)

    def statistics_provenance(self) -> dict:
        """What the checkpoint records about the images its domain statistics were measured on."""
        from .domain_statistics import IMAGES_PER_DOMAIN

        return {"data_dir": self.provenance()["data_dir"], "images_per_domain": IMAGES_PER_DOMAIN}

    def working_pixel_spacing(self) -> float | None:
        """The working grid's pixel spacing (mm) when every image gives the same spacing and size."""
        return working_pixel_spacing(self.folder.records, self.resolution)

    def provenance(self) -> dict:
        """The data folder (resolved) and the image counts."""
        return {"data_dir": str(Path(os.path.realpath(self.data_dir))), "train_images": self.train_size,
                "validation_images": self.validation_size}
