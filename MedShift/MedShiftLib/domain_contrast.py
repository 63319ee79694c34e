"""Measure a model's domain contrast statistics from training images and record them in a checkpoint.

`medshift train` records them in every checkpoint it writes; `medshift domain-contrast` adds them to
a checkpoint made without them (an older one, or one trained elsewhere), writing a new file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .checkpoint import load_checkpoint, save_checkpoint
from .contrast_transfer import DomainContrast, measure_domain_contrast
from .datasets import ImageRecord, sample_domain_images, scan_data_folder
from .errors import MedShiftError

IMAGES_PER_DOMAIN = 200


def contrast_of_records(records: Sequence[ImageRecord], domains: Sequence[str], resolution: int,
                        per_domain: int = IMAGES_PER_DOMAIN, seed: int = 0) -> DomainContrast:
    """Contrast statistics of up to `per_domain` training images of each domain (centre squares at `resolution`)."""
    images, labels = sample_domain_images(records, domains, resolution, per_domain, seed)
    return measure_domain_contrast({d: images[labels == i] for i, d in enumerate(domains)})


def record_domain_contrast(model_path: str | Path, data_dir: str | Path, out_path: str | Path,
                           per_domain: int = IMAGES_PER_DOMAIN) -> Path:
    """Write a copy of the checkpoint with contrast statistics measured on its training folder; returns out_path."""
    model_path, out_path = Path(model_path), Path(out_path)
    if out_path.resolve() == model_path.resolve():
        raise MedShiftError(f"--out {out_path} is the input checkpoint; write the new checkpoint to another file")
    if per_domain < 1:
        raise MedShiftError(f"images per domain must be at least 1, got {per_domain}")
    model, info = load_checkpoint(model_path)
    folder = scan_data_folder(data_dir, domains=list(info.domains))
    info.contrast = contrast_of_records(folder.records, info.domains, info.resolution, per_domain)
    info.provenance = info.provenance | {"domain_contrast": {"data_dir": str(Path(data_dir).resolve()),
                                                            "images_per_domain": per_domain}}
    return save_checkpoint(out_path, model.state_dict(), info)
