"""The simulator look a model was trained on, read from its checkpoint, so its inputs are rendered in that look.

`medshift train --simulate` records the look in the checkpoint's provenance (`look`, and in the options under
`simulate`); a model trained on a data folder records none. The demo, scripts/quick_bundled_evaluation.py and
benchmarks/frontier_sweep.py render their inputs in `model_look(info)`: the recorded look, else
domain_styles.BUNDLED_MODEL_LOOK (the shipped model, fine-tuned on a data folder, records none).
"""
from __future__ import annotations

from ..engine.checkpoint import CheckpointInfo
from ..errors import MedShiftError
from .domain_styles import BUNDLED_MODEL_LOOK, LOOKS


def trained_look(info: CheckpointInfo) -> str | None:
    """The look recorded in the model's provenance, or None when it records none (a data-folder run)."""
    provenance = info.provenance or {}
    look = provenance.get("look") or (provenance.get("simulate") or {}).get("look")
    if look is not None and look not in LOOKS:
        raise MedShiftError(f"the model was trained in the simulator look {look!r}, which this version does not "
                            f"have ({', '.join(LOOKS)}); use a MedShift version that has it")
    return look


def model_look(info: CheckpointInfo) -> str:
    """The look to render a model's inputs in: the one it was trained on, else BUNDLED_MODEL_LOOK."""
    return trained_look(info) or BUNDLED_MODEL_LOOK
