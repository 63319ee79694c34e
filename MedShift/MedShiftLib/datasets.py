"""The training-data loader: a folder of radiographs sorted by domain, split by subject, served as tensors.

Data folder layout:
    root/
        manifest.csv            optional; columns file, domain, subject (+ any others, kept as strings)
        sim-low/s0003_v01.png   one sub-folder per domain, images in any supported format
        clinical-normal/...
        clean/                  ignored (as are hidden folders and files)

With a manifest, it alone lists the images (paths relative to root); files it does not name are not
used. Without one, every file with a supported extension in a domain sub-folder is used (not
recursively), and the subject is the part of the file name before the first "_" (the whole name
without extension when there is no "_"): "s0003_v01.png" belongs to subject "s0003". A manifest may
add a "frame" column to take one frame of a cine or volume.

Training items are reproducible from the dataset's seed: the random crop of item i in epoch e
depends only on (seed, e, i), whatever the number of workers. The loader from make_data_loader
advances the epoch on every pass; call dataset.set_epoch(e) yourself with another loader.
"""
from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from .errors import DataFolderError, DomainError, InputImageError
from .intensity import fit_intensity_window, normalize
from .radiograph_io import SUPPORTED_EXTENSIONS, has_supported_extension, read_radiograph

MANIFEST_NAME = "manifest.csv"
IGNORED_FOLDERS = frozenset({"clean"})
MANIFEST_COLUMNS = ("file", "domain", "subject")


@dataclass(frozen=True)
class ImageRecord:
    """One training image: its file, domain, subject and any other manifest columns."""

    path: Path
    domain: str
    subject: str
    extra: dict[str, str] = field(default_factory=dict, hash=False, compare=False)


@dataclass
class DataFolder:
    """A scanned data folder: its domains in label order and its image records."""

    root: Path
    domains: list[str]
    records: list[ImageRecord]

    @property
    def subjects(self) -> list[str]:
        """Distinct subjects, sorted."""
        return sorted({r.subject for r in self.records})

    def count_by_domain(self) -> dict[str, int]:
        """Number of images in each domain, in label order."""
        return {d: sum(r.domain == d for r in self.records) for d in self.domains}


def subject_from_file_name(path: str | Path) -> str:
    """The subject of a file named SUBJECT_anything.ext (the whole name without extension when there is no "_")."""
    name = Path(path).name
    for extension in sorted(SUPPORTED_EXTENSIONS, key=len, reverse=True):
        if name.lower().endswith(extension):
            name = name[: -len(extension)]
            break
    return name.split("_", 1)[0]


def _read_manifest(root: Path) -> list[ImageRecord]:
    """Records listed by root/manifest.csv, or DataFolderError for an unreadable manifest or a missing file."""
    manifest = root / MANIFEST_NAME
    try:
        with open(manifest, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in reader.fieldnames or []]
            missing = [c for c in MANIFEST_COLUMNS if c not in columns]
            if missing:
                raise DataFolderError(
                    f"{manifest}: missing column(s) {', '.join(missing)}; a manifest needs at least "
                    f"{', '.join(MANIFEST_COLUMNS)} (found: {', '.join(columns) or 'none'})"
                )
            rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataFolderError(f"{manifest}: cannot read the manifest ({exc}); fix or remove it") from exc
    records = []
    for line, row in enumerate(rows, start=2):
        if not row.get("file") or not row.get("domain") or not row.get("subject"):
            raise DataFolderError(f"{manifest}, line {line}: file, domain and subject must all be filled in")
        if row["domain"] in IGNORED_FOLDERS:
            continue
        path = root / row["file"]
        if not path.is_file():
            raise DataFolderError(
                f"{manifest}, line {line}: '{row['file']}' does not exist under {root}; fix the row or restore the file"
            )
        extra = {k: v for k, v in row.items() if k not in MANIFEST_COLUMNS}
        records.append(ImageRecord(path, row["domain"], row["subject"], extra))
    return records


def _scan_domain_folders(root: Path) -> list[ImageRecord]:
    """Records of the supported images in each domain sub-folder, or DataFolderError."""
    folders = sorted(p for p in root.iterdir()
                     if p.is_dir() and not p.name.startswith(".") and p.name not in IGNORED_FOLDERS)
    if not folders:
        raise DataFolderError(
            f"{root}: has no domain sub-folders; put each domain's images in a sub-folder named after the domain"
        )
    records = []
    for folder in folders:
        files = sorted(p for p in folder.iterdir()
                       if p.is_file() and not p.name.startswith(".") and has_supported_extension(p))
        if not files:
            raise DataFolderError(
                f"{folder}: the domain folder '{folder.name}' holds no images ({', '.join(SUPPORTED_EXTENSIONS)}); "
                "add images or remove the folder"
            )
        records += [ImageRecord(p, folder.name, subject_from_file_name(p)) for p in files]
    return records


