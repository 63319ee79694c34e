"""Measure a model's domain contrast statistics from training images and record them in a checkpoint.

`medshift train` records them in every checkpoint it writes; `medshift domain-contrast` adds them to
a checkpoint made without them (an older one, or one trained elsewhere), writing a new file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .checkpoint import load_checkpoint, read_checkpoint_info, save_checkpoint
from .contrast_transfer import DomainContrast, measure_domain_contrast
from .datasets import ImageRecord, sample_domain_images, scan_data_folder
from .errors import MedShiftError

IMAGES_PER_DOMAIN = 200


def contrast_of_records(records: Sequence[ImageRecord], domains: Sequence[str], resolution: int,
                        per_domain: int = IMAGES_PER_DOMAIN, seed: int = 0) -> DomainContrast:
    """Contrast statistics of up to `per_domain` training images of each domain (centre squares at `resolution`)."""
    images, labels = sample_domain_images(records, domains, resolution, per_domain, seed)
    return measure_domain_contrast({d: images[labels == i] for i, d in enumerate(domains)})


def contrast_for_run(latest_checkpoint: Path, resuming: bool, records: Sequence[ImageRecord], domains: Sequence[str],
                     resolution: int, seed: int = 0) -> DomainContrast:
    """A training run's statistics: on --resume those its latest checkpoint holds, else measured.

    A resumed run has the same data folder and options (the trainer checks), so its recorded statistics
    are what measuring again would give; measuring takes minutes. A checkpoint that cannot be read or
    predates the noise power spectra is measured again.
    """
    if resuming:
        try:
            recorded = read_checkpoint_info(latest_checkpoint).contrast
        except (MedShiftError, OSError):
            recorded = None
        if recorded is not None and recorded.noise_power is not None:
            return recorded
    return contrast_of_records(records, domains, resolution, seed=seed)


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
