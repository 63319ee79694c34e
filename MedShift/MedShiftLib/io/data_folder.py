"""Data folders: radiographs sorted by domain, with subjects, and their split into training and validation.

Data folder layout:
    root/
        manifest.csv            optional; columns file, domain, subject (+ any others, kept as strings)
        sim-low/s0003_v01.png   one sub-folder per domain, images in any supported format
        clinical-normal/...
        clean/                  ignored (as are hidden folders and files)

With a manifest, it alone lists the images (paths relative to root); files it does not name are not
used. Without one, every file with a supported extension in a domain sub-folder is used (not
recursively), as is every DICOM file whatever its name (told by its preamble; DICOM exports often have
no extension, e.g. IM000001). The subject is the part of the file name before the first "_" (the whole name
without extension when there is no "_"): "s0003_v01.png" belongs to subject "s0003". A manifest may
add a "frame" column to take one frame of a cine or volume.

The images themselves are read and served as tensors by training.dataset.
"""
from __future__ import annotations

import csv
import os
import random
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataFolderError
from .path_kinds import describe_unusable_path
from .radiograph_files import SUPPORTED_EXTENSIONS, is_radiograph_file

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
                       if p.is_file() and not p.name.startswith(".") and is_radiograph_file(p))
        if not files:
            raise DataFolderError(
                f"{folder}: the domain folder '{folder.name}' holds no images ({', '.join(SUPPORTED_EXTENSIONS)}, or "
                "DICOM files without an extension); add images or remove the folder"
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
        what = ("is a file; give the data folder" if root.is_file()
                else describe_unusable_path(root, wanted="data folder", missing="data folder"))
        raise DataFolderError(f"{root}: {what}")
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
    two or more subjects, and never all of them; a domain that would keep no training image keeps one of
    its subjects for training (with a warning naming the domain).
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
    for domain in folder.domains:  # a domain whose every subject went to validation keeps one for training
        own = sorted({r.subject for r in folder.records if r.domain == domain})
        if own and all(subject in validation for subject in own):
            validation.discard(own[0])
            warnings.warn(f"domain '{domain}': all its images fell into the validation split; subject '{own[0]}' "
                          "trains instead (add subjects to this domain for a validation of it)", stacklevel=2)
    train = [r for r in folder.records if r.subject not in validation]
    return train, [r for r in folder.records if r.subject in validation]


def check_outside_data_folder(folder: str | Path, data_root: str | Path, option: str = "--out") -> None:
    """DataFolderError when `folder` is the data folder or lies inside it (the next scan would read its files)."""
    inside, root = Path(os.path.realpath(folder)), Path(os.path.realpath(data_root))
    if inside == root or root in inside.parents:
        raise DataFolderError(f"{option} {folder} is inside the data folder {data_root}: the next training run would "
                              "take its pictures (loss curve, sample grids) for training images; choose a folder "
                              "outside it")
