"""Measure a model's domain statistics on its training images, and record them beside a checkpoint.

`medshift train` records them with every checkpoint it writes; `medshift domain-contrast` measures them
for a checkpoint made without them (an older one, or one trained elsewhere), or again. They go into the
checkpoint's statistics file (engine/domain_statistics.py); the weights are never rewritten.
"""
from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..atomic_files import atomic_target
from ..engine.checkpoint import read_checkpoint_info
from ..engine.domain_statistics import DomainStatistics, split_by_domain, statistics_path, write_statistics
from ..errors import MedShiftError
from ..io.output_guard import refuse_outputs_over_inputs
from ..postprocess.contrast_transfer import measure_domain_statistics

if TYPE_CHECKING:
    import torch

    from ..io.data_folder import ImageRecord

IMAGES_PER_DOMAIN = 200


def images_by_domain(records: Sequence[ImageRecord], domains: Sequence[str], resolution: int,
                     per_domain: int = IMAGES_PER_DOMAIN, seed: int = 0) -> dict[str, torch.Tensor]:
    """Up to `per_domain` training images of each domain (centre squares at `resolution`), to measure on."""
    from .dataset import sample_domain_images  # reads image files: only for a data folder

    images, labels = sample_domain_images(records, domains, resolution, per_domain, seed)
    return split_by_domain(images, labels, domains)


def statistics_of_records(records: Sequence[ImageRecord], domains: Sequence[str], resolution: int,
                          per_domain: int = IMAGES_PER_DOMAIN, seed: int = 0) -> DomainStatistics:
    """Statistics of up to `per_domain` training images of each domain (centre squares at `resolution`)."""
    return measure_domain_statistics(images_by_domain(records, domains, resolution, per_domain, seed))


def statistics_for_run(latest_checkpoint: Path, resuming: bool, measure: Callable[[], DomainStatistics]
                       ) -> DomainStatistics:
    """A training run's statistics: on --resume those its latest checkpoint holds, else `measure()`.

    A resumed run has the same data folder and options (the trainer checks), so its recorded statistics
    are what measuring again would give; measuring takes minutes. A checkpoint that cannot be read or
    predates the noise power spectra or noise levels is measured again.
    """
    if resuming:
        try:
            recorded = read_checkpoint_info(latest_checkpoint).statistics
        except (MedShiftError, OSError):
            recorded = None
        if recorded is not None and recorded.noise_power is not None and recorded.noise_level is not None:
            return recorded
    return measure()


def record_domain_statistics(model_path: str | Path, data_dir: str | Path, out_path: str | Path | None = None,
                             per_domain: int = IMAGES_PER_DOMAIN, overwrite: bool = False) -> Path:
    """Measure a checkpoint's domain statistics on its training folder and write them.

    Without `out_path` they go into the checkpoint's own statistics file. An `out_path` ending in
    .safetensors gets a byte-for-byte copy of the checkpoint with the statistics beside it; any other
    `out_path` is the statistics file itself. The checkpoint is never modified, and no existing file is
    replaced unless `overwrite`. Returns the new checkpoint when one was written, else the statistics file.
    """
    model_path = Path(model_path)
    if per_domain < 1:
        raise MedShiftError(f"images per domain must be at least 1, got {per_domain}")
    copy_to = Path(out_path) if out_path is not None and str(out_path).endswith(".safetensors") else None
    if copy_to is not None and copy_to.resolve() == model_path.resolve():
        raise MedShiftError(f"--out {copy_to} is the input checkpoint; write the new checkpoint to another file")
    target = statistics_path(copy_to or model_path) if out_path is None or copy_to else Path(out_path)
    label = "--out" if out_path is not None else "the statistics file"
    refuse_outputs_over_inputs(output_files=[(label, copy_to), (label, target)], input_files=[("--model", model_path)],
                               input_folders=[("--data", data_dir)])
    existing = [path for path in (copy_to, target) if path is not None and path.exists()]
    if existing and not overwrite:
        raise MedShiftError(f"{existing[0]} already exists; pass --overwrite to replace it (the statistics are "
                            "measured again), or --out to write elsewhere")
    from ..io.data_folder import scan_data_folder

    info = read_checkpoint_info(model_path)
    folder = scan_data_folder(data_dir, domains=list(info.domains))
    statistics = statistics_of_records(folder.records, info.domains, info.resolution, per_domain)
    if copy_to is not None:
        with atomic_target(copy_to) as tmp:
            shutil.copyfile(model_path, tmp)
    provenance = {"data_dir": str(Path(data_dir).resolve()), "images_per_domain": per_domain}
    written = write_statistics(target, statistics, info.domains, provenance)
    return copy_to or written
