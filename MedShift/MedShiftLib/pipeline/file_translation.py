"""Translating files on disk: expand inputs, load the model once, write one output per input."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from ..engine.checkpoint import default_model_path, load_checkpoint
from ..engine.devices import resolve_device
from ..engine.ode_solvers import CancelToken
from ..errors import InputImageError, MedShiftError
from ..io.radiograph_files import SUPPORTED_EXTENSIONS, has_supported_extension, read_radiograph, write_radiograph
from ..settings import TranslationSettings
from .image_translation import translate_image

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
) -> list[Path]:
    """Translate each file into `out_dir` under the same name and format; returns the written paths."""
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
    model, info = load_checkpoint(model_path or default_model_path(), resolve_device(device))
    settings = info.validate(settings)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for index, f in enumerate(files):
        image = read_radiograph(f, frame=frame)
        progress = progress_factory(f.name) if progress_factory else None
        image_settings = settings.for_image(index)
        result = translate_image(image, model, info, image_settings, progress=progress, cancel=cancel)
        written.append(write_radiograph(result, out_dir / f.name, source=image,
                                        series_description=f"MedShift {image_settings.description()}"))
    return written
