"""The model the panel and the console translate with: loaded once per file version and device.

Reading a model's domains or metadata never loads its weights. The engine is imported inside the
functions, so this module loads before torch is installed; the domain names and the check of a panel's
settings before a background run read the checkpoint's header with the standard library only
(engine.checkpoint_header), so the panel never loads torch into Slicer's process.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

_MODEL_CACHE: dict[tuple, tuple] = {}


def _version(path: Path) -> tuple[int, int] | None:
    """(modification time, size) of a file, None when it is not there."""
    stat = path.stat() if path.is_file() else None
    return (stat.st_mtime_ns, stat.st_size) if stat else None


def cached_model(model_path: str | Path | None = None, device: str = "auto") -> tuple[Any, Any]:
    """(model, CheckpointInfo) for a checkpoint on a device, loaded once per version of its files and device.

    A new version of the weights or of the domain statistics beside them loads the model again.
    """
    from MedShiftLib.engine.checkpoint import default_model_path, load_checkpoint
    from MedShiftLib.engine.devices import resolve_device
    from MedShiftLib.engine.domain_statistics import statistics_path

    path = Path(model_path) if model_path else default_model_path()
    torch_device = resolve_device(device)
    key = (str(path.resolve()), _version(path), _version(statistics_path(path)), str(torch_device))
    if key not in _MODEL_CACHE:
        _MODEL_CACHE.clear()  # keep one model in memory
        _MODEL_CACHE[key] = load_checkpoint(path, torch_device)
    return _MODEL_CACHE[key]


def model_domains(model_path: str | Path | None = None) -> tuple[str, ...]:
    """Domain names a checkpoint knows, in label order (read without torch)."""
    from MedShiftLib.engine.checkpoint_header import default_model_path, read_domains

    return read_domains(Path(model_path) if model_path else default_model_path())


def check_settings_for_model(model_path: str | Path | None, settings: Any) -> None:
    """MedShiftError for settings out of range or domains the checkpoint lacks (read without torch).

    What needs the weights or the domain statistics is checked by the worker, which says so in its ERROR line."""
    from MedShiftLib.engine.checkpoint_header import domain_label

    settings.validated()
    domains = model_domains(model_path)
    domain_label(domains, settings.source_domain)
    domain_label(domains, settings.target_domain)
