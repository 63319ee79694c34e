"""Translating files on disk: expand inputs, load the model once, write one output per input."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from ..engine.checkpoint import default_model_path, load_checkpoint
from ..engine.devices import describe_device, resolve_device
from ..engine.ode_solvers import CancelToken
from ..engine.translation import ProgressCallback
from ..errors import InputImageError, MedShiftError
from ..io.radiograph_files import SUPPORTED_EXTENSIONS, has_supported_extension, read_radiograph, write_radiograph
from ..settings import TranslationSettings
from .image_translation import translate_image
from .input_checks import out_of_range_findings, refuse_findings

ProgressFactory = Callable[[str], Callable[[int, int], None]]


def collect_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Files named directly, plus every supported image directly inside each named folder (sorted)."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir()
                           if p.is_file() and not p.name.startswith(".") and has_supported_extension(p))
            if not found:
                raise InputImageError(f"{path}: folder holds no supported image ({', '.join(SUPPORTED_EXTENSIONS)})")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise InputImageError(f"{path}: no such file or folder")
    return files


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
    on_warning: Callable[[str], None] | None = None,
    strict: bool = False,
) -> list[Path]:
    """Translate each file into `out_dir` under the same name and format; returns the written paths.

    `progress_factory(name)` gives a per-file progress callback; `progress(done, total)` counts solver
    steps over all files; `on_device` hears which device the model runs on once it is loaded;
    `on_warning` hears each input_checks finding once (with `strict`, a finding is an InputImageError).
    """
    out_dir = Path(out_dir)
    names = [f.name for f in files]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise MedShiftError(f"several inputs share the file name {duplicates[0]!r}; translate them into separate "
                            "folders")
    for f in files:
        if f.resolve().parent == out_dir.resolve():
            raise MedShiftError(f"output folder {out_dir} holds the input {f.name}; choose another --out so no input "
                                "is overwritten")
    torch_device = resolve_device(device)
    model, info = load_checkpoint(model_path or default_model_path(), torch_device)
    settings = info.validate(settings)
    if on_device is not None:
        on_device(describe_device(torch_device))
    out_dir.mkdir(parents=True, exist_ok=True)
    per_file, written, warned = 2 * settings.steps, [], set()
    for index, f in enumerate(files):
        image = read_radiograph(f, frame=frame)
        findings = [text for text in out_of_range_findings(image, settings, info) if text not in warned]
        if strict:
            refuse_findings(findings)
        for text in findings:
            warned.add(text)
            if on_warning is not None:
                on_warning(text)
        reports = [progress_factory(f.name)] if progress_factory else []
        if progress is not None:
            reports.append(_offset_progress(progress, index * per_file, per_file * len(files)))
        image_settings = settings.for_image(index)
        result = translate_image(image, model, info, image_settings, cancel=cancel, progress=_fan_out(reports))
        written.append(write_radiograph(result, out_dir / f.name, source=image,
                                        series_description=f"MedShift {image_settings.description()}"))
    return written


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
