"""The model the panel and the console translate with: loaded once per file version and device.

Reading a model's domains or metadata never loads its weights. The engine is imported inside the
functions, so this module loads before torch is installed.
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


def read_model_info(model_path: str | Path | None = None) -> Any:
    """CheckpointInfo of a checkpoint (None: the default model), read without loading its weights."""
    from MedShiftLib.engine.checkpoint import default_model_path, read_checkpoint_info

    return read_checkpoint_info(Path(model_path) if model_path else default_model_path())


def model_domains(model_path: str | Path | None = None) -> tuple[str, ...]:
    """Domain names a checkpoint knows, in label order."""
    return read_model_info(model_path).domains