def scan_data_folder(root: str | Path, domains: Sequence[str] | None = None, min_domains: int = 2) -> DataFolder:
    """Scan a data folder (see the module docstring) into records and domains.

    Domains are sorted alphabetically unless `domains` gives their order (label i = domains[i]); then
    images of other domains are left out and a named domain without images is an error. Fewer than
    `min_domains` domains is an error (1 for a single-domain model, one half of a DDIB pair).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataFolderError(f"{root}: no such data folder; check the path")
    records = _read_manifest(root) if (root / MANIFEST_NAME).is_file() else _scan_domain_folders(root)
    found = sorted({r.domain for r in records})
    if domains is None:
        order = found
    else:
        order = list(domains)
        if len(set(order)) != len(order):
            raise DataFolderError(f"{root}: the domain order {order} names a domain twice")
        absent = [d for d in order if d not in found]
        if absent:
            raise DataFolderError(
                f"{root}: no images for domain(s) {', '.join(absent)}; this folder has: {', '.join(found) or 'none'}"
            )
        records = [r for r in records if r.domain in order]
    if not records:
        raise DataFolderError(f"{root}: the manifest lists no images")
    if len(order) < min_domains:
        raise DataFolderError(
            f"{root}: only one domain ({', '.join(order)}); a translation model needs images of at least two domains "
            "(to train a single-domain model for a DDIB baseline, name that one domain with --domains)"
        )
    return DataFolder(root=root, domains=order, records=records)


def split_by_subject(
    folder: DataFolder, validation_fraction: float, seed: int
) -> tuple[list[ImageRecord], list[ImageRecord]]:
    """(train, validation) records with no subject in both; the same seed gives the same split.

    round(fraction x subjects) subjects go to validation, at least one when fraction > 0 and there are
    two or more subjects, and never all of them.
    """
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    subjects = folder.subjects
    count = int(round(validation_fraction * len(subjects)))
    if validation_fraction > 0 and len(subjects) >= 2:
        count = min(max(count, 1), len(subjects) - 1)
    else:
        count = 0
    random.Random(seed).shuffle(subjects)
    validation = set(subjects[:count])
    train = [r for r in folder.records if r.subject not in validation]
    return train, [r for r in folder.records if r.subject in validation]


def class_balanced_weights(records: Sequence[ImageRecord], domains: Sequence[str]) -> torch.Tensor:
    """Per-record sampling weights (1 / images in its domain) for a WeightedRandomSampler over unbalanced domains."""
    counts = {d: 0 for d in domains}
    for r in records:
        counts[r.domain] = counts.get(r.domain, 0) + 1
    return torch.tensor([1.0 / counts[r.domain] for r in records], dtype=torch.double)


class RadiographDomainDataset(Dataset):
    """(image, label) pairs: image a float32 (1, resolution, resolution) tensor in the model range, label its domain index.

    Each image is normalised on its own (intensity.fit_intensity_window + normalize, so MONOCHROME1 is
    inverted to bright = +1) before cropping. Training: a random square crop of `crop_scale` (fraction
    of the short side), optionally flipped left-right, resized to `resolution`; validation: the centre
    square of the short side resized to `resolution`. Resizing uses antialiased bilinear interpolation.
    """

    def __init__(
        self,
        records: Sequence[ImageRecord],
        domains: Sequence[str],
        resolution: int,
        train: bool,
        seed: int = 0,
        *,
        crop_scale: tuple[float, float] = (0.6, 1.0),
        horizontal_flip: bool = False,
        cache_images: bool = False,
    ) -> None:
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
        self.horizontal_flip = bool(horizontal_flip)
        self.cache_images = bool(cache_images)
        self.epoch = 0
        self._cache: dict[int, np.ndarray] = {}  # per process: each worker fills its own copy

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
        if index in self._cache:
            return self._cache[index]
        record = self.records[index]
        frame = record.extra.get("frame")
        try:
            image = read_radiograph(record.path, frame=int(frame) if frame not in (None, "") else None)
        except InputImageError as exc:
            raise DataFolderError(f"training image of domain '{record.domain}' is unusable: {exc}") from exc
        pixels = normalize(image.pixels, fit_intensity_window(image.pixels, image.photometric))
        if self.cache_images:
            self._cache[index] = pixels
        return pixels

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        pixels = torch.from_numpy(self.normalized_image(index))
        rows, cols = pixels.shape
        short = min(rows, cols)
        if self.train:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            side = max(1, int(round(rng.uniform(*self.crop_scale) * short)))
            top = int(rng.integers(0, rows - side + 1))
            left = int(rng.integers(0, cols - side + 1))
            flip = self.horizontal_flip and bool(rng.random() < 0.5)
        else:
            side, top, left, flip = short, (rows - short) // 2, (cols - short) // 2, False
        crop = pixels[top:top + side, left:left + side]
        if flip:
            crop = torch.flip(crop, dims=(1,))
        resized = F.interpolate(crop[None, None], size=(self.resolution, self.resolution), mode="bilinear",
                                align_corners=False, antialias=True)
        return resized[0].contiguous(), self.label(index)


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


def seed_worker(worker_id: int) -> None:
    """DataLoader worker_init_fn: seed numpy and random from the worker's torch seed (set by the loader's generator)."""
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


class EpochDataLoader(DataLoader):
    """A DataLoader that calls dataset.set_epoch(n) before its n-th pass, so random crops change every epoch."""

    def __init__(self, *args, start_epoch: int = 0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.epoch = int(start_epoch)

    def __iter__(self):
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(self.epoch)
        self.epoch += 1
        return super().__iter__()


def make_data_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    num_workers: int,
    seed: int,
    drop_last: bool,
    sampler: Sampler | None = None,
) -> EpochDataLoader:
    """A DataLoader whose order, worker seeds and crops are reproducible from `seed` (any num_workers).

    With a `sampler`, `shuffle` must be False; a sampler without its own generator gets the loader's.
    """
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    if sampler is not None:
        if shuffle:
            raise ValueError("pass either shuffle=True or a sampler, not both")
        if getattr(sampler, "generator", "absent") is None:
            sampler.generator = generator
    return EpochDataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        sampler=sampler,
        num_workers=num_workers,
        worker_init_fn=seed_worker,
        generator=generator,
        drop_last=drop_last,
        persistent_workers=False,  # workers get a fresh copy of the dataset, with its epoch, on every pass
    )
