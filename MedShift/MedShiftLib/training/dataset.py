"""A data folder's images as training tensors: normalised, cropped to the working resolution, labelled.

Training items are reproducible from the dataset's seed: the random crop of item i in epoch e depends
only on (seed, e, i), whatever the number of loader workers; the trainer calls `set_epoch` before
each epoch.
"""
from __future__ import annotations

import re
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..engine.intensity import fit_intensity_window, normalize
from ..engine.working_grid import centre_square, square_crop
from ..errors import DataFolderError, DomainError, InputImageError
from ..io.data_folder import ImageRecord
from ..io.radiograph_files import count_frames, read_radiograph

_WORKER_TRACEBACK_LAST_LINE = re.compile(r"^[\w.]*TrainingImageError: (.+)$")


class TrainingImageError(DataFolderError):
    """A training image that cannot be read: one line, also when a DataLoader worker process raised it.

    The loader re-raises a worker's error as `type(message with the worker's traceback)`; the constructor
    keeps only the original message (the traceback's last line)."""

    def __init__(self, message: str) -> None:
        if "Traceback (most recent call last)" in message:
            lines = [line.strip() for line in message.splitlines() if line.strip()]
            found = _WORKER_TRACEBACK_LAST_LINE.match(lines[-1]) if lines else None
            message = found.group(1) if found else message
        super().__init__(message)


def _frame_of(record: ImageRecord) -> int | None:
    """The manifest's frame of a record (None: the file's only frame)."""
    frame = record.extra.get("frame")
    return int(frame) if frame not in (None, "") else None


def _unusable(record: ImageRecord, exc: Exception) -> str:
    """One line: which training image of which domain cannot be used, and why."""
    return f"training image of domain '{record.domain}' is unusable: {' '.join(str(exc).split())}"


def check_training_files(records: Sequence[ImageRecord], report: bool = True) -> None:
    """Read every record's header (not its pixels) before training; TrainingImageError naming the unusable ones.

    With several bad files, each is named on its own warning line (when `report`) and the error counts them."""
    bad = []
    for record in records:
        try:
            frames, frame = count_frames(record.path), _frame_of(record)
            if frame is not None and not 0 <= frame < frames:
                raise InputImageError(f"{record.path}: has {frames} frame(s), the manifest asks for frame {frame}")
        except (InputImageError, ValueError) as exc:
            bad.append(_unusable(record, exc))
    if len(bad) == 1:
        raise TrainingImageError(f"{bad[0]}; fix or remove it")
    if bad:
        if report:
            for line in bad:
                warnings.warn(line, stacklevel=2)
        raise TrainingImageError(f"{len(bad)} of {len(records)} training images are unusable (each named above); "
                                 "fix or remove them")


class RadiographDomainDataset(Dataset):
    """(image, label) pairs: a float32 (1, resolution, resolution) tensor in the model range, and its domain index.

    Each image is normalised on its own (intensity.fit_intensity_window + normalize, so MONOCHROME1 is
    inverted to bright = +1) before cropping. Training: a random square crop of `crop_scale` (fraction
    of the short side) resized to `resolution`; validation: the centre square of the short side resized
    to `resolution` (engine.working_grid.centre_square).
    """

    def __init__(self, records: Sequence[ImageRecord], domains: Sequence[str], resolution: int, train: bool,
                 seed: int = 0, *, crop_scale: tuple[float, float] = (0.6, 1.0)) -> None:
        self.records = list(records)
        self.domains = list(domains)
        unknown = sorted({r.domain for r in self.records} - set(self.domains))
        if unknown:
            raise DomainError(f"records of unknown domain(s) {', '.join(unknown)}; known: {', '.join(self.domains)}")
        if resolution < 1:
            raise ValueError(f"resolution must be positive, got {resolution}")
        if not 0.0 < crop_scale[0] <= crop_scale[1] <= 1.0:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {crop_scale}")
        self.resolution = int(resolution)
        self.train = bool(train)
        self.seed = int(seed)
        self.crop_scale = (float(crop_scale[0]), float(crop_scale[1]))
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose random crops __getitem__ draws (crops depend on seed, epoch and index)."""
        self.epoch = int(epoch)

    def label(self, index: int) -> int:
        """Domain index of record `index`."""
        return self.domains.index(self.records[index].domain)

    def normalized_image(self, index: int) -> np.ndarray:
        """Record `index` read and mapped to the model range, full size (rows, cols) float32."""
        record = self.records[index]
        try:
            image = read_radiograph(record.path, frame=_frame_of(record))
        except InputImageError as exc:
            raise TrainingImageError(_unusable(record, exc)) from exc
        return normalize(image.pixels, fit_intensity_window(image.pixels, image.photometric))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        pixels = torch.from_numpy(self.normalized_image(index))
        if self.train:
            rows, cols = pixels.shape
            rng = np.random.default_rng([self.seed, self.epoch, index])
            side = max(1, int(round(rng.uniform(*self.crop_scale) * min(rows, cols))))
            top = int(rng.integers(0, rows - side + 1))
            left = int(rng.integers(0, cols - side + 1))
            crop = square_crop(pixels, top, left, side, self.resolution)
        else:
            crop = centre_square(pixels, self.resolution)
        return crop[None].contiguous(), self.label(index)


def sample_domain_images(records: Sequence[ImageRecord], domains: Sequence[str], resolution: int, per_domain: int,
                         seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to `per_domain` records of each domain, centre squares at `resolution`: ((N, 1, R, R) model range, labels)."""
    rng = np.random.default_rng(seed)
    chosen_records = []
    for domain in domains:
        own = [r for r in records if r.domain == domain]
        chosen = rng.choice(len(own), min(per_domain, len(own)), replace=False)
        chosen_records += [own[i] for i in sorted(chosen)]
    dataset = RadiographDomainDataset(chosen_records, domains, resolution, train=False)
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])
    return images, torch.tensor([dataset.label(i) for i in range(len(dataset))])
