"""Translating files on disk: expand inputs, plan the outputs, load the model once, write one output per input."""
from __future__ import annotations

import errno
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..engine.checkpoint import default_model_path, load_checkpoint
from ..engine.devices import describe_device, resolve_device
from ..engine.ode_solvers import CancelToken
from ..engine.translation import ProgressCallback
from ..errors import InputImageError, MedShiftError, TranslationCancelled
from ..io.path_kinds import describe_unusable_path
from ..io.radiograph import RadiographImage
from ..io.radiograph_files import SUPPORTED_EXTENSIONS, is_radiograph_file, read_radiograph, write_radiograph
from ..settings import TranslationSettings
from .image_translation import translate_image
from .input_checks import out_of_range_findings, refuse_findings
from .output_plan import (
    OutputPlanError,
    PlannedOutput,
    check_output_holds,
    format_change_note,
    plan_outputs,
    prepare_output_folder,
)

ProgressFactory = Callable[[str], Callable[[int, int], None]]
FATAL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO)


def collect_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Files named directly, plus every supported image directly inside each named folder (sorted): files with a
    supported extension and DICOM files by their preamble, whatever their name (a DICOMDIR index left out)."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir()
                           if p.is_file() and not p.name.startswith(".") and is_radiograph_file(p))
            if not found:
                raise InputImageError(f"{path}: folder holds no supported image ({', '.join(SUPPORTED_EXTENSIONS)}, "
                                      "or DICOM files without an extension)")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise InputImageError(f"{path}: {describe_unusable_path(path)}")
    return files


@dataclass
class BatchReport:
    """What a run did with each input: the outputs written, the inputs skipped and those that failed (with why)."""

    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)

    def summary(self) -> str:
        """One line: how many were written, skipped and failed."""
        return f"{len(self.written)} written, {len(self.skipped)} skipped, {len(self.failed)} failed"


OutcomeCallback = Callable[[str, Path, "Path | str"], None]
"""on_outcome(kind, input, detail): ("written", input, output), ("skipped", input, why) or ("failed", input, why);
`why` is one line that starts with the input's path."""


def translate_files(
    files: list[Path],
    out_dir: str | Path,
    settings: TranslationSettings,
    model_path: str | Path | None = None,
    device: str = "auto",
    frame: int | None = None,
    progress_factory: ProgressFactory | None = None,
    cancel: CancelToken | None = None,
    progress: ProgressCallback | None = None,
    on_device: Callable[[str], None] | None = None,
    overwrite: bool = False,
    output_format: str | None = None,
    on_outcome: OutcomeCallback | None = None,
    on_warning: Callable[[str], None] | None = None,
    strict: bool = False,
    planning_progress: Callable[[int, int], None] | None = None,
) -> BatchReport:
    """Translate each file into `out_dir` (same name and format, or `output_format`); goes on past a bad file.

    Every output is planned before the model is loaded (output_plan.py: no input is ever overwritten, an
    existing output is skipped unless `overwrite`, outputs are created exclusively). `progress_factory(name)`
    gives a per-file progress callback; `progress(done, total)` counts solver steps over all files;
    `on_device` hears which device the model runs on; `on_outcome` hears each input's outcome as it happens;
    `on_warning` hears each input_checks finding once (with `strict`, an input with a finding fails instead);
    `planning_progress(done, total)` hears how far the planning of a large batch is.
    """
    plans = plan_outputs(files, out_dir, overwrite, output_format, planning_progress)
    if on_warning is not None and output_format is None and (note := format_change_note(plans)):
        on_warning(note)
    torch_device = resolve_device(device)
    model, info = load_checkpoint(model_path or default_model_path(), torch_device)
    settings = info.validate(settings)
    if on_device is not None:
        on_device(describe_device(torch_device))
    prepare_output_folder(out_dir)
    report = BatchReport()

    def tell(kind: str, f: Path, detail: Path | str) -> None:
        if kind != "written" and not str(detail).startswith(str(f)):
            detail = f"{f}: {detail}"  # every failure line names its input
        {"written": report.written, "skipped": report.skipped, "failed": report.failed}[kind].append(
            detail if kind == "written" else (f, str(detail)))
        if on_outcome is not None:
            on_outcome(kind, f, detail)

    for plan in plans:
        if plan.skip_reason:
            tell("skipped", plan.input, plan.skip_reason)
    to_translate = [(place, plan) for place, plan in enumerate(plans) if not plan.skip_reason]
    per_file, warned = 2 * settings.steps, set()

    def check_input(image) -> None:
        findings = [text for text in out_of_range_findings(image, settings, info) if text not in warned]
        if strict:
            refuse_findings(findings)
        for text in findings:
            warned.add(text)
            if on_warning is not None:
                on_warning(text)

    for index, (place, plan) in enumerate(to_translate):
        try:  # noise seeds follow the input's place in the whole run, so skipping outputs changes no other result
            file_progress = _file_progress(plan.input, index, per_file, len(to_translate), progress_factory, progress)
            output = _translate_one(plan, place, model, info, settings, frame, overwrite, cancel,
                                    check_input, file_progress)
        except (InputImageError, OutputPlanError) as exc:
            tell("failed", plan.input, str(exc))
        except FileExistsError:
            tell("failed", plan.input, f"{plan.output} was created meanwhile (by another run?) and is kept; pass "
                                       "--overwrite to replace it, or choose another --out")
        except TranslationCancelled:
            raise
        except (MedShiftError, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno in FATAL_ERRNOS:
                raise  # the disk is full or gone: every later file would fail the same way
            tell("failed", plan.input, str(exc) if isinstance(exc, MedShiftError)
                 else f"{exc.filename or plan.input}: {exc.strerror or exc}")
        else:
            tell("written", plan.input, output)
    return report


def _translate_one(plan: PlannedOutput, index: int, model, info, settings: TranslationSettings, frame: int | None,
                   overwrite: bool, cancel: CancelToken | None, check_input: Callable[[RadiographImage], None],
                   progress: ProgressCallback | None) -> Path:
    """Read, check the input and that the output format holds it, translate and write one planned input."""
    image = read_radiograph(plan.input, frame=frame)
    check_input(image)
    check_output_holds(image, plan.output)
    image_settings = settings.for_image(index)
    result = translate_image(image, model, info, image_settings, cancel=cancel, progress=progress)
    return write_radiograph(result, plan.output, source=image, overwrite=overwrite,
                            series_description=f"MedShift {image_settings.description()}")


def _file_progress(f: Path, index: int, per_file: int, count: int, progress_factory: ProgressFactory | None,
                   progress: ProgressCallback | None) -> ProgressCallback | None:
    """The progress callback of the index-th translated file."""
    reports = [progress_factory(f.name)] if progress_factory else []
    if progress is not None:
        reports.append(_offset_progress(progress, index * per_file, per_file * count))
    return _fan_out(reports)


def _offset_progress(progress: ProgressCallback, offset: int, total: int) -> ProgressCallback:
    """A per-image progress callback reporting into a count over all images."""
    return lambda done, _total: progress(offset + done, total)


def _fan_out(callbacks: list[ProgressCallback]) -> ProgressCallback | None:
    """One progress callback calling each of `callbacks` (None when there are none)."""
    if not callbacks:
        return None

    def report(done: int, total: int) -> None:
        for callback in callbacks:
            callback(done, total)

    return report
