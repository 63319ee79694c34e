"""The simulator look a model was trained on, read from its checkpoint, so its inputs are rendered in that look.

`medshift train --simulate` records the look in the checkpoint's provenance, in the options under `simulate`
(earlier versions also as `look`: both are read), and the version of its parameters beside it as `look_fingerprint`
(look_fingerprint.py; earlier versions record none); a model trained on a data folder records neither. The demo,
scripts/quick_bundled_evaluation.py and benchmarks/frontier_sweep.py render their inputs in `model_look(info)`:
the recorded look, else domain_styles.BUNDLED_MODEL_LOOK (the shipped model, fine-tuned on a data folder, records
none). When the recorded fingerprint differs from the present look's, the model was trained on another version of
the look than its inputs are rendered in: `model_look` (and scripts/held_out_statistics.py) warn once.
"""
from __future__ import annotations

import warnings

from ..engine.checkpoint import CheckpointInfo, provenance_section
from ..errors import CheckpointError, MedShiftError
from .domain_styles import BUNDLED_MODEL_LOOK, LOOKS
from .look_fingerprint import LOOK_FINGERPRINT_KEY, look_fingerprint

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


def recorded_look_fingerprint(info: CheckpointInfo) -> str | None:
    """The fingerprint of the look's version the model was trained on, or None when it records none (an earlier
    version, a data-folder run); CheckpointError for a record that is not a text."""
    recorded = info.provenance.get(LOOK_FINGERPRINT_KEY)
    if recorded is not None and not isinstance(recorded, str):
        raise CheckpointError(f"the model records its simulator look's fingerprint as {recorded!r:.60}, not a text: "
                              f"its metadata was edited or damaged; {REMEDY}")
    return recorded


def look_version_change(info: CheckpointInfo) -> tuple[str, str, str] | None:
    """(look, recorded fingerprint, present fingerprint) when the model was trained on another version of its look
    than this MedShift renders, else None (the same version, or no look or fingerprint recorded)."""
    look, recorded = trained_look(info), recorded_look_fingerprint(info)
    if look is None or recorded is None:
        return None
    present = look_fingerprint(look)
    return None if recorded == present else (look, recorded, present)


def warn_if_look_changed(info: CheckpointInfo) -> None:
    """A UserWarning (shown once per process and message) when the model was trained on another version of its
    simulator look than the present one, in which its inputs are rendered."""
    change = look_version_change(info)
    if change is not None:
        look, recorded, present = change
        warnings.warn(f"the model was trained on another version of the simulator look {look!r} (fingerprint "
                      f"{recorded}, now {present}): its inputs are rendered in the present one, which it has not "
                      f"seen; retrain it with this version (medshift train --simulate --look {look}) to silence this",
                      UserWarning, stacklevel=1)


def model_look(info: CheckpointInfo) -> str:
    """The look to render a model's inputs in: the one it was trained on (warning when that was another version of
    it: warn_if_look_changed), else BUNDLED_MODEL_LOOK."""
    warn_if_look_changed(info)
    return trained_look(info) or BUNDLED_MODEL_LOOK


def look_record_line(info: CheckpointInfo) -> str | None:
    """The look the model was trained on and its version, one line for `medshift info`; None when it records no look
    (a data-folder run, the shipped model)."""
    try:
        look, recorded = trained_look(info), recorded_look_fingerprint(info)
    except MedShiftError as error:
        return f"not readable: {error}"
    if look is None:
        return None
    if recorded is None:
        return f"{look} (its version not recorded: trained before MedShift recorded it)"
    present = look_fingerprint(look)
    version = "the present version" if recorded == present else f"another version; the present one is {present}"
    return f"{look}, fingerprint {recorded} ({version})"
