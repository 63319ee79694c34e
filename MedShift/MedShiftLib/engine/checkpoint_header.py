"""A checkpoint's header read with the standard library alone: no torch, no safetensors.

A safetensors file starts with an 8-byte little-endian header length and that many bytes of JSON; its
"__metadata__" holds MedShift's string metadata (checkpoint.py documents the fields). Reading the domain
names this way lets the Slicer panel fill its lists without loading torch into Slicer's process (a torch
that fails to import, e.g. a DLL error on Windows, then breaks nothing but the translation itself).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import CheckpointError, DomainError

CHECKPOINT_FORMAT = "medshift-checkpoint"
MAX_HEADER_BYTES = 16 * 1024 * 1024
BUNDLED_MODEL_DIR = Path(__file__).resolve().parents[2] / "Resources" / "Models"
BUNDLED_MODEL_NAME = "medshift_default.safetensors"


def default_model_path() -> Path:
    """The model used when none is named: $MEDSHIFT_MODEL, else the bundled one."""
    env = os.environ.get("MEDSHIFT_MODEL")
    if env:
        return Path(env)
    path = BUNDLED_MODEL_DIR / BUNDLED_MODEL_NAME
    if not path.is_file():
        raise CheckpointError(
            f"no model given and no bundled model at {path}; pass --model CKPT (train one with "
            "`medshift train`) or set MEDSHIFT_MODEL")
    return path


def read_metadata(path: Path) -> dict[str, str]:
    """The safetensors string metadata of a MedShift checkpoint, read without touching the tensor data."""
    path = Path(path)
    if path.is_dir():
        found = sorted(p.name for p in path.glob("*.safetensors") if p.name != "training_state.safetensors")
        inside = (f"it holds {', '.join(found[:4])}{' ...' if len(found) > 4 else ''}" if found
                  else "it holds no .safetensors file")
        raise CheckpointError(f"{path} is a folder, not a checkpoint file ({inside}); give the checkpoint "
                              "file itself, e.g. RUN_DIR/best.safetensors")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass --model with a MedShift .safetensors file")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path}: file is too short to be a safetensors checkpoint (truncated?)")
        n = int.from_bytes(head, "little")
        if n <= 0 or n > min(MAX_HEADER_BYTES, size - 8):
            raise CheckpointError(
                f"{path}: not a MedShift .safetensors checkpoint (bad header; truncated, or a PyTorch pickle, "
                "which MedShift never loads for safety)")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{path}: corrupt safetensors header ({exc})") from None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT or "medshift" not in meta:
        raise CheckpointError(f"{path}: a safetensors file, but not a MedShift checkpoint (no MedShift metadata)")
    return meta


def checked_domains(path: Path, domains: object) -> tuple[str, ...]:
    """The metadata's domain names, or CheckpointError when they are not distinct non-empty strings."""
    if (not isinstance(domains, list) or not domains or not all(isinstance(d, str) and d for d in domains)
            or len(set(domains)) != len(domains)):
        raise CheckpointError(f"{path}: 'domains' must be a list of distinct, non-empty names")
    return tuple(domains)


def read_medshift_metadata(path: Path, metadata: dict[str, str] | None = None) -> dict:
    """MedShift's own metadata (the "medshift" entry: a JSON object) decoded, fields not yet checked; from
    `metadata` (read_metadata's) when given, else read from the file."""
    try:
        raw = json.loads((read_metadata(path) if metadata is None else metadata)["medshift"])
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: MedShift metadata is not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: MedShift metadata must be a JSON object")
    return raw


def read_domains(path: Path) -> tuple[str, ...]:
    """Domain names a checkpoint knows, in label order, from its header alone."""
    return checked_domains(path, read_medshift_metadata(path).get("domains"))


def domain_label(domains: tuple[str, ...], domain: str) -> int:
    """Label index of a domain name; DomainError listing the valid names otherwise."""
    if domain not in domains:
        raise DomainError(f"unknown domain {domain!r}; this model knows: {', '.join(domains)}")
    return domains.index(domain)
