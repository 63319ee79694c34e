"""Resumable training state in one `.safetensors` file (no pickles).

Holds the raw weights, the EMA weights, the optimizer's tensors, and as JSON metadata the step,
the optimizer's hyper-parameters, the scheduler state and the training configuration. Written
atomically next to the checkpoints, so a run killed at any moment resumes from the last save.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open

from ..engine.checkpoint import save_safetensors_atomically
from ..errors import CheckpointError

STATE_FORMAT = "medshift-training-state"


def save_training_state(path: str | Path, *, step: int, model: torch.nn.Module, ema: torch.nn.Module,
                        optimizer: torch.optim.Optimizer, scheduler, config: dict) -> Path:
    """Write everything `--resume` needs."""
    tensors: dict[str, torch.Tensor] = {}
    for k, v in model.state_dict().items():
        tensors[f"model/{k}"] = v
    for k, v in ema.state_dict().items():
        tensors[f"ema/{k}"] = v
    opt_state = optimizer.state_dict()
    for index, state in opt_state["state"].items():
        for name, value in state.items():
            tensors[f"optim/{index}/{name}"] = value if torch.is_tensor(value) else torch.tensor(value)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    meta = {"step": step, "param_groups": opt_state["param_groups"], "scheduler": scheduler.state_dict(),
            "config": config}
    path = Path(path)
    save_safetensors_atomically(tensors, {"format": STATE_FORMAT, "state": json.dumps(meta)}, path)
    return path


def read_training_state(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(metadata, tensors) of a training-state file; CheckpointError when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no training state at {path}; start without --resume")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get("format") != STATE_FORMAT:
            raise CheckpointError(f"{path} is not a MedShift training state")
        return json.loads(meta["state"]), load_file(str(path))
    except (SafetensorError, OSError, KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: corrupt training state ({exc}); delete it to start afresh") from None


def restore_training_state(meta: dict, tensors: dict[str, torch.Tensor], *, model: torch.nn.Module,
                           ema: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler) -> int:
    """Load a state read by `read_training_state` into live objects; returns the step to continue from."""
    def section(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

    try:
        model.load_state_dict(section("model/"))
        ema.load_state_dict(section("ema/"))
    except RuntimeError as exc:
        raise CheckpointError(f"training state does not fit this model configuration: {exc}") from None
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in section("optim/").items():
        index, name = key.split("/", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    scheduler.load_state_dict(meta["scheduler"])
    return int(meta["step"])
