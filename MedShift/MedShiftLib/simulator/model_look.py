"""The simulator look a model was trained on, read from its checkpoint, so its inputs are rendered in that look.

`medshift train --simulate` records the look in the checkpoint's provenance, in the options under `simulate`
(earlier versions also as `look`: both are read); a model trained on a data folder records none. The demo,
scripts/quick_bundled_evaluation.py and benchmarks/frontier_sweep.py render their inputs in `model_look(info)`:
the recorded look, else domain_styles.BUNDLED_MODEL_LOOK (the shipped model, fine-tuned on a data folder, records
none).
"""
from __future__ import annotations

from ..engine.checkpoint import CheckpointInfo, provenance_section
from ..errors import CheckpointError, MedShiftError
from .domain_styles import BUNDLED_MODEL_LOOK, LOOKS

REMEDY = f"re-package the model, or give the look ({', '.join(LOOKS)}) with --look where the command has it"


def trained_look(info: CheckpointInfo) -> str | None:
    """The look recorded in the model's provenance, or None when it records none (a data-folder run);
    MedShiftError for one this version lacks, CheckpointError for a record that is not a look's name."""
    look = info.provenance.get("look") or provenance_section(info, "simulate", REMEDY).get("look")
    if look is not None and not isinstance(look, str):
        raise CheckpointError(f"the model records its simulator look as {look!r:.60}, not a look's name: its "
                              f"metadata was edited or damaged; {REMEDY}")
    if look is not None and look not in LOOKS:
        raise MedShiftError(f"the model was trained in the simulator look {look!r}, which this version does not "
                            f"have ({', '.join(LOOKS)}); use a MedShift version that has it")
    return look


def model_look(info: CheckpointInfo) -> str:
    """The look to render a model's inputs in: the one it was trained on, else BUNDLED_MODEL_LOOK."""
    return trained_look(info) or BUNDLED_MODEL_LOOK
